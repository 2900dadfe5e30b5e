r"""Trains one config under several seeds and reports mean ± std accuracy.

  python -m pixelda_tf.seeds --seeds=0,1,2 --root=runs/seeds -- \
      --flagfile=configs/mnistm_cpu.flags --max_minutes=20

Everything after `--` is passed to `python -m pixelda_tf.train`; each seed
trains in its own process into <root>/seed<N> (rerunning resumes), then
<root>/seeds.json gets every run's target test accuracy and their mean and
standard deviation (the paper's stability claim).
"""

import json
import os
import subprocess
import sys
from typing import Dict, List

from absl import app
from absl import flags
import numpy as np

SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds to train.")
ROOT = flags.DEFINE_string("root", "runs/seeds", "One model_dir per seed "
                           "below this folder.")


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


def main(argv: List[str]) -> int:
  train_args = argv[1:]
  if any(a.startswith(("--seed=", "--model_dir=")) for a in train_args):
    raise app.UsageError("--seed and --model_dir are set per run by this tool")
  results = {}
  for seed in (int(s) for s in SEEDS.value):
    model_dir = os.path.join(ROOT.value, f"seed{seed}")
    cmd = [sys.executable, "-m", "pixelda_tf.train", *train_args,
           f"--seed={seed}", f"--model_dir={model_dir}"]
    print("running:", " ".join(cmd), flush=True)
    if subprocess.run(cmd, check=False).returncode:
      print(f"seed {seed} failed; see its output above", file=sys.stderr)
      return 1
    with open(os.path.join(model_dir, "results.json")) as f:
      results[seed] = json.load(f)
  summary = summarize(results)
  os.makedirs(ROOT.value, exist_ok=True)
  with open(os.path.join(ROOT.value, "seeds.json"), "w") as f:
    json.dump(summary, f, indent=2)
  for key in ("final", "best"):
    if key in summary:
      s = summary[key]
      print(f"{key}: target test accuracy {100 * s['mean']:.2f} ± "
            f"{100 * s['std']:.2f} % over {s['n']} seeds")
  return 0


if __name__ == "__main__":
  app.run(main)
