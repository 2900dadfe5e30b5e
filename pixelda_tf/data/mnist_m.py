"""MNIST-M (Ganin & Lempitsky, 2015): generated from MNIST, or released files.

Generated recipe: the released set's, recovered exactly. Each of the first
30,000 released train images equals `|crop - digit|` per channel, where
  * digit: MNIST train image i binarized (`255 * (pixel > 0)`) and padded by
    2 black pixels on each side to 32x32 (not resized; grey levels dropped);
  * crop: a 32x32 window of one of the 200 BSDS500 train photos, at full
    resolution, decoded with PIL, top-left corner in [0, H - 33] x [0, W - 33];
    photo and corner look uniformly drawn.
  (`benchmarks/mnistm_compare.py` finds each image's photo and position and
  reproduces it byte for byte.) pumpikano's widely copied script binarizes
  the same way but crops 28x28 and does not pad. Up to `RECIPE_VERSION` 1 this
  module resized the grey digit to 32x32 instead: larger, thinner-edged,
  lower-contrast digits than the released ones.
Differences that remain: photos, positions and order come from
`np.random.default_rng([seed, split])` (so a seed gives the same images), not
the released draws; every MNIST image is used, 60,000 train and 10,000 test
(the released set has the first 59,001 and 9,001).
"""

from __future__ import annotations

import os
import tarfile
import tempfile
import zipfile
from typing import Dict, List, Tuple

import numpy as np
from absl import logging

from pixelda_tf.data import errors
from pixelda_tf.data import images

SIZE = 32
# Bumped whenever `generate` makes different images from the same inputs;
# the generated cache's file name must include it.
RECIPE_VERSION = 2
NUM_CLASSES = 10
_LABELS = "mnist_m_{}_labels.txt"
_SPLIT_IDS = {"train": 0, "test": 1}


def blend(digits: np.ndarray, photos: List[np.ndarray], seed: int,
          split: str) -> np.ndarray:
  """Difference-blends each digit with a random crop of a random photo.

  Photo uniform; crop corner uniform over [0, H - S - 1] x [0, W - S - 1], as
  in the released set (a photo of exactly S x S gives its only crop).

  Args:
    digits: uint8 (N, S, S) grey digits, white on black.
    photos: uint8 (H, W, 3) photos, each at least S x S.
    seed: data seed; with `split`, fixes every random draw.
    split: "train" or "test" (different draws for the two).
  Returns:
    uint8 (N, S, S, 3): |crop - digit| per channel.
  """
  n, s = len(digits), digits.shape[1]
  rng = np.random.default_rng([seed, _SPLIT_IDS[split]])
  which = rng.integers(0, len(photos), n)
  corner = rng.random((n, 2))
  out = np.empty((n, s, s, 3), np.uint8)
  for p, photo in enumerate(photos):
    sel = np.flatnonzero(which == p)
    if not len(sel):
      continue
    h, w = photo.shape[:2]
    ys = (corner[sel, 0] * max(h - s, 1)).astype(np.int64)
    xs = (corner[sel, 1] * max(w - s, 1)).astype(np.int64)
    windows = np.lib.stride_tricks.sliding_window_view(photo, (s, s, 3))
    crops = windows[ys, xs, 0].astype(np.int16)
    out[sel] = np.abs(crops - digits[sel, :, :, None]).astype(np.uint8)
  return out


def generate(mnist_arrays: Dict[str, np.ndarray], photos: List[np.ndarray],
             seed: int) -> Dict[str, np.ndarray]:
  """MNIST-M train/test arrays (uint8 (N, 32, 32, 3), int64 labels).

  The released recipe (module docstring): each digit binarized to 0/255,
  padded to 32x32, then `blend`ed.

  Raises:
    DataError (a ValueError): digits larger than 32x32 (MNIST's are 28x28).
  """
  out = {}
  for split in ("train", "test"):
    x = mnist_arrays[f"{split}_images"]
    h, w = x.shape[1:3]
    if h > SIZE or w > SIZE:
      raise errors.DataError(f"MNIST {split} digits are {h}x{w}; MNIST-M "
                             f"pads digits of at most {SIZE}x{SIZE} (MNIST's "
                             "are 28x28)")
    digits = images.pad(np.where(x > 0, 255, 0).astype(np.uint8), SIZE)
    out[f"{split}_images"] = blend(digits, photos, seed, split)
    out[f"{split}_labels"] = mnist_arrays[f"{split}_labels"]
  return out


def _read_labels(path: str) -> List[Tuple[str, int]]:
  if not os.path.exists(path):
    raise errors.DataError(
        f"{path} is missing; --mnist_m_dir must hold mnist_m_train/, "
        "mnist_m_train_labels.txt, mnist_m_test/ and mnist_m_test_labels.txt")
  rows = []
  with open(path, encoding="utf-8") as f:
    for number, line in enumerate(f, 1):
      if not line.strip():
        continue
      parts = line.split()
      if len(parts) != 2:
        raise errors.DataError(
            f"{path}:{number}: expected 'NAME.png LABEL', got {line.strip()!r}")
      if not (parts[1].isascii() and parts[1].isdigit()
              and int(parts[1]) < NUM_CLASSES):
        raise errors.DataError(
            f"{path}:{number}: label {parts[1]!r} of {parts[0]} is not an "
            f"integer in [0, {NUM_CLASSES}) (0..{NUM_CLASSES - 1}); fix the "
            "line")
      rows.append((parts[0], int(parts[1])))
  if not rows:
    raise errors.DataError(f"{path} lists no images")
  return rows


def read_released_split(mnist_m_dir: str, split: str) -> Tuple[np.ndarray,
                                                               np.ndarray]:
  """Reads `mnist_m_<split>/` and its label file, checking one against the other.

  Returns:
    images uint8 (N, H, W, 3) in label-file order, labels int64 (N,).
  Raises:
    DataError: naming the label file and the first file that is listed but
      missing, present but unlisted, or unreadable.
  """
  folder = os.path.join(mnist_m_dir, f"mnist_m_{split}")
  labels_path = os.path.join(mnist_m_dir, f"mnist_m_{split}_labels.txt")
  rows = _read_labels(labels_path)
  if not os.path.isdir(folder):
    raise errors.DataError(f"{folder} is missing; --mnist_m_dir must hold the "
                           "released mnist_m_train/ and mnist_m_test/ folders")
  on_disk = {n for n in os.listdir(folder) if n.lower().endswith(".png")}
  listed = [name for name, _ in rows]
  missing = [n for n in listed if n not in on_disk]
  if missing:
    raise errors.DataError(
        f"{labels_path} lists {len(missing)} image(s) missing from {folder}, "
        f"first {missing[0]}; restore the files or fix the label file")
  extra = sorted(on_disk - set(listed))
  if extra:
    raise errors.DataError(
        f"{folder} has {len(extra)} image(s) not in {labels_path}, first "
        f"{extra[0]}; add their labels or remove them")
  shape = None
  out = []
  for name in listed:
    image = images.read(os.path.join(folder, name))
    if shape is None:
      shape = image.shape
    elif image.shape != shape:
      raise errors.DataError(
          f"{os.path.join(folder, name)} is {image.shape}, the others "
          f"{shape}; the released images are all 32x32 RGB")
    out.append(image)
  logging.info("Read %d released MNIST-M %s images", len(out), split)
  return np.stack(out), np.array([l for _, l in rows], np.int64)


def released_root(path: str) -> str:
  """The folder that holds `mnist_m_train_labels.txt`: `path` or a child.

  Archives unpack to a wrapper folder (`mnist_m/`, `mnist_m_release_sample/`),
  so one level down is searched too.
  """
  if os.path.exists(os.path.join(path, _LABELS.format("train"))):
    return path
  children = sorted(os.path.join(path, n) for n in os.listdir(path)
                    if os.path.isdir(os.path.join(path, n)))
  found = [c for c in children
           if os.path.exists(os.path.join(c, _LABELS.format("train")))]
  if len(found) == 1:
    return found[0]
  raise errors.DataError(
      f"{os.path.join(path, _LABELS.format('train'))} is missing"
      + (f" (and {len(found)} subfolders hold one; name one of them)"
         if found else "")
      + "; --mnist_m_dir must hold mnist_m_train/ and "
      "mnist_m_train_labels.txt (mnist_m_test/ and its label file are "
      "optional), or be a .zip/.tar.gz of that layout")


def read_released(mnist_m_dir: str) -> Dict[str, np.ndarray]:
  """Reads the released layout from a folder, a .zip or a .tar(.gz).

  The test split is optional: without `mnist_m_test/` and its label file
  (as in a sample of the train split) the arrays have no `test_*` keys, and
  the data layer holds out a slice of train as the test split.

  Raises:
    DataError: the layout is incomplete or a file is missing or broken; the
      message names the file.
  """
  if os.path.isfile(mnist_m_dir):
    with tempfile.TemporaryDirectory(prefix="mnist_m_") as tmp:
      _unpack(mnist_m_dir, tmp)
      return read_released(tmp)
  if not os.path.isdir(mnist_m_dir):
    raise errors.DataError(
        f"--mnist_m_dir={mnist_m_dir} does not exist; give the released "
        "MNIST-M folder, .zip or .tar.gz")
  root = released_root(mnist_m_dir)
  out = {}
  for split in ("train", "test"):
    present = [os.path.exists(os.path.join(root, f"mnist_m_{split}")),
               os.path.exists(os.path.join(root, _LABELS.format(split)))]
    if split == "test" and not any(present):
      logging.info("%s has no mnist_m_test/: a held-out slice of train is "
                   "the test split", root)
      continue
    out[f"{split}_images"], out[f"{split}_labels"] = read_released_split(
        root, split)
  return out


def _unpack(archive: str, into: str) -> None:
  """Extracts a .zip or .tar(.gz) archive, refusing paths that leave `into`."""
  try:
    if zipfile.is_zipfile(archive):
      with zipfile.ZipFile(archive) as z:
        names = z.namelist()
        _check_members(archive, names, into)
        z.extractall(into)
    elif tarfile.is_tarfile(archive):
      with tarfile.open(archive) as t:
        _check_members(archive, t.getnames(), into)
        links = [m.name for m in t.getmembers()
                 if not (m.isfile() or m.isdir())]
        if links:
          raise errors.DataError(
              f"{archive}: member {links[0]!r} is a link or special file; the "
              "released layout has only folders and PNGs, refusing the "
              "archive")
        t.extractall(into)
    else:
      raise errors.DataError(
          f"--mnist_m_dir={archive} is a file but not a .zip or .tar(.gz); "
          "give the released folder or its archive")
  except (OSError, zipfile.BadZipFile, tarfile.TarError) as e:
    raise errors.DataError(f"{archive}: cannot unpack ({e}); download it "
                           "again or give the extracted folder") from e


def _check_members(archive: str, names: List[str], into: str) -> None:
  top = os.path.realpath(into)
  for name in names:
    path = os.path.realpath(os.path.join(into, name))
    if path != top and not path.startswith(top + os.sep):
      raise errors.DataError(f"{archive}: member {name!r} would unpack "
                             "outside its folder; refusing the archive")
