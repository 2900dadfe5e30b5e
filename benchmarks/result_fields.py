"""The facts every result file under benchmarks/results/ carries.

Each script here that writes a result file adds `fields(test_split)` to it:
the machine (`cpu`), the git commit of the code (`code_version`), the exact
command line (`command`) and which images it scored on (`test_split`), so a
reader can trust and rerun it (tests/test_results_cited.py checks the stored
files have them).
"""

from __future__ import annotations

import os
import shlex
import sys
from typing import Dict, List, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The CPU features that decide speed and precision here (as /proc/cpuinfo
# spells them) and how a reader knows them.
_FEATURES = (("avx512f", "AVX-512"), ("avx512_bf16", "AVX512_BF16"),
             ("amx_tile", "AMX"), ("avx2", "AVX2"))


def cpu(path: str = "/proc/cpuinfo") -> str:
  """This machine's CPU in words, e.g. "Intel(R) Xeon(R) Platinum 8481C CPU
  @ 2.70GHz (AVX-512, AVX512_BF16, AMX), 2 cores"; "unknown" where Linux
  says nothing."""
  from pixelda_tf import provenance  # pylint: disable=g-import-not-at-top
  info = provenance.cpu_info(path)
  features = [name for flag, name in _FEATURES if flag in info["flags"]]
  if "AVX-512" in features:  # AVX2 goes without saying
    features = [f for f in features if f != "AVX2"]
  shown = f" ({', '.join(features)})" if features else ""
  return f"{info['model']}{shown}, {os.cpu_count()} cores"


def code_version() -> str:
  """The commit of this checkout, "+ uncommitted changes" when its tracked
  files differ, or the package version outside a git checkout."""
  from pixelda_tf import provenance  # pylint: disable=g-import-not-at-top
  code = provenance.code_version()
  if not code.get("commit"):
    return f"pixelda_tf {code.get('version')} (not a git checkout)"
  return code["commit"] + (" + uncommitted changes" if code.get("dirty")
                           else "")


# Environment variables that change which kernels run: a command names them.
# (Not TF_ENABLE_ONEDNN_OPTS: the binaries set it themselves.)
KERNEL_ENV = ("ONEDNN_MAX_CPU_ISA", "XLA_FLAGS")


def command(argv: Optional[List[str]] = None) -> str:
  """The command line that ran, from the repository root, after the
  `KERNEL_ENV` variables set: e.g. "ONEDNN_MAX_CPU_ISA=AVX2 python
  benchmarks/faults.py --runs=8 -- --flagfile=...". """
  argv = list(sys.argv if argv is None else argv)
  script = argv[0]
  if os.path.isabs(script) and script.startswith(ROOT + os.sep):
    script = os.path.relpath(script, ROOT)
  env = [f"{name}={shlex.quote(os.environ[name])} " for name in KERNEL_ENV
         if name in os.environ]
  if script.endswith(".py"):
    return "".join(env) + shlex.join(["python", script] + argv[1:])
  return "".join(env) + shlex.join([script] + argv[1:])


def fields(test_split: str) -> Dict[str, str]:
  """{cpu, code_version, command, test_split} of the running script."""
  return {"cpu": cpu(), "code_version": code_version(), "command": command(),
          "test_split": test_split}


def run_test_split(model_dir: str, count: Optional[int] = None) -> str:
  """The target test split of a finished run, as its results.json names it
  (e.g. "... test = 5000 images held out of train, stratified, data seed
  0"), with `count` images when given."""
  import json  # pylint: disable=g-import-not-at-top
  try:
    with open(os.path.join(model_dir, "results.json")) as f:
      named = json.load(f).get("data_sources", {}).get("target/test")
  except (OSError, ValueError):
    named = None
  named = named or f"the target test split of the run in {model_dir}"
  return named + (f" ({count} images)" if count is not None else "")
