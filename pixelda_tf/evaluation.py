"""Classifier evaluation and image grids; what the evaluate binary does.

`evaluate_model_dir` starts from a trained run's config.json; the data
settings the user passes override it (`config.override_data`), so one trained
model can be evaluated on data other than what it was trained on.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import weakref
from typing import Any, Dict, Iterable, Optional, Tuple

from absl import logging
import keras
import numpy as np
import tensorflow as tf

from pixelda_tf import config as config_lib
from pixelda_tf import data
from pixelda_tf import provenance
from pixelda_tf import rundir

EVAL_BATCH = 500
# Sample grids: GRID_ROWS source images, each adapted with GRID_SAMPLES z.
GRID_ROWS = 8
GRID_SAMPLES = 3


# One traced inference function per model, reused by every evaluation (kept
# off the model itself, where checkpoints and SavedModels would track it).
_INFERENCE = weakref.WeakKeyDictionary()


def _call_in_inference(ref, images):
  return ref()(images, training=False)


def inference(model: keras.Model):
  """`model` in inference mode as a traced function, cached per model."""
  if model not in _INFERENCE:
    # A weak reference: the cached function must not keep its model alive.
    # A partial per model: TensorFlow counts retraces per Python function,
    # and one shared lambda would add up every model's first traces into
    # its "excessive retracing" warning. reduce_retracing: batches of
    # several sizes share one trace with a free batch dimension.
    _INFERENCE[model] = tf.function(
        functools.partial(_call_in_inference, weakref.ref(model)),
        reduce_retracing=True)
  return _INFERENCE[model]


def predict(classifier: keras.Model,
            dataset: Iterable[Tuple[tf.Tensor, tf.Tensor]]):
  """Runs `classifier` in inference mode over (images, labels) batches.

  Returns:
    (labels, predictions): int64 arrays (N,).
  """
  logits_of = inference(classifier)
  labels, preds = [], []
  for images, batch_labels in dataset:
    preds.append(tf.argmax(logits_of(images), axis=-1).numpy())
    labels.append(np.asarray(batch_labels))
  if not labels:
    raise data.DataError("the evaluation dataset is empty")
  return np.concatenate(labels).astype(np.int64), np.concatenate(preds)


def check_labels(labels: np.ndarray, num_classes: int) -> None:
  """Raises DataError (a ValueError) unless `labels` can be scored: not all
  -1 (unlabelled) and every id in [0, num_classes)."""
  if labels.size and (labels == -1).all():
    raise data.DataError("the evaluation set is unlabelled (labels -1): there is "
                     "nothing to score; give a labelled target split")
  if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
    raise data.DataError(f"labels outside [0, {num_classes}): the evaluation "
                         "set has another label set; label it with class ids "
                         f"0..{num_classes - 1}")


def report(labels: np.ndarray, predictions: np.ndarray,
           num_classes: int) -> Dict:
  """Accuracy, per-class accuracy and the confusion matrix.

  Returns:
    dict with `accuracy` (float), `per_class_accuracy` (list, NaN for a class
    with no examples), `confusion_matrix` (num_classes x num_classes list,
    rows = true class, columns = predicted), `num_examples`.
  """
  if labels.shape != predictions.shape:
    raise ValueError(f"labels {labels.shape} and predictions "
                     f"{predictions.shape} differ in shape")
  check_labels(labels, num_classes)
  confusion = np.zeros((num_classes, num_classes), np.int64)
  np.add.at(confusion, (labels, predictions), 1)
  totals = confusion.sum(axis=1)
  with np.errstate(invalid="ignore", divide="ignore"):
    per_class = np.where(totals > 0, np.diag(confusion) / totals, np.nan)
  return {
      "accuracy": float(np.mean(labels == predictions)),
      "per_class_accuracy": [None if np.isnan(a) else float(a)
                             for a in per_class],
      "confusion_matrix": confusion.tolist(),
      "num_examples": int(labels.size),
  }


def evaluate(classifier: keras.Model, dataset, num_classes: int) -> Dict:
  """`report` of `classifier` on `dataset`."""
  return report(*predict(classifier, dataset), num_classes)


def image_grid(columns, rows: int) -> np.ndarray:
  """Tiles image batches side by side: one column per batch, `rows` rows.

  Args:
    columns: list of (B, H, W, 3) float arrays in [-1, 1], B >= rows.

  Returns:
    uint8 (rows*H, len(columns)*W, 3).
  """
  cols = [np.asarray(c[:rows]) for c in columns]
  grid = np.concatenate([np.concatenate(list(c), axis=0) for c in cols], axis=1)
  return np.clip((grid + 1.0) * 127.5 + 0.5, 0, 255).astype(np.uint8)


def noise(seed: int, index: int, samples: int, noise_dim: int) -> np.ndarray:
  """The z draws of one source image: float32 (samples, noise_dim) in [-1, 1].

  A pure function of (seed, index): draw k is the same whatever `samples`,
  the batch size or how many images are adapted, so a dataset written with
  K=3 is the first three samples of one written with K=5.
  """
  rng = np.random.default_rng([seed, index])
  return rng.uniform(-1.0, 1.0, (samples, noise_dim)).astype(np.float32)


def adapted_columns(generator: keras.Model, source_images, samples: int,
                    seed: int = 0):
  """G(x_s, z) for `samples` z per image, as grid columns.

  Args:
    generator: the trained generator, run in inference mode.
    source_images: float32 (B, S, S, 3) in [-1, 1].
    samples: number of z draws (columns).
    seed: z of image i, sample k is `noise(seed, i, samples, ...)[k]`.

  Returns:
    list of `samples` float32 arrays (B, S, S, 3) in [-1, 1].
  """
  noise_dim = generator.inputs[1].shape[-1]
  z = np.stack([noise(seed, i, samples, noise_dim)
                for i in range(len(source_images))])
  return [np.asarray(generator([source_images, z[:, k]], training=False))
          for k in range(samples)]


def confusion_image(confusion, class_names=None, cell: int = 36) -> np.ndarray:
  """Draws a confusion matrix as a heatmap with counts, without matplotlib.

  Args:
    confusion: (C, C) counts, rows = true class, columns = predicted.
    class_names: C labels for the axes (default 0..C-1).
    cell: side of one cell in pixels.

  Returns:
    uint8 (H, W, 3) image: a cell's shade is its share of its row (so a
    rare class reads as clearly as a common one), the number is the count.
  """
  from PIL import Image, ImageDraw  # pylint: disable=g-import-not-at-top
  m = np.asarray(confusion, np.int64)
  c = len(m)
  names = [str(n) for n in (class_names or range(c))]
  margin = cell + 8
  side = margin + c * cell + 4
  img = Image.new("RGB", (side, side + 14), "white")
  draw = ImageDraw.Draw(img)
  rows = np.maximum(m.sum(axis=1, keepdims=True), 1)
  share = m / rows
  for i in range(c):
    for j in range(c):
      x0, y0 = margin + j * cell, margin + i * cell
      shade = int(255 * (1.0 - share[i, j]))
      # Blue for the diagonal, red off it: mistakes stand out at a glance.
      color = (shade, shade, 255) if i == j else (255, shade, shade)
      draw.rectangle([x0, y0, x0 + cell - 1, y0 + cell - 1], fill=color,
                     outline=(200, 200, 200))
      text = str(m[i, j])
      ink = "white" if share[i, j] > 0.6 else "black"
      draw.text((x0 + 3, y0 + cell // 2 - 5), text, fill=ink)
    draw.text((4, margin + i * cell + cell // 2 - 5), names[i][:5],
              fill="black")
    draw.text((margin + i * cell + 3, margin - 14), names[i][:5], fill="black")
  draw.text((margin, 2), "predicted ->", fill="black")
  draw.text((4, side), "rows: true class", fill="black")
  return np.asarray(img)


def save_png(path: str, image: np.ndarray) -> None:
  """Writes a uint8 (H, W, 3) image as PNG (any tf.io.gfile path)."""
  with tf.io.gfile.GFile(path, "wb") as f:
    f.write(tf.io.encode_png(image).numpy())


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
    `report`'s keys plus model_dir, checkpoint, step, mode, split,
    target, data_origin, data (the DataConfig used) and files.

  Raises:
    FileNotFoundError: no config.json or no such checkpoint.
    DataError: the target is missing or has too many classes.
    ConfigError: bad overrides.
  """
  cfg = config_lib.override_data(rundir.load_config(model_dir), overrides)
  rundir.checkpoint_candidates(model_dir, which)  # Fail before loading data.
  domain = data.load_domain(cfg.data, "target", split)
  num_classes = cfg.classifier.num_classes
  if domain.num_classes > num_classes:
    raise data.DataError(
        f"{domain.origin} has {domain.num_classes} classes; the model has "
        f"{num_classes}")
  model = rundir.restore(model_dir, which)
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
    rep = evaluate(
        model.nets.classifier,
        data.eval_dataset(cfg.data, "target", split, EVAL_BATCH), num_classes)
    files["confusion_png"] = prefix + "_confusion.png"
    save_png(files["confusion_png"], confusion_image(
        rep["confusion_matrix"], class_names_of(cfg)))
  grid = _sample_grid(model, cfg, domain)
  if grid is not None:
    files["samples_png"] = prefix + "_samples.png"
    save_png(files["samples_png"], grid)
  results = {
      "model_dir": model_dir, "checkpoint": model.restored_from,
      "step": int(model.step),
      "mode": cfg.train.mode, "split": split, "target": cfg.data.target,
      "data_origin": domain.origin, "data": dataclasses.asdict(cfg.data),
      **rep, "files": files, "code": provenance.code_version(),
  }
  rundir.write_json(files["json"], results)
  return results


def _sample_grid(model, cfg: config_lib.Config,
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
    columns += adapted_columns(model.nets.generator, xs, GRID_SAMPLES,
                               seed=cfg.train.seed)
  columns.append(np.asarray(data.to_model_range(target.images[:rows])))
  return image_grid(columns, rows)


def class_names_of(cfg: config_lib.Config) -> Optional[list]:
  """The source's class names if they name every class, else None."""
  try:
    names = data.class_names(cfg.data)
  except data.DataError:
    return None
  return names if len(names) == cfg.classifier.num_classes else None
