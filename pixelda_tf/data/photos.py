"""Background photos for generating MNIST-M.

Two variants:
  * `bsds500`: the 200 BSDS500 *train* photos (Arbelaez et al., TPAMI 2011),
    as Ganin & Lempitsky used, from `--bsds_dir` (an extracted images folder
    or `BSR_bsds500.tgz`) or from the official archive when it is reachable.
    Photos are checked against the sha256 list shipped with the package.
  * `offline`: natural colour photos that scikit-image ships (BSD licence), so
    that MNIST-M can be made with no download at all. Fewer photos, so fewer
    distinct textures; results must quote it as the offline variant.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
from typing import Dict, List, Tuple

import numpy as np
from absl import logging

from pixelda_tf.data import errors
from pixelda_tf.data import images
from pixelda_tf.data import net

BSDS_URL = ("https://www2.eecs.berkeley.edu/Research/Projects/CS/vision/"
            "grouping/BSR/BSR_bsds500.tgz")
TRAIN_SUFFIX = "BSDS500/data/images/train"
_SHA_FILE = os.path.join(os.path.dirname(__file__), "bsds500_train_sha256.txt")

# The natural colour photographs among skimage/data's bundled files. Left out:
# greyscale ones, microscopy (ihc, retina, cell), astronomy (hubble), and
# synthetic charts (color, chessboard, phantom, logo).
SKIMAGE_PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png",
                  "motorcycle_left.png", "motorcycle_right.png", "rocket.jpg")

OFFLINE_NAME = "offline variant: scikit-image photos"


def expected_sha256() -> Dict[str, str]:
  """File name -> sha256 of the 200 official BSDS500 train photos."""
  with open(_SHA_FILE, encoding="utf-8") as f:
    pairs = (line.split() for line in f if line.strip())
    return {name: digest for digest, name in pairs}


def _train_folder(path: str) -> str:
  for sub in ("train", os.path.join("data", "images", "train"),
              os.path.join(*(["BSR"] + TRAIN_SUFFIX.split("/"))),
              os.path.join(*TRAIN_SUFFIX.split("/"))):
    if os.path.isdir(os.path.join(path, sub)):
      return os.path.join(path, sub)
  raise errors.DataError(
      f"--bsds_dir={path}: no train/ subfolder; pass the extracted "
      "BSR/BSDS500/data/images folder or BSR_bsds500.tgz")


def _read_dir(path: str) -> Dict[str, bytes]:
  folder = _train_folder(path)
  out = {}
  for name in sorted(os.listdir(folder)):
    if name.lower().endswith((".jpg", ".jpeg", ".png")):
      with open(os.path.join(folder, name), "rb") as f:
        out[name] = f.read()
  return out


def _read_tgz(path: str) -> Dict[str, bytes]:
  out = {}
  try:
    with tarfile.open(path) as tar:
      for member in tar:
        folder, name = os.path.split(member.name)
        if (member.isfile() and folder.endswith(TRAIN_SUFFIX)
            and name.lower().endswith((".jpg", ".jpeg", ".png"))):
          out[name] = tar.extractfile(member).read()
  except (tarfile.TarError, OSError, EOFError) as e:
    raise errors.DataError(f"{path}: unreadable archive ({e}); download "
                           "BSR_bsds500.tgz again") from e
  return dict(sorted(out.items()))


def _official(files: Dict[str, bytes]) -> bool:
  got = {n: hashlib.sha256(b).hexdigest() for n, b in files.items()}
  return got == expected_sha256()


def decode_all(files: Dict[str, bytes], where: str,
               min_size: int) -> List[np.ndarray]:
  """Decodes photos to uint8 (H, W, 3), dropping those smaller than min_size."""
  photos = [images.decode(data, os.path.join(where, name))
            for name, data in files.items()]
  photos = [p for p in photos if min(p.shape[:2]) >= min_size]
  if not photos:
    raise errors.DataError(
        f"{where}: no photo of at least {min_size}x{min_size} pixels; pass "
        "the BSDS500 images folder or BSR_bsds500.tgz as --bsds_dir")
  return photos


def digest(files: Dict[str, bytes]) -> str:
  """A short digest of names and contents, to name cached MNIST-M files."""
  h = hashlib.sha256()
  for name, data in files.items():
    h.update(name.encode() + hashlib.sha256(data).digest())
  return h.hexdigest()[:12]


def bsds500(bsds_dir: str | None, data_dir: str,
            download: bool) -> Tuple[Dict[str, bytes], str, str]:
  """The BSDS500 train photos, as undecoded files.

  Returns:
    (files, origin, where): file name -> bytes, one line naming what they
    are, and the folder or archive they came from.
  Raises:
    DataError: no source (says to pass --bsds_dir), an unreadable file, or a
      downloaded archive whose photos fail the checksum.
  """
  if bsds_dir:
    if not os.path.exists(bsds_dir):
      raise errors.DataError(f"--bsds_dir={bsds_dir} does not exist")
    reader = _read_tgz if os.path.isfile(bsds_dir) else _read_dir
    files, where = reader(bsds_dir), bsds_dir
  else:
    archive = os.path.join(data_dir, "downloads", "BSR_bsds500.tgz")
    if not os.path.exists(archive):
      if not (download and net.reachable(BSDS_URL)):
        raise errors.DataError(
            "BSDS500 is not reachable: pass --bsds_dir=BSR_bsds500.tgz or "
            "the extracted BSR/BSDS500/data/images folder, or use "
            "--mnist_m_variant=offline")
      # No published digest of the archive itself; its photos are checked.
      _fetch(archive)
    files, where = _read_tgz(archive), archive
    if not _official(files):
      raise errors.DataError(
          f"{archive}: its train photos do not match the BSDS500 sha256 list; "
          "delete it so it is downloaded again, or pass --bsds_dir")
  if not files:
    raise errors.DataError(f"{where}: no train photos (.jpg/.png) found; pass "
                           "the extracted BSR/BSDS500/data/images folder")
  official = _official(files)
  if not official:
    logging.warning("%s: %d photos, not the official 200 BSDS500 train photos "
                    "(sha256 list differs); using them anyway", where,
                    len(files))
  origin = ("BSDS500 train photos" if official else
            f"{len(files)} photos from {where} (not the official BSDS500 set)")
  return files, origin, where


def _fetch(archive: str) -> None:
  import urllib.request  # pylint: disable=g-import-not-at-top
  from pixelda_tf.data import store  # pylint: disable=g-import-not-at-top
  logging.info("Downloading %s (about 70 MB)", BSDS_URL)
  try:
    with store.atomic_path(archive) as tmp:
      with urllib.request.urlopen(BSDS_URL, timeout=60) as r, \
          open(tmp, "wb") as f:
        for chunk in iter(lambda: r.read(1 << 20), b""):
          f.write(chunk)
  except OSError as e:
    raise errors.DataError(f"downloading {BSDS_URL} failed ({e}); download it "
                           "by hand and pass it as --bsds_dir") from e


def skimage_photos() -> Tuple[Dict[str, bytes], str, str]:
  """scikit-image's bundled natural colour photos: (files, origin, where)."""
  import skimage.data  # pylint: disable=g-import-not-at-top
  folder = os.path.dirname(skimage.data.__file__)
  files = {}
  for name in SKIMAGE_PHOTOS:
    path = os.path.join(folder, name)
    if not os.path.exists(path):
      raise errors.DataError(
          f"{path} is missing from scikit-image; reinstall scikit-image or "
          "pass --bsds_dir")
    with open(path, "rb") as f:
      files[name] = f.read()
  return files, OFFLINE_NAME, folder
