"""The train step's mechanics: gradients, the cross-replica sum, the updates.

`Step` runs an objective (the losses of one batch, `pixelda.pixelda_losses`
or `pixelda.baseline_losses`) on a `state.TrainingState`: it computes every
loss once, takes each network's gradients of its own loss, sums them over
replicas and applies the D, T and G updates in the official order (D and T,
then G).

The per-replica part (forward, losses, gradients) is what XLA compiles: under
MirroredStrategy a `jit_compile` outer function fails (a resource on CPU:1 is
accessed from CPU:0), while a compiled per-replica function runs on each
device. So the per-replica part is a pure function of tensors: variable
values come in as arguments and new batch-norm statistics go out
(`StatelessCalls`). Gradients are summed across replicas outside the
compiled part, then clipped and applied once in cross-replica context, so
clipping sees the same global gradient as a single-device run.
"""

from __future__ import annotations

import math
from typing import Callable, Dict, List, Optional, Tuple

import keras
import tensorflow as tf

from pixelda_tf import errors
from pixelda_tf import state as state_lib
from pixelda_tf import streams as streams_lib

# (call, batch, z, mean, step) -> ({network: loss}, {name: scalar log}); see
# `pixelda.pixelda_losses` for the arguments.
Objective = Callable[..., Tuple[Dict[str, tf.Tensor], Dict[str, tf.Tensor]]]


class NonFiniteLossError(errors.UserError, RuntimeError):
  """A loss, or a weight the update left, became NaN or inf; the message
  names the step and the values."""


class Step:
  """The compiled train step of a `TrainingState` under `objective`.

  Args:
    state: what the step reads and updates.
    objective: the losses of one batch.
  """

  def __init__(self, state: state_lib.TrainingState, objective: Objective):
    self._state = state
    self._objective = objective
    self._streams = streams_lib.Streams(
        state.cfg, state.strategy.num_replicas_in_sync)
    # Compiled as its own function only for XLA; otherwise traced inline in
    # the step, where synchronised batch norm may call across replicas.
    # No AutoGraph: the step's Python control flow is static (settings, lists
    # of networks), and converting it and the Keras code it calls added 1-2 s
    # to every first step.
    self._grads_fn = (tf.function(self._replica_grads, jit_compile=True,
                                  autograph=False)
                      if state.cfg.runtime.jit_compile else self._replica_grads)
    self._step_fn = tf.function(self._apply, autograph=False)
    self._gradients_fn = None

  def __call__(self, batch) -> Dict[str, tf.Tensor]:
    """Runs one step on a global batch (a dict from `data.train_dataset`, or
    its distributed form) and returns a flat dict of scalar logs."""
    return self._step_fn(batch)

  def gradients(self, batch):
    """(logs, gradients by network) of one global batch, nothing applied."""
    if self._gradients_fn is None:
      self._gradients_fn = tf.function(lambda b: self._reduced(b)[:2],
                                       autograph=False)
    return self._gradients_fn(batch)

  def _replica_grads(self, values: List[tf.Tensor], batch: Dict[str, tf.Tensor],
                     z: tf.Tensor, seeds: tf.Tensor, step: tf.Tensor,
                     loss_scales: Optional[Dict[str, tf.Tensor]] = None,
                     teacher: Optional[List[tf.Tensor]] = None):
    """One replica's logs, gradients and new batch-norm statistics: a pure
    function of tensors, XLA-compiled when cfg.runtime.jit_compile (a
    compiled function that touches a replica's variables fails on logical
    CPU devices: XLA places it on CPU:0, the variable lives on CPU:1).
    `loss_scales` (mixed_float16 only): network name -> its loss scale."""
    s = self._state
    call = StatelessCalls(s.all_variables, values, s.seed_index, seeds,
                          {id(v): t for (v, _), t in
                           zip(s.teacher_pairs, teacher or [])})
    params = {name: call.values_of(s.variables(name)) for name in s.trained()}
    # Losses are summed over the local examples and divided by the GLOBAL
    # batch: summing the gradients over replicas then gives exactly the
    # global-batch mean that one device would compute.
    scale = 1.0 / s.cfg.train.batch_size

    def mean(per_example):
      return tf.reduce_sum(per_example) * scale

    with tf.GradientTape(persistent=True) as tape:
      tape.watch(tf.nest.flatten(params))
      net_losses, logs = self._objective(call, batch, z, mean, step)
      # mixed_float16: the gradient of loss x scale, so that small gradients
      # survive float16; the LossScaleOptimizer divides the (all-reduced)
      # gradients by the same scale before clipping and Adam see them.
      targets = {name: loss if loss_scales is None
                 else loss * loss_scales[name]
                 for name, loss in net_losses.items()}
    # D's and T's losses also reach G through the adapted images; asking each
    # loss only for its own network's parameters keeps those paths out of the
    # update (and the graph prunes the backward ops nobody asked for).
    grads = {name: tape.gradient(targets[name], params[name])
             for name in s.trained()}
    del tape
    return logs, grads, call.values_at(s.state_index)

  def _reduced(self, batch):
    """Runs the per-replica part; logs and gradients summed over replicas,
    batch-norm statistics averaged, as plain tensors (cross-replica)."""
    s = self._state

    def replica_fn(batch, step):
      # Inside a replica, a variable's value is that replica's copy. The
      # draws are made outside the compiled part: XLA's stateless RNG gives
      # other numbers than TensorFlow's kernels, and they should not depend
      # on --jit_compile.
      z = self._streams.noise(step, tf.shape(batch["source_images"])[0])
      batch = {**batch, **self._streams.target_draws(
          step, tf.shape(batch["target_images"]))}
      scales = ({n: c.dynamic_scale.value for n, c in s.loss_scalers.items()}
                or None)
      logs, grads, states = self._grads_fn(
          [v.value for v in s.all_variables], batch, z,
          self._streams.layer_seeds(step, len(s.seed_index)), step, scales,
          [tf.convert_to_tensor(a) for _, a in s.teacher_pairs])
      # One packed all-reduce per kind, in replica context: this form works
      # for one device, MirroredStrategy and MultiWorkerMirroredStrategy.
      ctx = tf.distribute.get_replica_context()
      logs, grads = ctx.all_reduce(tf.distribute.ReduceOp.SUM, (logs, grads))
      states = ctx.all_reduce(tf.distribute.ReduceOp.MEAN, states)
      return logs, grads, states

    out = s.strategy.run(replica_fn, args=(batch, s.step.read_value()))
    # Every replica now holds the same values: take this worker's first.
    return tf.nest.map_structure(
        lambda x: s.strategy.experimental_local_results(x)[0], out)

  def _apply(self, batch):
    """The step: gradients, then the updates in the official order."""
    s = self._state
    logs, grads, states = self._reduced(batch)
    for i, value in zip(s.state_index, states):
      s.all_variables[i].assign(value)
    # D and T first, then G: the official update order.
    for name in s.trained():
      # mixed_float16: the LossScaleOptimizer unscales, skips the update (and
      # halves the scale) on non-finite gradients, else applies Adam.
      s.loss_scalers.get(name, s.optimizers[name]).apply(
          grads[name], s.variables(name))
    logs["learning_rate"] = tf.cast(s.learning_rate(s.step), tf.float32)
    s.step.assign_add(1)
    if s.average is not None:
      s.average.update(s.step)
    return logs


class StatelessCalls:
  """Runs Keras networks as pure functions of a list of variable values.

  `values[i]` is the value of `variables[i]`. Each call takes a network's
  weights from `values` and writes the batch-norm statistics and seed states
  it returns back into `values`, so a later call of the same network sees
  them, as a stateful call would. Outputs come back as float32 whatever the
  network computes in (mixed precision), so every loss is float32.
  """

  def __init__(self, variables: List[tf.Variable], values: List[tf.Tensor],
               seed_index: List[int], seeds: tf.Tensor,
               teacher: Optional[Dict[int, tf.Tensor]] = None):
    self._index = {id(v): i for i, v in enumerate(variables)}
    self._values = list(values)
    self._teacher = teacher or {}
    for k, i in enumerate(seed_index):
      self._values[i] = seeds[k]

  def values_of(self, variables: List[tf.Variable]) -> List[tf.Tensor]:
    return [self._values[self._index[id(v)]] for v in variables]

  def values_at(self, indices: List[int]) -> List[tf.Tensor]:
    return [self._values[i] for i in indices]

  def __call__(self, model: keras.Model, inputs,
               weights_of: Optional[keras.Model] = None):
    """`model(inputs)` with its own weights, or those of `weights_of` (a
    network of the same layout, e.g. a float32 twin)."""
    owner = weights_of or model
    out, new_state = model.stateless_call(
        self.values_of(owner.trainable_variables),
        self.values_of(owner.non_trainable_variables), inputs, training=True)
    for v, new in zip(owner.non_trainable_variables, new_state):
      self._values[self._index[id(v)]] = new
    return tf.nest.map_structure(lambda t: tf.cast(t, tf.float32), out)

  def teacher(self, model: keras.Model, inputs) -> tf.Tensor:
    """`model(inputs)` in inference mode with the teacher's values of its
    variables (their weight averages; a variable without one, such as a
    dropout seed, keeps its own), as a constant."""
    def values(variables):
      return [self._teacher.get(id(v), own)
              for v, own in zip(variables, self.values_of(variables))]
    out, _ = model.stateless_call(values(model.trainable_variables),
                                  values(model.non_trainable_variables),
                                  inputs, training=False)
    return tf.stop_gradient(tf.cast(out, tf.float32))


def check_finite(logs: Dict[str, float], step: int,
                 bad_variables: List[str] = ()) -> None:
  """Raises NonFiniteLossError naming the step and every non-finite log
  value, or else every non-finite variable
  (`TrainingState.nonfinite_variables()`)."""
  bad = {k: v for k, v in logs.items() if not math.isfinite(float(v))}
  fix = ("the last good checkpoint is kept. Lower --learning_rate or check "
         "the input data")
  if bad:
    raise NonFiniteLossError(f"non-finite values at step {step}: {bad}; {fix}")
  if bad_variables:
    more = " ..." if len(bad_variables) > 5 else ""
    raise NonFiniteLossError(
        f"non-finite weights at step {step}, after its update: "
        f"{', '.join(bad_variables[:5])}{more}; {fix}")
