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


# CPU features that decide the speed of float32 and 16-bit steps.
CPU_FEATURES = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16",
                "avx512_fp16", "amx_tile", "amx_bf16")


def cpu_info(path: str = "/proc/cpuinfo") -> dict:
  """{model, features (the `CPU_FEATURES` present), flags (all)} of this
  machine's CPU, read without TensorFlow (empty where Linux says nothing)."""
  model, cpu_flags = "unknown", []
  try:
    with open(path) as f:
      for line in f:
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and model == "unknown":
          model = value.strip()
        elif key in ("flags", "Features") and not cpu_flags:
          cpu_flags = value.split()
  except OSError:
    pass
  return dict(model=model, flags=cpu_flags,
              features=[f for f in CPU_FEATURES if f in cpu_flags])
