"""USPS handwritten digits (Hull, 1994): 7,291 train / 2,007 test, 16x16 grey.

Sources: `--usps_path` as the widely used `usps.h5` (`train/data` (N, 256)
float in [0, 1], `train/target`), or a folder with LIBSVM's `usps.bz2` and
`usps.t.bz2` (values in [-1, 1], labels 1..10); else LIBSVM's files are
downloaded (the URLs and md5s torchvision uses) when the host answers.
The source has ~2,000 grey levels; they are rounded to uint8 like every
other dataset here.
"""

from __future__ import annotations

import bz2
import os
from typing import Dict, Tuple

import numpy as np
from absl import logging

from pixelda_tf.data import errors
from pixelda_tf.data import labels
from pixelda_tf.data import net

SIDE = 16
URL = "https://www.csie.ntu.edu.tw/~cjlin/libsvmtools/datasets/multiclass/"
LIBSVM_FILES = {  # split -> (file name, md5)
    "train": ("usps.bz2", "ec16c51db3855ca6c91edd34d0e9b197"),
    "test": ("usps.t.bz2", "8ea070ee2aca1ac39742fdd1ef5ed118"),
}

Arrays = Dict[str, np.ndarray]


def _to_uint8(x: np.ndarray) -> np.ndarray:
  return np.clip(np.round(x * 255.0), 0, 255).astype(np.uint8).reshape(
      -1, SIDE, SIDE)


def read_h5(path: str) -> Arrays:
  """Reads the `usps.h5` layout; images uint8 (N, 16, 16), labels int64."""
  import h5py  # pylint: disable=g-import-not-at-top
  out = {}
  try:
    with h5py.File(path, "r") as f:
      for split in ("train", "test"):
        data = np.asarray(f[f"{split}/data"], np.float32)
        target = np.asarray(f[f"{split}/target"])
        if data.ndim != 2 or data.shape[1] != SIDE * SIDE or (
            len(data) != len(target)):
          raise errors.DataError(
              f"{path}: {split}/data is {data.shape} and {split}/target "
              f"{target.shape}; expected (N, 256) and (N,)")
        out[f"{split}_images"] = _to_uint8(data)
        out[f"{split}_labels"] = labels.check(
            target.reshape(-1) if target.ndim == 2 and target.shape[1] == 1
            else target, 10, f"{path}:{split}/target")
  except (OSError, KeyError) as e:
    raise errors.DataError(
        f"{path}: not a usps.h5 file with train/data, train/target, "
        f"test/data, test/target ({e}); pass the right file as --usps_path "
        "or a folder with usps.bz2 and usps.t.bz2") from e
  return out


def _libsvm_label(text: str, path: str, number: int) -> int:
  """LIBSVM's label k (1..10, written "3" or "3.0") -> digit k - 1."""
  try:
    value = float(text)
  except ValueError:
    value = 0.0  # Not a number: refused below like any other bad label.
  if not (1 <= value <= 10 and value == round(value)):
    raise errors.DataError(
        f"{path}:{number}: label {text!r} is not an integer in 1..10 "
        "(LIBSVM's USPS labels 1..10 are digits 0..9); fix the line or "
        "download the file again")
  return int(value) - 1


def read_libsvm(path: str) -> Tuple[np.ndarray, np.ndarray]:
  """Reads one LIBSVM USPS file (`.bz2` or plain).

  Lines are `LABEL i:v ...` with 1-based i <= 256, v in [-1, 1] and labels
  1..10, label k being digit k-1. Omitted features are 0, as LIBSVM's sparse
  format means.

  Returns:
    images uint8 (N, 16, 16), labels int64 (N,) in 0..9.
  """
  opener = bz2.open if path.endswith(".bz2") else open
  rows, ids = [], []
  try:
    with opener(path, "rt") as f:
      for number, line in enumerate(f, 1):
        parts = line.split()
        if not parts:
          continue
        row = np.zeros(SIDE * SIDE, np.float32)
        ids.append(_libsvm_label(parts[0], path, number))
        try:
          for item in parts[1:]:
            i, v = item.split(":")
            row[int(i) - 1] = float(v)
        except (ValueError, IndexError) as e:
          raise errors.DataError(
              f"{path}:{number}: not a LIBSVM line ({e}); download the file "
              "again") from e
        rows.append(row)
  except (OSError, EOFError) as e:
    raise errors.DataError(f"{path}: cannot read ({e}); download it again") \
        from e
  if not rows:
    raise errors.DataError(f"{path} holds no examples; download it again")
  return _to_uint8((np.stack(rows) + 1.0) / 2.0), np.array(ids, np.int64)


def read_libsvm_folder(folder: str) -> Arrays:
  out = {}
  for split, (name, _) in LIBSVM_FILES.items():
    path = os.path.join(folder, name)
    if not os.path.exists(path):
      raise errors.DataError(
          f"{path} is missing; --usps_path must be usps.h5 or a folder with "
          "usps.bz2 and usps.t.bz2")
    out[f"{split}_images"], out[f"{split}_labels"] = read_libsvm(path)
  return out


def load(usps_path: str | None, data_dir: str,
         download: bool = True) -> Tuple[Arrays, str]:
  """USPS from `usps_path`, or downloaded; returns (arrays, origin)."""
  if usps_path:
    if os.path.isdir(usps_path):
      return read_libsvm_folder(usps_path), f"USPS (LIBSVM files in {usps_path})"
    if not os.path.exists(usps_path):
      raise errors.DataError(f"--usps_path={usps_path} does not exist")
    return read_h5(usps_path), f"USPS ({usps_path})"
  folder = os.path.join(data_dir, "downloads", "usps")
  have = all(os.path.exists(os.path.join(folder, n))
             for n, _ in LIBSVM_FILES.values())
  if not have:
    if not (download and net.reachable(URL)):
      raise errors.DataError(
          "USPS is not reachable: pass --usps_path=usps.h5 or a folder with "
          "LIBSVM's usps.bz2 and usps.t.bz2")
    for name, md5 in LIBSVM_FILES.values():
      net.download(URL + name, os.path.join(folder, name), md5, "md5")
  logging.info("USPS: reading LIBSVM files in %s", folder)
  return read_libsvm_folder(folder), "USPS (LIBSVM download)"
