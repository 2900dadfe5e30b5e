"""Export for serving: SavedModels in TF Serving's layout and `.keras` files.

Layout written by `export` (one version per call):

  OUT/generator/<version>/       G: source image (+ seed or z) -> adapted image
  OUT/classifier/<version>/      T: image -> logits, probabilities, class id
  OUT/adapt_classify/<version>/  T(G(x)): both of the above in one request
  OUT/keras/<version>/generator.keras     plain `keras.models.load_model`
  OUT/keras/<version>/classifier.keras    files
  OUT/keras/<version>/preprocessing.json  the input contract of the .keras
                                          files
  OUT/onnx/<version>/*.onnx      optional (`onnx=True`), the bare networks

Every folder of a version appears complete (written under a temporary name,
then renamed), and no version is ever overwritten.

Each SavedModel is a `tf.Module` whose signatures are `tf.function`s with
explicit `TensorSpec`s: named inputs, a dynamic batch (-1), any image height
and width (resized to the model's size as the data pipeline does), float
[-1, 1] or uint8 [0, 255] pixels, 1 (grey) or 3 (RGB) channels. Networks run
with training=False: batch norm uses its moving statistics, and the
discriminator (the only net with dropout and noise) is not exported.

Generator-based servables have six signatures, `serving_default` first:

  serving_default  image float32 [-1, 1]                z from seed 0
  seed             image float32 + seed int64 (B,)      z_i from seed_i
  z                image float32 + z float32 (B, noise_dim) in [-1, 1]
  uint8, uint8_seed, uint8_z   the same with image uint8 [0, 255]

Wrong inputs get an error naming the input: values outside [-1, 1] in a
float image ("send uint8 [0, 255] pixels to the uint8 signatures"), channels,
batch sizes. A tensor of the wrong dtype is refused before the graph runs:
in process, `signatures[...]` names only the function, so each is named for
its inputs and for the signature that takes the other dtype; the restored
module's methods (`loaded.uint8(...)`) name `image`; TF Serving's REST API
converts JSON numbers to the signature's dtype (then the range check
speaks), and its gRPC API answers with its own dtype message.

The baselines (`source_only`, `target_only`) never train G, so only the
classifier is exported for them.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import tempfile
from typing import Callable, Dict, List, Optional

from absl import logging
import keras
import tensorflow as tf

from pixelda_tf import config as config_lib
from pixelda_tf import data as data_lib
from pixelda_tf import errors
from pixelda_tf import pixelda as pixelda_lib
from pixelda_tf import rundir

GENERATOR, CLASSIFIER, COMBINED = "generator", "classifier", "adapt_classify"
KERAS_DIR = "keras"
ONNX_DIR = "onnx"
CONTRACT_FILE = "preprocessing.json"
# Float inputs may overshoot [-1, 1] by rounding in the caller's conversion;
# anything beyond this is almost surely [0, 1] or [0, 255] data sent to the
# float signature.
RANGE_TOLERANCE = 1e-3
# The second word of every per-example seed, so serving noise never repeats
# the training draws (seeded by [train.seed, step]).
SEED_SALT = 0x5E7E


class ExportError(errors.UserError, RuntimeError):
  """The export cannot proceed; the message says why and what to do."""


# ----------------------------------------------------------------------------
# Graph pieces shared by the signatures.

def preprocess(images: tf.Tensor, image_size: int,
               smaller: str = "resize") -> tf.Tensor:
  """Any-size images -> float32 (B, S, S, 3) in [-1, 1], as training sees them.

  Args:
    images: (B, H, W, C) with C in {1, 3}; uint8 in [0, 255] or float32 in
      [-1, 1]. Grey is repeated to three channels.
    image_size: S, the side the networks were built for.
    smaller: the run's `--smaller_images`: with `pad`, images no larger than
      S are centred on black at their own scale (as training saw them), not
      resized.
  Returns:
    float32 (B, S, S, 3) in [-1, 1]. Resizing is bilinear and antialiased
    (as `data.images.resize`); uint8 images are resized in [0, 255] and
    rounded back to integers, exactly as the data pipeline stores them.
  Raises:
    tf.errors.InvalidArgumentError: rank other than 4, wrong channel count,
      empty image, or float values outside [-1, 1].
  """
  from_uint8 = images.dtype == tf.uint8
  # A signature's TensorSpec shape is not checked when the SavedModel is
  # called (nor fed by a server), and grappler folds rank checks built from
  # the static shape away; EnsureShape runs and says which shape it got.
  images = tf.ensure_shape(images, [None, None, None, None])
  shape = tf.shape(images)
  asserts = [
      tf.debugging.assert_equal(
          tf.logical_or(tf.equal(shape[3], 1), tf.equal(shape[3], 3)), True,
          message="image must have 1 (grey) or 3 (RGB) channels, "
                  "shape (batch, height, width, channels)"),
      tf.debugging.assert_positive(
          shape[1:3], message="image height and width must be > 0"),
  ]
  if not from_uint8:
    asserts.append(tf.debugging.assert_less_equal(
        tf.abs(images), 1.0 + RANGE_TOLERANCE,
        message="float32 image values must be in [-1, 1]; send uint8 "
                "[0, 255] pixels to the uint8 signatures instead"))
  with tf.control_dependencies(asserts):
    x = tf.cast(images, tf.float32)
  # Channel indices [0, 0, 0] for grey and [0, 1, 2] for RGB: one op, no
  # branch, and a static channel count for the networks.
  x = tf.gather(x, tf.minimum(tf.range(3), shape[3] - 1), axis=3)
  x = tf.ensure_shape(x, [None, None, None, 3])
  lo, hi = (0.0, 255.0) if from_uint8 else (-1.0, 1.0)

  def resize():
    r = tf.image.resize(x, (image_size, image_size), method="bilinear",
                        antialias=True)
    r = tf.clip_by_value(r, lo, hi)
    return tf.round(r) if from_uint8 else r

  def pad():
    # Padded with black (`lo`), centred as `data.images.pad` does.
    return tf.image.resize_with_crop_or_pad(x - lo, image_size,
                                            image_size) + lo

  same = tf.logical_and(tf.equal(shape[1], image_size),
                        tf.equal(shape[2], image_size))
  if smaller == "pad":
    fits = tf.logical_and(tf.less_equal(shape[1], image_size),
                          tf.less_equal(shape[2], image_size))
    x = tf.cond(fits, pad, resize)
  else:
    x = tf.cond(same, lambda: x, resize)
  x = tf.ensure_shape(x, [None, image_size, image_size, 3])
  if from_uint8:
    x = x / 127.5 - 1.0
  return tf.clip_by_value(x, -1.0, 1.0)


def to_uint8(images: tf.Tensor) -> tf.Tensor:
  """float (..., 3) in [-1, 1] -> uint8 in [0, 255], rounded."""
  return tf.cast(tf.round(tf.clip_by_value((images + 1.0) * 127.5, 0.0,
                                           255.0)), tf.uint8)


def noise_from_seeds(seeds: tf.Tensor, noise_dim: int) -> tf.Tensor:
  """int64 (B,) seeds -> z float32 (B, noise_dim), uniform in [-1, 1].

  One stateless draw per example, so an example's z depends only on its own
  seed, never on the batch it arrives in.
  """
  def draw(seed):
    return tf.random.stateless_uniform(
        [noise_dim], seed=tf.stack([seed, tf.constant(SEED_SALT, tf.int64)]),
        minval=-1.0, maxval=1.0)
  z = tf.map_fn(draw, seeds, fn_output_signature=tf.float32)
  return tf.ensure_shape(z, [None, noise_dim])


def unless_empty(x: tf.Tensor, network: Callable[[], tf.Tensor],
                 shape: List[int]) -> tf.Tensor:
  """network() for a batch of one or more; for B=0 an empty float32
  (0, *shape) without calling it: oneDNN's convolutions reject an empty
  batch ("input depth must be evenly divisible by filter depth")."""
  out = tf.cond(tf.shape(x)[0] > 0, network,
                lambda: tf.zeros([0, *shape], tf.float32))
  return tf.ensure_shape(out, [None, *shape])


def _same_batch(images: tf.Tensor, other: tf.Tensor, name: str) -> tf.Tensor:
  return tf.debugging.assert_equal(
      tf.shape(images)[0], tf.shape(other)[0],
      message=f"{name} must have one row per image (same batch size)")


# ----------------------------------------------------------------------------
# Servables.

def _signature_function(fn: Callable, signature: str, inputs: str,
                        specs: List[tf.TensorSpec]):
  """tf.function(fn) for the signature `signature`, named for its inputs.

  An input of the wrong dtype is refused before the graph runs, so no check
  in it can name the input; TensorFlow's error names only the function
  ("cannot compute __inference_signature_wrapper_<name>_N as input #0
  (zero-based) was expected to be a float tensor but is a uint8 tensor").
  So the name says what each input takes, and which signature takes the
  other image dtype. Inputs are numbered in name order (image, seed, z).
  """
  image = specs[0].dtype
  other = {"serving_default": "uint8", "uint8": "serving_default"}.get(
      signature, signature.replace("uint8_", "") if image == tf.uint8
      else "uint8_" + signature)
  name = ("image_float32_in_minus1_to_1" if image == tf.float32
          else "image_uint8_in_0_to_255") + inputs + (
              f"__for_{'uint8' if image == tf.float32 else 'float32'}"
              f"_images_use_the_{other}_signature")

  @functools.wraps(fn)  # Keeps fn's argument names: the inputs' names.
  def named(*args, **kwargs):
    return fn(*args, **kwargs)

  named.__name__ = named.__qualname__ = name
  return tf.function(named, input_signature=specs)


def image_spec(dtype: tf.DType) -> tf.TensorSpec:
  # Rank 4 is enforced by the spec; channels stay open for grey or RGB and
  # are checked in the graph, where the message can say what was expected.
  return tf.TensorSpec([None, None, None, None], dtype, name="image")


class ClassifierServable(tf.Module):
  """T(x): `serving_default` (float32 [-1, 1]) and `uint8` ([0, 255]).

  Outputs: logits float32 (B, classes), probabilities float32 (B, classes)
  summing to 1, class_id int64 (B,), class_name string (B,).
  """

  def __init__(self, classifier: keras.Model, image_size: int,
               label_names: List[str], smaller: str = "resize"):
    super().__init__(name="classifier_servable")
    self.classifier = classifier
    self._image_size = image_size
    self._smaller = smaller
    self._labels = tf.constant(label_names)
    self.serving_default = _signature_function(
        self._classify_images, "serving_default", "",
        [image_spec(tf.float32)])
    self.uint8 = _signature_function(self._classify_images, "uint8", "",
                                     [image_spec(tf.uint8)])

  def classify(self, x: tf.Tensor) -> Dict[str, tf.Tensor]:
    """float32 (B, S, S, 3) in [-1, 1] -> the output dict."""
    logits = unless_empty(x, lambda: self.classifier(x, training=False),
                          [int(self._labels.shape[0])])
    class_id = tf.argmax(logits, axis=-1)
    return {"logits": logits, "probabilities": tf.nn.softmax(logits),
            "class_id": class_id,
            "class_name": tf.gather(self._labels, class_id)}

  def _classify_images(self, image):
    return self.classify(preprocess(image, self._image_size, self._smaller))

  def signatures(self) -> Dict[str, Callable]:
    return {"serving_default": self.serving_default, "uint8": self.uint8}


class GeneratorServable(tf.Module):
  """G(x, z), optionally followed by T: the six signatures in the module doc.

  Outputs: adapted float32 (B, S, S, 3) in [-1, 1] and adapted_uint8 uint8
  (B, S, S, 3); with a classifier also T's outputs on the adapted images.
  """

  def __init__(self, generator: keras.Model, image_size: int, noise_dim: int,
               classifier: Optional[ClassifierServable] = None,
               smaller: str = "resize"):
    super().__init__(name="generator_servable")
    self.generator = generator
    self.classifier = classifier
    self._image_size = image_size
    self._smaller = smaller
    self._noise_dim = noise_dim
    z_spec = tf.TensorSpec([None, noise_dim], tf.float32, name="z")
    seed_spec = tf.TensorSpec([None], tf.int64, name="seed")
    for prefix, dtype in (("", tf.float32), ("uint8_", tf.uint8)):
      spec = image_spec(dtype)
      default = "serving_default" if dtype == tf.float32 else "uint8"
      setattr(self, default, _signature_function(
          self._from_default_seed, default, "", [spec]))
      setattr(self, prefix + "seed", _signature_function(
          self._from_seed, prefix + "seed", "_and_seed_int64",
          [spec, seed_spec]))
      setattr(self, prefix + "z", _signature_function(
          self._from_z, prefix + "z", "_and_z_float32_in_minus1_to_1",
          [spec, z_spec]))

  def adapt(self, x: tf.Tensor, z: tf.Tensor) -> Dict[str, tf.Tensor]:
    """x float32 (B, S, S, 3) and z (B, noise_dim) in [-1, 1] -> outputs."""
    adapted = unless_empty(x, lambda: self.generator([x, z], training=False),
                           [self._image_size, self._image_size, 3])
    out = {"adapted": adapted, "adapted_uint8": to_uint8(adapted)}
    if self.classifier is not None:
      out.update(self.classifier.classify(adapted))
    return out

  # The argument names are the signature's input names.
  def _from_default_seed(self, image):
    x = preprocess(image, self._image_size, self._smaller)
    seed = tf.zeros(tf.shape(x)[:1], tf.int64)
    return self.adapt(x, noise_from_seeds(seed, self._noise_dim))

  def _from_seed(self, image, seed):
    seed = tf.ensure_shape(seed, [None])
    with tf.control_dependencies([_same_batch(image, seed, "seed")]):
      x = preprocess(image, self._image_size, self._smaller)
    return self.adapt(x, noise_from_seeds(seed, self._noise_dim))

  def _from_z(self, image, z):
    z = tf.ensure_shape(z, [None, self._noise_dim])
    asserts = [_same_batch(image, z, "z"),
               tf.debugging.assert_less_equal(
                   tf.abs(z), 1.0 + RANGE_TOLERANCE,
                   message="z must be in [-1, 1] (G was trained on U[-1, 1])")]
    with tf.control_dependencies(asserts):
      x = preprocess(image, self._image_size, self._smaller)
    return self.adapt(x, z)

  def signatures(self) -> Dict[str, Callable]:
    names = ("serving_default", "seed", "z", "uint8", "uint8_seed", "uint8_z")
    return {n: getattr(self, n) for n in names}


def label_names(cfg: config_lib.Config) -> List[str]:
  """Class names in label order: the source's (`data.class_names`).

  Digits for MNIST/USPS, a labelled source folder's class subfolders (target
  folders are relabelled to the source's names, so these name every run's
  classes). `class_<i>` fills in for classes without a name, e.g. when the
  source folder is no longer where the run found it.
  """
  n = cfg.classifier.num_classes
  try:
    names = list(data_lib.class_names(cfg.data))[:n]
  except data_lib.DataError as e:
    logging.warning("class names unknown (%s); exporting class_<i>", e)
    names = []
  return names + [f"class_{i}" for i in range(len(names), n)]


def build_servables(nets, cfg: config_lib.Config) -> Dict[str, tf.Module]:
  """name -> servable module for `nets` (a `models.Networks`)."""
  size, smaller = cfg.data.image_size, cfg.data.smaller_images
  classifier = ClassifierServable(nets.classifier, size, label_names(cfg),
                                  smaller)
  servables = {CLASSIFIER: classifier}
  if cfg.train.mode == "pixelda":
    servables[GENERATOR] = GeneratorServable(
        nets.generator, size, cfg.generator.noise_dim, smaller=smaller)
    servables[COMBINED] = GeneratorServable(
        nets.generator, size, cfg.generator.noise_dim, classifier=classifier,
        smaller=smaller)
  return servables


# ----------------------------------------------------------------------------
# Writing.

def contract(cfg: config_lib.Config, checkpoint: str = "",
             step: int = -1) -> dict:
  """The preprocessing contract of the `.keras` files, as a JSON-able dict."""
  size = cfg.data.image_size
  return {
      "format_version": 1,
      "image_size": size,
      "input_shape": [size, size, 3],
      "layout": "NHWC (batch, height, width, channels)",
      "channel_order": "RGB; grey images are repeated to 3 channels",
      "dtype": "float32",
      "value_range": [-1.0, 1.0],
      "from_uint8": "x / 127.5 - 1",
      "resize": "tf.image.resize bilinear, antialias=True, to image_size; "
                "uint8 images resized in [0, 255], clipped and rounded",
      "smaller_images": (
          "pad: images no larger than image_size are centred on black "
          "(offset (image_size - side) // 2), not resized"
          if cfg.data.smaller_images == "pad" else "resize"),
      "generator": {
          "inputs": {"image": [None, size, size, 3],
                     "z": [None, cfg.generator.noise_dim]},
          "z": "uniform in [-1, 1]",
          "output": "adapted images, float32 (B, S, S, 3) in [-1, 1]",
          "to_uint8": "round((y + 1) * 127.5)",
          "exported": cfg.train.mode == "pixelda",
      },
      "classifier": {
          "inputs": {"image": [None, size, size, 3]},
          "output": "logits float32 (B, num_classes); softmax for "
                    "probabilities",
          "num_classes": cfg.classifier.num_classes,
          "label_names": label_names(cfg),
      },
      "training": {"source": cfg.data.source, "target": cfg.data.target,
                   "mode": cfg.train.mode, "checkpoint": checkpoint,
                   "step": step},
  }


def next_version(export_dir: str) -> int:
  """One more than the highest version of any servable in export_dir, or 1."""
  versions = [0]
  for name in (GENERATOR, CLASSIFIER, COMBINED, KERAS_DIR, ONNX_DIR):
    folder = os.path.join(export_dir, name)
    if os.path.isdir(folder):
      versions += [int(v) for v in os.listdir(folder) if v.isdigit()]
  return max(versions) + 1


def _write_version(base_dir: str, version: int,
                   write: Callable[[str], Dict[str, str]]) -> Dict[str, str]:
  """Runs write(folder) into a temporary folder and renames it to
  base_dir/<version> when complete; returns write's paths, renamed.

  TF Serving loads a numeric folder as soon as it appears, and a reader of
  the .keras files should never see half of them.
  """
  final = os.path.join(base_dir, str(version))
  if os.path.exists(final):
    raise ExportError(f"{final} already exists; pass another --version "
                      "(versions are never overwritten: TF Serving would not "
                      "reload a changed one)")
  try:
    os.makedirs(base_dir, exist_ok=True)
  except (NotADirectoryError, FileExistsError) as e:
    raise ExportError(f"cannot create {base_dir} ({e}): --export_dir must be "
                      "a folder, or a path that does not exist yet") from e
  except OSError as e:
    raise ExportError(f"cannot create {base_dir} ({e}): give an --export_dir "
                      "this process can write") from e
  tmp = tempfile.mkdtemp(prefix=f".tmp-{version}-", dir=base_dir)
  try:
    paths = write(tmp)
    os.rename(tmp, final)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
  return {k: os.path.join(final, os.path.relpath(v, tmp))
          for k, v in paths.items()}


def save_servable(module: tf.Module, base_dir: str, version: int) -> str:
  """Writes the SavedModel base_dir/<version>/ atomically; returns its path."""

  def write(folder):
    tf.saved_model.save(module, folder, signatures=module.signatures())
    return {"": folder}

  return _write_version(base_dir, version, write)[""]


def save_keras(nets, cfg: config_lib.Config, out_dir: str,
               checkpoint: str = "", step: int = -1) -> Dict[str, str]:
  """Writes generator.keras (pixelda mode only), classifier.keras and the
  preprocessing contract into out_dir; returns file name -> path."""
  os.makedirs(out_dir, exist_ok=True)
  models = {CLASSIFIER: nets.classifier}
  if cfg.train.mode == "pixelda":
    models[GENERATOR] = nets.generator
  paths = {}
  for name, model in models.items():
    path = os.path.join(out_dir, f"{name}.keras")
    model.save(path)
    paths[f"{name}.keras"] = path
  path = os.path.join(out_dir, CONTRACT_FILE)
  with open(path, "w") as f:
    json.dump(contract(cfg, checkpoint, step), f, indent=2)
    f.write("\n")
  paths[CONTRACT_FILE] = path
  return paths


def save_onnx(nets, cfg: config_lib.Config, out_dir: str,
              opset: int = 17) -> Dict[str, str]:
  """Writes generator.onnx (pixelda mode only) and classifier.onnx.

  The bare networks, like the .keras files: fixed-size float32 NHWC input in
  [-1, 1] (see the contract), batch dynamic. The serving preprocessing is
  left out because tf2onnx has no converter for the antialiased resize
  (ScaleAndTranslate). Needs `pip install tf2onnx onnx`; tf2onnx 1.17 is
  tested upstream on TF <= 2.15 and its `from_keras` fails on Keras 3, so the
  networks go through `from_function` with explicit signatures.

  Raises:
    ExportError: tf2onnx is not installed.
  """
  tf2onnx = require_onnx()
  os.makedirs(out_dir, exist_ok=True)
  nets_out = {CLASSIFIER: (nets.classifier, "logits")}
  if cfg.train.mode == "pixelda":
    nets_out[GENERATOR] = (nets.generator, "adapted")
  paths = {}
  for name, (model, output) in nets_out.items():
    specs = [tf.TensorSpec((None,) + tuple(i.shape[1:]), tf.float32,
                           name=i.name) for i in model.inputs]

    def forward(*inputs, model=model, output=output):
      x = list(inputs) if len(inputs) > 1 else inputs[0]
      return {output: model(x, training=False)}

    path = os.path.join(out_dir, f"{name}.onnx")
    fn = tf.function(forward, input_signature=specs)
    tf2onnx.convert.from_function(fn, input_signature=specs, opset=opset,
                                  output_path=path)
    paths[f"{name}.onnx"] = path
  return paths


def require_onnx():
  """The tf2onnx module; an ExportError naming the install command when it
  (or onnx, which it writes with) cannot be imported. Called before anything
  is written, so a refused --onnx leaves no version and no empty folder."""
  try:
    # onnx too: tf2onnx imports it only when it writes.
    import onnx  # pylint: disable=g-import-not-at-top
    import tf2onnx  # pylint: disable=g-import-not-at-top
    del onnx
  except ImportError as e:
    raise ExportError(f"--onnx needs tf2onnx and onnx ({e}): `pip install "
                      "tf2onnx onnx`, or leave out --onnx") from e
  return tf2onnx


def export(model: pixelda_lib.PixelDA, export_dir: str,
           version: Optional[int] = None, checkpoint: str = "",
           onnx: bool = False) -> Dict[str, str]:
  """Writes every servable and the .keras files of a restored PixelDA.

  Args:
    model: a PixelDA with trained weights (see `rundir.restore`).
    export_dir: OUT; created if missing.
    version: the servables' version folder; default `next_version`.
    checkpoint: the restored checkpoint path, recorded in the contract.
    onnx: also write OUT/onnx/*.onnx (see `save_onnx`).
  Returns:
    name -> written path (servables, the .keras files and the contract).
  """
  if onnx:
    require_onnx()
  if os.path.exists(export_dir) and not os.path.isdir(export_dir):
    raise ExportError(f"--export_dir={export_dir} is a file: give a folder "
                      "(new, or one that holds earlier versions)")
  version = next_version(export_dir) if version is None else version
  if version < 1:
    raise ExportError(f"--version={version}: TF Serving versions are "
                      "integers >= 1")
  servables = build_servables(model.nets, model.cfg)
  # Refused before anything is written, so no version is left half there.
  taken = [p for p in (os.path.join(export_dir, name, str(version)) for name in
                       [*servables, KERAS_DIR, *([ONNX_DIR] if onnx else [])])
           if os.path.exists(p)]
  if taken:
    raise ExportError(f"version {version} already exists in {export_dir} "
                      f"({', '.join(taken)}); pass another --version "
                      "(versions are never overwritten: TF Serving would not "
                      "reload a changed one)")
  paths = {}
  for name, module in servables.items():
    paths[name] = save_servable(module, os.path.join(export_dir, name),
                                version)
  paths.update(_write_version(
      os.path.join(export_dir, KERAS_DIR), version,
      lambda folder: save_keras(model.nets, model.cfg, folder, checkpoint,
                                int(model.step.numpy()))))
  if onnx:
    paths.update(_write_version(
        os.path.join(export_dir, ONNX_DIR), version,
        lambda folder: save_onnx(model.nets, model.cfg, folder)))
  return paths


def export_model_dir(model_dir: str, export_dir: str,
                     version: Optional[int] = None, which: str = "latest",
                     onnx: bool = False) -> Dict[str, str]:
  """Restores `which` checkpoint of model_dir and exports it (see `export`).

  Raises:
    FileNotFoundError: no config.json or no checkpoint in model_dir.
    ValueError: the checkpoint does not match the config's networks.
    ExportError: the version exists or is invalid, or `onnx` without
      tf2onnx (before anything is read or written).
  """
  if onnx:
    require_onnx()  # Before the restore: nothing to wait for.
  # restore reads config.json first: a missing one is the first error.
  model = rundir.restore(model_dir, which)
  # restored_from: an older checkpoint than asked for if the newest is damaged.
  return export(model, export_dir, version, checkpoint=model.restored_from,
                onnx=onnx)
