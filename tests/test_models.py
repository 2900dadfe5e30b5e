"""Network factories: shapes over several sizes, ranges, clear errors."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from pixelda_tf import config as config_lib
from pixelda_tf import cpu_layers
from pixelda_tf import models

G_CFG = config_lib.GeneratorConfig(filters=8, num_blocks=2, noise_dim=4)
D_CFG = config_lib.DiscriminatorConfig(filters=8, max_filters=32)


@pytest.mark.parametrize("size", [16, 28, 32, 48])
def test_shapes_over_sizes(size):
  x = np.random.default_rng(0).uniform(-1, 1, (3, size, size, 3)).astype("f")
  z = np.zeros((3, 4), "float32")
  g = models.build_generator(size, G_CFG)
  out = g([x, z]).numpy()
  assert out.shape == (3, size, size, 3)
  assert out.min() >= -1.0 and out.max() <= 1.0
  assert models.build_discriminator(size, D_CFG)(x).shape == (3, 1)
  assert models.build_classifier(size, num_classes=7)(x).shape == (3, 7)


def test_official_sizes_and_names():
  d = models.build_discriminator(32)
  convs = [l for l in d.layers if isinstance(l, keras.layers.Conv2D)]
  assert [c.filters for c in convs] == [64, 128, 256, 512]
  assert [c.strides for c in convs] == [(1, 1)] + [(2, 2)] * 3
  assert d.get_layer("conv3").output.shape[1:3] == (4, 4)
  g = models.build_generator(32)
  assert g.name == "generator"
  assert len([l for l in g.layers if l.name.endswith("_skip")]) == 6
  assert g.get_layer("conv_out").activation.__name__ == "tanh"


def test_bad_rank_and_channels_raise_clear_errors():
  g = models.build_generator(16, G_CFG)
  with pytest.raises(ValueError, match="expected shape|incompatible|ndim"):
    g([np.zeros((16, 16, 3), "f"), np.zeros((1, 4), "f")])
  c = models.build_classifier(16)
  with pytest.raises(ValueError, match="expected shape|incompatible|ndim"):
    c(np.zeros((2, 16, 16, 1), "f"))


def test_bad_sizes_raise():
  with pytest.raises(ValueError, match="image_size=10"):
    models.build_classifier(10)
  with pytest.raises(ValueError, match="noise_dim"):
    models.build_generator(16, config_lib.GeneratorConfig(noise_dim=0))


def test_private_source_layer_shares_the_head():
  nets = models.Networks(config_lib.Config(
      data=config_lib.DataConfig(image_size=16)))
  assert nets.source_classifier is not nets.classifier
  assert (nets.source_classifier.get_layer("classifier_head")
          is nets.classifier.get_layer("classifier_head"))
  # Two private first convs (kernel + bias each) and one shared head.
  head = len(nets.classifier.get_layer("classifier_head").trainable_variables)
  assert len(nets.classifier_variables) == head + 4


def test_same_seed_same_weights_other_seed_other_weights():
  a = models.build_generator(16, G_CFG, seed=1).get_weights()
  b = models.build_generator(16, G_CFG, seed=1).get_weights()
  c = models.build_generator(16, G_CFG, seed=2).get_weights()
  assert all(np.array_equal(x, y) for x, y in zip(a, b))
  assert not np.array_equal(a[0], c[0])
  # Distinct layers get distinct initial kernels.
  g = models.build_generator(16, G_CFG, seed=1)
  k1 = g.get_layer("block0_conv1").kernel.numpy()
  k2 = g.get_layer("block1_conv1").kernel.numpy()
  assert not np.array_equal(k1, k2)


def _grads(layer, x):
  import tensorflow as tf
  x = tf.constant(x)
  with tf.GradientTape() as tape:
    tape.watch(x)
    y = layer(x, training=True)
    loss = tf.reduce_sum(y * tf.sin(y))  # A non-trivial upstream gradient.
  return [y] + tape.gradient(loss, [x] + layer.trainable_variables)


def test_fused_batch_norm_matches_keras_batch_norm():
  x = np.random.default_rng(1).normal(2.0, 3.0, (5, 6, 6, 4)).astype("f")
  kwargs = dict(momentum=0.9, epsilon=1e-3, scale=False)
  plain = keras.layers.BatchNormalization(**kwargs)
  fused = cpu_layers.FusedBatchNormalization(**kwargs)
  plain.build(x.shape)
  fused.build(x.shape)
  plain.beta.assign(np.arange(4, dtype="f") / 3)
  fused.beta.assign(np.arange(4, dtype="f") / 3)
  for a, b in zip(_grads(plain, x), _grads(fused, x)):
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-4)
  # Moving statistics updated the same way (biased batch variance).
  np.testing.assert_allclose(plain.moving_mean.numpy(),
                             fused.moving_mean.numpy(), rtol=1e-5)
  np.testing.assert_allclose(plain.moving_variance.numpy(),
                             fused.moving_variance.numpy(), rtol=1e-5)
  np.testing.assert_allclose(fused(x, training=False).numpy(),
                             plain(x, training=False).numpy(), rtol=1e-5,
                             atol=1e-5)


@pytest.mark.parametrize("size", [8, 4, 2])
def test_stride2_conv_matches_conv2d(size):
  x = np.random.default_rng(2).normal(size=(3, size, size, 5)).astype("f")
  kwargs = dict(filters=6, kernel_size=3, strides=2, padding="same",
                use_bias=False)
  plain = keras.layers.Conv2D(**kwargs)
  split = cpu_layers.Stride2Conv2D(**kwargs)
  plain.build(x.shape)
  split.build(x.shape)
  split.kernel.assign(plain.kernel)
  for a, b in zip(_grads(plain, x), _grads(split, x)):
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-5)


def test_speed_layers_are_used_only_when_asked():
  d = models.build_discriminator(16, D_CFG, fused_batch_norm=True,
                                 split_conv_grad=True)
  assert isinstance(d.get_layer("conv1"), cpu_layers.Stride2Conv2D)
  assert isinstance(d.get_layer("conv1_bn"), cpu_layers.FusedBatchNormalization)
  d = models.build_discriminator(16, D_CFG)
  assert type(d.get_layer("conv1")) is keras.layers.Conv2D
  assert type(d.get_layer("conv1_bn")) is keras.layers.BatchNormalization


def test_residual_output_reaches_the_whole_image_range():
  cfg = config_lib.GeneratorConfig(filters=4, num_blocks=1, noise_dim=2,
                                   residual_output=True)
  g = models.build_generator(8, cfg)
  image = np.full((1, 8, 8, 3), -1.0, "f")  # black background
  image[0, 2:6, 2:6] = 1.0                  # a white "digit"
  z = np.zeros((1, 2), "f")
  out = g.get_layer("conv_out")
  kernel, bias = out.get_weights()
  for target in (1.0, -1.0):
    # A saturated change pushes every pixel to one end of the range.
    out.set_weights([np.zeros_like(kernel), np.full_like(bias, 20 * target)])
    np.testing.assert_allclose(g([image, z], training=False).numpy(), target,
                               atol=1e-5)
  out.set_weights([np.zeros_like(kernel), np.zeros_like(bias)])
  np.testing.assert_allclose(g([image, z], training=False).numpy(), image)


def test_28_is_a_valid_size_everywhere():
  cfg = config_lib.validate(config_lib.Config(
      data=config_lib.DataConfig(image_size=28)))
  assert models.Networks(cfg).generator.output.shape[1:] == (28, 28, 3)


def test_speed_layers_are_off_under_xla_and_synchronised_bn():
  def bn_type(**runtime):
    cfg = config_lib.Config(
        data=config_lib.DataConfig(image_size=16),
        runtime=config_lib.RuntimeConfig(fused_batch_norm=True, **runtime))
    return type(models.Networks(cfg).generator.get_layer("block0_bn1"))
  assert bn_type(jit_compile=False) is cpu_layers.FusedBatchNormalization
  assert bn_type(jit_compile=True) is keras.layers.BatchNormalization
  assert bn_type(jit_compile=False, sync_batch_norm=True) is (
      keras.layers.BatchNormalization)


def test_speed_layers_round_trip_through_keras_files(tmp_path):
  d = models.build_discriminator(16, D_CFG, fused_batch_norm=True,
                                 split_conv_grad=True)
  x = np.random.default_rng(3).uniform(-1, 1, (2, 16, 16, 3)).astype("f")
  d.save(tmp_path / "d.keras")
  loaded = keras.models.load_model(tmp_path / "d.keras")
  assert isinstance(loaded.get_layer("conv1"), cpu_layers.Stride2Conv2D)
  np.testing.assert_allclose(loaded(x, training=False).numpy(),
                             d(x, training=False).numpy(), rtol=1e-6)


def test_minibatch_std_appends_the_batch_spread_as_numpy_computes_it():
  x = np.random.default_rng(1).normal(size=(5, 4, 4, 3)).astype("float32")
  out = np.asarray(models.MinibatchStd()(x))
  assert out.shape == (5, 4, 4, 4)
  np.testing.assert_array_equal(out[..., :3], x)
  expected = np.sqrt(x.var(axis=0) + 1e-8).mean()
  np.testing.assert_allclose(out[..., 3], np.full((5, 4, 4), expected),
                             rtol=1e-5)
  # bfloat16 in, bfloat16 out (the spread is computed in float32).
  low = models.MinibatchStd(dtype="mixed_bfloat16")(x)
  assert keras.backend.standardize_dtype(low.dtype) == "bfloat16"
  # The spread of bfloat16 features is taken in float32 and rounded once:
  # each feature's std rounded to bfloat16 before the mean would miss the
  # rounded float32 mean on some of these draws (one in about 40).
  layer = models.MinibatchStd(dtype="mixed_bfloat16")
  rng = np.random.default_rng(2)
  for _ in range(100):
    x16 = keras.ops.cast(rng.normal(10, 3, (4, 2, 2, 3)).astype("float32"),
                         "bfloat16")
    x32 = keras.ops.convert_to_numpy(keras.ops.cast(x16, "float32"))
    expected = keras.ops.cast(np.sqrt(x32.var(axis=0) + 1e-8).mean(),
                              "bfloat16")
    got = layer(x16)[0, 0, 0, 3]
    assert float(got) == float(expected)


@pytest.mark.parametrize("keep_prob", [0.9, 0.5, 1.0])
def test_uniform_dropout_noise_has_the_stock_layers_moments(keep_prob):
  """Mask and noise from one draw: a Bernoulli(keep) mask, and noise of the
  Gaussian's mean and std, uniform, independent of the mask."""
  stddev, half = 0.2, 0.2 * 3 ** 0.5
  layer = models.UniformDropoutNoise(keep_prob, stddev, seed=3)
  x = np.full((100, 50, 50), 2.0, "float32")
  y = np.asarray(layer(x, training=True))
  kept = y > 2.0 / keep_prob - half - 1e-5
  noise = np.where(kept, y - 2.0 / keep_prob, y)
  assert abs(kept.mean() - keep_prob) < 0.003
  assert np.all(np.abs(noise) <= half + 1e-5)
  for part in (noise[kept], noise[~kept]):
    if part.size:  # uniform on [-half, half] whichever way the mask fell
      assert abs(part.mean()) < 0.01 and abs(part.std() - stddev) < 0.003
      counts = np.histogram(part, bins=10, range=(-half, half))[0]
      assert counts.min() > 0.9 * counts.mean()
  # A second call draws again; inference passes x through untouched.
  assert not np.array_equal(y, np.asarray(layer(x, training=True)))
  np.testing.assert_array_equal(np.asarray(layer(x, training=False)), x)


def test_uniform_dropout_noise_gradient_is_the_dropout_mask():
  layer = models.UniformDropoutNoise(0.8, 0.2, seed=0)
  x = tf.constant(np.full((64, 64), 1.0, "float32"))
  with tf.GradientTape() as tape:
    tape.watch(x)
    y = layer(x, training=True)
    total = tf.reduce_sum(y)
  grad = tape.gradient(total, x).numpy()
  kept = np.asarray(y) > 1.0 / 0.8 - 0.2 * 3 ** 0.5 - 1e-5
  np.testing.assert_allclose(grad, np.where(kept, 1 / 0.8, 0.0), rtol=1e-6)


def test_d_noise_uniform_keeps_d_and_its_initial_weights():
  x = np.random.default_rng(2).uniform(-1, 1, (4, 16, 16, 3)).astype("f")
  stock = models.build_discriminator(16, D_CFG, seed=5)
  cheap = models.build_discriminator(
      16, config_lib.DiscriminatorConfig(filters=8, max_filters=32,
                                         noise="uniform"), seed=5)
  assert not any(isinstance(l, keras.layers.GaussianNoise)
                 for l in cheap.layers)
  assert sum(isinstance(l, models.UniformDropoutNoise)
             for l in cheap.layers) == 3
  for a, b in zip(stock.trainable_weights, cheap.trainable_weights):
    np.testing.assert_array_equal(a.numpy(), b.numpy())
  np.testing.assert_allclose(cheap(x).numpy(), stock(x).numpy(), rtol=1e-6)
  with pytest.raises(config_lib.ConfigError, match="--d_noise='normal'"):
    config_lib.DiscriminatorConfig(noise="normal").validate()


@pytest.mark.parametrize("minibatch_std", [False, True])
def test_minibatch_std_makes_d_see_the_rest_of_the_batch(minibatch_std):
  cfg = config_lib.DiscriminatorConfig(filters=8, max_filters=32,
                                       minibatch_std=minibatch_std)
  d = models.build_discriminator(16, cfg)
  assert any(l.name == "minibatch_std" for l in d.layers) == minibatch_std
  x = np.random.default_rng(2).uniform(-1, 1, (4, 16, 16, 3)).astype("f")
  other = x.copy()
  other[1:] = 0.0  # the same first image in a batch with no variety
  first, alone = d(x)[0], d(other)[0]
  # Inference mode: BN uses its moving statistics, so without the layer an
  # image's logit does not depend on the others.
  assert (not np.allclose(first, alone, atol=1e-6)) == minibatch_std
  assert d(x).shape == (4, 1)


def test_minibatch_std_round_trips_through_a_keras_file(tmp_path):
  cfg = config_lib.DiscriminatorConfig(filters=8, max_filters=32,
                                       minibatch_std=True)
  d = models.build_discriminator(16, cfg)
  d.save(tmp_path / "d.keras")
  again = keras.models.load_model(tmp_path / "d.keras")
  layer = models.MinibatchStd(epsilon=0.5)
  assert models.MinibatchStd.from_config(layer.get_config()).epsilon == 0.5
  x = np.random.default_rng(3).uniform(-1, 1, (3, 16, 16, 3)).astype("f")
  np.testing.assert_allclose(again(x), d(x), rtol=1e-6)
