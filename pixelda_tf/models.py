"""The three PixelDA networks as Keras 3 Functional models.

Architectures follow the official TF1 code (tensorflow/models,
research/domain_adaptation/pixel_domain_adaptation, `pixelda_model.py` and
`pixelda_task_towers.py`): convolutions are SAME-padded, weights start from
N(0, 0.02), batch norm uses momentum 0.9, epsilon 1e-3 and no scale (slim's
default), and a layer followed by batch norm has no bias.

Every factory takes explicit sizes, returns a named `keras.Model` built only
from Keras built-in layers (so `.keras` files load with plain
`keras.models.load_model`), and draws each layer's initial weights from its
own seed derived from `seed`. The exceptions are never exported: D's
optional `MinibatchStd` and `UniformDropoutNoise`, and the CPU layers of `cpu_layers` (replaced by
built-ins on export).

Every factory also takes `dtype`, a Keras dtype policy (`None` for the
global one, float32 unless someone changed it): with `mixed_bfloat16` or
`mixed_float16` the layers compute in 16 bits while their variables, batch
norm's statistics and the layers that produce each network's output (D's
logit, T's logits, G's output image) stay float32. Passed per layer rather
than set process-wide, so networks built in the same process for export or
evaluation are float32 as before.
"""

from __future__ import annotations

import itertools
from typing import Iterator, Optional, Union

import keras
from keras import layers

from pixelda_tf import config as config_lib
from pixelda_tf import cpu_layers

# A Keras dtype policy: None (the global policy), a name or a DTypePolicy.
DType = Optional[Union[str, keras.DTypePolicy]]

BN_MOMENTUM = 0.9
BN_EPSILON = 1e-3
INIT_STDDEV = 0.02


@keras.saving.register_keras_serializable(package="pixelda_tf")
class UniformDropoutNoise(layers.Layer):
  """Dropout, then additive noise, both from one uniform draw per unit.

  With u ~ U(0, 1) the unit is kept when u < keep_prob; given that, u /
  keep_prob is again U(0, 1), and given a drop, (u - keep_prob) / (1 -
  keep_prob) is. That second uniform, centred and scaled, is the noise:
  uniform on [-stddev * sqrt(3), stddev * sqrt(3)], the mean and variance
  of Keras' `GaussianNoise(stddev)`, and independent of the mask. On a CPU
  a Gaussian costs several uniforms (TensorFlow draws it by Box-Muller), so
  this costs a fraction of `Dropout` + `GaussianNoise`. Computed in
  float32; active only with training=True.
  """

  def __init__(self, keep_prob: float, stddev: float, seed=None, **kwargs):
    super().__init__(**kwargs)
    self.keep_prob = keep_prob
    self.stddev = stddev
    self.seed = seed
    self.seed_generator = keras.random.SeedGenerator(seed)

  def call(self, x, training=False):
    if not training:
      return x
    u = keras.random.uniform(keras.ops.shape(x), seed=self.seed_generator)
    half = self.stddev * 3.0 ** 0.5
    p = self.keep_prob
    x32 = keras.ops.cast(x, "float32")
    if p >= 1.0:
      y = x32 + (2.0 * half) * u - half
    else:
      keep = u < p
      noise = keras.ops.where(keep, u * (2.0 * half / p),
                              (u - p) * (2.0 * half / (1.0 - p))) - half
      y = keras.ops.where(keep, x32 * (1.0 / p), 0.0) + noise
    return keras.ops.cast(y, x.dtype)

  def compute_output_shape(self, input_shape):
    return input_shape

  def get_config(self):
    return {**super().get_config(), "keep_prob": self.keep_prob,
            "stddev": self.stddev, "seed": self.seed}


@keras.saving.register_keras_serializable(package="pixelda_tf")
class MinibatchStd(layers.Layer):
  """Appends one channel: how much the batch's features vary across images.

  The standard deviation over the batch of each feature (per position and
  channel), averaged to one number and broadcast to every image and
  position (Karras et al. 2018, "Progressive growing of GANs", section 3,
  with one group: the whole per-replica batch). A discriminator that sees
  it can tell a batch of real images from a generated batch that covers
  only part of their variety. Computed in float32 under mixed precision.
  """

  def __init__(self, epsilon: float = 1e-8, **kwargs):
    super().__init__(**kwargs)
    self.epsilon = epsilon

  def call(self, x):
    x32 = keras.ops.cast(x, "float32")
    std = keras.ops.sqrt(keras.ops.var(x32, axis=0) + self.epsilon)
    shape = keras.ops.shape(x)
    spread = keras.ops.broadcast_to(keras.ops.mean(std),
                                    (shape[0], shape[1], shape[2], 1))
    return keras.ops.concatenate([x, keras.ops.cast(spread, x.dtype)], -1)

  def compute_output_shape(self, input_shape):
    channels = input_shape[-1]
    return (*input_shape[:-1], None if channels is None else channels + 1)

  def get_config(self):
    return {**super().get_config(), "epsilon": self.epsilon}


class _Seeds:
  """Hands out a distinct seed per layer, so no two kernels start equal.

  Keras initializers seeded with the same integer return the same values, and
  unseeded ones read global state; a counter gives both determinism and
  independence.
  """

  def __init__(self, seed: int):
    self._counter: Iterator[int] = itertools.count(seed * 1000)

  def init(self) -> keras.initializers.Initializer:
    return keras.initializers.RandomNormal(stddev=INIT_STDDEV,
                                           seed=next(self._counter))

  def next(self) -> int:
    return next(self._counter)


def _bn(name: str, sync: bool, fused: bool = False,
        dtype: DType = None) -> layers.Layer:
  # Under a mixed policy Keras' BN still keeps its variables and computes its
  # statistics in float32 (autocast=False variables, float32 upcast).
  cls = (cpu_layers.FusedBatchNormalization if fused and not sync
         else layers.BatchNormalization)
  return cls(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, scale=False,
             synchronized=sync, name=name, dtype=dtype)


def _output_dtype(dtype: DType) -> DType:
  """The policy of a network's output layers: float32 under mixed policies
  (logits and images leave every network in float32, as Keras' mixed
  precision guide asks), otherwise unchanged."""
  return None if dtype is None else "float32"


def _check_size(image_size: int) -> None:
  if not config_lib.image_size_ok(image_size):
    raise config_lib.ConfigError(config_lib.image_size_error(image_size))


def build_generator(image_size: int = 32,
                    cfg: config_lib.GeneratorConfig = config_lib.GeneratorConfig(),
                    seed: int = 0,
                    sync_batch_norm: bool = False,
                    fused_batch_norm: bool = False,
                    dtype: DType = None,
                    name: str = "generator") -> keras.Model:
  """G(x_s, z) -> x_f, the official `resnet` generator.

  z goes through dense (H*W units) + BN + ReLU, is reshaped to one HxW
  channel and concatenated to the image; then a 3x3 conv + ReLU, residual
  blocks (conv-BN-ReLU-conv-BN + skip), and a 1x1 conv to 3 channels + tanh.

  Inputs: `image` float32 (B, S, S, 3) in [-1, 1]; `z` float32 (B, noise_dim)
  in [-1, 1]. Output: float32 (B, S, S, 3) in [-1, 1].
  """
  _check_size(image_size)
  out_dtype = _output_dtype(dtype)
  if cfg.noise_dim < 1:
    raise config_lib.ConfigError(f"noise_dim={cfg.noise_dim}: the generator "
                                 "needs >= 1")
  seeds = _Seeds(seed)
  image = keras.Input((image_size, image_size, 3), name="image")
  z = keras.Input((cfg.noise_dim,), name="z")
  noise = layers.Dense(image_size * image_size, use_bias=False,
                       kernel_initializer=seeds.init(), name="noise_dense",
                       dtype=dtype)(z)
  noise = _bn("noise_bn", sync_batch_norm, dtype=dtype)(noise)
  noise = layers.ReLU(name="noise_relu", dtype=dtype)(noise)
  noise = layers.Reshape((image_size, image_size, 1), name="noise_map",
                         dtype=dtype)(noise)
  x = layers.Concatenate(name="image_and_noise", dtype=dtype)([image, noise])
  x = layers.Conv2D(cfg.filters, 3, padding="same", activation="relu",
                    kernel_initializer=seeds.init(), name="conv_in",
                    dtype=dtype)(x)
  for b in range(cfg.num_blocks):
    block_input = x
    x = layers.Conv2D(cfg.filters, 3, padding="same", use_bias=False,
                      kernel_initializer=seeds.init(), name=f"block{b}_conv1",
                      dtype=dtype)(x)
    x = _bn(f"block{b}_bn1", sync_batch_norm, fused_batch_norm, dtype)(x)
    x = layers.ReLU(name=f"block{b}_relu", dtype=dtype)(x)
    x = layers.Conv2D(cfg.filters, 3, padding="same", use_bias=False,
                      kernel_initializer=seeds.init(), name=f"block{b}_conv2",
                      dtype=dtype)(x)
    x = _bn(f"block{b}_bn2", sync_batch_norm, fused_batch_norm, dtype)(x)
    x = layers.Add(name=f"block{b}_skip", dtype=dtype)([block_input, x])
  out = layers.Conv2D(3, 1, activation="tanh", kernel_initializer=seeds.init(),
                      name="conv_out", dtype=out_dtype)(x)
  if cfg.residual_output:
    # The official `residual_interpretation` form: the net predicts a change
    # to the source image, clipped back to the image range. The change spans
    # [-2, 2], so any input pixel can reach any output value: with a [-1, 1]
    # change a black source background (-1) could never get brighter than
    # mid-grey, nor a white digit darker.
    out = layers.Rescaling(2.0, name="residual_scale", dtype=out_dtype)(out)
    out = layers.Add(name="input_plus_residual", dtype=out_dtype)([image, out])
    out = layers.Activation("hard_tanh", name="clip", dtype=out_dtype)(out)
  return keras.Model([image, z], out, name=name)


def build_discriminator(image_size: int = 32,
                        cfg: config_lib.DiscriminatorConfig = config_lib.DiscriminatorConfig(),
                        seed: int = 0,
                        sync_batch_norm: bool = False,
                        fused_batch_norm: bool = False,
                        split_conv_grad: bool = False,
                        dtype: DType = None,
                        name: str = "discriminator") -> keras.Model:
  """D(x) -> logit that x is a target (real) image.

  3x3 conv 64 stride 1 + leaky ReLU 0.2 (no BN), then stride-2 3x3 convs with
  BN + leaky ReLU, doubling the width up to `max_filters`, until 4x4; after
  every conv, dropout and Gaussian noise (`cfg.noise="uniform"`: dropout and
  uniform noise of the same std from one draw, `UniformDropoutNoise`;
  active only with training=True);
  with `cfg.minibatch_std` one more channel from `MinibatchStd`; flatten;
  dense to one logit.

  Input: float32 (B, S, S, 3) in [-1, 1]. Output: float32 (B, 1) logits.
  """
  _check_size(image_size)
  seeds = _Seeds(seed)
  rate = 1.0 - cfg.dropout_keep_prob
  strided_conv = (cpu_layers.Stride2Conv2D if split_conv_grad
                  else layers.Conv2D)

  def regularise(x, tag):
    dropout_seed, noise_seed = seeds.next(), seeds.next()
    if cfg.noise == "uniform":
      return UniformDropoutNoise(cfg.dropout_keep_prob, cfg.noise_stddev,
                                 seed=dropout_seed, name=f"{tag}_regularise",
                                 dtype=dtype)(x)
    x = layers.Dropout(rate, seed=dropout_seed, name=f"{tag}_dropout",
                       dtype=dtype)(x)
    return layers.GaussianNoise(cfg.noise_stddev, seed=noise_seed,
                                name=f"{tag}_noise", dtype=dtype)(x)

  image = keras.Input((image_size, image_size, 3), name="image")
  x = layers.Conv2D(cfg.filters, 3, padding="same",
                    kernel_initializer=seeds.init(), name="conv0",
                    dtype=dtype)(image)
  x = layers.LeakyReLU(0.2, name="conv0_lrelu", dtype=dtype)(x)
  x = regularise(x, "conv0")
  size, filters, i = image_size, cfg.filters, 1
  while size > 4:
    filters = min(filters * 2, cfg.max_filters)
    x = strided_conv(filters, 3, strides=2, padding="same", use_bias=False,
                     kernel_initializer=seeds.init(), name=f"conv{i}",
                     dtype=dtype)(x)
    x = _bn(f"conv{i}_bn", sync_batch_norm, fused_batch_norm, dtype)(x)
    x = layers.LeakyReLU(0.2, name=f"conv{i}_lrelu", dtype=dtype)(x)
    x = regularise(x, f"conv{i}")
    size, i = (size + 1) // 2, i + 1
  if cfg.minibatch_std:
    x = MinibatchStd(name="minibatch_std", dtype=dtype)(x)
  x = layers.Flatten(name="flatten", dtype=dtype)(x)
  logit = layers.Dense(1, kernel_initializer=seeds.init(), name="logit",
                       dtype=_output_dtype(dtype))(x)
  return keras.Model(image, logit, name=name)


def build_classifier_head(image_size: int = 32, num_classes: int = 10,
                          seed: int = 0, dtype: DType = None,
                          name: str = "classifier_head") -> keras.Model:
  """The shared part of the official `mnist` task tower.

  conv5x5 48 + ReLU + 2x2 max-pool, dense 100, dense 100 (ReLU), dense
  `num_classes`. Input: float32 (B, S/2, S/2, 32). Output: (B, classes) logits.
  """
  seeds = _Seeds(seed)
  feats = keras.Input((image_size // 2, image_size // 2, 32), name="features")
  x = layers.Conv2D(48, 5, padding="same", activation="relu",
                    kernel_initializer=seeds.init(), name="conv2",
                    dtype=dtype)(feats)
  x = layers.MaxPooling2D(2, name="pool2", dtype=dtype)(x)
  x = layers.Flatten(name="flatten", dtype=dtype)(x)
  x = layers.Dense(100, activation="relu", kernel_initializer=seeds.init(),
                   name="fc3", dtype=dtype)(x)
  x = layers.Dense(100, activation="relu", kernel_initializer=seeds.init(),
                   name="fc4", dtype=dtype)(x)
  logits = layers.Dense(num_classes, kernel_initializer=seeds.init(),
                        name="logits", dtype=_output_dtype(dtype))(x)
  return keras.Model(feats, logits, name=name)


def build_classifier(image_size: int = 32, num_classes: int = 10,
                     head: Optional[keras.Model] = None, seed: int = 0,
                     dtype: DType = None,
                     name: str = "classifier") -> keras.Model:
  """T(x) -> class logits: conv5x5 32 + ReLU + 2x2 max-pool, then `head`.

  Pass the same `head` to two classifiers to get the official private first
  layer: one classifier for source images, one for adapted and target images,
  sharing everything after the first conv.

  Input: float32 (B, S, S, 3) in [-1, 1]. Output: float32 (B, classes) logits.
  """
  _check_size(image_size)
  seeds = _Seeds(seed)
  if head is None:
    head = build_classifier_head(image_size, num_classes, seed=seed + 7919,
                                 dtype=dtype)
  image = keras.Input((image_size, image_size, 3), name="image")
  x = layers.Conv2D(32, 5, padding="same", activation="relu",
                    kernel_initializer=seeds.init(), name="conv1",
                    dtype=dtype)(image)
  x = layers.MaxPooling2D(2, name="pool1", dtype=dtype)(x)
  return keras.Model(image, head(x), name=name)


class Networks:
  """G, D and T (and T's source twin) built from one Config.

  Attributes:
    generator, discriminator: see the factories.
    classifier: T for adapted and target images; the model to evaluate and
      export.
    source_classifier: T for source images; the same object as `classifier`
      unless `private_source_layer` is set.
    probe_classifier: `classifier`, or with `target_vat` under mixed
      precision a float32 twin for VAT's probe (called with T's weights).
  """

  def __init__(self, cfg: config_lib.Config, precision: str = "float32"):
    """Builds the networks.

    Args:
      cfg: the experiment.
      precision: the resolved Keras policy name (`float32`,
        `mixed_bfloat16` or `mixed_float16`; see
        `runtime.resolve_precision`). Not `cfg.runtime.precision`, which may
        be `auto`.
    """
    if precision not in config_lib.PRECISIONS or precision == "auto":
      raise ValueError(f"precision={precision!r}: pass a resolved policy "
                       "(float32, mixed_bfloat16 or mixed_float16), e.g. "
                       "runtime.resolve_precision(cfg.runtime)[0]")
    # float32 passes no policy at all: the layers are exactly today's.
    dtype = None if precision == "float32" else keras.DTypePolicy(precision)
    size = cfg.data.image_size
    sync = cfg.runtime.sync_batch_norm
    seed = cfg.train.seed
    # XLA expands the fused op into something ~4x slower than Keras' BN.
    fused = cfg.runtime.fused_batch_norm and not cfg.runtime.jit_compile
    self.generator = build_generator(size, cfg.generator, seed=seed + 1,
                                     sync_batch_norm=sync,
                                     fused_batch_norm=fused, dtype=dtype)
    self.discriminator = build_discriminator(size, cfg.discriminator,
                                             seed=seed + 2,
                                             sync_batch_norm=sync,
                                             fused_batch_norm=fused,
                                             split_conv_grad=cfg.runtime.split_conv_grad,
                                             dtype=dtype)
    classes = cfg.classifier.num_classes
    head = build_classifier_head(size, classes, seed=seed + 3, dtype=dtype)
    self.classifier = build_classifier(size, classes, head, seed=seed + 4,
                                       dtype=dtype)
    if cfg.classifier.private_source_layer and cfg.train.mode == "pixelda":
      self.source_classifier = build_classifier(
          size, classes, head, seed=seed + 5, dtype=dtype,
          name="source_classifier")
    else:
      self.source_classifier = self.classifier
    # VAT's probe (`losses.virtual_adversarial_loss`) runs T forward-mode,
    # which XLA compiles in float32 only (MaxPoolGradGrad): a float32 twin
    # of T, always called with T's weights, so its own are never used.
    self.probe_classifier = self.classifier
    if cfg.loss.target_vat and dtype is not None:
      self.probe_classifier = build_classifier(
          size, classes, build_classifier_head(size, classes),
          name="probe_classifier")

  @property
  def classifier_variables(self):
    """T's trainable variables, the shared head counted once."""
    return unique_variables(self.classifier.trainable_variables +
                            self.source_classifier.trainable_variables)


def unique_variables(variables):
  """`variables` without repeats (by identity), in order."""
  seen, out = set(), []
  for v in variables:
    if id(v) not in seen:
      seen.add(id(v))
      out.append(v)
  return out
