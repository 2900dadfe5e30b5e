"""PixelDA's models, optimizers and the fused train step.

One step computes every forward pass once (G on the source batch, D on target
and adapted images, T on source and adapted images), takes each network's
gradients of its own loss, and applies the D, T and G updates in the official
order (D and T, then G). As in the official code, T's variables sit with D's
side of the min-max game: D+T maximise/minimise their losses, G minimises
alpha-weighted adversarial + task-in-G (+ PMSE) losses. The objective is
`pixelda_losses`, on one page; the rest of this module is plumbing.

The per-replica part (forward, losses, gradients) is what XLA compiles: under
MirroredStrategy a `jit_compile` outer function fails (a resource on CPU:1 is
accessed from CPU:0), while a compiled per-replica function runs on each
device. Gradients are summed across replicas outside the compiled part, then
clipped and applied once in cross-replica context, so clipping sees the same
global gradient as a single-device run.
"""

from __future__ import annotations

import math
from typing import Dict, List, Optional

from absl import logging
import keras
import tensorflow as tf

from pixelda_tf import averaging
from pixelda_tf import config as config_lib
from pixelda_tf import losses
from pixelda_tf import models
from pixelda_tf import runtime

# The order the official code updates the networks in.
UPDATE_ORDER = ("discriminator", "classifier", "generator")


class NonFiniteLossError(RuntimeError):
  """A loss, or a weight the update left, became NaN or inf; the message
  names the step and the values."""


class PixelDA:
  """Networks, optimizers, the step counter and the compiled train step.

  Build it inside nothing: it enters `strategy.scope()` itself.

  Attributes:
    cfg: the Config.
    strategy: the tf.distribute strategy every variable lives under.
    nets: `models.Networks`.
    step: int64 variable, the number of completed train steps.
    optimizers: dict name -> keras Adam, names from UPDATE_ORDER.
    precision: the Keras dtype policy the networks compute in
      (`runtime.resolve_precision` of cfg.runtime).
    loss_scalers: under `mixed_float16`, dict name -> the
      `keras.optimizers.LossScaleOptimizer` around `optimizers[name]` that
      applies its updates; empty otherwise. Not checkpointed (the scale
      re-adapts within a few steps), so checkpoints are the same whatever the
      precision.
    checkpoint: tf.train.Checkpoint of everything that training changes.
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
      o = cfg.optim
      self.learning_rate = (
          LateStaircase(o.learning_rate, o.decay_steps, o.decay_rate,
                        o.late_decay_steps, o.late_decay_from)
          if o.late_decay_steps else
          keras.optimizers.schedules.ExponentialDecay(
              o.learning_rate, o.decay_steps, o.decay_rate, staircase=True))
      self.optimizers = {}
      for name in self._trained():
        opt = keras.optimizers.Adam(self.learning_rate, beta_1=o.beta1,
                                    clipnorm=o.clipnorm or None,
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
      # The checkpoint `restore` read, if this model came from one.
      self.restored_from: Optional[str] = None
      # The networks that evaluation, adaptation and export use.
      averaged = [self.nets.classifier, self.nets.source_classifier]
      if self.pixelda:
        averaged.append(self.nets.generator)
      self.average = (averaging.WeightAverage(
          [v for v in models.unique_variables(
              [v for m in averaged for v in m.variables])
           if not v.path.endswith("seed_generator_state")],
          cfg.train.ema_decay) if cfg.train.ema_decay else None)
    tracked = dict(step=self.step, generator=self.nets.generator,
                   discriminator=self.nets.discriminator,
                   classifier=self.nets.classifier,
                   source_classifier=self.nets.source_classifier)
    tracked.update({f"{n}_optimizer": o for n, o in self.optimizers.items()})
    if self.average is not None:
      tracked["weight_average"] = self.average
    # The mean teacher (`target_teacher`): the averages of T's variables,
    # read each step and passed into the step's pure function as values.
    self._teacher = []
    if self.pixelda and cfg.loss.target_teacher:
      ids = {id(v) for v in self.nets.classifier.variables}
      self._teacher = [(v, a) for v, a in zip(self.average.sources,
                                              self.average.averages)
                       if id(v) in ids]
    self.checkpoint = tf.train.Checkpoint(**tracked)
    # Every variable the step reads, each once (T's head is shared).
    self._all_vars = models.unique_variables(self.nets.generator.variables
                             + self.nets.discriminator.variables
                             + self.nets.classifier.variables
                             + self.nets.source_classifier.variables)
    # Dropout and noise seeds are a function of (seed, step, replica), set
    # afresh every step, so they need no checkpoint; only batch-norm moving
    # statistics are state that the step writes back.
    self._seed_index = [i for i, v in enumerate(self._all_vars)
                        if v.path.endswith("seed_generator_state")]
    self._state_index = [i for i, v in enumerate(self._all_vars)
                         if not v.trainable and i not in self._seed_index]
    # Compiled as its own function only for XLA; otherwise traced inline in
    # the step, where synchronised batch norm may call across replicas.
    # No AutoGraph: the step's Python control flow is static (settings, lists
    # of networks), and converting it and the Keras code it calls added 1-2 s
    # to every first step.
    self._grads_fn = (tf.function(self._replica_grads, jit_compile=True,
                                  autograph=False)
                      if cfg.runtime.jit_compile else self._replica_grads)
    self._step_fn = tf.function(self._distributed_step, autograph=False)
    self._gradients_fn = None
    self._finite_fn = None

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

  def _trained(self) -> List[str]:
    return list(UPDATE_ORDER) if self.pixelda else ["classifier"]

  def checkpoint_variables(self) -> List[tf.Variable]:
    """Every network weight and batch-norm statistic, each once, in a fixed
    order (seed-generator states excluded: they are derived per step)."""
    return [v for i, v in enumerate(self._all_vars)
            if i not in self._seed_index]

  def variables(self, name: str) -> List[tf.Variable]:
    """The trainable variables of network `name` (one of UPDATE_ORDER)."""
    if name == "classifier":
      return self.nets.classifier_variables
    return getattr(self.nets, name).trainable_variables

  # The per-replica computation, XLA-compiled when cfg.runtime.jit_compile.
  # A pure function of tensors: variable values come in as arguments and new
  # batch-norm statistics and seed states go out (`StatelessCalls`), because
  # a compiled function that touches a replica's variables fails on logical
  # CPU devices (XLA places it on CPU:0, the variable lives on CPU:1).
  # `loss_scales` (mixed_float16 only): network name -> its loss scale.
  def _replica_grads(self, values: List[tf.Tensor], batch: Dict[str, tf.Tensor],
                     z: tf.Tensor, seeds: tf.Tensor, step: tf.Tensor,
                     loss_scales: Optional[Dict[str, tf.Tensor]] = None,
                     teacher: Optional[List[tf.Tensor]] = None):
    call = StatelessCalls(self._all_vars, values, self._seed_index, seeds,
                          {id(v): t for (v, _), t in
                           zip(self._teacher, teacher or [])})
    params = {name: call.values_of(self.variables(name))
              for name in self._trained()}
    # Losses are summed over the local examples and divided by the GLOBAL
    # batch: summing the gradients over replicas then gives exactly the
    # global-batch mean that one device would compute.
    scale = 1.0 / self.cfg.train.batch_size

    def mean(per_example):
      return tf.reduce_sum(per_example) * scale

    with tf.GradientTape(persistent=True) as tape:
      tape.watch(tf.nest.flatten(params))
      if self.pixelda:
        net_losses, logs = pixelda_losses(call, self.nets, batch, z,
                                          self.cfg.loss, mean, step)
      else:
        net_losses, logs = baseline_losses(call, self.nets, batch,
                                           self.cfg.train.mode, mean)
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
             for name in self._trained()}
    del tape
    return logs, grads, call.values_at(self._state_index)

  def _noise(self, step: tf.Tensor, local_batch: tf.Tensor) -> tf.Tensor:
    """z ~ U[-1, 1], a pure function of (seed, step, example index).

    Drawn for the global batch and sliced per replica, so N replicas see the
    same z as one device would, and a resumed run draws the same z again.
    """
    global_batch = self.cfg.train.batch_size
    seed = tf.stack([tf.constant(self.cfg.train.seed, tf.int64), step])
    z = tf.random.stateless_uniform(
        [global_batch, self.cfg.generator.noise_dim], seed=seed,
        minval=-1.0, maxval=1.0)
    return _replica_rows(z, local_batch)

  def _vat_noise(self, step: tf.Tensor, local_shape: tf.Tensor) -> tf.Tensor:
    """The VAT probe's start direction ~ N(0, 1), drawn as z is."""
    global_shape = tf.concat([[self.cfg.train.batch_size], local_shape[1:]],
                             axis=0)
    # Another stream than z's: the seed's first word differs.
    seed = tf.stack([tf.constant(self.cfg.train.seed, tf.int64) + (1 << 32),
                     step])
    return _replica_rows(tf.random.stateless_normal(global_shape, seed=seed),
                         local_shape[0])

  def _student_view(self, step: tf.Tensor,
                    local_shape: tf.Tensor) -> Dict[str, tf.Tensor]:
    """The noisy mean teacher's draws, as z is: each target image's shift
    (B, 2) int32 in [-s, s] and its Gaussian noise (B, S, S, 3), each only
    when its setting is on."""
    w = self.cfg.loss
    b = self.cfg.train.batch_size
    # Two more streams than z's and VAT's.
    seed = tf.constant(self.cfg.train.seed, tf.int64)
    draws = {}
    if w.target_teacher_shift:
      draws["target_student_shift"] = tf.random.stateless_uniform(
          [b, 2], tf.stack([seed + (2 << 32), step]),
          minval=-w.target_teacher_shift, maxval=w.target_teacher_shift + 1,
          dtype=tf.int32)
    if w.target_teacher_noise:
      draws["target_student_noise"] = (
          w.target_teacher_noise * tf.random.stateless_normal(
              tf.concat([[b], local_shape[1:]], axis=0),
              tf.stack([seed + (3 << 32), step])))
    return {k: _replica_rows(v, local_shape[0]) for k, v in draws.items()}

  def _reduced(self, batch):
    """Runs the per-replica part; logs and gradients summed over replicas,
    batch-norm statistics averaged, as plain tensors (cross-replica)."""
    def replica_fn(batch, step):
      # Inside a replica, a variable's value is that replica's copy. z is
      # drawn outside the compiled part: XLA's stateless RNG gives other
      # numbers than TensorFlow's kernels, and z should not depend on
      # --jit_compile.
      z = self._noise(step, tf.shape(batch["source_images"])[0])
      if self.pixelda and self.cfg.loss.target_vat:
        batch = {**batch, "target_vat_noise": self._vat_noise(
            step, tf.shape(batch["target_images"]))}
      if self.pixelda and self.cfg.loss.noisy_teacher:
        batch = {**batch, **self._student_view(
            step, tf.shape(batch["target_images"]))}
      scales = ({n: s.dynamic_scale.value for n, s in self.loss_scalers.items()}
                or None)
      logs, grads, states = self._grads_fn(
          [v.value for v in self._all_vars], batch, z, self._layer_seeds(step),
          step, scales, [tf.convert_to_tensor(a) for _, a in self._teacher])
      # One packed all-reduce per kind, in replica context: this form works
      # for one device, MirroredStrategy and MultiWorkerMirroredStrategy.
      ctx = tf.distribute.get_replica_context()
      logs, grads = ctx.all_reduce(tf.distribute.ReduceOp.SUM, (logs, grads))
      states = ctx.all_reduce(tf.distribute.ReduceOp.MEAN, states)
      return logs, grads, states

    out = self.strategy.run(replica_fn, args=(batch, self.step.read_value()))
    # Every replica now holds the same values: take this worker's first.
    return tf.nest.map_structure(
        lambda x: self.strategy.experimental_local_results(x)[0], out)

  def _layer_seeds(self, step: tf.Tensor) -> tf.Tensor:
    """uint32 (num_seed_layers, 2): each dropout/noise layer's seed this step.

    A pure function of (seed, layer, step, replica): a resumed run draws the
    same masks again, and replicas draw independent ones.
    """
    if not self._seed_index:
      return tf.zeros([0, 2], tf.uint32)
    replica = tf.cast(
        tf.distribute.get_replica_context().replica_id_in_sync_group, tf.int64)
    layers_ = tf.range(len(self._seed_index), dtype=tf.int64)
    first = self.cfg.train.seed * 1000003 + layers_
    second = tf.fill(tf.shape(layers_),
                     step * self.strategy.num_replicas_in_sync + replica)
    # Keep 32 bits of each word: uint32 seeds wrap like the generator's own.
    return tf.cast(tf.stack([first, second], axis=1) % (1 << 32), tf.uint32)

  def _distributed_step(self, batch):
    logs, grads, states = self._reduced(batch)
    for i, state in zip(self._state_index, states):
      self._all_vars[i].assign(state)
    # D and T first, then G: the official update order.
    for name in self._trained():
      # mixed_float16: the LossScaleOptimizer unscales, skips the update (and
      # halves the scale) on non-finite gradients, else applies Adam.
      self.loss_scalers.get(name, self.optimizers[name]).apply(
          grads[name], self.variables(name))
    logs["learning_rate"] = tf.cast(self.learning_rate(self.step), tf.float32)
    self.step.assign_add(1)
    if self.average is not None:
      self.average.update(self.step)
    return logs

  def gradients(self, batch):
    """(logs, gradients by network) of one global batch, nothing applied.

    For tests and debugging; `batch` as for `train_step`.
    """
    if self._gradients_fn is None:
      self._gradients_fn = tf.function(lambda b: self._reduced(b)[:2],
                                       autograph=False)
    return self._gradients_fn(batch)

  def train_step(self, batch) -> Dict[str, tf.Tensor]:
    """Runs one step on a global batch (a dict from `data.train_dataset`, or
    its distributed form) and returns a flat dict of scalar logs."""
    return self._step_fn(batch)

  def adapt(self, source_images: tf.Tensor, z: tf.Tensor) -> tf.Tensor:
    """G(x_s, z) in inference mode: (B, S, S, 3) in [-1, 1]."""
    return self.nets.generator([source_images, z], training=False)


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


def _replica_rows(global_values: tf.Tensor, local_batch) -> tf.Tensor:
  """This replica's rows of a draw made for the global batch."""
  replica = tf.distribute.get_replica_context().replica_id_in_sync_group
  start = tf.cast(replica, tf.int32) * local_batch
  return global_values[start:start + local_batch]


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


def pixelda_losses(call, nets: models.Networks, batch: Dict[str, tf.Tensor],
                   z: tf.Tensor, w: config_lib.LossConfig, mean,
                   step: tf.Tensor):
  """The PixelDA objective of one batch: each network's loss, and the logs.

  alpha * L_d(D, G) + beta * L_t(G, T) + gamma * L_c(G) (Bousmalis et al.,
  eq. 1-4), with the official code's weights: D and T minimise their losses,
  G minimises the style (non-saturating adversarial) loss plus the task loss
  on adapted images (and PMSE, when weighted).

  Args:
    call: runs a network in training mode (`StatelessCalls`).
    nets: the networks.
    batch: source_images (B, S, S, 3) in [-1, 1], source_labels (B,) int,
      target_images (B, S, S, 3), and what the refinement terms read
      (`target_refinement`).
    z: (B, noise_dim) in [-1, 1].
    w: the loss weights.
    mean: per-example losses (B,) -> the scalar this replica contributes.
    step: int64 scalar, the steps completed before this one (for the
      refinement terms' `refine_start_step`).

  Returns:
    ({"discriminator", "classifier", "generator": scalar loss}, logs).
  """
  xs, ys, xt = (batch["source_images"], batch["source_labels"],
                batch["target_images"])
  adapted = call(nets.generator, [xs, z])
  # Two calls, as in the official code: batch norm normalises target and
  # adapted images with their own batch statistics.
  d_real = call(nets.discriminator, xt)
  d_fake = call(nets.discriminator, adapted)
  t_source = call(nets.source_classifier, xs)
  t_adapted = call(nets.classifier, adapted)

  domain = mean(losses.discriminator_loss(d_real, d_fake))
  style = mean(losses.generator_adversarial_loss(d_fake))
  task_source = mean(losses.task_loss(ys, t_source))
  task_adapted = mean(losses.task_loss(ys, t_adapted))
  refine, refine_logs = target_refinement(call, nets, batch, w, mean, step)
  pmse = tf.constant(0.0)
  if w.pmse:
    mask = losses.foreground_mask(xs) if w.pmse_mask == "foreground" else None
    pmse = mean(losses.pmse_loss(xs, adapted, mask))

  d_loss = w.domain * domain
  t_loss = w.task_source * task_source + w.task_adapted * task_adapted + refine
  # As the official code: the adapted-image task loss, at its own weight,
  # scaled again by task-in-G.
  g_loss = (w.style * style + w.task_in_g * w.task_adapted * task_adapted
            + w.pmse * pmse)
  logs = {
      "loss/discriminator": d_loss, "loss/classifier": t_loss,
      "loss/generator": g_loss, "loss/domain": domain, "loss/style": style,
      "loss/task_source": task_source, "loss/task_adapted": task_adapted,
      "loss/pmse": pmse,
      "accuracy/source": mean(losses.accuracy(ys, t_source)),
      "accuracy/adapted": mean(losses.accuracy(ys, t_adapted)),
      "accuracy/d_real": mean(losses.binary_accuracy(d_real, 1.0)),
      "accuracy/d_fake": mean(losses.binary_accuracy(d_fake, 0.0)),
      **refine_logs,
  }
  return ({"discriminator": d_loss, "classifier": t_loss,
           "generator": g_loss}, logs)


def target_refinement(call, nets: models.Networks,
                      batch: Dict[str, tf.Tensor], w: config_lib.LossConfig,
                      mean, step: tf.Tensor):
  """T's optional terms on unlabelled target images (beyond the paper).

  Conditional entropy, confident pseudo-labels, VAT and a mean teacher, each
  at its weight in `w`; before `w.refine_start_step` they are computed and
  logged but weighted 0. Arguments as `pixelda_losses`; `batch` also holds,
  with `target_vat` weighted, target_vat_noise (B, S, S, 3), the VAT
  probe's random direction, and with the teacher's view perturbed,
  target_student_shift (B, 2) int32 and/or target_student_noise
  (B, S, S, 3) (each when its setting is on), which make the view T's own
  prediction is made on; `call.teacher` gives the weight-averaged T's.

  Returns:
    (the scalar added to T's loss, its logs); (0, {}) with every term off.
  """
  if not (w.target_entropy or w.pseudo_label or w.target_vat
          or w.target_teacher):
    return tf.constant(0.0), {}
  xt = batch["target_images"]
  t_target = call(nets.classifier, xt)
  noisy = w.noisy_teacher
  if not (w.target_entropy or w.pseudo_label
          or (w.target_teacher and not noisy)):
    t_target = tf.stop_gradient(t_target)  # VAT's constants; logs only
  entropy = mean(losses.conditional_entropy(t_target))
  per_example, confident = losses.pseudo_label_loss(
      t_target, w.pseudo_label_threshold)
  pseudo = mean(per_example)
  terms = w.target_entropy * entropy + w.pseudo_label * pseudo
  logs = {"loss/target_entropy": entropy, "loss/pseudo_label": pseudo,
          "accuracy/pseudo_labelled": mean(confident)}
  if w.target_vat:
    vat = mean(losses.virtual_adversarial_loss(
        lambda x: call(nets.classifier, x), xt, t_target,
        batch["target_vat_noise"], w.target_vat_radius,
        lambda x: call(nets.probe_classifier, x, nets.classifier)))
    terms += w.target_vat * vat
    logs["loss/target_vat"] = vat
  if w.target_teacher:
    student = t_target
    if noisy:  # T's own prediction on a perturbed view
      view = xt
      if w.target_teacher_shift:
        view = losses.shifted_images(view, batch["target_student_shift"])
      if w.target_teacher_noise:
        view = view + batch["target_student_noise"]
      student = call(nets.classifier, view)
    teacher = mean(losses.teacher_divergence(
        student, call.teacher(nets.classifier, xt)))
    terms += w.target_teacher * teacher
    logs["loss/target_teacher"] = teacher
  started = (tf.cast(step >= w.refine_start_step, tf.float32)
             if w.refine_start_step else 1.0)
  return started * terms, logs


def baseline_losses(call, nets: models.Networks, batch: Dict[str, tf.Tensor],
                    mode: str, mean):
  """The source-only or target-only classifier's loss, as `pixelda_losses`."""
  domain = "source" if mode == "source_only" else "target"
  images, labels = batch[f"{domain}_images"], batch[f"{domain}_labels"]
  logits = call(nets.classifier, images)
  loss = mean(losses.task_loss(labels, logits))
  return {"classifier": loss}, {
      "loss/classifier": loss,
      "accuracy/train": mean(losses.accuracy(labels, logits))}


def check_finite(logs: Dict[str, float], step: int,
                 bad_variables: List[str] = ()) -> None:
  """Raises NonFiniteLossError naming the step and every non-finite log
  value, or else every non-finite variable (`nonfinite_variables()`)."""
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
