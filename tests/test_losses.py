"""Losses against NumPy references on small fixed inputs."""

import numpy as np
import pytest
import tensorflow as tf

from pixelda_tf import losses

REAL = np.array([2.0, -1.0, 0.5, 0.0], np.float32)
FAKE = np.array([-3.0, 1.5, 0.0, 4.0], np.float32)


def _log_sigmoid(x):
  return -np.log1p(np.exp(-x))


def test_discriminator_loss_matches_numpy():
  expected = -_log_sigmoid(REAL) - np.log(1.0 - 1.0 / (1.0 + np.exp(-FAKE)))
  got = losses.discriminator_loss(REAL[:, None], FAKE[:, None]).numpy()
  np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_generator_loss_is_non_saturating():
  expected = -_log_sigmoid(FAKE)
  np.testing.assert_allclose(
      losses.generator_adversarial_loss(FAKE).numpy(), expected, rtol=1e-5)
  # Non-saturating: the gradient stays large where D is sure the image is
  # fake (logit -3), unlike log(1 - D(G(z))).
  x = tf.constant([-3.0])
  with tf.GradientTape() as tape:
    tape.watch(x)
    loss = losses.generator_adversarial_loss(x)
  assert abs(float(tape.gradient(loss, x)[0])) > 0.9


def test_task_loss_and_accuracy_match_numpy():
  logits = np.array([[2.0, 1.0, 0.1], [0.3, 0.2, 3.0]], np.float32)
  labels = np.array([0, 1])
  shifted = logits - logits.max(axis=1, keepdims=True)
  log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
  expected = -log_p[np.arange(2), labels]
  np.testing.assert_allclose(losses.task_loss(labels, logits).numpy(),
                             expected, rtol=1e-5)
  np.testing.assert_array_equal(losses.accuracy(labels, logits).numpy(),
                                [1.0, 0.0])


def _pmse_numpy(a, b, mask=None):
  d = (a - b).astype(np.float64)
  m = np.ones_like(d) if mask is None else np.broadcast_to(mask, d.shape)
  out = []
  for di, mi in zip(d, m):
    k = mi.sum()
    dm = (di * mi).ravel()
    out.append(0.0 if k == 0 else (dm ** 2).sum() / k - dm.sum() ** 2 / k ** 2)
  return np.array(out)


def test_pmse_without_mask_matches_numpy():
  rng = np.random.default_rng(0)
  a = rng.uniform(-1, 1, (3, 4, 5, 3)).astype(np.float32)
  b = rng.uniform(-1, 1, (3, 4, 5, 3)).astype(np.float32)
  np.testing.assert_allclose(losses.pmse_loss(a, b).numpy(), _pmse_numpy(a, b),
                             rtol=1e-4, atol=1e-6)


def test_pmse_with_mask_matches_numpy_and_ignores_masked_pixels():
  rng = np.random.default_rng(1)
  a = rng.uniform(-1, 1, (3, 4, 5, 3)).astype(np.float32)
  b = rng.uniform(-1, 1, (3, 4, 5, 3)).astype(np.float32)
  mask = (rng.uniform(size=(3, 4, 5, 1)) > 0.5).astype(np.float32)
  mask[2] = 0.0  # an empty mask gives 0, not NaN
  got = losses.pmse_loss(a, b, mask).numpy()
  np.testing.assert_allclose(got, _pmse_numpy(a, b, mask), rtol=1e-4,
                             atol=1e-6)
  assert got[2] == 0.0
  # Changing pixels outside the mask changes nothing.
  b2 = np.where(mask > 0, b, b + 5.0).astype(np.float32)
  np.testing.assert_allclose(losses.pmse_loss(a, b2, mask).numpy(), got,
                             rtol=1e-5, atol=1e-6)


def test_pmse_is_zero_for_a_constant_shift():
  # Pairwise: shifting every pixel by the same amount costs nothing.
  a = np.random.default_rng(2).uniform(-1, 1, (2, 4, 4, 3)).astype(np.float32)
  np.testing.assert_allclose(losses.pmse_loss(a, a + 0.3).numpy(), [0.0, 0.0],
                             atol=1e-5)
  assert float(losses.pmse_loss(a, -a)[0]) > 0.1


def test_foreground_mask():
  x = -np.ones((1, 2, 2, 3), np.float32)
  x[0, 0, 1, 2] = 0.5
  np.testing.assert_array_equal(losses.foreground_mask(x).numpy()[0, ..., 0],
                                [[0.0, 1.0], [0.0, 0.0]])


@pytest.mark.parametrize("label,expected", [(1.0, [1, 0, 1]), (0.0, [0, 1, 0])])
def test_binary_accuracy(label, expected):
  np.testing.assert_array_equal(
      losses.binary_accuracy(np.array([[0.5], [-1.0], [2.0]]), label).numpy(),
      expected)


def test_pseudo_label_loss_matches_numpy():
  logits = np.array([[4.0, 0.0, 0.0], [0.2, 0.1, 0.0], [0.0, 0.0, 9.0]],
                    np.float32)
  p = np.exp(logits - logits.max(axis=1, keepdims=True))
  p /= p.sum(axis=1, keepdims=True)
  mask = (p.max(axis=1) >= 0.9).astype(np.float32)
  expected = -np.log(p[np.arange(3), p.argmax(axis=1)]) * mask
  got, got_mask = losses.pseudo_label_loss(logits, 0.9)
  np.testing.assert_array_equal(got_mask.numpy(), [1.0, 0.0, 1.0])
  np.testing.assert_array_equal(got_mask.numpy(), mask)
  np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-7)
  # The label is a constant: the gradient is that of the cross-entropy with a
  # fixed one-hot target, p - onehot, on kept rows only.
  x = tf.constant(logits)
  with tf.GradientTape() as tape:
    tape.watch(x)
    loss = tf.reduce_sum(losses.pseudo_label_loss(x, 0.9)[0])
  onehot = np.eye(3, dtype=np.float32)[p.argmax(axis=1)]
  np.testing.assert_allclose(tape.gradient(loss, x).numpy(),
                             (p - onehot) * mask[:, None], atol=1e-6)


def test_teacher_divergence_matches_numpy_and_leaves_the_teacher_alone():
  logits = np.array([[2.0, 1.0, 0.1], [0.0, 0.0, 0.0], [3.0, -1.0, 0.5]],
                    np.float32)
  teacher = np.array([[0.5, 2.0, 0.0], [0.0, 0.0, 0.0], [30.0, 0.0, 0.0]],
                     np.float32)

  def softmax(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)
  p, q = softmax(logits), softmax(teacher)
  expected = (q * (np.log(np.maximum(q, 1e-30)) - np.log(p))).sum(axis=1)
  got = losses.teacher_divergence(logits, teacher).numpy()
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
  assert got[1] == 0.0  # the same distribution
  # The gradient reaches T's logits only: p - q there, nothing to the teacher.
  x, t = tf.constant(logits), tf.constant(teacher)
  with tf.GradientTape(persistent=True) as tape:
    tape.watch([x, t])
    loss = tf.reduce_sum(losses.teacher_divergence(x, t))
  np.testing.assert_allclose(tape.gradient(loss, x).numpy(), p - q, atol=1e-6)
  assert tape.gradient(loss, t) is None


def test_shifted_images_match_numpy_edge_padding_and_compile():
  rng = np.random.default_rng(0)
  images = rng.uniform(-1, 1, (5, 6, 7, 3)).astype(np.float32)
  shifts = np.array([[0, 0], [2, -1], [-2, 2], [1, 3], [-5, 0]], np.int32)
  expected = []
  for image, (dy, dx) in zip(images, shifts):
    # Pad by 6 with the edge values, then cut the window moved by (dy, dx).
    padded = np.pad(image, ((6, 6), (6, 6), (0, 0)), mode="edge")
    expected.append(padded[6 - dy:6 - dy + 6, 6 - dx:6 - dx + 7])
  got = losses.shifted_images(tf.constant(images), tf.constant(shifts))
  np.testing.assert_array_equal(got.numpy(), np.stack(expected))
  np.testing.assert_array_equal(got.numpy()[0], images[0])
  # Positive dy moves the content down (the first row repeats), negative dx
  # to the left.
  np.testing.assert_array_equal(got.numpy()[1, :3, :-1],
                                images[1, [0, 0, 0], 1:])
  xla = tf.function(losses.shifted_images, jit_compile=True)
  np.testing.assert_array_equal(
      xla(tf.constant(images), tf.constant(shifts)).numpy(), got.numpy())


def test_conditional_entropy_matches_numpy():
  logits = np.array([[2.0, 1.0, 0.1], [0.0, 0.0, 0.0], [50.0, 0.0, 0.0]],
                    np.float32)
  p = np.exp(logits - logits.max(axis=1, keepdims=True))
  p /= p.sum(axis=1, keepdims=True)
  expected = -(p * np.log(np.maximum(p, 1e-30))).sum(axis=1)
  got = losses.conditional_entropy(logits).numpy()
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
  # Uniform predictions have the maximum, log C; a sure one about zero.
  np.testing.assert_allclose(got[1], np.log(3.0), rtol=1e-6)
  assert got[2] < 1e-6


def _softmax(z):
  e = np.exp(z - z.max(axis=-1, keepdims=True))
  return e / e.sum(axis=-1, keepdims=True)


def _kl(p, logits):
  return (p * (np.log(p) - np.log(_softmax(logits)))).sum(axis=-1)


def _unit(v):
  flat = v.reshape(len(v), -1)
  return (flat / np.linalg.norm(flat, axis=1, keepdims=True)).reshape(v.shape)


_RNG = np.random.default_rng(0)
_X = _RNG.uniform(-1, 1, (3, 4, 4, 2))
_NOISE = _RNG.normal(size=_X.shape)
_W = _RNG.normal(size=(32, 5)) * 0.5
_B = _RNG.normal(size=5)


def _linear_vat_direction(w, b, flat, radius):
  # f(x) = x W + b: J d = d W, Hd = J^T F J d = (F (d W)) W^T, exactly.
  p = _softmax(flat @ w + b)
  jd = _unit(_NOISE).reshape(3, -1) @ w
  fjd = p * jd - p * (p * jd).sum(axis=1, keepdims=True)
  return radius * _unit(fjd @ w.T)


def test_virtual_adversarial_loss_matches_numpy_for_a_linear_model():
  x, flat = _X.astype(np.float32), _X.reshape(3, -1)
  p = _softmax(flat @ _W + _B)
  r = _linear_vat_direction(_W, _B, flat, 3.5)
  expected = _kl(p, (flat + r) @ _W + _B)
  w = tf.Variable(_W.astype(np.float32))

  def f(images):
    return tf.reshape(images, [3, -1]) @ w + _B.astype(np.float32)

  with tf.GradientTape() as tape:
    got = losses.virtual_adversarial_loss(f, x, f(x), _NOISE.astype(
        np.float32), 3.5)
    total = tf.reduce_sum(got)
  np.testing.assert_allclose(got.numpy(), expected, rtol=1e-4)
  # p and r_adv are constants: W's gradient is that of the cross-entropy at
  # x + r_adv against fixed soft labels p, (x + r)^T (q - p).
  q = _softmax((flat + r) @ _W + _B)
  np.testing.assert_allclose(tape.gradient(total, w).numpy(),
                             (flat + r).T @ (q - p), rtol=1e-3, atol=1e-5)


def test_virtual_adversarial_probe_fn_finds_the_direction():
  # probe_fn gives the direction (here another model), logits_fn is scored.
  x, flat = _X.astype(np.float32), _X.reshape(3, -1)
  other = _W[::-1].copy()
  p = _softmax(flat @ _W + _B)
  r = _linear_vat_direction(other, _B, flat, 3.5)
  f = lambda w: lambda im: tf.reshape(im, [3, -1]) @ w + _B.astype(np.float32)
  got = losses.virtual_adversarial_loss(
      f(_W.astype(np.float32)), x, flat @ _W + _B, _NOISE.astype(np.float32),
      3.5, probe_fn=f(other.astype(np.float32))).numpy()
  np.testing.assert_allclose(got, _kl(p, (flat + r) @ _W + _B), rtol=1e-4)


def test_virtual_adversarial_radius_holds_for_confident_predictions():
  # Logits 24x larger: p is nearly one-hot (1 - p_max down to 6e-12), and
  # ||Hd|| of the first example is 1.4e-8, which l2_normalize alone (it
  # divides by max(||Hd||, 1e-6)) would shrink, and F (J d) summed naively
  # would lose to float32 rounding.
  w, x, flat = 24 * _W, _X.astype(np.float32), _X.reshape(3, -1)
  p = _softmax(flat @ w + _B)
  r = _linear_vat_direction(w, _B, flat, 0.5)
  f = lambda im: tf.reshape(im, [3, -1]) @ w.astype(np.float32) + _B.astype(
      np.float32)
  got = losses.virtual_adversarial_loss(f, x, f(x), _NOISE.astype(
      np.float32), 0.5).numpy()
  np.testing.assert_allclose(got, _kl(p, (flat + r) @ w + _B), rtol=1e-3,
                             atol=1e-4)


def test_virtual_adversarial_direction_is_vats_finite_difference_limit():
  # A non-linear f(x) = tanh(x A) C: VAT's own power iteration (in float64
  # here), the gradient of KL at r = xi * d for a small xi, points where Hd
  # does.
  a = _RNG.normal(size=(32, 6))
  c = _RNG.normal(size=(6, 5))
  flat = _X.reshape(3, -1)
  p = _softmax(np.tanh(flat @ a) @ c)
  probe = flat + 1e-5 * _unit(_NOISE).reshape(3, -1)
  h = np.tanh(probe @ a)
  grad = (((_softmax(h @ c) - p) @ c.T) * (1 - h ** 2)) @ a.T
  r = 3.5 * _unit(grad)
  expected = _kl(p, np.tanh((flat + r) @ a) @ c)

  def f(images):
    return tf.tanh(tf.reshape(tf.cast(images, tf.float64), [3, -1]) @ a) @ c

  got = losses.virtual_adversarial_loss(f, _X, f(_X), _NOISE, 3.5).numpy()
  np.testing.assert_allclose(got, expected, rtol=1e-4)
  # Where KL is quadratic (a small radius), the power iteration's direction
  # moves the prediction more than its random start does.
  small = losses.virtual_adversarial_loss(f, _X, f(_X), _NOISE, 0.05).numpy()
  start = 0.05 * _unit(_NOISE).reshape(3, -1)
  assert np.all(small > _kl(p, np.tanh((flat + start) @ a) @ c))


def test_virtual_adversarial_loss_of_an_input_blind_model_is_zero():
  # Hd = 0 (the prediction ignores the image): r_adv = 0 and KL(p || p) = 0,
  # not NaN.
  def f(images):
    return (tf.reduce_sum(images, axis=[1, 2, 3])[:, None] * 0.0
            + _B.astype(np.float32))

  got = losses.virtual_adversarial_loss(f, _X, f(_X), _NOISE, 3.5).numpy()
  np.testing.assert_allclose(got, np.zeros(3), atol=1e-7)
