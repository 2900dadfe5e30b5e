"""The three PixelDA networks as Keras 3 Functional models.

Architectures follow the official TF1 code (tensorflow/models,
research/domain_adaptation/pixel_domain_adaptation, `pixelda_model.py` and
`pixelda_task_towers.py`): convolutions are SAME-padded, weights start from
N(0, 0.02), batch norm uses momentum 0.9, epsilon 1e-3 and no scale (slim's
default), and a layer followed by batch norm has no bias.

Every factory takes explicit sizes, returns a named `keras.Model` built only
from Keras built-in layers (so `.keras` files load with plain
`keras.models.load_model`), and draws each layer's initial weights from its
own seed derived from `seed`.

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
import tensorflow as tf

from pixelda_tf import config as config_lib

# A Keras dtype policy: None (the global policy), a name or a DTypePolicy.
DType = Optional[Union[str, keras.DTypePolicy]]

BN_MOMENTUM = 0.9
BN_EPSILON = 1e-3
INIT_STDDEV = 0.02


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


@keras.saving.register_keras_serializable(package="pixelda_tf")
class FusedBatchNormalization(layers.BatchNormalization):
  """Keras BatchNormalization whose training pass is one fused TF op.

  Why: the built-in layer computes moments and normalises with ~10 separate
  elementwise/reduction ops (and as many in the backward pass), about half a
  second of a paper-size CPU step; `FusedBatchNormV3` (and its gradient op)
  does the same work in one pass each. Same variables, same config, same
  numbers: the moving statistics are updated exactly as Keras does (with the
  biased batch variance; the op reports the unbiased one, so it is rescaled).
  Only 4-D channels-last inputs in training take the fused path; everything
  else (inference, other ranks, masks, scale, renorm, synchronised statistics)
  is the parent's code. Under a mixed policy the inputs and outputs are 16-bit
  and the statistics, offset and moving averages float32, as in the parent
  (the op's float32 `U` type).
  """

  def _fusable(self, inputs, training, mask) -> bool:
    return (training and self.trainable and mask is None
            and len(inputs.shape) == 4 and self.axis in (-1, 3)
            and not (self.scale or self.renorm or self.synchronized)
            and inputs.dtype in ("float32", "bfloat16", "float16"))

  def call(self, inputs, training=None, mask=None):
    if not self._fusable(inputs, training, mask):
      return super().call(inputs, training=training, mask=mask)
    channels = inputs.shape[-1]
    # beta is float32 under any policy (Keras creates it with autocast off).
    f32 = tf.float32
    offset = self.beta if self.center else tf.zeros((channels,), f32)
    outputs, mean, unbiased_var, _, _, _ = tf.raw_ops.FusedBatchNormV3(
        x=inputs, scale=tf.ones((channels,), f32), offset=offset,
        mean=tf.zeros((0,), f32), variance=tf.zeros((0,), f32),
        epsilon=self.epsilon, exponential_avg_factor=1.0, data_format="NHWC",
        is_training=True)
    n = tf.cast(tf.reduce_prod(tf.shape(inputs)[:-1]), f32)
    variance = unbiased_var * ((n - 1.0) / tf.maximum(n, 1.0))
    mean, variance = tf.stop_gradient(mean), tf.stop_gradient(variance)
    m = self.momentum
    self.moving_mean.assign(self.moving_mean * m + mean * (1.0 - m))
    self.moving_variance.assign(self.moving_variance * m + variance * (1.0 - m))
    return outputs


# Taps of a 3-wide stride-2 SAME kernel that reach even / odd input positions,
# in the order a stride-1 correlation over the (front-padded) output gradient
# meets them: x[2j] gets dy[j-1]*w[2] + dy[j]*w[0]; x[2j+1] gets dy[j]*w[1].
_PHASE_TAPS = ((2, 0), (1,))


def _stride2_input_grad(dy, kernel):
  """d(conv2d(x, kernel, stride 2, SAME))/dx for 3x3 kernels, even H and W.

  Split into the four (row, column) parities of x: each is a small stride-1
  convolution of dy (1x1 to 2x2 taps), interleaved back by depth_to_space.
  Same multiply-adds as the forward conv.
  """
  phases = []
  for r, rows in enumerate(_PHASE_TAPS):
    for c, cols in enumerate(_PHASE_TAPS):
      k = tf.gather(tf.gather(kernel, rows, axis=0), cols, axis=1)
      padded = tf.pad(dy, [[0, 0], [1 - r, 0], [1 - c, 0], [0, 0]])
      phases.append(tf.nn.conv2d(padded, tf.transpose(k, [0, 1, 3, 2]),
                                 1, "VALID"))
  return tf.nn.depth_to_space(tf.concat(phases, axis=-1), 2)


@tf.custom_gradient
def _stride2_conv(x, kernel):
  y = tf.nn.conv2d(x, kernel, 2, "SAME")

  def grad(dy):
    dkernel = tf.raw_ops.Conv2DBackpropFilter(
        input=x, filter_sizes=tf.shape(kernel), out_backprop=dy,
        strides=[1, 2, 2, 1], padding="SAME")
    return _stride2_input_grad(dy, kernel), dkernel

  return y, grad


@keras.saving.register_keras_serializable(package="pixelda_tf")
class Stride2Conv2D(layers.Conv2D):
  """Conv2D (3x3, stride 2, SAME, NHWC) with a faster input gradient.

  Why: TensorFlow's CPU `Conv2DBackpropInput` for stride 2 runs ~15x slower
  per FLOP than the forward conv (0.46 s of a paper-size step for D's last
  conv alone); the same gradient as four stride-1 convolutions costs about
  what the forward conv does. Same variables, config and values as Conv2D;
  other shapes (odd sizes, other kernels) use the parent's code.
  """

  def convolution_op(self, inputs, kernel):
    shape = inputs.shape
    if (self.kernel_size == (3, 3) and self.strides == (2, 2)
        and self.padding == "same" and self.data_format == "channels_last"
        and self.dilation_rate == (1, 1) and self.groups == 1
        and len(shape) == 4 and shape[1] is not None and shape[2] is not None
        and shape[1] % 2 == 0 and shape[2] % 2 == 0):
      return _stride2_conv(tf.convert_to_tensor(inputs),
                           tf.convert_to_tensor(kernel))
    return super().convolution_op(inputs, kernel)


def _bn(name: str, sync: bool, fused: bool = False,
        dtype: DType = None) -> layers.Layer:
  # Under a mixed policy Keras' BN still keeps its variables and computes its
  # statistics in float32 (autocast=False variables, float32 upcast).
  cls = (FusedBatchNormalization if fused and not sync
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
    raise ValueError(config_lib.image_size_error(image_size))


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
    raise ValueError(f"noise_dim={cfg.noise_dim}: the generator needs >= 1")
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
  every conv, dropout and Gaussian noise (active only with training=True);
  flatten; dense to one logit.

  Input: float32 (B, S, S, 3) in [-1, 1]. Output: float32 (B, 1) logits.
  """
  _check_size(image_size)
  seeds = _Seeds(seed)
  rate = 1.0 - cfg.dropout_keep_prob
  strided_conv = Stride2Conv2D if split_conv_grad else layers.Conv2D

  def regularise(x, tag):
    x = layers.Dropout(rate, seed=seeds.next(), name=f"{tag}_dropout",
                       dtype=dtype)(x)
    return layers.GaussianNoise(cfg.noise_stddev, seed=seeds.next(),
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
