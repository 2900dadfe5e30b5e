"""One trainer per model_dir: a lock held for the run's lifetime.

The lock is an OS lock (`fcntl.flock`) on `<model_dir>/LOCK`, which also
holds the owner's host, PID and start time so a refusal can name them. The
kernel drops the lock when its process dies, even under `kill -9`, so a
stale lock never blocks a rerun; a LOCK file that still names a holder the
kernel no longer locks for is a run that died, and is taken over with a
warning. Read-only tools (evaluate, export, adapt) take no lock: checkpoints
appear atomically (TensorFlow writes the index and the `checkpoint` state
file last), so they never read half a checkpoint.

On NFS, flock is emulated with POSIX locks, which are per process: a
second trainer on another host is still refused, one in the same process is
not. Local folders only otherwise: on object stores (gs://, s3://) and systems without
`fcntl` the run goes on unlocked and says so.
"""

from __future__ import annotations

import datetime
import errno
import json
import os
import socket
from typing import Optional

from absl import logging

from pixelda_tf import errors

try:
  import fcntl  # pylint: disable=g-import-not-at-top
except ImportError:  # Windows
  fcntl = None

LOCK_FILE = "LOCK"


class LockedError(errors.UserError):
  """Another live process trains in this model_dir."""


class RunLock:
  """`with RunLock(model_dir):` holds the model_dir's lock.

  Raises (on entry):
    LockedError: another process holds it; the message names its host, PID
      and start time.
  """

  def __init__(self, model_dir: str):
    self.model_dir = model_dir
    self.path = os.path.join(model_dir, LOCK_FILE)
    self._file = None

  def __enter__(self) -> "RunLock":
    if fcntl is None or "://" in self.model_dir:
      logging.info("no run lock for %s (%s): make sure one trainer at a "
                   "time uses it", self.model_dir,
                   "no fcntl here" if fcntl is None else "not a local folder")
      return self
    f = open(self.path, "a+", encoding="utf-8")  # pylint: disable=consider-using-with
    try:
      fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
      if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
        # A file system without flock (Lustre -o noflock, some FUSE, NFS
        # -o nolock): run unlocked rather than refuse every run.
        f.close()
        logging.warning("no run lock for %s (flock: %s): make sure one "
                        "trainer at a time uses it", self.model_dir, e)
        return self
      holder = _describe(_read(f))
      f.close()
      raise LockedError(
          f"{self.model_dir} is in use by another trainer ({holder}; lock "
          f"{self.path}): wait for it to end, stop it, or use another "
          "--model_dir") from None
    previous = _read(f)
    if previous:
      logging.warning("took over %s from a run that ended without releasing "
                      "it (%s)", self.path, _describe(previous))
    f.seek(0)
    f.truncate()
    json.dump({"host": socket.gethostname(), "pid": os.getpid(),
               "started": datetime.datetime.now().isoformat(
                   timespec="seconds")}, f)
    f.flush()
    self._file = f
    return self

  def __exit__(self, *exc_info) -> bool:
    if self._file is not None:
      # Emptied before unlocking: a LOCK that names a holder is one that
      # died holding it.
      self._file.seek(0)
      self._file.truncate()
      self._file.flush()
      fcntl.flock(self._file, fcntl.LOCK_UN)
      self._file.close()
      self._file = None
    return False


def holder(model_dir: str) -> Optional[str]:
  """Who may be training in `model_dir` now, or None.

  Read from the LOCK file without locking it (a probe that locked, even
  briefly, could refuse a trainer starting at that instant): a LOCK that
  names a holder is a run that has not ended cleanly. On this host the
  holder is checked to be alive (its PID); on another host it cannot be,
  and the answer says so. None for folders that are not local, or have no
  LOCK, an empty one, or one naming a dead process here.
  """
  path = os.path.join(model_dir, LOCK_FILE)
  if fcntl is None or "://" in model_dir:
    return None  # No RunLock there (and os.kill would end a Windows PID).
  try:
    with open(path, "r", encoding="utf-8") as f:
      named = _read(f)
  except OSError:
    return None
  if not named or "unreadable" in named:
    return None
  if named.get("host") != socket.gethostname():
    return _describe(named) + " (another host: not checked)"
  try:
    pid = int(named.get("pid"))
    if pid <= 0:
      return None
    os.kill(pid, 0)  # Signal 0: only asks whether it exists.
  except PermissionError:
    pass  # Alive, another user's.
  except (OSError, TypeError, ValueError):
    return None
  return _describe(named)


def _read(f) -> Optional[dict]:
  f.seek(0)
  text = f.read().strip()
  if not text:
    return None
  try:
    return json.loads(text)
  except ValueError:
    return {"unreadable": text[:80]}


def _describe(holder: Optional[dict]) -> str:
  if not holder:
    return "holder unknown"
  if "unreadable" in holder:
    return f"holder unreadable: {holder['unreadable']!r}"
  return (f"PID {holder.get('pid')} on host {holder.get('host')}, started "
          f"{holder.get('started')}")
