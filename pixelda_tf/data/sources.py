"""Each dataset name -> (arrays, origin, num_classes), from the config.

Arrays hold `train_images`/`test_images` uint8 (N, H, W) or (N, H, W, 3) at
the dataset's native size, and `train_labels`/`test_labels` int64 (or absent
when unlabelled). Sizes are made uniform later, in `domains`.
"""

from __future__ import annotations

import os
from typing import Dict, Tuple

import numpy as np
from absl import logging

from pixelda_tf.config import DataConfig
from pixelda_tf.data import errors
from pixelda_tf.data import folders
from pixelda_tf.data import mnist
from pixelda_tf.data import mnist_m
from pixelda_tf.data import net
from pixelda_tf.data import photos
from pixelda_tf.data import store
from pixelda_tf.data import usps

Arrays = Dict[str, np.ndarray]
Loaded = Tuple[Arrays, str, int]


def mnist_m_variant(cfg: DataConfig) -> str:
  """Resolves `auto` to `released`, `bsds500` or `offline`."""
  if cfg.mnist_m_variant != "auto":
    return cfg.mnist_m_variant
  if cfg.mnist_m_dir:
    return "released"
  archive = os.path.join(cfg.data_dir, "downloads", "BSR_bsds500.tgz")
  if cfg.bsds_dir or os.path.exists(archive):
    return "bsds500"
  if cfg.download and net.reachable(photos.BSDS_URL):
    return "bsds500"
  logging.info("MNIST-M: BSDS500 not given (--bsds_dir) and not reachable; "
               "using the %s", photos.OFFLINE_NAME)
  return "offline"


def _folder_key(folder: str) -> str:
  """Names the cache of a released folder; changes when its files change."""
  # Every file below it (a changed image changes no folder's mtime).
  stamp = {os.path.abspath(folder): b""}
  for root, dirs, files in os.walk(folder):
    dirs.sort()
    for name in sorted(files):
      path = os.path.join(root, name)
      st = os.stat(path)
      stamp[os.path.relpath(path, folder)] = (
          f"{st.st_mtime_ns}:{st.st_size}".encode())
  return photos.digest(stamp)


def load_mnist_m(cfg: DataConfig) -> Loaded:
  variant = mnist_m_variant(cfg)
  if variant == "released":
    cache = os.path.join(cfg.data_dir, "mnist_m",
                         f"released_{_folder_key(cfg.mnist_m_dir)}.npz")
    origin = f"MNIST-M (released files in {cfg.mnist_m_dir})"
    arrays = store.load(cache)
    if arrays is None:
      arrays = mnist_m.read_released(cfg.mnist_m_dir)
      store.save(cache, origin, **arrays)
    arrays.pop("origin", None)
    return arrays, origin, 10
  if variant == "bsds500":
    files, what, where = photos.bsds500(cfg.bsds_dir, cfg.data_dir,
                                        cfg.download)
  else:
    files, what, where = photos.skimage_photos()
  name = f"generated_{variant}_{photos.digest(files)}_seed{cfg.seed}.npz"
  cache = os.path.join(cfg.data_dir, "mnist_m", name)
  arrays = store.load(cache)
  if arrays is not None:
    return arrays, str(arrays.pop("origin")), 10
  digits, digits_origin = mnist.load(cfg.mnist_dir, cfg.data_dir, cfg.download)
  arrays = mnist_m.generate(
      digits, photos.decode_all(files, where, mnist_m.SIZE), cfg.seed)
  label = (photos.OFFLINE_NAME if variant == "offline"
           else f"{variant} variant: {what}")
  origin = (f"MNIST-M ({label}; generated with seed {cfg.seed} from "
            f"{digits_origin})")
  store.save(cache, origin, **arrays)
  return arrays, origin, 10


def load_folder(folder: str, cfg: DataConfig, flag: str,
                labelled: bool | None) -> Loaded:
  arrays = {}
  if folders.has_splits(folder):
    splits = {"train": os.path.join(folder, "train"),
              "test": os.path.join(folder, "test")}
  else:
    splits = {"train": folder}
  classes = None
  for split, path in splits.items():
    x, y, names = folders.read_folder(path, cfg.image_size, labelled, flag)
    if split == "train" and "test" not in splits:
      # Sorted class folders would put one class in the held-out slice.
      order = np.random.default_rng([cfg.seed, 7]).permutation(len(x))
      x, y = x[order], (None if y is None else y[order])
    if classes is not None and names != classes:
      raise errors.DataError(
          f"{path}: classes {names} differ from train's {classes}; give "
          "train/ and test/ the same class subfolders")
    classes = names
    arrays[f"{split}_images"] = x
    if y is not None:
      arrays[f"{split}_labels"] = y
  return arrays, f"images in {folder}", max(len(classes or []), 1)


def load(cfg: DataConfig, role: str) -> Loaded:
  """The dataset that plays `role` ("source" or "target") under `cfg`."""
  name = cfg.source if role == "source" else cfg.target
  if name == "mnist":
    arrays, origin = mnist.load(cfg.mnist_dir, cfg.data_dir, cfg.download)
    return arrays, origin, 10
  if name == "usps":
    arrays, origin = usps.load(cfg.usps_path, cfg.data_dir, cfg.download)
    return arrays, origin, 10
  if name == "mnist_m":
    return load_mnist_m(cfg)
  if name == "folder" and role == "source":
    return load_folder(cfg.source_dir, cfg, "source_dir", True)
  if name == "folder":
    return load_folder(cfg.target_dir, cfg, "target_dir", None)
  raise ValueError(f"unknown dataset {name!r} for role {role!r}")
