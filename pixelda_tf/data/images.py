"""Decoding and resizing image files into uint8 arrays."""

from __future__ import annotations

import io

import numpy as np
import tensorflow as tf
from PIL import Image
from PIL import ImageOps

from pixelda_tf.data import errors

# Resizing more than this many images at once only costs memory.
_CHUNK = 8192


# PIL modes holding 16-bit grey (or wider integers): PIL's own convert() to
# "L" or "RGB" clips them at 255, which turns almost every pixel white.
SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def to_8bit(im: Image.Image, where: str = "image") -> Image.Image:
  """A 16-bit grey (or float) image scaled to 8 bits (v * 255 / 65535,
  rounded).

  Mode "I" (32-bit integers, as some TIFF and PNG readers give 16-bit grey)
  is taken as 16-bit data too: values are clipped to [0, 65535] first. Mode
  "F" (32-bit float TIFF) is taken as [0, 1] and scaled by 255; other float
  ranges are refused (DataError naming `where`). Every
  other mode is returned as is, for PIL's convert(): palette ("P") through
  its palette, alpha ("RGBA", "LA", "PA") dropped without compositing, CMYK
  with PIL's naive inversion, 1-bit to 0/255.
  """
  if im.mode == "F":
    return _float_to_8bit(im, where)
  if im.mode not in SIXTEEN_BIT_MODES:
    return im
  x = np.clip(np.asarray(im, np.float64), 0, 65535)
  return Image.fromarray(np.round(x * (255.0 / 65535.0)).astype(np.uint8),
                         mode="L")


def _float_to_8bit(im: Image.Image, where: str) -> Image.Image:
  """A 32-bit float image (TIFF), taken as intensities in [0, 1] (scaled by
  255, rounded): PIL's own convert() would clip them to 0 or 1 of 255."""
  x = np.asarray(im, np.float64)
  if not np.isfinite(x).all() or x.min() < 0 or x.max() > 1:
    raise errors.DataError(
        f"{where}: 32-bit float pixels in [{np.nanmin(x):g}, "
        f"{np.nanmax(x):g}]; only [0, 1] floats are read: save the image as "
        "8- or 16-bit")
  return Image.fromarray(np.round(x * 255.0).astype(np.uint8), mode="L")


def decode(data: bytes, where: str, mode: str = "RGB") -> np.ndarray:
  """Decodes PNG/JPEG/... bytes into uint8 (H, W, 3) (or (H, W) for mode "L").

  An orientation tag (EXIF, as phone photos carry, or XMP) is applied, so
  the image is upright as a viewer shows it. 16-bit grey is scaled to 8 bits,
  not clipped; other modes convert as PIL's `convert(mode)` does (see
  `to_8bit`).

  Raises:
    DataError: naming `where` if the bytes are not a readable image, declare
      more pixels than PIL's decompression-bomb limit, or hold floats outside
      [0, 1].
  """
  # Only opening and decoding are guarded: a damaged file makes PIL raise
  # almost anything there, while an error of the conversion below is ours.
  # (An in-memory file needs no closing; closing the image would free it.)
  try:
    im = Image.open(io.BytesIO(data))
    im.load()
    ImageOps.exif_transpose(im, in_place=True)
  except Image.DecompressionBombError as e:
    raise errors.DataError(
        f"{where}: too large to decode safely ({e}); downscale the file "
        "(training reads images at a few dozen pixels a side)") from e
  except MemoryError:
    raise
  except Exception as e:  # pylint: disable=broad-except
    # OSError, SyntaxError for a broken PNG chunk, EOFError, struct.error,
    # IndexError, ...
    raise errors.DataError(
        f"{where}: not a readable image ({type(e).__name__}: {e}); delete or "
        "replace the file") from e
  return np.asarray(to_8bit(im, where).convert(mode), np.uint8)


def read(path: str, size: int | None = None, mode: str = "RGB") -> np.ndarray:
  """Reads one image file, optionally resized to (size, size) with PIL.

  PIL's bilinear filter widens with the scale factor, so large photos are
  antialiased rather than aliased when shrunk to 32x32. `path` may be on any
  file system `tf.io.gfile` reads (gs://, ...).
  """
  try:
    with tf.io.gfile.GFile(path, "rb") as f:
      data = f.read()
  except (OSError, tf.errors.OpError) as e:
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


def pad(images: np.ndarray, size: int) -> np.ndarray:
  """Centres uint8 images (N, H, W[, C]), H, W <= size, on a black
  (size, size) canvas; an odd margin puts the extra pixel after the image."""
  h, w = images.shape[1:3]
  if h > size or w > size:
    raise errors.DataError(f"cannot pad {h}x{w} images to {size}x{size}")
  top, left = (size - h) // 2, (size - w) // 2
  widths = [(0, 0), (top, size - h - top), (left, size - w - left)]
  return np.pad(images, widths + [(0, 0)] * (images.ndim - 3))


def fit(images: np.ndarray, size: int, smaller: str = "resize") -> np.ndarray:
  """Brings uint8 images (N, H, W[, C]) to (N, size, size[, C]).

  Larger images are resized. Smaller ones are resized too, or, with
  `smaller="pad"`, centred on a black canvas at their own scale: the released
  MNIST-M padded its 28x28 digits to 32x32, so a padded MNIST source has its
  target's digit size and stroke width.
  """
  if smaller not in ("resize", "pad"):
    raise ValueError(f"smaller={smaller!r}: use resize or pad")
  if smaller == "pad" and max(images.shape[1:3]) <= size:
    return pad(images, size)
  return resize(images, size)
