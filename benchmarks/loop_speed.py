r"""Training-loop speed of two checkouts, side by side, alternating.

  python benchmarks/loop_speed.py --trees=OLD,NEW [--pairs=3] \
      [--json=benchmarks/results/restructure/NAME.json] -- \
      --flagfile=configs/mnistm_released_cpu.flags --mnist_m_dir=PATH \
      --train_steps=400 --max_minutes=0

Trains the same command in each checkout (`python -m pixelda_tf.train`
with the checkout as the working folder and first on PYTHONPATH, a fresh
--model_dir each time), alternating OLD, NEW, NEW, OLD, OLD, NEW, ... so that
a drift of the machine weighs on both alike, and prints each run's steps per
training minute (results.json's steps over its wall_time_s, which counts
the loop with its evaluations and checkpoints, not the start-up and data
load) and each checkout's mean and sample std. Give a step budget: the
runs then do the same work. Timings need the machine to themselves.
"""

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

# pylint: disable=g-import-not-at-top,wrong-import-position
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from absl import app
from absl import flags

import result_fields

TREES = flags.DEFINE_list("trees", None, "Two checkouts: OLD,NEW.")
PAIRS = flags.DEFINE_integer("pairs", 3, "Runs of each checkout.")
JSON = flags.DEFINE_string("json", None, "Also write the runs here.")


def _order(pairs: int) -> list:
  """0, 1, 1, 0, 0, 1, ...: each checkout first in every other pair."""
  return [i if p % 2 == 0 else 1 - i for p in range(pairs) for i in (0, 1)]


def _train(tree: str, args: list, model_dir: str) -> dict:
  env = {**os.environ, "PYTHONPATH": tree}
  subprocess.run([sys.executable, "-m", "pixelda_tf.train", *args,
                  f"--model_dir={model_dir}"], cwd=tree, env=env, check=True,
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  with open(os.path.join(model_dir, "results.json")) as f:
    results = json.load(f)
  return {"steps": results["steps"], "wall_time_s": results["wall_time_s"],
          "steps_per_minute": 60 * results["steps"] / results["wall_time_s"],
          "code": results.get("code"),
          "weights_sha256": results.get("weights_sha256")}


def main(argv):
  if not TREES.value or len(TREES.value) != 2:
    raise app.UsageError("--trees=OLD,NEW: give two checkouts")
  trees = [os.path.abspath(t) for t in TREES.value]
  args, runs = argv[1:], []
  scratch = tempfile.mkdtemp(prefix="pixelda_loop_speed_")
  try:
    for n, which in enumerate(_order(PAIRS.value)):
      run = {"tree": trees[which], "order": n,
             **_train(trees[which], args, os.path.join(scratch, str(n)))}
      runs.append(run)
      print(f"{n}: {trees[which]}: {run['steps_per_minute']:.1f} steps/min")
  finally:
    shutil.rmtree(scratch, ignore_errors=True)
  summary = []
  for tree in trees:
    speeds = [r["steps_per_minute"] for r in runs if r["tree"] == tree]
    summary.append({"tree": tree, "mean": statistics.mean(speeds),
                    "std": statistics.stdev(speeds) if len(speeds) > 1
                    else None, "runs": len(speeds)})
    print(f"{tree}: {summary[-1]['mean']:.1f} steps/min mean over "
          f"{len(speeds)} runs")
  print(f"new / old: {summary[1]['mean'] / summary[0]['mean']:.3f}")
  if JSON.value:
    out = {"runs": runs, "summary": summary,
           "new_over_old": summary[1]["mean"] / summary[0]["mean"],
           **result_fields.fields("none: speed only, no test split scored")}
    with open(JSON.value, "w") as f:
      json.dump(out, f, indent=2)
  return 0


if __name__ == "__main__":
  app.run(main)
