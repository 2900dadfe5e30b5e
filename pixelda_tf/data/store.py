"""Prepared arrays on disk: written to a temporary file, then moved in place.

A prepared dataset is one `.npz` holding uint8 images, int64 labels and a
one-line `origin`. `os.replace` within one folder is atomic, so a reader sees
either no file or a complete one; an interrupted run leaves at most a
`*.tmp-*` file, which is removed on the error path.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import zipfile
from typing import Dict, Iterator, Optional

import numpy as np
from absl import logging


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
  """Yields a temporary path next to `path`, moved onto `path` on success."""
  folder = os.path.dirname(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=folder,
                             prefix=os.path.basename(path) + ".tmp-")
  os.close(fd)
  os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide shared data from others.
  try:
    yield tmp
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def save(path: str, origin: str, **arrays: np.ndarray) -> None:
  """Writes `arrays` and `origin` to the `.npz` at `path`, atomically."""
  with atomic_path(path) as tmp:
    with open(tmp, "wb") as f:
      np.savez(f, origin=np.array(origin), **arrays)
  logging.info("Prepared %s", path)


def load(path: str) -> Optional[Dict[str, np.ndarray]]:
  """Reads a prepared `.npz`; None if it is missing or unreadable.

  An unreadable file (truncated by a crash in another tool, say) is treated
  as missing so that the caller rebuilds it rather than failing forever.
  """
  if not os.path.exists(path):
    return None
  try:
    with np.load(path, allow_pickle=False) as z:
      return {k: z[k] for k in z.files}
  except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
    logging.warning("Ignoring unreadable prepared file %s (%s); rebuilding",
                    path, e)
    return None
