"""An exponential moving average (EMA) of network weights.

GAN training moves the classifier and generator every step, so their test
accuracy swings between evaluations. Averaging the weights over the last few
thousand steps smooths that swing; evaluation, the best checkpoint and export
use the average, while training itself is unchanged (unless the classifier's
average is also its teacher: `LossConfig.target_teacher`).

The decay warms up as TensorFlow's `ExponentialMovingAverage(num_updates=)`
does, `min(decay, (1 + t) / (10 + t))` after update t, so early averages are
not dominated by the initial weights.
"""

from __future__ import annotations

import contextlib
from typing import Iterator, List

import tensorflow as tf

from pixelda_tf import errors


class WeightAverage(tf.Module):
  """Shadow copies of `variables`, updated as their moving average.

  Build it inside the strategy scope of the variables it averages. Its
  `averages` are tracked, so a `tf.train.Checkpoint` holding it saves and
  restores them.
  """

  def __init__(self, variables: List[tf.Variable], decay: float,
               name: str = "weight_average"):
    super().__init__(name=name)
    if not 0.0 < decay < 1.0:
      raise errors.ConfigError(f"decay={decay}: must be in (0, 1)")
    self._variables = list(variables)
    self.decay = decay
    with self.name_scope:
      self.averages = [
          tf.Variable(tf.convert_to_tensor(v), trainable=False,
                      name="average")
          for v in self._variables]

  @property
  def sources(self) -> List[tf.Variable]:
    """The averaged variables, in the order of `averages`."""
    return list(self._variables)

  def update(self, num_updates: tf.Tensor) -> None:
    """Moves every average towards its variable; `num_updates` counts this
    update (1 for the first)."""
    t = tf.cast(num_updates, tf.float32)
    decay = tf.minimum(self.decay, (1.0 + t) / (10.0 + t))
    for average, variable in zip(self.averages, self._variables):
      average.assign(decay * average
                     + (1.0 - decay) * tf.convert_to_tensor(variable))

  def copy_to_variables(self) -> None:
    """Overwrites the variables with their averages (for export and
    evaluation of a restored run)."""
    for average, variable in zip(self.averages, self._variables):
      variable.assign(average)

  @contextlib.contextmanager
  def applied(self) -> Iterator[None]:
    """The variables hold their averages inside the block, their own values
    again after it (also when the block raises)."""
    saved = [tf.identity(tf.convert_to_tensor(v)) for v in self._variables]
    self.copy_to_variables()
    try:
      yield
    finally:
      for variable, value in zip(self._variables, saved):
        variable.assign(value)
