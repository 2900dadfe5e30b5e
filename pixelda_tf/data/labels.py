"""Label checks at read time, and the class names of the built-in data sets.

Every reader checks its labels where it reads them, so a bad label stops the
run before any training with the file (and line or row) and the valid range,
instead of a TensorFlow traceback in the middle of a run.
"""

from __future__ import annotations

import numpy as np

from pixelda_tf.data import errors

# MNIST, MNIST-M and USPS: digit d has class id d and class name "d".
DIGITS = tuple(str(i) for i in range(10))


def check(values, num_classes: int, where: str, row_name: str = "row",
          first_row: int = 0) -> np.ndarray:
  """Integer class ids in [0, num_classes), as int64, or a DataError.

  Args:
    values: (N,) labels as read (ints, or floats that must be whole numbers).
    num_classes: the valid range is [0, num_classes).
    where: the file (and part of it) the labels came from.
    row_name: what one label is called in the message ("row", "label", ...).
    first_row: the number of values[0] in that file (0- or 1-based).
  Raises:
    DataError: naming `where`, the first bad label and its row, and the range.
  """
  raw = np.asarray(values)
  if raw.ndim != 1:
    raise errors.DataError(f"{where}: labels have shape {raw.shape}; expected "
                           "one label per example")
  if raw.size == 0:
    return raw.astype(np.int64)
  if raw.dtype.kind in "iub":
    whole = np.ones(raw.shape, bool)
  elif raw.dtype.kind == "f":
    whole = np.isfinite(raw) & (raw == np.round(raw))
  else:
    raise errors.DataError(f"{where}: labels are {raw.dtype}, not integers; "
                           f"use class ids 0..{num_classes - 1}")
  ids = np.where(whole, raw, -1).astype(np.int64)
  bad = np.flatnonzero(~whole | (ids < 0) | (ids >= num_classes))
  if bad.size:
    i = int(bad[0])
    raise errors.DataError(
        f"{where}: {row_name} {i + first_row} has label {raw[i].item()!r} "
        f"({bad.size} bad in all); labels must be integers in "
        f"[0, {num_classes}) (0..{num_classes - 1}): fix or remove them")
  return ids
