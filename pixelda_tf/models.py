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
"""

from __future__ import annotations

import itertools
from typing import Iterator, Optional

import keras
from keras import layers

from pixelda_tf import config as config_lib

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


def _bn(name: str, sync: bool) -> layers.Layer:
  return layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON,
                                   scale=False, synchronized=sync, name=name)


def _check_size(image_size: int) -> None:
  if image_size < 8 or image_size % 4:
    raise ValueError(f"image_size={image_size}: use a multiple of 4, at least "
                     "8 (the classifier pools twice by 2)")


def build_generator(image_size: int = 32,
                    cfg: config_lib.GeneratorConfig = config_lib.GeneratorConfig(),
                    seed: int = 0,
                    sync_batch_norm: bool = False,
                    name: str = "generator") -> keras.Model:
  """G(x_s, z) -> x_f, the official `resnet` generator.

  z goes through dense (H*W units) + BN + ReLU, is reshaped to one HxW
  channel and concatenated to the image; then a 3x3 conv + ReLU, residual
  blocks (conv-BN-ReLU-conv-BN + skip), and a 1x1 conv to 3 channels + tanh.

  Inputs: `image` float32 (B, S, S, 3) in [-1, 1]; `z` float32 (B, noise_dim)
  in [-1, 1]. Output: float32 (B, S, S, 3) in [-1, 1].
  """
  _check_size(image_size)
  if cfg.noise_dim < 1:
    raise ValueError(f"noise_dim={cfg.noise_dim}: the generator needs >= 1")
  seeds = _Seeds(seed)
  image = keras.Input((image_size, image_size, 3), name="image")
  z = keras.Input((cfg.noise_dim,), name="z")
  noise = layers.Dense(image_size * image_size, use_bias=False,
                       kernel_initializer=seeds.init(), name="noise_dense")(z)
  noise = _bn("noise_bn", sync_batch_norm)(noise)
  noise = layers.ReLU(name="noise_relu")(noise)
  noise = layers.Reshape((image_size, image_size, 1), name="noise_map")(noise)
  x = layers.Concatenate(name="image_and_noise")([image, noise])
  x = layers.Conv2D(cfg.filters, 3, padding="same", activation="relu",
                    kernel_initializer=seeds.init(), name="conv_in")(x)
  for b in range(cfg.num_blocks):
    block_input = x
    x = layers.Conv2D(cfg.filters, 3, padding="same", use_bias=False,
                      kernel_initializer=seeds.init(), name=f"block{b}_conv1")(x)
    x = _bn(f"block{b}_bn1", sync_batch_norm)(x)
    x = layers.ReLU(name=f"block{b}_relu")(x)
    x = layers.Conv2D(cfg.filters, 3, padding="same", use_bias=False,
                      kernel_initializer=seeds.init(), name=f"block{b}_conv2")(x)
    x = _bn(f"block{b}_bn2", sync_batch_norm)(x)
    x = layers.Add(name=f"block{b}_skip")([block_input, x])
  out = layers.Conv2D(3, 1, activation="tanh", kernel_initializer=seeds.init(),
                      name="conv_out")(x)
  if cfg.residual_output:
    # The official `residual_interpretation` form: the net predicts a change
    # to the source image, clipped back to the image range.
    out = layers.Add(name="input_plus_residual")([image, out])
    out = layers.Activation("hard_tanh", name="clip")(out)
  return keras.Model([image, z], out, name=name)


def build_discriminator(image_size: int = 32,
                        cfg: config_lib.DiscriminatorConfig = config_lib.DiscriminatorConfig(),
                        seed: int = 0,
                        sync_batch_norm: bool = False,
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

  def regularise(x, tag):
    x = layers.Dropout(rate, seed=seeds.next(), name=f"{tag}_dropout")(x)
    return layers.GaussianNoise(cfg.noise_stddev, seed=seeds.next(),
                                name=f"{tag}_noise")(x)

  image = keras.Input((image_size, image_size, 3), name="image")
  x = layers.Conv2D(cfg.filters, 3, padding="same",
                    kernel_initializer=seeds.init(), name="conv0")(image)
  x = layers.LeakyReLU(0.2, name="conv0_lrelu")(x)
  x = regularise(x, "conv0")
  size, filters, i = image_size, cfg.filters, 1
  while size > 4:
    filters = min(filters * 2, cfg.max_filters)
    x = layers.Conv2D(filters, 3, strides=2, padding="same", use_bias=False,
                      kernel_initializer=seeds.init(), name=f"conv{i}")(x)
    x = _bn(f"conv{i}_bn", sync_batch_norm)(x)
    x = layers.LeakyReLU(0.2, name=f"conv{i}_lrelu")(x)
    x = regularise(x, f"conv{i}")
    size, i = (size + 1) // 2, i + 1
  x = layers.Flatten(name="flatten")(x)
  logit = layers.Dense(1, kernel_initializer=seeds.init(), name="logit")(x)
  return keras.Model(image, logit, name=name)


def build_classifier_head(image_size: int = 32, num_classes: int = 10,
                          seed: int = 0,
                          name: str = "classifier_head") -> keras.Model:
  """The shared part of the official `mnist` task tower.

  conv5x5 48 + ReLU + 2x2 max-pool, dense 100, dense 100 (ReLU), dense
  `num_classes`. Input: float32 (B, S/2, S/2, 32). Output: (B, classes) logits.
  """
  seeds = _Seeds(seed)
  feats = keras.Input((image_size // 2, image_size // 2, 32), name="features")
  x = layers.Conv2D(48, 5, padding="same", activation="relu",
                    kernel_initializer=seeds.init(), name="conv2")(feats)
  x = layers.MaxPooling2D(2, name="pool2")(x)
  x = layers.Flatten(name="flatten")(x)
  x = layers.Dense(100, activation="relu", kernel_initializer=seeds.init(),
                   name="fc3")(x)
  x = layers.Dense(100, activation="relu", kernel_initializer=seeds.init(),
                   name="fc4")(x)
  logits = layers.Dense(num_classes, kernel_initializer=seeds.init(),
                        name="logits")(x)
  return keras.Model(feats, logits, name=name)


def build_classifier(image_size: int = 32, num_classes: int = 10,
                     head: Optional[keras.Model] = None, seed: int = 0,
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
    head = build_classifier_head(image_size, num_classes, seed=seed + 7919)
  image = keras.Input((image_size, image_size, 3), name="image")
  x = layers.Conv2D(32, 5, padding="same", activation="relu",
                    kernel_initializer=seeds.init(), name="conv1")(image)
  x = layers.MaxPooling2D(2, name="pool1")(x)
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

  def __init__(self, cfg: config_lib.Config):
    size = cfg.data.image_size
    sync = cfg.runtime.sync_batch_norm
    seed = cfg.train.seed
    self.generator = build_generator(size, cfg.generator, seed=seed + 1,
                                     sync_batch_norm=sync)
    self.discriminator = build_discriminator(size, cfg.discriminator,
                                             seed=seed + 2,
                                             sync_batch_norm=sync)
    classes = cfg.classifier.num_classes
    head = build_classifier_head(size, classes, seed=seed + 3)
    self.classifier = build_classifier(size, classes, head, seed=seed + 4)
    if cfg.classifier.private_source_layer and cfg.train.mode == "pixelda":
      self.source_classifier = build_classifier(
          size, classes, head, seed=seed + 5, name="source_classifier")
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
