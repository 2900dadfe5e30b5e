"""Classifier evaluation and image grids."""

from __future__ import annotations

from typing import Dict, Iterable, Tuple

import keras
import numpy as np
import tensorflow as tf


def predict(classifier: keras.Model,
            dataset: Iterable[Tuple[tf.Tensor, tf.Tensor]]):
  """Runs `classifier` in inference mode over (images, labels) batches.

  Returns:
    (labels, predictions): int64 arrays (N,).
  """
  @tf.function
  def logits_of(images):
    return classifier(images, training=False)

  labels, preds = [], []
  for images, batch_labels in dataset:
    preds.append(tf.argmax(logits_of(images), axis=-1).numpy())
    labels.append(np.asarray(batch_labels))
  if not labels:
    raise ValueError("the evaluation dataset is empty")
  return np.concatenate(labels).astype(np.int64), np.concatenate(preds)


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
  if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
    raise ValueError(f"labels outside [0, {num_classes}): the evaluation set "
                     "has no labels or another label set")
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
