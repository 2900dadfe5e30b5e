"""Runs the train binary once per setting: what `pixelda_tf.seeds` and
`benchmarks/accuracy.py` sweep with. Flag-free and TensorFlow-free, so a
driver stays small while its runs train."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Dict, List, Optional

import numpy as np


def run_train(train_args: List[str], model_dir: str,
              *extra: str) -> Optional[Dict]:
  """`python -m pixelda_tf.train` with train_args, then extra, then
  --model_dir (rerunning resumes); returns its results.json, or None when
  the run failed (its output, above, says why)."""
  cmd = [sys.executable, "-m", "pixelda_tf.train", *train_args, *extra,
         f"--model_dir={model_dir}"]
  print("running:", " ".join(cmd), flush=True)
  if subprocess.run(cmd, check=False).returncode:
    return None
  with open(os.path.join(model_dir, "results.json")) as f:
    return json.load(f)


def summarize(results: Dict[int, dict]) -> dict:
  """Mean and sample std (n - 1) of final and best-validation test accuracy.

  Args:
    results: seed -> the run's results.json content.
  """
  out = {"runs": {}}
  for key in ("final", "best"):
    accs = [r[key]["accuracy"] for r in results.values() if key in r]
    if accs:
      std = float(np.std(accs, ddof=1)) if len(accs) > 1 else 0.0
      out[key] = {"mean": float(np.mean(accs)), "std": std, "n": len(accs)}
  for seed, r in sorted(results.items()):
    out["runs"][str(seed)] = {
        "final": r["final"]["accuracy"],
        "best": r.get("best", {}).get("accuracy"),
        "steps": r["steps"], "minutes": r["wall_time_s"] / 60,
        "target": r["data_sources"].get("target/test")}
  return out
