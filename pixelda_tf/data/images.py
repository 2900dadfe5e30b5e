"""Decoding and resizing image files into uint8 arrays."""

from __future__ import annotations

import io
from typing import Sequence

import numpy as np
from PIL import Image

from pixelda_tf.data import errors

# Resizing more than this many images at once only costs memory.
_CHUNK = 8192


def decode(data: bytes, where: str, mode: str = "RGB") -> np.ndarray:
  """Decodes PNG/JPEG/... bytes into uint8 (H, W, 3) (or (H, W) for mode "L").

  Raises:
    DataError: naming `where` if the bytes are not a readable image.
  """
  try:
    with Image.open(io.BytesIO(data)) as im:
      return np.asarray(im.convert(mode), np.uint8)
  except (OSError, ValueError, Image.DecompressionBombError) as e:
    raise errors.DataError(f"{where}: not a readable image ({e}); delete or "
                           "replace the file") from e


def read(path: str, size: int | None = None, mode: str = "RGB") -> np.ndarray:
  """Reads one image file, optionally resized to (size, size) with PIL.

  PIL's bilinear filter widens with the scale factor, so large photos are
  antialiased rather than aliased when shrunk to 32x32.
  """
  try:
    with open(path, "rb") as f:
      data = f.read()
  except OSError as e:
    raise errors.DataError(f"{path}: cannot read ({e})") from e
  image = decode(data, path, mode)
  if size is not None and image.shape[:2] != (size, size):
    image = np.asarray(Image.fromarray(image).resize(
        (size, size), Image.BILINEAR), np.uint8)
  return image


def resize(images: np.ndarray, size: int) -> np.ndarray:
  """Resizes uint8 images (N, H, W) or (N, H, W, C) to (N, size, size[, C]).

  Bilinear, as the official code resized MNIST to 32x32; antialiased when
  shrinking. Returns `images` itself when already at `size`.
  """
  if images.shape[1:3] == (size, size):
    return images
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  grey = images.ndim == 3
  x = images[..., None] if grey else images
  out = np.empty((len(x), size, size, x.shape[-1]), np.uint8)
  for i in range(0, len(x), _CHUNK):
    r = tf.image.resize(tf.cast(x[i:i + _CHUNK], tf.float32), (size, size),
                        method="bilinear", antialias=size < x.shape[1])
    out[i:i + _CHUNK] = np.clip(np.round(r.numpy()), 0, 255).astype(np.uint8)
  return out[..., 0] if grey else out


def stack(images: Sequence[np.ndarray]) -> np.ndarray:
  return np.stack(images) if images else np.zeros((0, 1, 1, 3), np.uint8)
