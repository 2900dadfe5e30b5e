"""PixelDA's training state: everything a train step reads and writes.

The networks, the step counter, the optimizers and their learning-rate
schedule, the loss scalers (mixed_float16), the weight averages and the mean
teacher, and the `tf.train.Checkpoint` that saves them. The step that updates
them is `step.Step`; `pixelda.PixelDA` joins the two.

The checkpoint's keys (step, generator, discriminator, classifier,
source_classifier, <network>_optimizer, weight_average) are the run folders'
format: old checkpoints restore only while they stay the same.
"""

from __future__ import annotations

import hashlib
from typing import List, Optional

from absl import logging
import keras
import numpy as np
import tensorflow as tf

from pixelda_tf import averaging
from pixelda_tf import config as config_lib
from pixelda_tf import models
from pixelda_tf import runtime

# The order the official code updates the networks in.
UPDATE_ORDER = ("discriminator", "classifier", "generator")


class TrainingState:
  """Networks, optimizers, weight averages and the checkpoint of a run.

  Build it inside nothing: it enters `strategy.scope()` itself.

  Attributes:
    cfg: the Config.
    strategy: the tf.distribute strategy every variable lives under.
    pixelda: True in `--mode=pixelda` (G, D and T train), False for the
      source-only and target-only baselines (only T trains).
    precision: the Keras dtype policy the networks compute in
      (`runtime.resolve_precision` of cfg.runtime).
    nets: `models.Networks`.
    step: int64 variable, the number of completed train steps.
    learning_rate: the schedule every optimizer follows (of `step`).
    optimizers: dict name -> keras Adam, names from UPDATE_ORDER.
    loss_scalers: under `mixed_float16`, dict name -> the
      `keras.optimizers.LossScaleOptimizer` around `optimizers[name]` that
      applies its updates; empty otherwise. Not checkpointed (the scale
      re-adapts within a few steps), so checkpoints are the same whatever the
      precision.
    average: `averaging.WeightAverage` of T, the source T and (pixelda) G,
      with `cfg.train.ema_decay`; else None.
    teacher_pairs: the mean teacher (`LossConfig.target_teacher`): (T's
      variable, its average) for each of T's averaged variables; else [].
    checkpoint: tf.train.Checkpoint of everything that training changes.
    restored_from: the checkpoint `rundir` restored, if any.
    all_variables: every variable the step reads, each once (T's head is
      shared), in a fixed order; the step passes their values by index.
    seed_index: indices in all_variables of the dropout and noise layers'
      seed states, which the step sets afresh from (seed, step, replica).
    state_index: indices of the other non-trainable variables (batch-norm
      moving statistics): what the step writes back.
  """

  def __init__(self, cfg: config_lib.Config, strategy: tf.distribute.Strategy):
    self.cfg = cfg
    self.strategy = strategy
    self.pixelda = cfg.train.mode == "pixelda"
    self.precision, why = runtime.resolve_precision(cfg.runtime)
    logging.info("precision: %s (%s)", self.precision, why)
    with strategy.scope():
      self.nets = models.Networks(cfg, self.precision)
      self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
      self.learning_rate = learning_rate_schedule(cfg.optim)
      self.optimizers = {}
      for name in self.trained():
        opt = keras.optimizers.Adam(self.learning_rate, beta_1=cfg.optim.beta1,
                                    clipnorm=cfg.optim.clipnorm or None,
                                    name=f"{name}_adam")
        opt.build(self.variables(name))
        self.optimizers[name] = opt
      # float16's narrow range needs loss scaling (bfloat16 has float32's).
      self.loss_scalers = {}
      if self.precision == "mixed_float16":
        for name, opt in self.optimizers.items():
          scaler = keras.optimizers.LossScaleOptimizer(
              opt, name=f"{name}_loss_scale")
          scaler.build(self.variables(name))
          self.loss_scalers[name] = scaler
      self.restored_from: Optional[str] = None
      self.average = self._weight_average()
    self.teacher_pairs = []
    if self.pixelda and cfg.loss.target_teacher:
      ids = {id(v) for v in self.nets.classifier.variables}
      self.teacher_pairs = [(v, a) for v, a in zip(self.average.sources,
                                                   self.average.averages)
                            if id(v) in ids]
    self.checkpoint = self._checkpoint()
    self.all_variables = models.unique_variables(
        self.nets.generator.variables + self.nets.discriminator.variables
        + self.nets.classifier.variables
        + self.nets.source_classifier.variables)
    # Dropout and noise seeds are a function of (seed, step, replica), set
    # afresh every step, so they need no checkpoint; only batch-norm moving
    # statistics are state that the step writes back.
    self.seed_index = [i for i, v in enumerate(self.all_variables)
                       if _is_seed(v)]
    self.state_index = [i for i, v in enumerate(self.all_variables)
                        if not v.trainable and i not in self.seed_index]
    # Built on the first `nonfinite_variables` call (a traced function).
    self._finite_fn = None
    self._checked_names: List[str] = []

  def _weight_average(self) -> Optional[averaging.WeightAverage]:
    """The networks that evaluation, adaptation and export use, averaged."""
    if not self.cfg.train.ema_decay:
      return None
    averaged = [self.nets.classifier, self.nets.source_classifier]
    if self.pixelda:
      averaged.append(self.nets.generator)
    return averaging.WeightAverage(
        [v for v in models.unique_variables(
            [v for m in averaged for v in m.variables]) if not _is_seed(v)],
        self.cfg.train.ema_decay)

  def _checkpoint(self) -> tf.train.Checkpoint:
    # These keyword names are the checkpoint's object-graph keys.
    tracked = dict(step=self.step, generator=self.nets.generator,
                   discriminator=self.nets.discriminator,
                   classifier=self.nets.classifier,
                   source_classifier=self.nets.source_classifier)
    tracked.update({f"{n}_optimizer": o for n, o in self.optimizers.items()})
    if self.average is not None:
      tracked["weight_average"] = self.average
    return tf.train.Checkpoint(**tracked)

  def trained(self) -> List[str]:
    """The names of the networks the step updates, in UPDATE_ORDER."""
    return list(UPDATE_ORDER) if self.pixelda else ["classifier"]

  def variables(self, name: str) -> List[tf.Variable]:
    """The trainable variables of network `name` (one of UPDATE_ORDER)."""
    if name == "classifier":
      return self.nets.classifier_variables
    return getattr(self.nets, name).trainable_variables

  def checkpoint_variables(self) -> List[tf.Variable]:
    """Every network weight and batch-norm statistic, each once, in a fixed
    order (seed-generator states excluded: they are derived per step)."""
    return [v for i, v in enumerate(self.all_variables)
            if i not in self.seed_index]

  def nonfinite_variables(self) -> List[str]:
    """Paths of the checkpointed float variables (weights, batch-norm
    statistics, optimizer slots, weight averages) that hold NaN or inf."""
    if self._finite_fn is None:
      held = [(v, v.path) for v in self.checkpoint_variables()]
      held += [(v, v.path) for o in self.optimizers.values()
               for v in o.variables]
      if self.average is not None:
        # The averages are plain tf.Variables, all named "average".
        held += [(a, f"average of {v.path}") for a, v in zip(
            self.average.averages, self.average.sources)]
      held = [(v, name) for v, name in held
              if tf.as_dtype(v.dtype).is_floating]
      checked = [v for v, _ in held]
      self._checked_names = [name for _, name in held]
      self._finite_fn = tf.function(lambda: tf.stack(
          [tf.reduce_all(tf.math.is_finite(v)) for v in checked]),
                                    autograph=False)
    finite = self._finite_fn().numpy()
    return [n for n, ok in zip(self._checked_names, finite) if not ok]

  def weights_sha256(self) -> str:
    """sha256 of every network weight (and weight average): equal runs (or
    workers) match exactly."""
    averages = self.average.averages if self.average is not None else []
    return sha256_of([*self.checkpoint_variables(), *averages])

  def trained_weights_sha256(self) -> str:
    """sha256 of the trained networks' weights: mirrored variables, the same
    on every replica unless restored from different checkpoints (batch-norm
    statistics and weight averages may be kept per replica: left out)."""
    return sha256_of([v for name in self.optimizers
                      for v in self.variables(name)])

  def adapt(self, source_images: tf.Tensor, z: tf.Tensor) -> tf.Tensor:
    """G(x_s, z) in inference mode: (B, S, S, 3) in [-1, 1]."""
    return self.nets.generator([source_images, z], training=False)


def learning_rate_schedule(
    o: config_lib.OptimConfig
) -> keras.optimizers.schedules.LearningRateSchedule:
  """The staircase exponential decay, with a faster late part when
  `o.late_decay_steps` is set (`LateStaircase`)."""
  if o.late_decay_steps:
    return LateStaircase(o.learning_rate, o.decay_steps, o.decay_rate,
                         o.late_decay_steps, o.late_decay_from)
  return keras.optimizers.schedules.ExponentialDecay(
      o.learning_rate, o.decay_steps, o.decay_rate, staircase=True)


@keras.saving.register_keras_serializable(package="pixelda_tf")
class LateStaircase(keras.optimizers.schedules.LearningRateSchedule):
  """learning_rate * decay_rate ** floor(step / interval), where the
  interval is decay_steps before step late_from and late_steps from it on
  (the staircase ExponentialDecay with a faster second part)."""

  def __init__(self, learning_rate: float, decay_steps: int,
               decay_rate: float, late_steps: int, late_from: int):
    self.learning_rate, self.decay_steps = learning_rate, decay_steps
    self.decay_rate, self.late_steps = decay_rate, late_steps
    self.late_from = late_from

  def __call__(self, step):
    step = tf.cast(step, tf.float32)
    exponent = tf.where(step < self.late_from,
                        tf.floor(step / self.decay_steps),
                        tf.floor(step / self.late_steps))
    return self.learning_rate * tf.pow(self.decay_rate, exponent)

  def get_config(self):
    return {"learning_rate": self.learning_rate,
            "decay_steps": self.decay_steps, "decay_rate": self.decay_rate,
            "late_steps": self.late_steps, "late_from": self.late_from}


def sha256_of(variables) -> str:
  """sha256 of the variables' values, in order."""
  digest = hashlib.sha256()
  for v in variables:
    digest.update(np.ascontiguousarray(v.numpy()).tobytes())
  return digest.hexdigest()


def _is_seed(v: tf.Variable) -> bool:
  return v.path.endswith("seed_generator_state")
