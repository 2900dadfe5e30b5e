"""`Domain`: one split of one dataset, as uint8 arrays at the configured size."""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import Optional

import numpy as np
from absl import logging

from pixelda_tf.config import DataConfig
from pixelda_tf.data import errors
from pixelda_tf.data import images
from pixelda_tf.data import sources

ROLES = ("source", "target")
SPLITS = ("train", "val", "test")


@dataclasses.dataclass(frozen=True, eq=False)
class Domain:
  """One split of a dataset.

  Attributes:
    name: dataset name (`mnist`, `mnist_m`, `usps`, `folder`).
    images: uint8 (N, S, S, C), C in {1, 3}, S the configured image size.
    labels: int64 (N,) in [0, num_classes), or None if unlabelled.
    num_classes: number of classes (1 for an unlabelled folder).
    origin: one line saying where the data came from; results quote it.
  """
  name: str
  images: np.ndarray
  labels: Optional[np.ndarray]
  num_classes: int
  origin: str

  def __len__(self) -> int:
    return len(self.images)


@functools.lru_cache(maxsize=8)
def _full(cfg: DataConfig, role: str):
  """Both splits of the role's dataset, resized once per process."""
  start = time.time()
  arrays, origin, num_classes = sources.load(cfg, role)
  out = {}
  for split in ("train", "test"):
    key = f"{split}_images"
    if key not in arrays:
      continue
    x = images.resize(arrays[key], cfg.image_size)
    out[key] = x[..., None] if x.ndim == 3 else x
    out[f"{split}_labels"] = arrays.get(f"{split}_labels")
  logging.info("%s: %s (%.1f s)", role, origin, time.time() - start)
  return out, origin, num_classes


def load_domain(cfg: DataConfig, role: str, split: str) -> Domain:
  """Loads one split of the source or target dataset.

  "val" is the last `cfg.val_size` examples of the target's train split, and
  the target's "train" excludes them. A folder without a `test/` subfolder
  has no test split of its own: its "test" is the "val" slice (the origin
  says so).

  Raises:
    ValueError: unknown role/split, or "val" asked of the source.
    DataError: the data is missing or broken (the message says the fix).
  """
  if role not in ROLES or split not in SPLITS:
    raise ValueError(f"role {role!r} / split {split!r}: use one of {ROLES} / "
                     f"{SPLITS}")
  if role == "source" and split == "val":
    raise ValueError("only the target has a validation split")
  arrays, origin, num_classes = _full(cfg, role)
  name = cfg.source if role == "source" else cfg.target
  if split == "test" and "test_images" in arrays:
    x, y = arrays["test_images"], arrays["test_labels"]
  else:
    x, y = arrays["train_images"], arrays["train_labels"]
    if role == "target":
      n_val = min(cfg.val_size, len(x) // 2)
      if n_val < cfg.val_size:
        logging.warning("target has %d train examples; holding out %d, not "
                        "--val_size=%d, for validation", len(x), n_val,
                        cfg.val_size)
      cut = len(x) - n_val
      if split == "train":
        x, y = x[:cut], (None if y is None else y[:cut])
      else:
        if split == "test":
          origin += " (no test/ folder: test = the held-out val slice)"
        x, y = x[cut:], (None if y is None else y[cut:])
    elif split == "test":
      raise errors.DataError(
          f"{origin}: no test split; give the folder train/ and test/ "
          "subfolders")
  if len(x) == 0:
    raise errors.DataError(f"{origin}: the {role} {split} split is empty")
  return Domain(name=name, images=x, labels=y, num_classes=num_classes,
                origin=origin)
