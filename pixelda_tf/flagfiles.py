"""`--flagfile` that works from any folder.

The presets include each other by a path from the repository root
(`configs/mnistm_cpu.flags` holds `--flagfile=configs/mnistm.flags`), which
absl opens relative to the current folder only. `parse` expands every
flagfile itself, as absl does (line by line; blank lines and `#` or `//`
comments skipped; nested files expanded in place, so later flags still win),
but opens a relative path that is not found from the current folder relative
to the folder of the file that names it and then that folder's parents. So
`python -m pixelda_tf.train --flagfile=/path/to/repo/configs/mnistm_cpu.flags`
works from anywhere.

A removed preset (`REMOVED`) named by a path that no longer exists fails
with one line that gives the command replacing it.

Every binary's flag parser: `runner.run(main)` hands `parse` to `app.run`.
"""

from __future__ import annotations

import os
import sys
from typing import List, Optional, Sequence

from absl import flags

_DIRECTIVES = ("--flagfile=", "-flagfile=")
_BARE = ("--flagfile", "-flagfile")   # the path is the next argument

_SMOKE = " --flagfile={d}smoke.flags"
_LONG = "--flagfile={d}mnistm_released_cpu.flags --lr_decay_steps=2000"
_ENTROPY = " --target_entropy_weight=0.1 --refine_start_step=17000"
# Removed preset file name -> the flags that replace it ({d}: the folder it
# was named in). Each replacement expands to the removed file's values; the
# --model_dir keeps an old run folder resumable.
REMOVED = {
    "mnistm_released_cpu_long.flags":
        _LONG + " --max_minutes=140"
        " --model_dir=runs/mnistm_released_cpu_long",
    "mnistm_released_cpu_long_entropy.flags":
        _LONG + " --max_minutes=140" + _ENTROPY +
        " --model_dir=runs/mnistm_released_cpu_long_entropy",
    "mnistm_released_cpu_late_decay_64k.flags":
        "--flagfile={d}mnistm_released_cpu_late_decay.flags"
        " --train_steps=64000 --max_minutes=0"
        " --model_dir=runs/mnistm_released_cpu_late_decay_64k",
    # The smoke siblings: their preset, then the one smoke overlay.
    **{f"{name}_smoke.flags": f"--flagfile={{d}}{name}.flags" + _SMOKE
       for name in ("mnistm", "mnistm_cpu", "mnistm_released_cpu",
                    "mnistm_released_cpu_small_d",
                    "mnistm_released_cpu_late_decay", "usps", "usps_cpu")},
    "mnistm_released_cpu_late_decay_64k_smoke.flags":
        "--flagfile={d}mnistm_released_cpu_late_decay.flags" + _SMOKE,
    "mnistm_released_cpu_long_smoke.flags": _LONG + _SMOKE,
    "mnistm_released_cpu_long_entropy_smoke.flags":
        _LONG + _ENTROPY + _SMOKE,
}


def _path(value: str) -> str:
  """A directive's path as absl reads it: stripped, `~` expanded."""
  return os.path.expanduser(value.strip())


def _resolve(path: str, including: Optional[str]) -> str:
  """`path` as given if it exists (absl's rule), else relative to the
  including file's folder or one of its parents."""
  if os.path.isfile(path) or os.path.isabs(path) or including is None:
    return path
  folder = os.path.dirname(os.path.abspath(including))
  while True:
    candidate = os.path.join(folder, path)
    if os.path.isfile(candidate):
      return candidate
    parent = os.path.dirname(folder)
    if parent == folder:
      return path
    folder = parent


def _lines(path: str, including: Optional[str], stack: List[str]) -> List[str]:
  resolved = _resolve(path, including)
  key = os.path.realpath(resolved)
  if key in stack:
    raise flags.CantOpenFlagFileError(
        f"--flagfile={path} includes itself (through "
        f"{' -> '.join(stack + [key])}); remove the circular --flagfile line")
  try:
    with open(resolved) as f:
      text = f.readlines()
  except OSError as e:
    name = os.path.basename(path)
    if name in REMOVED and not os.path.exists(resolved):
      folder = os.path.dirname(path)
      named = f" (named in {including})" if including else ""
      raise flags.CantOpenFlagFileError(
          f"{path} was removed{named}: use "
          + REMOVED[name].format(d=os.path.join(folder, "") if folder
                                 else "")) from e
    where = ""
    if including and not os.path.isabs(path):
      where = (f" (named in {including}; looked for it from the current "
               f"folder and from {os.path.dirname(os.path.abspath(including))} "
               "and its parents)")
    elif including:
      where = f" (named in {including})"
    raise flags.CantOpenFlagFileError(
        f"cannot open --flagfile={path}{where}: {e.strerror}; give an "
        "existing file's path") from e
  out = []
  for line in text:
    line = line.strip()
    if not line or line.startswith(("#", "//")):
      continue
    if line.startswith(_DIRECTIVES):
      nested = _path(line.split("=", 1)[1])
      if nested:
        out += _lines(nested, resolved, stack + [key])
    else:
      out.append(line)
  return out


def expand(argv: Sequence[str]) -> List[str]:
  """argv (program name first) with every `--flagfile=PATH` (or
  `--flagfile PATH`, `-flagfile...`) before a `--` replaced by the flags it
  holds, recursively."""
  out, rest = [argv[0]], list(argv[1:])
  while rest:
    arg = rest.pop(0)
    if arg == "--":
      out += [arg, *rest]
      break
    if arg in _BARE and rest:
      arg = f"{arg}={rest.pop(0)}"
    if arg.startswith(_DIRECTIVES):
      path = _path(arg.split("=", 1)[1])
      if path:
        out += _lines(path, None, [])
    else:
      out.append(arg)
  return out


def parse(argv: Sequence[str]) -> List[str]:
  """absl's parsing of `expand(argv)`, with a flag error (an unknown flag, a
  bad value, a flagfile that is missing or removed) as one line on stderr,
  `error: ...`, and exit status 1, as every other mistake is reported."""
  try:
    return flags.FLAGS(expand(argv))
  except flags.Error as e:
    sys.stderr.write(f"error: {e} (--helpfull lists every flag)\n")
    sys.exit(1)
