"""PixelDA: its training state, its train step, and its objective on one page.

`PixelDA` is a `state.TrainingState` (networks, optimizers, weight averages,
checkpoint) with a `step.Step` that updates it: one step computes every
forward pass once (G on the source batch, D on target and adapted images, T
on source and adapted images), takes each network's gradients of its own
loss, and applies the D, T and G updates in the official order (D and T,
then G). As in the official code, T's variables sit with D's side of the
min-max game: D+T maximise/minimise their losses, G minimises
alpha-weighted adversarial + task-in-G (+ PMSE) losses. The objective is
`pixelda_losses` below (and `baseline_losses` for the baselines); the step's
random draws are `streams`'.
"""

from __future__ import annotations

from typing import Dict

import tensorflow as tf

from pixelda_tf import config as config_lib
from pixelda_tf import losses
from pixelda_tf import models
from pixelda_tf import state as state_lib
from pixelda_tf import step as step_lib

# What the callers of this module name here; each lives in its own module.
UPDATE_ORDER = state_lib.UPDATE_ORDER
LateStaircase = state_lib.LateStaircase
NonFiniteLossError = step_lib.NonFiniteLossError
StatelessCalls = step_lib.StatelessCalls
check_finite = step_lib.check_finite


class PixelDA(state_lib.TrainingState):
  """The training state of a run and its compiled train step.

  Build it inside nothing: it enters `strategy.scope()` itself. Attributes as
  `state.TrainingState`.
  """

  def __init__(self, cfg: config_lib.Config, strategy: tf.distribute.Strategy):
    super().__init__(cfg, strategy)
    self._step = step_lib.Step(self, self._objective)

  def _objective(self, call, batch, z, mean, step):
    if self.pixelda:
      return pixelda_losses(call, self.nets, batch, z, self.cfg.loss, mean,
                            step)
    return baseline_losses(call, self.nets, batch, self.cfg.train.mode, mean)

  def train_step(self, batch) -> Dict[str, tf.Tensor]:
    """Runs one step on a global batch (a dict from `data.train_dataset`, or
    its distributed form) and returns a flat dict of scalar logs."""
    return self._step(batch)

  def gradients(self, batch):
    """(logs, gradients by network) of one global batch, nothing applied.

    For tests and debugging; `batch` as for `train_step`.
    """
    return self._step.gradients(batch)



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
