"""Your own images: class-subfolder trees (labelled) or flat folders.

Labelled layout, as `keras.utils.image_dataset_from_directory` and TFDS's
`ImageFolder` read it: one subfolder per class, class ids from the sorted
subfolder names. Unlabelled layout: image files directly in the folder.
Optionally `train/` and `test/` subfolders, each in one of those layouts, give
the splits. Images of any size up to PIL's decompression-bomb limit (PNG,
JPEG, BMP, GIF, TIFF, WebP; 16-bit grey is scaled to 8 bits, see
`images.to_8bit`) are resized to the configured size with PIL when loaded.
Hidden files and folders (".name") and `__MACOSX/` are skipped.

Folders are listed and files read through `tf.io.gfile`, so a folder on
gs:// (or any file system TensorFlow has) reads as a local one does; files
are read by a pool of threads, which hides an object store's latency.
"""

from __future__ import annotations

import concurrent.futures
import os
from typing import List, Optional, Tuple

import numpy as np
import tensorflow as tf
from absl import logging

from pixelda_tf.data import errors
from pixelda_tf.data import images

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff",
              ".webp")


# Threads reading files: enough to hide an object store's per-file latency.
_READERS = 16


def _is_image(name: str) -> bool:
  return name.lower().endswith(EXTENSIONS)


def _on_object_store(folder: str) -> bool:
  """gs:// and the like: a "subfolder" lists with a trailing "/", which no
  image name ends with, and asking about each name costs a request."""
  return "://" in folder


# Not data: macOS's resource-fork folder in zips made on a Mac.
_SKIPPED_FOLDERS = ("__MACOSX",)


def _listdir(folder: str) -> List[str]:
  """tf.io.gfile.listdir, with a clear error for a name that is not UTF-8
  (as Info-ZIP's unzip leaves names from a zip made on Windows)."""
  try:
    return tf.io.gfile.listdir(folder)
  except UnicodeDecodeError as e:
    raise errors.DataError(
        f"{folder} holds a name that is not UTF-8 ({bytes(e.object)[:80]!r}); "
        f"rename it in UTF-8, e.g. `convmv -f cp1252 -t utf8 -r --notest "
        f"{folder}`") from e


def _image_files(folder: str) -> List[str]:
  """Image files in `folder`, sorted; hidden ones (".name", as macOS's
  "._name.png" resource forks) skipped, other files (.heic, .txt, ...)
  skipped with a warning that counts them."""
  listed = [n for n in _listdir(folder) if not n.startswith(".")]
  names = [n for n in listed if _is_image(n)]
  others = sorted(n for n in listed
                  if "." in n and not n.endswith("/") and not _is_image(n))
  if others and not _on_object_store(folder):
    others = [n for n in others if os.path.isfile(os.path.join(folder, n))]
  if others:
    logging.warning(
        "%s: skipped %d file(s) that are not %s images (e.g. %s); convert "
        "them to be used", folder, len(others),
        "/".join(e[1:] for e in EXTENSIONS), others[0])
  if _on_object_store(folder):
    return sorted(names)
  return sorted(n for n in names if os.path.isfile(os.path.join(folder, n)))


def subfolders(folder: str) -> List[str]:
  """The one rule for class ids, here and for adapted datasets
  (`adapting.load_adapted`): a folder's subfolders, hidden ones and
  `__MACOSX` skipped, in sorted order. Through tf.io.gfile, as every read of
  own images."""
  names = [n.rstrip("/") for n in _listdir(folder)]
  if _on_object_store(folder):
    names = [n for n in names if not _is_image(n)]
  return sorted(n for n in names
                if not n.startswith(".") and n not in _SKIPPED_FOLDERS
                and tf.io.gfile.isdir(os.path.join(folder, n)))


def require_folder(folder: str, flag: str = "") -> None:
  """Raises a DataError unless `folder` is a folder (through tf.io.gfile).

  `tf.io.gfile.isdir` answers False for any failure, so on gs:// (and other
  remote file systems) a lost connection or missing credentials would read
  as "is not a folder"; there the real error is asked for and named.

  Args:
    folder: a local path or a URL (gs://...).
    flag: the flag that named it, for the message ("" = none).
  """
  if tf.io.gfile.isdir(folder):
    return
  named = f"--{flag}={folder}" if flag else folder
  if _on_object_store(folder):
    try:
      tf.io.gfile.stat(folder)
    except tf.errors.NotFoundError:
      pass  # Reached, and it is not there: "not a folder" is the truth.
    except tf.errors.OpError as e:
      reason = (e.message.strip().splitlines() or [type(e).__name__])[0]
      raise errors.DataError(
          f"{named} could not be reached ({type(e).__name__}: {reason}): "
          "check the network connection and the credentials (e.g. `gcloud "
          "auth application-default login`, or GOOGLE_APPLICATION_"
          "CREDENTIALS), then rerun") from e
  raise errors.DataError(f"{named} is not a folder")


def has_splits(folder: str) -> bool:
  """True if `folder` holds `train/` and `test/` subfolders as its splits."""
  return set(subfolders(folder)) == {"train", "test"}


def read_folder(folder: str, size: int, labelled: Optional[bool],
                flag: str) -> Tuple[np.ndarray, Optional[np.ndarray],
                                    List[str]]:
  """Reads a folder of images.

  Args:
    folder: class-subfolder tree, or flat folder of images.
    size: output side; every image is resized to (size, size).
    labelled: True to require class subfolders, False to require a flat
      folder, None to accept either.
    flag: the flag that named the folder, for error messages.
  Returns:
    (images uint8 (N, size, size, 3), labels int64 (N,) or None, class names).
  Raises:
    DataError: the folder is missing or empty, mixes the layouts, or holds an
      unreadable image (naming the file).
  """
  require_folder(folder, flag)
  files, subs = _image_files(folder), subfolders(folder)
  if labelled and files:
    raise errors.DataError(
        f"{folder} has image files at its top level ({files[0]}, ...); a "
        f"labelled --{flag} needs one subfolder per class")
  if files and subs:
    raise errors.DataError(
        f"{folder} mixes image files ({files[0]}) and subfolders ({subs[0]}); "
        "use either one subfolder per class or a flat folder of images")
  if labelled is False and subs:
    raise errors.DataError(f"{folder} has subfolders ({subs[0]}); expected a "
                           "flat folder of images")
  paths, labels, classes = [], [], []
  if files:
    paths = [os.path.join(folder, n) for n in files]
  else:
    classes = subs
    for label, name in enumerate(classes):
      members = _image_files(os.path.join(folder, name))
      if not members:
        raise errors.DataError(
            f"{os.path.join(folder, name)} holds no images "
            f"({', '.join(EXTENSIONS)}); add images or remove the folder")
      paths += [os.path.join(folder, name, n) for n in members]
      labels += [label] * len(members)
  if not paths:
    raise errors.DataError(
        f"--{flag}={folder} holds no images ({', '.join(EXTENSIONS)}); put "
        "images in it (one subfolder per class if labelled)")
  pool = concurrent.futures.ThreadPoolExecutor(_READERS)
  try:
    out = np.stack(list(pool.map(lambda p: images.read(p, size), paths)))
  finally:
    pool.shutdown(cancel_futures=True)  # an unreadable file stops the rest
  return out, (np.array(labels, np.int64) if classes else None), classes
