r"""The label-free scores against the truth: how well each one tracks target
accuracy, over the checkpoints of a run and over runs of several settings.

  python benchmarks/label_free.py --out=benchmarks/results/label_free/F.json \
      --run=DOMAIN:NAME=RUN_DIR [--run=...] [--sweep=DOMAIN]

Trains nothing. Each RUN_DIR is a finished training run whose target has
labelled validation and test images (labels are used here only to score):
its history.json holds, at every evaluation, the held-out test accuracy
beside every `score/*` (pixelda_tf.validators). For each run it reports:

  - the Spearman correlation of each score with test accuracy over the run's
    evaluations, and over their later half;
  - the test accuracy of the checkpoint each score would keep
    (--select_checkpoint=SCORE keeps the highest), of the latest, of the one
    validation accuracy keeps, and of the best (the oracle).

With --sweep=DOMAIN, the runs of that domain are taken as settings to choose
between (presets, loss weights, seeds): the Spearman correlation of each
score of each run's latest evaluation with its test accuracy, and the test
accuracy of the run each score ranks first, against the best run.
"""

from __future__ import annotations

import collections
import json
import os
import sys
from typing import Dict, List

# The checkout this script is in, before an installed pixelda_tf.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# pylint: disable=g-import-not-at-top,wrong-import-position
from absl import app
from absl import flags
import numpy as np

from pixelda_tf import validators

import result_fields

RUN = flags.DEFINE_multi_string(
    "run", [], "DOMAIN:NAME=RUN_DIR, a finished run with labelled target "
    "validation and test images.")
SWEEP = flags.DEFINE_list(
    "sweep", [], "Domains whose runs are also compared as settings.")
OUT = flags.DEFINE_string("out", None, "Write the report here (JSON).")

# What picks a checkpoint: the history key, as --select_checkpoint names it.
CHOICES = {"latest": None, "val_accuracy": "val_accuracy",
           **{name: f"score/{name}" for name in validators.SCORES}}


def ranks(values) -> np.ndarray:
  """1-based ranks, ties given their mean rank."""
  values = np.asarray(values, np.float64)
  order = np.argsort(values, kind="stable")
  out = np.empty(len(values))
  out[order] = np.arange(1, len(values) + 1)
  for v in np.unique(values):
    tied = values == v
    out[tied] = out[tied].mean()
  return out


def spearman(a, b) -> float | None:
  """Spearman's rank correlation (None when either side is constant)."""
  ra, rb = ranks(a), ranks(b)
  if ra.std() == 0 or rb.std() == 0:
    return None
  return float(np.corrcoef(ra, rb)[0, 1])


def pick(history: List[Dict], key: str | None) -> Dict:
  """The evaluation a choice keeps: the latest, or the first that has the
  highest value of `key` (as RunDir.record_evaluation keeps it)."""
  if key is None:
    return history[-1]
  scored = [h for h in history if h.get(key) is not None]
  return max(scored, key=lambda h: h[key]) if scored else history[-1]


def run_report(history: List[Dict]) -> Dict:
  """One run: each choice's kept step and test accuracy, and each score's
  Spearman correlation with test accuracy over the evaluations."""
  acc = [h["test_accuracy"] for h in history]
  oracle = max(acc)
  out = {"evaluations": len(history), "oracle": oracle,
         "latest": history[-1]["test_accuracy"], "choices": {}}
  for name, key in CHOICES.items():
    if key is not None and all(h.get(key) is None for h in history):
      continue
    kept = pick(history, key)
    row = {"step": kept["step"], "test_accuracy": kept["test_accuracy"],
           "below_oracle": oracle - kept["test_accuracy"],
           "below_latest": out["latest"] - kept["test_accuracy"]}
    if key is not None and key != "val_accuracy":
      values = [h[key] for h in history]
      row["spearman"] = spearman(values, acc)
      # Over the later half alone, where a choice is made (early
      # checkpoints are worse by every measure).
      late = len(history) // 2
      row["spearman_late"] = spearman(values[late:], acc[late:])
    out["choices"][name] = row
  return out


def sweep_report(runs: Dict[str, List[Dict]]) -> Dict:
  """Runs of one domain as settings: each score of each run's latest
  evaluation against its test accuracy."""
  names = sorted(runs)
  acc = [runs[n][-1]["test_accuracy"] for n in names]
  best = max(acc)
  out = {"runs": dict(zip(names, acc)), "best_run": names[int(np.argmax(acc))],
         "best": best, "choices": {}}
  for name, key in CHOICES.items():
    if key is None or any(runs[n][-1].get(key) is None for n in names):
      continue
    values = [runs[n][-1][key] for n in names]
    first = names[int(np.argmax(values))]
    out["choices"][name] = {
        "spearman": spearman(values, acc), "picks": first,
        "test_accuracy": runs[first][-1]["test_accuracy"],
        "below_best": best - runs[first][-1]["test_accuracy"]}
  return out


def read(spec: str):
  """DOMAIN:NAME=RUN_DIR -> (domain, name, history, command)."""
  try:
    label, path = spec.split("=", 1)
    domain, name = label.split(":", 1)
  except ValueError:
    raise app.UsageError(f"--run={spec}: give DOMAIN:NAME=RUN_DIR") from None
  with open(os.path.join(path, "history.json")) as f:
    history = json.load(f)
  if not history or any(h.get("test_accuracy") is None for h in history):
    raise app.UsageError(f"--run={spec}: {path}/history.json has no labelled "
                         "test accuracy at every evaluation")
  with open(os.path.join(path, "results.json")) as f:
    results = json.load(f)
  split = results["data_sources"]["target/test"]
  run = {"code": results["code"], "command": None}
  if os.path.exists(os.path.join(path, "command.txt")):
    # benchmarks/label_free_runs.sh writes it beside the run.
    with open(os.path.join(path, "command.txt")) as f:
      run["command"] = f.read().strip()
  return domain, name, history, run, split


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  by_domain = collections.defaultdict(dict)
  report = {"runs": {}, "sweeps": {}}
  # Each run's command, code version and history (what every figure is
  # computed from), written beside the report (<out>_runs.json): the report
  # holds only the figures the docs cite.
  trained = {}
  splits = []
  for spec in RUN.value:
    domain, name, history, run, split = read(spec)
    by_domain[domain][name] = history
    report["runs"][f"{domain}:{name}"] = run_report(history)
    trained[f"{domain}:{name}"] = {**run, "history": history}
    if split not in splits:
      splits.append(split)
  for domain in SWEEP.value:
    report["sweeps"][domain] = sweep_report(by_domain[domain])
  print(f"{'run':34s} {'choice':24s} {'step':>5s} {'acc':>6s} "
        f"{'-oracle':>7s} {'-latest':>7s} {'rho':>6s} {'late':>6s}")
  for run, r in report["runs"].items():
    for name, c in r["choices"].items():
      rhos = " ".join("" if c.get(k) is None else f"{c[k]:6.2f}"
                      for k in ("spearman", "spearman_late"))
      print(f"{run:34s} {name:24s} {c['step']:5d} "
            f"{100 * c['test_accuracy']:6.2f} {100 * c['below_oracle']:7.2f} "
            f"{100 * c['below_latest']:7.2f} {rhos}")
  for domain, s in report["sweeps"].items():
    print(f"\nsweep {domain}: best run {s['best_run']} "
          f"{100 * s['best']:.2f}%")
    for name, c in s["choices"].items():
      rho = c["spearman"]
      print(f"  {name:24s} picks {c['picks']:20s} "
            f"{100 * c['test_accuracy']:6.2f} (-{100 * c['below_best']:.2f}) "
            f"rho {'n/a' if rho is None else f'{rho:.2f}'}")
  if OUT.value:
    facts = result_fields.fields("; ".join(map(str, splits)))
    os.makedirs(os.path.dirname(OUT.value) or ".", exist_ok=True)
    with open(OUT.value, "w") as f:
      json.dump({**report, **facts}, f, indent=2)
    with open(OUT.value[:-len(".json")] + "_runs.json", "w") as f:
      json.dump({"runs": trained, **facts}, f, indent=2)
  return 0


if __name__ == "__main__":
  sys.exit(app.run(main))
