"""Network reachability in seconds, and checked downloads written atomically.

Every download first asks `reachable()`: a plain TCP connect with a short
timeout. An offline machine answers in milliseconds (DNS fails) or in
`timeout` seconds (packets dropped), never in the minutes that TFDS's retries
would take.
"""

from __future__ import annotations

import functools
import hashlib
import os
import socket
import urllib.parse
import urllib.request

from absl import logging

from pixelda_tf.data import errors
from pixelda_tf.data import store

# Set to "1" to make every host unreachable (tests, air-gapped machines).
OFFLINE_ENV = "PIXELDA_OFFLINE"


@functools.lru_cache(maxsize=None)
def _connects(host: str, port: int, timeout: float) -> bool:
  try:
    socket.create_connection((host, port), timeout=timeout).close()
    return True
  except OSError:
    return False


def reachable(url: str, timeout: float = 3.0) -> bool:
  """True if a TCP connection to `url`'s host opens within `timeout` seconds.

  The answer is cached per host for the life of the process.
  """
  if os.environ.get(OFFLINE_ENV) == "1":
    return False
  parts = urllib.parse.urlsplit(url)
  port = parts.port or (443 if parts.scheme == "https" else 80)
  return _connects(parts.hostname or "", port, timeout)


def file_digest(path: str, algorithm: str = "sha256") -> str:
  h = hashlib.new(algorithm)
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      h.update(chunk)
  return h.hexdigest()


def download(url: str, path: str, digest: str, algorithm: str = "sha256",
             timeout: float = 60.0) -> str:
  """Downloads `url` to `path` unless a file with the right digest is there.

  The bytes go to a temporary file next to `path` and are moved into place
  only once their digest matches, so an interrupted or corrupt download never
  looks like a finished one.

  Returns:
    `path`.
  Raises:
    DataError: the download failed or its digest does not match.
  """
  if os.path.exists(path) and file_digest(path, algorithm) == digest:
    return path
  logging.info("Downloading %s -> %s", url, path)
  try:
    with store.atomic_path(path) as tmp:
      with urllib.request.urlopen(url, timeout=timeout) as r, \
          open(tmp, "wb") as f:
        for chunk in iter(lambda: r.read(1 << 20), b""):
          f.write(chunk)
      got = file_digest(tmp, algorithm)
      if got != digest:
        raise errors.DataError(
            f"{url}: {algorithm} {got} != expected {digest}; the server sent "
            "different bytes. Download it by hand and pass its path by flag.")
  except OSError as e:
    raise errors.DataError(
        f"downloading {url} failed ({e}); download it by hand and pass its "
        "path by flag") from e
  return path
