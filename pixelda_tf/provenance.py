"""Which code made a result: every result file records it."""

from __future__ import annotations

import os
import subprocess
from typing import Dict, Optional

import pixelda_tf


def code_version() -> Dict[str, Optional[object]]:
  """The git commit of the pixelda_tf checkout in use, and whether its
  tracked files differ from that commit (`dirty`); both None outside a git
  checkout (e.g. an installed wheel), with the package version always."""
  here = os.path.dirname(os.path.abspath(pixelda_tf.__file__))

  def git(*args) -> Optional[str]:
    try:
      out = subprocess.run(["git", "-C", here, *args], capture_output=True,
                           text=True, check=False, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
      return None
    return out.stdout.strip() if out.returncode == 0 else None

  commit = git("rev-parse", "HEAD")
  status = git("status", "--porcelain", "--untracked-files=no")
  return {"commit": commit, "dirty": None if status is None else bool(status),
          "version": pixelda_tf.__version__}
