"""What the evaluate and adapt binaries do with a trained model_dir.

Both start from the run's config.json; the data settings the user passes
override it (`override_data`), so one trained model can be evaluated on, or
adapt images from, data other than what it was trained on.

Adapted datasets are folders: `manifest.json` plus either `adapted.tfrecord`
(tf.train.Examples, see `FEATURES`) or one PNG subfolder per class, named so
that sorting them gives label order (what `keras.utils.
image_dataset_from_directory` and `--source=folder` assume). They are written
into `<out>.partial-<pid>` and renamed to `<out>` when complete, so a killed
run never leaves something that looks finished.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Any, Dict, Optional, Tuple

from absl import logging
import numpy as np
import tensorflow as tf

from pixelda_tf import config as config_lib
from pixelda_tf import data
from pixelda_tf import evaluation
from pixelda_tf import pixelda

MANIFEST = "manifest.json"
TFRECORD = "adapted.tfrecord"
FORMATS = ("tfrecord", "png")
FEATURES = {
    "image/encoded": tf.io.FixedLenFeature([], tf.string),   # PNG, uint8 RGB
    "label": tf.io.FixedLenFeature([], tf.int64),            # the source label
    "source_index": tf.io.FixedLenFeature([], tf.int64),     # row in the split
    "sample": tf.io.FixedLenFeature([], tf.int64),           # k of K z draws
}
EVAL_BATCH = 500
GRID_ROWS = 8
GRID_SAMPLES = 3

# Path settings and whether a (source, target) pair reads them: as in
# config.validate, which refuses a path nothing reads.
_PATHS = {
    "mnist_dir": lambda d: ("mnist" in (d.source, d.target)
                            or d.target == "mnist_m"),
    "bsds_dir": lambda d: d.target == "mnist_m",
    "mnist_m_dir": lambda d: d.target == "mnist_m",
    "usps_path": lambda d: "usps" in (d.source, d.target),
    "source_dir": lambda d: d.source == "folder",
    "target_dir": lambda d: d.target == "folder",
    "target_val_dir": lambda d: True,
}
# Overrides that name another target: the run's --target_val_dir belonged to
# the old one, so it is dropped unless given again.
_TARGET_FIELDS = {"target", "target_dir", "mnist_m_dir", "mnist_m_variant",
                  "bsds_dir", "usps_path"}


def override_data(cfg: config_lib.Config,
                  overrides: Dict[str, Any]) -> config_lib.Config:
  """`cfg` with the data settings in `overrides` (DataConfig field -> value).

  Settings the user did not give but that the new source/target no longer
  reads (e.g. the run's --mnist_m_dir once --target=folder, or its
  --target_val_dir once any target flag is given) are dropped, and
  giving --mnist_m_dir alone means the released variant: the user meant the
  folder to be read.

  Raises:
    ConfigError: an unknown field, a different image size from the one the
      model was trained at, or an invalid combination.
  """
  names = {f.name for f in dataclasses.fields(config_lib.DataConfig)}
  unknown = set(overrides) - names
  if unknown:
    raise config_lib.ConfigError(f"not data settings: {sorted(unknown)}")
  size = overrides.get("image_size", cfg.data.image_size)
  if size != cfg.data.image_size:
    raise config_lib.ConfigError(
        f"--image_size={size}: the model was trained at "
        f"{cfg.data.image_size}; drop the flag (images are resized to it)")
  d = dataclasses.replace(cfg.data, **overrides)
  if "mnist_m_dir" in overrides and "mnist_m_variant" not in overrides:
    d = dataclasses.replace(d, mnist_m_variant="released")
  if "bsds_dir" in overrides and "mnist_m_variant" not in overrides:
    d = dataclasses.replace(d, mnist_m_variant="bsds500")
  if d.target != "mnist_m" and "mnist_m_variant" not in overrides:
    # validate() asks a released variant for its folder whatever the target.
    d = dataclasses.replace(d, mnist_m_variant="auto")
  for name, used in _PATHS.items():
    if name not in overrides and getattr(d, name) and not used(d):
      d = dataclasses.replace(d, **{name: None})
  if "target_val_dir" not in overrides and _TARGET_FIELDS & set(overrides):
    d = dataclasses.replace(d, target_val_dir=None)
  if (d.mnist_m_variant in ("offline", "released") and d.bsds_dir
      and "bsds_dir" not in overrides):
    d = dataclasses.replace(d, bsds_dir=None)
  return config_lib.validate(dataclasses.replace(cfg, data=d))


def _checkpoint_tag(which: str) -> str:
  return which if which in ("latest", "best") else os.path.basename(which)


def evaluate_model_dir(model_dir: str, overrides: Dict[str, Any],
                       which: str = "latest", split: str = "test",
                       out_dir: Optional[str] = None) -> Dict:
  """Evaluates T of a trained run on a target split; writes files.

  Writes into `out_dir` (default `model_dir/eval`), with
  PREFIX = `<target>_<split>_<checkpoint>`: PREFIX.json (the returned dict),
  PREFIX_confusion.png, and PREFIX_samples.png (rows: source | G(source, z)
  for 3 z | target; no adapted columns for the baselines). A split with no
  labels (an unlabelled target, `--target_labels=none`) has nothing to
  score: the accuracy fields are None with a `reason`, and only the JSON
  and the sample grid are written.

  Returns:
    `evaluation.report` keys plus model_dir, checkpoint, step, mode, split,
    target, data_origin, data (the DataConfig used) and files.

  Raises:
    FileNotFoundError: no config.json or no such checkpoint.
    DataError: the target is missing or has too many classes.
    ConfigError: bad overrides.
  """
  cfg = override_data(pixelda.load_config(model_dir), overrides)
  ckpt = pixelda.checkpoint_path(model_dir, which)   # fail before loading data
  domain = data.load_domain(cfg.data, "target", split)
  num_classes = cfg.classifier.num_classes
  if domain.num_classes > num_classes:
    raise data.DataError(
        f"{domain.origin} has {domain.num_classes} classes; the model has "
        f"{num_classes}")
  model = pixelda.restore(model_dir, which)
  ckpt = model.restored_from  # an older one if the newest is damaged
  out_dir = out_dir or os.path.join(model_dir, "eval")
  tf.io.gfile.makedirs(out_dir)
  prefix = os.path.join(out_dir,
                        f"{cfg.data.target}_{split}_{_checkpoint_tag(which)}")
  files = {"json": prefix + ".json"}
  if domain.labels is None:
    reason = (f"nothing labelled to score: {domain.origin}. Give a labelled "
              "split (a test/ or --target_val_dir folder with one subfolder "
              "per class, named as the source's classes)")
    logging.warning("%s", reason)
    rep = {"accuracy": None, "per_class_accuracy": None,
           "confusion_matrix": None, "num_examples": 0, "reason": reason}
  else:
    rep = evaluation.evaluate(
        model.nets.classifier,
        data.eval_dataset(cfg.data, "target", split, EVAL_BATCH), num_classes)
    files["confusion_png"] = prefix + "_confusion.png"
    evaluation.save_png(files["confusion_png"], evaluation.confusion_image(
        rep["confusion_matrix"], _class_names(cfg)))
  grid = _sample_grid(model, cfg, domain)
  if grid is not None:
    files["samples_png"] = prefix + "_samples.png"
    evaluation.save_png(files["samples_png"], grid)
  results = {
      "model_dir": model_dir, "checkpoint": ckpt, "step": int(model.step),
      "mode": cfg.train.mode, "split": split, "target": cfg.data.target,
      "data_origin": domain.origin, "data": dataclasses.asdict(cfg.data),
      **rep, "files": files,
  }
  write_json(files["json"], results)
  return results


def _sample_grid(model: pixelda.PixelDA, cfg: config_lib.Config,
                 target: data.Domain) -> Optional[np.ndarray]:
  """source | adapted (GRID_SAMPLES z) | target rows, or None without source.

  The source is only needed for this picture, so a missing source (e.g.
  evaluating on another machine) costs the grid, not the evaluation.
  """
  try:
    source = data.load_domain(cfg.data, "source", "test")
  except data.DataError:
    try:  # A source folder without test/: its train images show as well.
      source = data.load_domain(cfg.data, "source", "train")
    except data.DataError as e:
      logging.warning("no sample grid: %s", e)
      return None
  rows = min(GRID_ROWS, len(source), len(target))
  xs = np.asarray(data.to_model_range(source.images[:rows]))
  columns = [xs]
  if model.pixelda:
    columns += evaluation.adapted_columns(model.nets.generator, xs,
                                          GRID_SAMPLES, seed=cfg.train.seed)
  columns.append(np.asarray(data.to_model_range(target.images[:rows])))
  return evaluation.image_grid(columns, rows)


def write_json(path: str, obj) -> None:
  """Writes JSON atomically: a reader never sees half a file."""
  tmp = path + ".tmp"
  with tf.io.gfile.GFile(tmp, "w") as f:
    json.dump(obj, f, indent=2, sort_keys=True)
  tf.io.gfile.rename(tmp, path, overwrite=True)


def class_dir_names(num_classes: int):
  """Zero-padded ids, so that sorted folder names are in label order."""
  width = len(str(num_classes - 1))
  return [f"{i:0{width}d}" for i in range(num_classes)]


def _class_names(cfg: config_lib.Config) -> Optional[list]:
  """The source's class names if they name every class, else None."""
  try:
    names = data.class_names(cfg.data)
  except data.DataError:
    return None
  return names if len(names) == cfg.classifier.num_classes else None


def _class_dirs(cfg: config_lib.Config):
  """Class folder names of a PNG dataset, sorting in label order: the source
  folder's own class names (sorted by construction), else padded ids."""
  names = _class_names(cfg)
  if cfg.data.source == "folder" and names:
    return names
  return class_dir_names(cfg.classifier.num_classes)


def adapt_dataset(model_dir: str, out: str, overrides: Dict[str, Any],
                  samples_per_image: int = 1, fmt: str = "tfrecord",
                  split: str = "train", max_images: int = 0, seed: int = 0,
                  which: str = "latest", batch_size: int = 256,
                  overwrite: bool = False) -> Dict:
  """Writes G(x_s, z) for K z per source image, labelled with the source label.

  Example (i, k) — source image i of `split`, draw k — uses
  `evaluation.noise(seed, i, K, noise_dim)[k]`.

  Returns:
    the manifest (also `out/manifest.json`).

  Raises:
    FileExistsError: `out` exists and not `overwrite`.
    ConfigError: bad arguments, or a baseline run (no trained generator).
    FileNotFoundError / DataError: no checkpoint / no source data.
  """
  _check(fmt in FORMATS, f"--format={fmt!r}: use one of {', '.join(FORMATS)}")
  _check(samples_per_image >= 1, "--samples_per_image must be >= 1")
  _check(max_images >= 0, "--max_images must be >= 0 (0 = all)")
  _check(split in ("train", "test"), f"--split={split!r}: use train or test")
  if tf.io.gfile.exists(out) and not overwrite:
    raise FileExistsError(f"--out={out} exists; remove it or pass --overwrite")
  cfg = override_data(pixelda.load_config(model_dir), overrides)
  _check(cfg.train.mode == "pixelda",
         f"{model_dir} is a --mode={cfg.train.mode} run: its generator was "
         "never trained, so there is nothing to adapt with")
  ckpt = pixelda.checkpoint_path(model_dir, which)
  source = data.load_domain(cfg.data, "source", split)
  n = min(len(source), max_images) if max_images else len(source)
  model = pixelda.restore(model_dir, which)
  ckpt = model.restored_from  # an older one if the newest is damaged
  noise_dim = cfg.generator.noise_dim
  num_classes = cfg.classifier.num_classes
  classes = _class_dirs(cfg)

  started = time.time()
  tmp = out.rstrip("/") + f".partial-{os.getpid()}"
  if tf.io.gfile.exists(tmp):
    tf.io.gfile.rmtree(tmp)
  tf.io.gfile.makedirs(tmp)
  writer = None
  if fmt == "tfrecord":
    writer = tf.io.TFRecordWriter(os.path.join(tmp, TFRECORD))
  else:
    for name in classes:
      tf.io.gfile.makedirs(os.path.join(tmp, name))
  counts = np.zeros(num_classes, np.int64)
  for start in range(0, n, batch_size):
    idx = np.arange(start, min(start + batch_size, n))
    x = data.to_model_range(source.images[idx])
    z = tf.constant(np.stack([
        evaluation.noise(seed, i, samples_per_image, noise_dim) for i in idx]))
    # [-1, 1] -> [0, 255] as evaluation.image_grid does, rounded; (B, K, ...).
    pixels = tf.stack([tf.cast(tf.clip_by_value(tf.round(
        (model.adapt(x, z[:, k]) + 1.0) * 127.5), 0, 255), tf.uint8)
                       for k in range(samples_per_image)], axis=1)
    # Image-major, sample-minor: the record order does not depend on the
    # batch size.
    for i, samples in zip(idx, pixels):
      label = int(source.labels[i])
      counts[label] += samples_per_image
      for k, image in enumerate(samples):
        png = tf.io.encode_png(image).numpy()
        if writer is not None:
          writer.write(_example(png, label, int(i), k))
        else:
          path = os.path.join(tmp, classes[label], f"{i:07d}_{k}.png")
          with tf.io.gfile.GFile(path, "wb") as f:
            f.write(png)
  if writer is not None:
    writer.close()
  manifest = {
      "format": fmt, "num_examples": int(n * samples_per_image),
      "num_images": int(n), "samples_per_image": samples_per_image,
      "examples_per_class": counts.tolist(), "class_dirs": classes,
      "split": split, "seed": seed, "image_size": cfg.data.image_size,
      "num_classes": num_classes, "model_dir": model_dir, "checkpoint": ckpt,
      "step": int(model.step), "source_origin": source.origin,
      "config": cfg.to_dict(), "features": sorted(FEATURES),
      "wall_time_s": time.time() - started,
  }
  write_json(os.path.join(tmp, MANIFEST), manifest)
  if tf.io.gfile.exists(out):
    tf.io.gfile.rmtree(out)
  tf.io.gfile.rename(tmp, out)
  return manifest


def _check(ok: bool, message: str) -> None:
  if not ok:
    raise config_lib.ConfigError(message)


def _example(png: bytes, label: int, index: int, sample: int) -> bytes:
  feature = {
      "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(
          value=[png])),
      "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
      "source_index": tf.train.Feature(int64_list=tf.train.Int64List(
          value=[index])),
      "sample": tf.train.Feature(int64_list=tf.train.Int64List(
          value=[sample])),
  }
  return tf.train.Example(
      features=tf.train.Features(feature=feature)).SerializeToString()


def read_manifest(path: str) -> Dict:
  """The manifest of an adapted dataset, or {} for a plain class folder."""
  file = os.path.join(path, MANIFEST)
  if not tf.io.gfile.exists(file):
    return {}
  with tf.io.gfile.GFile(file) as f:
    return json.load(f)


def load_adapted(path: str) -> Tuple[tf.data.Dataset, Dict]:
  """Reads an adapted dataset (either format) or any class-subfolder tree.

  Returns:
    (dataset of (image uint8 (S, S, 3), label int64 ()) in file order,
    manifest or {}).

  Raises:
    DataError: not a folder, or no examples.
  """
  if not tf.io.gfile.isdir(path):
    raise data.DataError(f"{path} is not a folder (expected the --out of "
                         "pixelda_tf.adapt, or one subfolder per class)")
  manifest = read_manifest(path)
  if manifest.get("format") == "tfrecord":
    def parse(record):
      ex = tf.io.parse_single_example(record, FEATURES)
      return tf.io.decode_png(ex["image/encoded"], channels=3), ex["label"]
    ds = tf.data.TFRecordDataset(os.path.join(path, TFRECORD)).map(parse)
    return ds, manifest
  classes = sorted(n for n in tf.io.gfile.listdir(path)
                   if tf.io.gfile.isdir(os.path.join(path, n.rstrip("/"))))
  files, labels = [], []
  for label, name in enumerate(c.rstrip("/") for c in classes):
    members = sorted(tf.io.gfile.glob(os.path.join(path, name, "*.png")))
    files += members
    labels += [label] * len(members)
  if not files:
    raise data.DataError(f"{path} holds no PNG files in class subfolders")

  def read(file, label):
    return tf.io.decode_png(tf.io.read_file(file), channels=3), label
  ds = tf.data.Dataset.from_tensor_slices(
      (files, np.array(labels, np.int64))).map(read)
  return ds, manifest
