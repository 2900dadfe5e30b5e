r"""Does a generator serve classes it never saw? (issue 48)

  python benchmarks/unseen_classes.py --root=runs/unseen --seeds=0,1,2 \
      [--seen=0,1,2,3,4] [--reverse] [--train_steps=N] [--arch=small_resnet] \
      [--epochs=5] [--dry_run] -- \
      --flagfile=configs/mnistm_released_cpu.flags --mnist_dir=PATH \
      --mnist_m_dir=PATH [other data flags]

For each seed, with A = --seen and B = the other digits (--reverse swaps
them), as subprocesses (everything after `--` goes to every training run):

  (a) train G and T on the classes A only (`--classes=A`);
  (b) adapt all ten classes with (a)'s G (`pixelda_tf.adapt --classes=0..9`:
      B are classes G never saw) and train a fresh classifier on them
      (`pixelda_tf.classify --arch`);
  (c) the floor: the same classifier trained on the source images themselves
      (`pixelda_tf.adapt --identity`, the same files and pipeline, no G);
  (d) the ceiling: the same pipeline with a G trained on all ten classes.

Each classifier is tested once on the target test split of all ten classes;
its accuracy on B (and on A) is read from that test's confusion matrix: the
rows of B are exactly the target test split restricted to B (`--classes`
restricts after the all-class slices are drawn), what
`pixelda_tf.classify --classes=B` would score. Reports, per seed and as mean
± sample std, the accuracies, T trained beside G ((a)'s on A, `T_on_A`;
(d)'s on all, `T_on_all`; from their runs' results.json), (b) - (c) and
(b) - (d) on B, and the share of the floor-to-ceiling gap on B that (b)
closes, (b - c) / (d - c). Writes <root>/unseen_classes.json (or --out)
with the machine, commit, command and test split. Rerunning resumes:
finished runs, adapted sets and classifier results are kept, and a
--reverse run given the same --root trains only its own (a).
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from typing import Dict, List, Optional, Sequence

# The checkout this script is in, before an installed pixelda_tf: its runs
# (sweeps.child_env) and the recorded provenance are then this checkout's.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# pylint: disable=g-import-not-at-top,wrong-import-position
from absl import app
from absl import flags
import numpy as np

from pixelda_tf import sweeps

import result_fields

ALL = tuple(range(10))
ROOT = flags.DEFINE_string("root", "runs/unseen_classes", "Where runs land.")
SEEDS = flags.DEFINE_list("seeds", ["0"], "Training seeds (each: two runs "
                          "and three classifiers).")
SEEN = flags.DEFINE_list("seen", ["0", "1", "2", "3", "4"],
                         "Classes A that G and T train on in (a); the "
                         "others are B, the unseen ones.")
REVERSE = flags.DEFINE_bool("reverse", False, "Swap A and B (with the "
                            "default --seen: train on 5-9, test on 0-4).")
TRAIN_STEPS = flags.DEFINE_integer("train_steps", None, "Training steps of "
                                   "(a) and (d) (default: the flagfile's).")
ARCH = flags.DEFINE_string("arch", "small_resnet", "Fresh classifier "
                           "(pixelda_tf.classify --arch).")
EPOCHS = flags.DEFINE_integer("epochs", 5, "Classifier epochs.")
MAX_IMAGES = flags.DEFINE_integer("max_images", 0, "Adapt only the first N "
                                  "source train images (0 = all).")
OUT = flags.DEFINE_string("out", None, "Result file (default "
                          "<root>/unseen_classes.json).")
DRY_RUN = flags.DEFINE_bool("dry_run", False, "Print the commands; run "
                            "nothing.")


def split_classes(seen: Sequence[str], reverse: bool):
  """(A, B): the seen classes and the rest of 0-9, swapped with `reverse`.

  Raises:
    app.UsageError: an id outside 0-9, or A or B with fewer than 2 classes.
  """
  try:
    a = sorted({int(c) for c in seen})
  except ValueError:
    raise app.UsageError(f"--seen={','.join(seen)}: give digits, e.g. "
                         "0,1,2,3,4") from None
  b = [c for c in ALL if c not in a]
  if any(c not in ALL for c in a) or len(a) < 2 or len(b) < 2:
    raise app.UsageError(f"--seen={','.join(seen)}: give 2 to 8 distinct "
                         "digits of 0-9, e.g. 0,1,2,3,4")
  return (b, a) if reverse else (a, b)


def ids(classes: Sequence[int]) -> str:
  return ",".join(map(str, classes))


def plan(root: str, seed: int, a: List[int], train_args: List[str],
         train_steps: Optional[int], arch: str, epochs: int,
         max_images: int) -> Dict[str, List[List[str]]]:
  """The commands of one seed, by arm: `subset` (a, b), `all` (d) and
  `source` (c); each is its runs' training, adapting and classifying, in
  order. Paths: <root>/seed<seed>/<folder>/{run,adapted,classify.json},
  the folder `seen<A's digits>` for (a, b) and the arm's name for (c) and
  (d), which do not depend on A: a --reverse run in the same root reuses
  them."""
  py = [sys.executable, "-m"]
  budget = [f"--train_steps={train_steps}"] if train_steps else []
  here = os.path.join(root, f"seed{seed}")
  every = f"--classes={ids(ALL)}"

  folder = {"subset": f"seen{''.join(map(str, a))}", "all": "all",
            "source": "source"}

  def run_dir(arm):
    return os.path.join(here, folder[arm], "run")

  def train(arm, extra):
    return py + ["pixelda_tf.train", *train_args, *budget, *extra,
                 f"--seed={seed}", f"--model_dir={run_dir(arm)}"]

  def adapt_and_classify(arm, model_dir, extra=()):
    adapted = os.path.join(here, folder[arm], "adapted")
    return [py + ["pixelda_tf.adapt", f"--model_dir={model_dir}",
                  f"--out={adapted}", every, f"--seed={seed}",
                  f"--max_images={max_images}", *extra],
            py + ["pixelda_tf.classify", f"--train_dir={adapted}",
                  f"--arch={arch}", f"--epochs={epochs}", every,
                  f"--seed={seed}",
                  f"--out={os.path.join(here, folder[arm], 'classify.json')}"]]

  return {
      "subset": [train("subset", [f"--classes={ids(a)}"]),
                 *adapt_and_classify("subset", run_dir("subset"))],
      "all": [train("all", []), *adapt_and_classify("all", run_dir("all"))],
      # The floor takes its data settings from (d)'s run (adapt's --classes
      # covers every class either way); no G is read.
      "source": adapt_and_classify("source", run_dir("all"), ["--identity"]),
  }


def _output_of(cmd: List[str]) -> str:
  """What a step writes: an adapted set, a classifier result, or a
  training run's results.json."""
  if cmd[2] == "pixelda_tf.train":
    model_dir = next(c for c in cmd if c.startswith("--model_dir="))
    return os.path.join(model_dir[len("--model_dir="):], "results.json")
  return next(c[len("--out="):] for c in cmd if c.startswith("--out="))


def finished(cmd: List[str]) -> bool:
  """Whether a rerun skips the step: its output exists and, for training,
  does not say a signal interrupted the run (a rerun resumes that one)."""
  out = _output_of(cmd)
  if not os.path.exists(out):
    return False
  if cmd[2] != "pixelda_tf.train":
    return True
  with open(out) as f:
    return not json.load(f).get("interrupted")


def execute(cmd: List[str]) -> None:
  """Runs one step on this checkout's pixelda_tf, unless its output exists.

  Raises:
    SystemExit: the step failed (its output above says why).
  """
  if finished(cmd):
    print("done already:", _output_of(cmd), flush=True)
    return
  print("running:", shlex.join(cmd), flush=True)
  code = sweeps.run_passing_signals(cmd, env=sweeps.child_env())
  if code:
    raise SystemExit(f"failed ({code}): {shlex.join(cmd)}")


def accuracy_on(confusion: np.ndarray, classes: Sequence[int]) -> float:
  """Accuracy on the test images of `classes` only, from a confusion matrix
  (rows true, columns predicted; (C, C)): a prediction of any other class,
  among all C, is an error."""
  rows = confusion[list(classes)]
  return float(np.trace(confusion[np.ix_(classes, classes)]) / rows.sum())


def scores(result: Dict, a: List[int], b: List[int]) -> Dict[str, float]:
  """A classify result's accuracy on B, on A and on all classes."""
  confusion = np.asarray(result["confusion_matrix"])
  return {"unseen_B": accuracy_on(confusion, b),
          "seen_A": accuracy_on(confusion, a), "all": result["accuracy"]}


def gap_closed(subset: float, floor: float, ceiling: float
               ) -> Optional[float]:
  """(b - c) / (d - c): the share of the floor-to-ceiling gap that (b)
  closes; None when the ceiling does not beat the floor (no gap)."""
  return (subset - floor) / (ceiling - floor) if ceiling > floor else None


def summarize(per_seed: Dict[str, Dict]) -> Dict:
  """Mean ± std over seeds of every arm's accuracies and of each single
  figure (gap_closed_B, T_on_A, ...)."""
  first = next(iter(per_seed.values()))
  return {key: ({k: sweeps.mean_std([s[key][k] for s in per_seed.values()])
                 for k in value} if isinstance(value, dict) else
                sweeps.mean_std([s[key] for s in per_seed.values()]))
          for key, value in first.items()}


def main(argv):
  train_args = argv[1:]
  a, b = split_classes(SEEN.value, REVERSE.value)
  root = ROOT.value
  per_seed, test_split = {}, None
  for seed in (int(s) for s in SEEDS.value):
    steps = plan(root, seed, a, train_args, TRAIN_STEPS.value, ARCH.value,
                 EPOCHS.value, MAX_IMAGES.value)
    for cmd in (c for arm in steps.values() for c in arm):
      if DRY_RUN.value:
        print(shlex.join(cmd))
      else:
        execute(cmd)
    if DRY_RUN.value:
      continue
    row = {}
    for arm, cmds in steps.items():
      with open(_output_of(cmds[-1])) as f:
        result = json.load(f)
      row[arm] = scores(result, a, b)
      test_split = (f"{result['target_origin']} ({result['num_examples']} "
                    "images; B and A: its rows of those classes)")
    row["gap_closed_B"] = gap_closed(row["subset"]["unseen_B"],
                                     row["source"]["unseen_B"],
                                     row["all"]["unseen_B"])
    # The gap's ends in points on B, steadier than their ratio when the
    # ceiling lies near the floor: (b) - (c) and (b) - (d).
    row["over_floor_B"] = (row["subset"]["unseen_B"] -
                           row["source"]["unseen_B"])
    row["over_ceiling_B"] = row["subset"]["unseen_B"] - row["all"]["unseen_B"]
    # T trained beside G: (a)'s on A, (d)'s on all classes.
    for key, arm in (("T_on_A", "subset"), ("T_on_all", "all")):
      with open(_output_of(steps[arm][0])) as f:  # the arm's training run
        row[key] = json.load(f)["final"]["accuracy"]
    per_seed[str(seed)] = row
    print(json.dumps({"seed": seed, **row}), flush=True)
  if DRY_RUN.value:
    return 0
  out = {"seen_A": a, "unseen_B": b, "arch": ARCH.value,
         "epochs": EPOCHS.value, "train_steps": TRAIN_STEPS.value,
         "arms": {"T_on_A": "(a) T trained beside G on A, tested on A",
                  "T_on_all": "(d)'s T, trained beside G on all classes, "
                              "tested on all",
                  "over_floor_B": "(b) - (c) on B",
                  "over_ceiling_B": "(b) - (d) on B",
                  "subset": "(b) G trained on A, adapting 0-9",
                  "source": "(c) floor: source images, no G",
                  "all": "(d) ceiling: G trained on 0-9"},
         "seeds": per_seed, "summary": summarize(per_seed),
         **result_fields.fields(test_split)}
  path = OUT.value or os.path.join(root, "unseen_classes.json")
  with open(path, "w") as f:
    json.dump(out, f, indent=2)
  print(json.dumps({"summary": out["summary"], "out": path}))
  return 0


if __name__ == "__main__":
  app.run(main)
