"""Runs the train binary once per setting: what `pixelda_tf.seeds` and
`benchmarks/accuracy.py` sweep with. Flag-free and TensorFlow-free, so a
driver stays small while its runs train."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from typing import Dict, List, Optional, Sequence

import numpy as np


def child_env() -> Dict[str, str]:
  """This environment, with the folder holding the pixelda_tf this process
  imported first on PYTHONPATH, and (Python 3.11+) PYTHONSAFEPATH set so
  that `python -m` does not put the working folder ahead of it: a
  `python -m pixelda_tf...` child then runs the same code that the driver
  records as the result's provenance, not a copy in its working folder or
  an installed package. On Python 3.10 a pixelda_tf in the working folder
  still comes first."""
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  path = os.environ.get("PYTHONPATH")
  return {**os.environ, "PYTHONSAFEPATH": "1",
          "PYTHONPATH": root + (os.pathsep + path if path else "")}


def run_train(train_args: List[str], model_dir: str,
              *extra: str) -> Optional[Dict]:
  """`python -m pixelda_tf.train` with train_args, then extra, then
  --model_dir (rerunning resumes), on this process's pixelda_tf
  (`child_env`); returns its results.json, or None when the run failed
  (its output, above, says why)."""
  cmd = [sys.executable, "-m", "pixelda_tf.train", *train_args, *extra,
         f"--model_dir={model_dir}"]
  print("running:", " ".join(cmd), flush=True)
  if run_passing_signals(cmd, env=child_env()):
    return None
  with open(os.path.join(model_dir, "results.json")) as f:
    return json.load(f)


def run_passing_signals(cmd: List[str],
                        env: Optional[Dict[str, str]] = None) -> int:
  """Runs cmd and returns its exit code. SIGINT or SIGTERM sent to this
  process (a `kill` of the driver, a preempted job) is passed on to the
  run, which saves a checkpoint and stops; then the sweep stops too
  (SystemExit 128 + the signal) instead of starting the next run. Without
  this, a killed driver would leave its run training on its own. A run
  that gets a signal twice (Ctrl-C reaches the whole process group, then
  this passes it on) keeps the first: train ignores the rest.

  Signal handlers can only be set in the main thread; elsewhere cmd just
  runs.
  """
  if threading.current_thread() is not threading.main_thread():
    return subprocess.run(cmd, check=False, env=env).returncode
  received, proc = [], None

  def pass_on(signum, unused_frame):
    received.append(signum)
    if proc is not None:
      proc.send_signal(signum)

  previous = {s: signal.signal(s, pass_on)
              for s in (signal.SIGINT, signal.SIGTERM)}
  try:
    proc = subprocess.Popen(cmd, env=env)
    if received:  # Arrived before proc was set.
      proc.send_signal(received[0])
    code = proc.wait()
  finally:
    for s, handler in previous.items():
      signal.signal(s, handler)
  if received:
    print(f"{signal.Signals(received[0]).name}: passed on to the run (pid "
          f"{proc.pid}), which exited with {code}; rerun the same command "
          "to resume", file=sys.stderr, flush=True)
    raise SystemExit(128 + received[0])
  return code


def mean_std(values: Sequence[Optional[float]]) -> Dict:
  """Mean and sample std (n - 1; 0 for one value) of the values that are
  not None, and how many there were (mean and std None for none)."""
  v = [x for x in values if x is not None]
  if not v:
    return {"mean": None, "std": None, "n": 0}
  return {"mean": float(np.mean(v)),
          "std": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0, "n": len(v)}


def summarize(results: Dict[int, dict]) -> dict:
  """Mean and sample std (n - 1) of final and best-validation test accuracy.

  Args:
    results: seed -> the run's results.json content.
  """
  out = {"runs": {}}
  for key in ("final", "best"):
    accs = [r[key]["accuracy"] for r in results.values() if key in r]
    if accs:
      out[key] = mean_std(accs)
  for seed, r in sorted(results.items()):
    out["runs"][str(seed)] = {
        "final": r["final"]["accuracy"],
        "best": r.get("best", {}).get("accuracy"),
        "steps": r["steps"], "minutes": r["wall_time_s"] / 60,
        "target": r["data_sources"].get("target/test")}
  return out
