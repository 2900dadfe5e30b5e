r"""Trains one config under several seeds and reports mean ± std accuracy.

  python -m pixelda_tf.seeds --seeds=0,1,2 --root=runs/seeds -- \
      --flagfile=configs/mnistm_cpu.flags --max_minutes=20

Everything after `--` is passed to `python -m pixelda_tf.train`; each seed
trains in its own process into <root>/seed<N> (rerunning resumes), then
<root>/seeds.json gets every run's target test accuracy and their mean and
standard deviation (the paper's stability claim).
"""

from pixelda_tf import runner

# At import, not in main: TensorFlow reads TF_ENABLE_ONEDNN_OPTS once, when
# it loads, and the imports below load it.
runner.prepare_process()

# pylint: disable=g-import-not-at-top,wrong-import-position,g-bad-import-order
import json
import os
import sys
from typing import List

from absl import app
from absl import flags

from pixelda_tf import errors
from pixelda_tf import provenance
from pixelda_tf import sweeps

SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds to train.")
ROOT = flags.DEFINE_string("root", "runs/seeds", "One model_dir per seed "
                           "below this folder.")


def main(argv: List[str]) -> int:
  train_args = argv[1:]
  if any(a.startswith(("--seed=", "--model_dir=")) for a in train_args):
    raise app.UsageError("--seed and --model_dir are set per run by this tool")
  try:
    seeds = [int(s) for s in SEEDS.value]
  except ValueError as e:
    raise errors.UserError(
        f"--seeds={','.join(SEEDS.value)}: give whole numbers, "
        "comma-separated, e.g. --seeds=0,1,2") from e
  results = {}
  for seed in seeds:
    results[seed] = sweeps.run_train(
        train_args, os.path.join(ROOT.value, f"seed{seed}"), f"--seed={seed}")
    if results[seed] is None:
      print(f"seed {seed} failed; see its output above", file=sys.stderr)
      return 1
  summary = sweeps.summarize(results)
  os.makedirs(ROOT.value, exist_ok=True)
  with open(os.path.join(ROOT.value, "seeds.json"), "w") as f:
    json.dump({**summary, "code": provenance.code_version()}, f, indent=2)
  for key in ("final", "best"):
    if key in summary:
      s = summary[key]
      print(f"{key}: target test accuracy {100 * s['mean']:.2f} ± "
            f"{100 * s['std']:.2f} % over {s['n']} seeds")
  return 0


def run():
  """The console script's entry point (`pixelda-seeds`)."""
  runner.run(main, positional=True)


if __name__ == "__main__":
  run()
