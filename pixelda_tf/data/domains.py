"""`Domain`: one split of one dataset, as uint8 arrays at the configured size."""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import Dict, Optional, Tuple

import numpy as np
from absl import logging

from pixelda_tf.config import DataConfig
from pixelda_tf.data import errors
from pixelda_tf.data import images
from pixelda_tf.data import sources
from pixelda_tf.data import splits

ROLES = ("source", "target")
SPLITS = ("train", "val", "test")


@dataclasses.dataclass(frozen=True, eq=False)
class Domain:
  """One split of a dataset.

  Attributes:
    name: dataset name (`mnist`, `mnist_m`, `usps`, `folder`).
    images: uint8 (N, S, S, C), C in {1, 3}, S the configured image size.
    labels: int64 (N,) in [0, num_classes), or None if unlabelled.
    num_classes: number of classes: the source's for a target folder (its
      labels are the source's class ids), 10 for the digit data sets.
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
  """Every split of the role's dataset, resized once per process."""
  start = time.time()
  arrays, origin, num_classes = sources.load(cfg, role)
  arrays = dict(arrays)
  if role == "target" and cfg.target_val_dir:
    arrays["val_images"], arrays["val_labels"] = sources.load_val_folder(cfg)
  out = {}
  for split in ("train", "val", "test"):
    key = f"{split}_images"
    if key not in arrays:
      continue
    x = images.fit(arrays[key], cfg.image_size, cfg.smaller_images)
    out[key] = x[..., None] if x.ndim == 3 else x
    out[f"{split}_labels"] = arrays.get(f"{split}_labels")
  logging.info("%s: %s (%.1f s)", role, origin, time.time() - start)
  if role == "target":
    # Carved once here; the cache keeps only the slices (not a second copy
    # of the full arrays).
    carved, known = _target_splits(cfg, out, origin)
    out = {"splits": {split: _only_classes(cfg, num_classes, *carved[split],
                                           known[split])
                      for split in carved}}
  return out, origin, num_classes


Split = Tuple[np.ndarray, Optional[np.ndarray], str]


def _target_splits(cfg: DataConfig, arrays: Dict[str, np.ndarray],
                   origin: str) -> Tuple[Dict[str, Split],
                                         Dict[str, Optional[np.ndarray]]]:
  """The target's train / val / test as (images, labels or None, origin),
  and each split's known labels (even those `target_labels` hides: what
  `--classes` selects by; None only for an unlabelled folder).

  Labels the user asked to ignore (`target_labels`) are dropped first. Then
  every slice carved out of a labelled train split is stratified and drawn
  with the data seed (`splits.stratified_split`):
    * no test split of its own: `test_size` examples (0 = 10%, at most
      1,000) are held out as the test split;
    * no `--target_val_dir`: `val_size` more are held out for validation
      (only with `target_labels=auto`).
  A split with no labels is the unlabelled train images with labels None:
  there is nothing to score, and training keeps its latest checkpoint.
  """
  keep = cfg.target_labels != "none"
  x, y = arrays["train_images"], (arrays["train_labels"] if keep else None)
  seed = cfg.seed
  out = {}
  if "test_images" in arrays:
    test_labels = arrays["test_labels"] if keep else None
    out["test"] = (arrays["test_images"], test_labels, origin)
  elif y is not None:
    n = splits.auto_test_size(len(x), cfg.test_size)
    x, y, out["test"] = _hold_out(
        x, y, n, cfg.test_size, "test_size", "as the test split", seed, 1,
        f"{origin} (no test split of its own: test = {n} images held out of "
        f"train, stratified, data seed {seed})")
  if "val_images" in arrays:
    out["val"] = (arrays["val_images"], arrays["val_labels"],
                  f"labelled images in {cfg.target_val_dir}")
  elif y is not None and cfg.target_labels == "auto" and cfg.val_size:
    n_val = min(cfg.val_size, len(x) // 2)
    x, y, out["val"] = _hold_out(
        x, y, n_val, cfg.val_size, "val_size", "for validation", seed, 2,
        f"{origin} (validation: {n_val} images held out of train, "
        f"stratified, data seed {seed})")
  # Nothing was carved when the labels were dropped, so the known labels
  # still line up with x.
  known = {"train": y if keep else arrays.get("train_labels")}
  known["test"] = (out["test"][1] if "test" in out and "test_images" not in
                   arrays else arrays.get("test_labels", known["train"]))
  known["val"] = out["val"][1] if "val" in out else known["train"]
  if cfg.target_labels == "test":
    y = None
  ignored = y is None and arrays.get("train_labels") is not None
  train_origin = (f"{origin} (labels ignored: --target_labels="
                  f"{cfg.target_labels})" if ignored else origin)
  out["train"] = (x, y, train_origin)
  for split in ("val", "test"):
    # Nothing labelled to score: labels None says it; the split's own images
    # (or the train images) stand in, so grids and fingerprints still work.
    if split not in out:
      out[split] = (x, None, f"{train_origin} (no labelled {split} split)")
    elif out[split][1] is None:
      why = ("labels ignored: --target_labels=none" if not keep
             else "unlabelled")
      out[split] = (out[split][0], None,
                    f"{out[split][2]} (no labelled {split} split: {why})")
  return out, known


def _only_classes(cfg: DataConfig, num_classes: int, x: np.ndarray,
                  y: Optional[np.ndarray], origin: str,
                  known: Optional[np.ndarray]) -> Split:
  """(x, y, origin) restricted to the classes of `--classes` (unchanged if
  unset or naming all `num_classes`), selected by the known labels `known`
  (N,), which a hidden `y` may not show.

  Applied after every held-out slice is drawn, on all the classes: a subset
  run's validation and test slices are exactly the all-class run's slices
  restricted to its classes (what makes a subset run and an all-class run
  comparable on the same test images), and a run without --classes gets
  its data unchanged, byte for byte.
  """
  ids = cfg.class_ids()
  if ids is None or ids == tuple(range(num_classes)):
    return x, y, origin
  if known is None:  # validate() refuses folders, the one unlabelled case.
    raise errors.DataError(f"{origin}: no labels to keep --classes="
                           f"{cfg.classes} by; drop --classes")
  keep = np.isin(known, ids)
  return (x[keep], None if y is None else y[keep],
          f"{origin} (classes {','.join(map(str, ids))} only: --classes)")


def load_domain(cfg: DataConfig, role: str, split: str) -> Domain:
  """Loads one split of the source or target dataset.

  The target's "val" and "test" are described in `_target_splits`: carved
  slices are stratified and seeded, and a split without labels has labels
  None (the unlabelled train images; the origin says "no labelled ...").

  Raises:
    ValueError: unknown role/split, or "val" asked of the source.
    DataError: the data is missing or broken (the message says the fix).
  """
  if role not in ROLES or split not in SPLITS:
    raise ValueError(f"role {role!r} / split {split!r}: use one of {ROLES} / "
                     f"{SPLITS}")
  if role == "source" and split == "val":
    raise ValueError("only the target has a validation split")
  if role == "source":
    arrays, origin, num_classes = _full(cfg, role)
    if split == "test" and "test_images" not in arrays:
      raise errors.DataError(
          f"{origin}: no test split; give the folder train/ and test/ "
          "subfolders")
    y = arrays[f"{split}_labels"]
    x, y, origin = _only_classes(cfg, num_classes, arrays[f"{split}_images"],
                                 y, origin, y)
    name = cfg.source
  else:
    arrays, _, num_classes = _full(cfg, role)
    x, y, origin = arrays["splits"][split]
    name = cfg.target
  if len(x) == 0:
    raise errors.DataError(f"{origin}: the {role} {split} split is empty")
  return Domain(name=name, images=x, labels=y, num_classes=num_classes,
                origin=origin)


def _hold_out(x, y, n, asked, flag, purpose, seed, stream, origin):
  """Holds a stratified slice of n examples out of (x, y), warning when
  fewer than `--flag=asked` were available; returns the rest and the slice
  as (images, labels, origin)."""
  if asked > n:
    logging.warning("target has %d train examples; holding out %d, not "
                    "--%s=%d, %s", len(x), n, flag, asked, purpose)
  rest, held = splits.stratified_split(y, n, seed, stream=stream)
  return x[rest], y[rest], (x[held], y[held], origin)
