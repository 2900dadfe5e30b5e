"""PixelDA losses as pure functions of tensors.

Each returns one value per example, shape (B,), so the caller decides the
reduction (mean over the local batch, or sum over the global batch under a
distribution strategy) and applies the loss weights. Logits are raw scores;
images are float in [-1, 1].
"""

from __future__ import annotations

from typing import Callable, Optional

import tensorflow as tf


def _flat(logits: tf.Tensor) -> tf.Tensor:
  return tf.reshape(logits, [-1])


def discriminator_loss(discriminator_real_outputs: tf.Tensor,
                       discriminator_gen_outputs: tf.Tensor) -> tf.Tensor:
  """L_d for D: target images are real (label 1), adapted ones fake (label 0).

  L = -log sigmoid(D(x_t)) - log(1 - sigmoid(D(G(x_s, z)))), per example pair.

  Args:
    discriminator_real_outputs: (B,) or (B, 1) logits on target images.
    discriminator_gen_outputs: (B,) or (B, 1) logits on adapted images.

  Returns:
    (B,) float32.
  """
  real = _flat(discriminator_real_outputs)
  fake = _flat(discriminator_gen_outputs)
  return (tf.nn.sigmoid_cross_entropy_with_logits(tf.ones_like(real), real) +
          tf.nn.sigmoid_cross_entropy_with_logits(tf.zeros_like(fake), fake))


def generator_adversarial_loss(discriminator_gen_outputs: tf.Tensor) -> tf.Tensor:
  """L_d for G, non-saturating: L = -log sigmoid(D(G(x_s, z))).

  Args:
    discriminator_gen_outputs: (B,) or (B, 1) logits on adapted images.

  Returns:
    (B,) float32.
  """
  fake = _flat(discriminator_gen_outputs)
  return tf.nn.sigmoid_cross_entropy_with_logits(tf.ones_like(fake), fake)


def task_loss(labels: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
  """L_t: softmax cross-entropy, L = -log softmax(logits)[label].

  Args:
    labels: (B,) integer class ids.
    logits: (B, C) class scores.

  Returns:
    (B,) float32.
  """
  return tf.nn.sparse_softmax_cross_entropy_with_logits(
      labels=tf.cast(labels, tf.int32), logits=logits)


def conditional_entropy(logits: tf.Tensor) -> tf.Tensor:
  """Entropy of the predicted class distribution, H = -sum_c p_c log p_c.

  Minimised on unlabelled target images, it pushes T's decision boundaries
  away from dense target regions (the conditional-entropy term of VADA /
  DIRT-T, Shu et al., ICLR 2018).

  Args:
    logits: (B, C) class scores.

  Returns:
    (B,) float32, in [0, log C].
  """
  log_p = tf.nn.log_softmax(logits)
  return -tf.reduce_sum(tf.exp(log_p) * log_p, axis=-1)


def teacher_divergence(logits: tf.Tensor,
                       teacher_logits: tf.Tensor) -> tf.Tensor:
  """KL(p_teacher || p) of each example: how far T's predicted class
  distribution is from a teacher's, with the teacher a constant.

  With the weight-averaged T as the teacher, this is the consistency term of
  a mean teacher (Tarvainen & Valpola, NeurIPS 2017; French et al., ICLR
  2018, for domain adaptation); with T's prediction on the clean image as
  the teacher of its prediction on a perturbed one, VAT's divergence.

  Args:
    logits: (B, C) T's class scores.
    teacher_logits: (B, C) the teacher's (no gradient flows into them).

  Returns:
    (B,) float32, >= 0, 0 where the two distributions agree.
  """
  log_q = tf.nn.log_softmax(tf.stop_gradient(teacher_logits))
  log_p = tf.nn.log_softmax(logits)
  return tf.reduce_sum(tf.exp(log_q) * (log_q - log_p), axis=-1)


def shifted_images(images: tf.Tensor, shifts: tf.Tensor) -> tf.Tensor:
  """Each image translated by whole pixels, its edge rows and columns
  repeated into the space it leaves: a noisy mean teacher's view for the
  student (French et al., ICLR 2018: translations of up to 2 pixels).

  out[b, i, j] = images[b, clip(i - dy_b, 0, H - 1), clip(j - dx_b, 0, W - 1)].

  Args:
    images: (B, H, W, C).
    shifts: (B, 2) int32, each image's (dy, dx); positive moves the content
      down and to the right.

  Returns:
    (B, H, W, C), the dtype of `images`.
  """
  h, w = tf.shape(images)[1], tf.shape(images)[2]
  rows = tf.clip_by_value(tf.range(h)[None, :] - shifts[:, :1], 0, h - 1)
  cols = tf.clip_by_value(tf.range(w)[None, :] - shifts[:, 1:], 0, w - 1)
  out = tf.gather(images, rows, axis=1, batch_dims=1)
  return tf.gather(out, cols, axis=2, batch_dims=1)


def pseudo_label_loss(logits: tf.Tensor, threshold: float):
  """Self-training: cross-entropy of T's logits against their own argmax,
  kept only where T's top probability is at least `threshold`.

  L_i = -log softmax(logits_i)[argmax_c logits_ic] * [max_c p_ic >= threshold].
  The pseudo-labels and the mask are constants (no gradient flows through
  the choice of label), as in self-training's usual form.

  Args:
    logits: (B, C) class scores on unlabelled target images.
    threshold: in (0, 1].

  Returns:
    ((B,) float32 masked losses, (B,) float32 mask in {0, 1}).
  """
  probs = tf.stop_gradient(tf.nn.softmax(logits))
  labels = tf.argmax(probs, axis=-1, output_type=tf.int32)
  confident = tf.cast(tf.reduce_max(probs, axis=-1) >= threshold, tf.float32)
  return task_loss(labels, logits) * confident, confident


def virtual_adversarial_loss(
    logits_fn: Callable[[tf.Tensor], tf.Tensor], images: tf.Tensor,
    logits: tf.Tensor, noise: tf.Tensor, radius: float,
    probe_fn: Optional[Callable[[tf.Tensor], tf.Tensor]] = None) -> tf.Tensor:
  """Virtual adversarial training: how far T's prediction moves under the
  input perturbation of L2 norm `radius` that moves it most (VAT, Miyato et
  al., TPAMI 2018; the target term of VADA / DIRT-T, Shu et al., ICLR 2018).

  With f = logits_fn, p = softmax(f(x)) held constant and
  KL_i(r) = KL(p_i || softmax(f(x + r))_i), the perturbation is one power
  iteration on the Hessian H of KL at r = 0 from the random direction
  d = noise / ||noise|| (per example): r_adv = radius * Hd / ||Hd||, and
  L_i = KL_i(r_adv), with r_adv a constant.

  VAT approximates Hd by the gradient of KL at r = xi * d, a finite
  difference with xi = 1e-6 that rounds away under bfloat16 compute (the
  input's resolution there is about 0.004). Here Hd is exact: at r = 0 the
  gradient of KL is zero and H = J^T F J, with J the Jacobian of f at x and
  F = diag(p) - p p^T, so Hd = J^T (F (J d)): one forward-mode product J d
  and one backward product J^T v, no xi to tune. Gradients reach f's
  weights through the perturbed call only. An all-zero Hd gives r_adv = 0.

  Args:
    logits_fn: images (B, H, W, C) -> logits (B, K).
    images: (B, H, W, C) float.
    logits: (B, K) logits_fn(images), treated as constants.
    noise: (B, H, W, C) the random start direction, e.g. standard normal.
    radius: the perturbation's L2 norm per example (VADA: 3.5 for 32x32x3
      images in [-1, 1]).
    probe_fn: the same function, for Hd (default `logits_fn`): e.g. a
      float32 copy of a network that computes in bfloat16, whose
      forward-mode product XLA cannot compile (no bfloat16 MaxPoolGradGrad).

  Returns:
    (B,) float32, >= 0.
  """
  images = tf.cast(images, tf.float32)
  axes = list(range(1, len(images.shape)))
  d = tf.math.l2_normalize(tf.cast(noise, tf.float32), axis=axes)
  with tf.GradientTape() as tape:
    tape.watch(images)
    with tf.autodiff.ForwardAccumulator(images, d) as acc:
      probe = tf.cast((probe_fn or logits_fn)(images), tf.float32)
  jd = acc.jvp(probe)
  p = tf.stop_gradient(tf.nn.softmax(probe))
  # F (J d) = p * (Jd - p.Jd), summed as p_i sum_k p_k (Jd_i - Jd_k): for a
  # nearly one-hot p, Jd_i - p.Jd would cancel to float32 rounding.
  fjd = tf.stop_gradient(p * tf.reduce_sum(
      p[:, None, :] * (jd[:, :, None] - jd[:, None, :]), axis=-1))
  hd = tape.gradient(probe, images, output_gradients=fjd)
  # As VAT's code: divide by the largest entry first, so a tiny Hd (a
  # confident prediction) still normalises to the full radius.
  hd /= tf.reduce_max(tf.abs(hd), axis=axes, keepdims=True) + 1e-30
  r_adv = tf.stop_gradient(radius * tf.math.l2_normalize(hd, axis=axes))
  return teacher_divergence(
      tf.cast(logits_fn(images + r_adv), tf.float32),
      tf.cast(logits, tf.float32))


def foreground_mask(source_images: tf.Tensor,
                    background: float = -1.0,
                    tolerance: float = 1e-3) -> tf.Tensor:
  """1 where any channel differs from the black background, else 0.

  Args:
    source_images: (B, H, W, C) in [-1, 1].
    background: the background value (black is -1 in [-1, 1]).
    tolerance: how far from `background` still counts as background.

  Returns:
    (B, H, W, 1) float32 in {0, 1}.
  """
  diff = tf.abs(source_images - background) > tolerance
  return tf.cast(tf.reduce_any(diff, axis=-1, keepdims=True), tf.float32)


def pmse_loss(source_images: tf.Tensor, generated_images: tf.Tensor,
              mask: Optional[tf.Tensor] = None) -> tf.Tensor:
  """L_c: masked pairwise mean squared error (the paper's eq. 4).

  With d = (x_s - G(x_s, z)) * m and k the number of masked elements,
  L = (1/k) * sum(d^2) - (1/k^2) * (sum(d))^2.
  It penalises differences between pixel pairs, not absolute intensities, so
  G may change colours and backgrounds but must keep the content's shape.

  Args:
    source_images: (B, H, W, C) float.
    generated_images: (B, H, W, C) float, same shape.
    mask: optional (B, H, W, 1) or (B, H, W, C) in {0, 1}; all ones if None.

  Returns:
    (B,) float32; 0 for an example whose mask is empty.
  """
  diff = tf.cast(source_images, tf.float32) - tf.cast(generated_images,
                                                      tf.float32)
  if mask is None:
    mask = tf.ones_like(diff)
  else:
    mask = tf.broadcast_to(tf.cast(mask, tf.float32), tf.shape(diff))
  diff = diff * mask
  k = tf.reduce_sum(mask, axis=[1, 2, 3])
  safe_k = tf.maximum(k, 1.0)
  sum_sq = tf.reduce_sum(tf.square(diff), axis=[1, 2, 3])
  sum_d = tf.reduce_sum(diff, axis=[1, 2, 3])
  loss = sum_sq / safe_k - tf.square(sum_d) / tf.square(safe_k)
  return tf.where(k > 0, loss, tf.zeros_like(loss))


def accuracy(labels: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
  """(B,) float32: 1 where argmax(logits) == label."""
  predicted = tf.argmax(logits, axis=-1, output_type=tf.int32)
  return tf.cast(tf.equal(predicted, tf.cast(labels, tf.int32)), tf.float32)


def binary_accuracy(logits: tf.Tensor, label: float) -> tf.Tensor:
  """(B,) float32: 1 where the logit's sign says `label` (0 or 1)."""
  predicted = tf.cast(_flat(logits) > 0, tf.float32)
  return tf.cast(tf.equal(predicted, label), tf.float32)
