r"""Ranks finished runs by a label-free score: which preset, loss weights or
seed suits a target whose images have no labels.

  python -m pixelda_tf.rank runs/a runs/b runs/c [--by=SCORE] [--json=F]

Each run is scored at the checkpoint it kept (results.json's "best", else
its final one) by the `score/*` of that checkpoint's evaluation
(`pixelda_tf.validators`); a run still training is scored at its latest
evaluation in history.json. Runs are printed best first. Where the target
has labelled test images, their accuracy is shown beside the score, never
used to rank. Compare runs on one target only: the scores of two targets
do not compare.
"""

from __future__ import annotations

import json
import os
from typing import Dict, List

from absl import app
from absl import flags

from pixelda_tf import errors
from pixelda_tf import runner
from pixelda_tf import validators

FLAGS = flags.FLAGS


def define_flags() -> None:
  """Defined by the binary only (another tool's --json may be defined in
  the same process, e.g. by the tests)."""
  flags.DEFINE_enum(
      "by", validators.RANK_DEFAULT, list(validators.SCORES),
      "The label-free score to rank by (higher first); the default is the "
      "one that ranked settings best where it was measured (README, "
      "'Without target labels').")
  flags.DEFINE_string("json", None, "Also write the ranking here.")


def _read(path: str, name: str, empty):
  try:
    with open(os.path.join(path, name)) as f:
      return json.load(f)
  except FileNotFoundError:
    return empty
  except ValueError as e:
    raise errors.UserError(f"{os.path.join(path, name)} is not JSON ({e}): "
                           "leave that run out, or restore the file") from e


def kept_evaluation(run_dir: str) -> Dict:
  """A run's kept checkpoint: {"run", "step", "kept", "scores",
  "test_accuracy"} (test accuracy None without labelled test images)."""
  if not os.path.isdir(run_dir):
    raise errors.UserError(f"{run_dir} is not a folder: give training runs' "
                           "--model_dir folders")
  history = _read(run_dir, "history.json", [])
  results = _read(run_dir, "results.json", None)
  if results is not None:
    kept = results.get("best") or results["final"]
    which = (results["best"].get("selection", "val_accuracy")
             if "best" in results else "latest")
    step, accuracy = kept["step"], kept.get("accuracy")
  elif history:
    which, step, accuracy = "latest (still training)", history[-1]["step"], (
        history[-1].get("test_accuracy"))
  else:
    raise errors.UserError(
        f"{run_dir} has no evaluation yet (no results.json or history.json): "
        "train it with --eval_every > 0, or leave it out")
  entry = [h for h in history if h["step"] == step]
  scores = {k: v for k, v in (entry[-1] if entry else {}).items()
            if k.startswith("score/")}
  return {"run": run_dir, "step": step, "kept": which, "scores": scores,
          "test_accuracy": accuracy}


def rank(run_dirs: List[str], by: str) -> List[Dict]:
  """The runs' kept evaluations, highest `score/<by>` first.

  Raises:
    UserError: a run has no such score at its kept checkpoint (it kept a
      step it did not evaluate, or it is a baseline without G's scores).
  """
  rows = [kept_evaluation(d) for d in run_dirs]
  for r in rows:
    if f"score/{by}" not in r["scores"]:
      raise errors.UserError(
          f"{r['run']}: its kept checkpoint (step {r['step']}) has no "
          f"score/{by} (no evaluation at that step, or a baseline without "
          "G's scores); rank by another --by, or leave it out")
  return sorted(rows, key=lambda r: -r["scores"][f"score/{by}"])


def main(argv: List[str]) -> int:
  if len(argv) < 3:
    raise app.UsageError("give two or more run folders, e.g. "
                         "`python -m pixelda_tf.rank runs/a runs/b`")
  rows = rank(argv[1:], FLAGS.by)
  width = max(10, len(FLAGS.by))
  print(f"{'#':>2s}  {FLAGS.by:>{width}s}  {'step':>6s}  {'test acc':>8s}  run")
  for i, r in enumerate(rows, 1):
    acc = r["test_accuracy"]
    print(f"{i:2d}  {r['scores'][f'score/{FLAGS.by}']:{width}.4f}  "
          f"{r['step']:6d}  {'-' if acc is None else f'{100 * acc:.2f}%':>8s}"
          f"  {r['run']} (kept by {r['kept']})")
  if FLAGS.json:
    with open(FLAGS.json, "w") as f:
      json.dump({"by": FLAGS.by, "runs": rows}, f, indent=2)
  return 0


def run():
  """The console script's entry point (`pixelda-rank`)."""
  define_flags()
  runner.run(main, positional=True)


if __name__ == "__main__":
  run()
