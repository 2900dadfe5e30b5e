"""Each dataset name -> (arrays, origin, num_classes), from the config.

Arrays hold `train_images`/`test_images` uint8 (N, H, W) or (N, H, W, 3) at
the dataset's native size, and `train_labels`/`test_labels` int64 (or absent
when unlabelled). Sizes are made uniform later, in `domains`.
"""

from __future__ import annotations

import os
from typing import Dict, List, Optional, Tuple

import numpy as np
from absl import logging

from pixelda_tf.config import DataConfig
from pixelda_tf.data import errors
from pixelda_tf.data import folders
from pixelda_tf.data import labels
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
  """Names the cache of a released folder or archive; changes when its files
  change."""
  stamp = {os.path.abspath(folder): b""}
  if os.path.isfile(folder):
    st = os.stat(folder)
    stamp[""] = f"{st.st_mtime_ns}:{st.st_size}".encode()
  # Every file below it (a changed image changes no folder's mtime).
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
  # The recipe version: a changed recipe never reuses an older cache.
  name = (f"generated_{variant}_r{mnist_m.RECIPE_VERSION}_"
          f"{photos.digest(files)}_seed{cfg.seed}.npz")
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


def _folder_classes(folder: str, flag: str) -> List[str]:
  """The class subfolders of a labelled folder (of its train/ if split)."""
  folders.require_folder(folder, flag)
  if folders.has_splits(folder):
    folder = os.path.join(folder, "train")
  return folders.subfolders(folder)


def class_names(cfg: DataConfig) -> List[str]:
  """The source's class names in label order; class id i is names[i].

  Digits "0".."9" for the built-in data sets, the sorted class subfolders
  for `--source=folder`. Labelled target folders are read against these
  names, and exports name their classes with them.

  Raises:
    DataError: --source_dir is not a folder.
  """
  if cfg.source == "folder":
    return _folder_classes(cfg.source_dir, "source_dir")
  return list(labels.DIGITS)


def _to_source_ids(y: np.ndarray, names: List[str], source: List[str],
                   path: str, flag: str) -> np.ndarray:
  """Relabels a target folder's ids (sorted subfolder order) to the source's."""
  unknown = [n for n in names if n not in source]
  if unknown:
    raise errors.DataError(
        f"--{flag}: {path} has classes {names}, the source has {source}; "
        f"{unknown} are not source classes. Name the class subfolders as the "
        "source's (a subset is fine)" + (
            "; if the target is unlabelled and its subfolders are not "
            "classes, pass --target_labels=none to read them as one "
            "unlabelled pool" if flag == "target_dir" else ""))
  return np.array([source.index(n) for n in names], np.int64)[y]


def load_folder(folder: str, cfg: DataConfig, flag: str,
                labelled: bool | None,
                source_classes: Optional[List[str]] = None,
                ignore_labels: bool = False) -> Loaded:
  """Reads an image folder, with optional train/ and test/ subfolders.

  Args:
    folder: the folder (see `folders`).
    cfg: image size.
    flag: the flag that named it, for messages.
    labelled: True for a source (class subfolders required), None for a
      target (either layout, per split: a flat train/ beside a labelled
      test/ is the usual "many unlabelled, few labelled" project).
    source_classes: for a target, the source's class names: labelled splits
      are relabelled to the source's ids by name, and a class the source
      lacks is refused.
    ignore_labels: subfolders are not classes (`--target_labels=none`):
      their images are read as one unlabelled pool, whatever their names.
  Returns:
    (arrays, origin, num_classes).
  """
  folders.require_folder(folder, flag)
  arrays = {}
  if folders.has_splits(folder):
    splits = {"train": os.path.join(folder, "train"),
              "test": os.path.join(folder, "test")}
  else:
    splits = {"train": folder}
  classes = {}
  for split, path in splits.items():
    x, y, names = folders.read_folder(path, cfg.image_size, labelled, flag)
    if ignore_labels:
      y, names = None, []
    elif names and source_classes is not None:
      y = _to_source_ids(y, names, source_classes, path, flag)
    classes[split] = names
    arrays[f"{split}_images"] = x
    if y is not None:
      arrays[f"{split}_labels"] = y
  if (source_classes is None and len(classes) == 2 and classes["train"]
      and classes["test"] and classes["train"] != classes["test"]):
    raise errors.DataError(
        f"{splits['test']}: classes {classes['test']} differ from train's "
        f"{classes['train']}; give train/ and test/ the same class subfolders")
  if source_classes is not None:
    return arrays, f"images in {folder}", len(source_classes)
  if labelled and len(classes["train"]) == 1:
    # Before --num_classes is compared: no number of classes can train on
    # one class (a classifier needs two to tell apart).
    raise errors.DataError(
        f"--{flag}={folder} has one class ({classes['train'][0]}): a "
        "classifier needs at least 2 to tell apart; add a second class "
        f"subfolder to {splits['train']} (one subfolder per class)")
  return arrays, f"images in {folder}", max(len(classes["train"]), 1)


def load_val_folder(cfg: DataConfig) -> Tuple[np.ndarray, np.ndarray]:
  """The labelled `--target_val_dir`, relabelled to the source's class ids."""
  x, y, names = folders.read_folder(cfg.target_val_dir, cfg.image_size, True,
                                    "target_val_dir")
  return x, _to_source_ids(y, names, class_names(cfg), cfg.target_val_dir,
                           "target_val_dir")


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
    return load_folder(cfg.target_dir, cfg, "target_dir", None,
                       source_classes=class_names(cfg),
                       ignore_labels=cfg.target_labels == "none")
  raise ValueError(f"unknown dataset {name!r} for role {role!r}")
