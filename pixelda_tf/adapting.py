"""What the adapt binary does: adapted datasets, written and read.

Adapted datasets are folders: `manifest.json` plus either `adapted.tfrecord`
(tf.train.Examples, see `FEATURES`) or one PNG subfolder per class, named so
that sorting them gives label order (what `keras.utils.
image_dataset_from_directory` and `--source=folder` assume). They are written
into `<out>.partial-<pid>` and renamed to `<out>` when complete, so a killed
run never leaves something that looks finished.
"""

from __future__ import annotations

import os
import time
from typing import Any, Dict, Tuple

from absl import logging
import numpy as np
import tensorflow as tf

from pixelda_tf import config as config_lib
from pixelda_tf import data
from pixelda_tf.data import folders
from pixelda_tf import evaluation
from pixelda_tf import provenance
from pixelda_tf import rundir

MANIFEST = "manifest.json"
TFRECORD = "adapted.tfrecord"
FORMATS = ("tfrecord", "png")
FEATURES = {
    "image/encoded": tf.io.FixedLenFeature([], tf.string),   # PNG, uint8 RGB
    "label": tf.io.FixedLenFeature([], tf.int64),            # the source label
    "source_index": tf.io.FixedLenFeature([], tf.int64),     # row in the split
    "sample": tf.io.FixedLenFeature([], tf.int64),           # k of K z draws
}


def class_dir_names(num_classes: int):
  """Zero-padded ids, so that sorted folder names are in label order."""
  width = len(str(num_classes - 1))
  return [f"{i:0{width}d}" for i in range(num_classes)]


def _class_dirs(cfg: config_lib.Config):
  """Class folder names of a PNG dataset, sorting in label order: the source
  folder's own class names (sorted by construction), else padded ids."""
  names = evaluation.class_names_of(cfg)
  if cfg.data.source == "folder" and names:
    return names
  return class_dir_names(cfg.classifier.num_classes)


def adapt_dataset(model_dir: str, out: str, overrides: Dict[str, Any],
                  samples_per_image: int = 1, fmt: str = "tfrecord",
                  split: str = "train", max_images: int = 0, seed: int = 0,
                  which: str = "latest", batch_size: int = 256,
                  overwrite: bool = False, averaged: bool = True,
                  identity: bool = False) -> Dict:
  """Writes G(x_s, z) for K z per source image, labelled with the source label.

  Example (i, k) — source image i of `split`, draw k — uses
  `evaluation.noise(seed, i, K, noise_dim)[k]`. G has the averaged weights
  of a run trained with `ema_decay` (what its evaluations scored), or with
  `averaged=False` the raw ones it trained with. With `identity`, G is the
  identity: the source images themselves are written (RGB, at the model's
  size), no checkpoint is read, and a classifier trained on the set is the
  source-only floor of the same pipeline.

  `overrides` may name other classes (`classes`) than the run trained on:
  G then adapts classes it never saw, and the manifest lists them
  (`unseen_classes`).

  Returns:
    the manifest (also `out/manifest.json`).

  Raises:
    FileExistsError: `out` exists and not `overwrite`.
    ConfigError: bad arguments, or a baseline run (no trained generator).
    FileNotFoundError / DataError: no checkpoint / no source data.
  """
  require = config_lib.require
  require(fmt in FORMATS, f"--format={fmt!r}: use one of {', '.join(FORMATS)}")
  require(samples_per_image >= 1, "--samples_per_image must be >= 1")
  require(max_images >= 0, "--max_images must be >= 0 (0 = all)")
  require(split in ("train", "test"), f"--split={split!r}: use train or test")
  if tf.io.gfile.exists(out) and not overwrite:
    raise FileExistsError(f"--out={out} exists; remove it or pass --overwrite")
  trained = rundir.load_config(model_dir)
  cfg = config_lib.override_data(trained, overrides)
  require(identity or cfg.train.mode == "pixelda",
          f"{model_dir} is a --mode={cfg.train.mode} run: its generator was "
          "never trained, so there is nothing to adapt with (--identity "
          "writes the source images unchanged)")
  if not identity:
    rundir.checkpoint_candidates(model_dir, which)  # Fail before the data.
  source = data.load_domain(cfg.data, "source", split)
  n = min(len(source), max_images) if max_images else len(source)
  model = None if identity else rundir.restore(model_dir, which,
                                               averaged=averaged)
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
        (_generate(model, x, z[:, k]) + 1.0) * 127.5), 0, 255), tf.uint8)
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
  empty = [classes[i] for i in range(num_classes) if not counts[i]]
  kept = cfg.data.class_ids()
  # Classes --classes leaves out are empty by request: no warning for them.
  missing = [c for i, c in enumerate(classes) if c in empty
             and (kept is None or i in kept)]
  if missing:
    logging.warning(
        "the adapted set has no images of class%s %s (of %d): %s; a "
        "classifier trained on it never learns %s: adapt with a larger "
        "--max_images (0 = all)", "es" if len(missing) > 1 else "", missing,
        num_classes, f"none among the first {n} --split={split} source "
        f"images (--max_images={max_images})" if n < len(source) else
        f"the source's {split} split has none", "them" if len(missing) > 1
        else "it")
  manifest = {
      "format": fmt, "num_examples": int(n * samples_per_image),
      "num_images": int(n), "samples_per_image": samples_per_image,
      "examples_per_class": counts.tolist(), "class_dirs": classes,
      "empty_classes": empty,
      "split": split, "seed": seed, "image_size": cfg.data.image_size,
      "num_classes": num_classes, "model_dir": model_dir,
      **_generator_facts(model, averaged),
      **unseen_classes(trained, counts, identity),
      "source_origin": source.origin,
      "config": cfg.to_dict(), "features": sorted(FEATURES),
      "wall_time_s": time.time() - started,
      "code": provenance.code_version(),
  }
  rundir.write_json(os.path.join(tmp, MANIFEST), manifest)
  if tf.io.gfile.exists(out):
    tf.io.gfile.rmtree(out)
  tf.io.gfile.rename(tmp, out)
  return manifest


def _generate(model, x: tf.Tensor, z: tf.Tensor) -> tf.Tensor:
  """G(x, z) in [-1, 1], (B, S, S, 3); with no model (identity) x itself."""
  return x if model is None else model.adapt(x, z)


def _generator_facts(model, averaged: bool) -> Dict[str, Any]:
  """The manifest's checkpoint, weights and step (none for identity)."""
  if model is None:
    return {"checkpoint": None, "step": 0,
            "weights": "none: the source images themselves (--identity)"}
  return {"checkpoint": model.restored_from, "step": int(model.step),
          "weights": ("averaged" if averaged and model.average is not None
                      else "raw")}


def unseen_classes(trained: config_lib.Config, counts: np.ndarray,
                   identity: bool = False) -> Dict[str, Any]:
  """The manifest's note on classes G never saw: those with adapted images
  (`counts` (num_classes,)) outside the run's `--classes`. Empty for a run
  trained on all classes, or with no G (identity)."""
  ids = trained.data.class_ids()
  if ids is None or identity:
    return {"trained_classes": "all", "unseen_classes": []}
  unseen = [i for i in range(len(counts)) if counts[i] and i not in ids]
  out = {"trained_classes": list(ids), "unseen_classes": unseen}
  if unseen:
    out["unseen_note"] = (
        f"G never saw classes {unseen} in training (its run was trained with "
        f"--classes={trained.data.classes}): their images show how G "
        "carries over to new classes, not what it learned of them")
  return out


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
  return rundir.read_json(
      os.path.join(path, MANIFEST), {}, fix="adapt it again (pixelda_tf.adapt "
      f"--out={path} --overwrite)")


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
  files, labels = [], []
  for label, name in enumerate(folders.subfolders(path)):
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
