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
