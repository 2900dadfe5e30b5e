r"""Accuracy experiments: PixelDA and its baselines under one budget.

  python benchmarks/accuracy.py --name=mnistm_cpu --root=runs/bench \
      --modes=pixelda,source_only,target_only -- \
      --flagfile=configs/mnistm_cpu.flags --bsds_dir=PATH

Trains each mode (everything after `--` goes to `python -m pixelda_tf.train`)
into <root>/<name>/<mode> (rerunning resumes), then prints a table of target
test accuracy, writes <root>/<name>/accuracy.json and plots target test
accuracy against training minutes to <root>/<name>/accuracy_vs_time.png
(needs matplotlib: `pip install -e '.[bench]'`). accuracy.json records the
machine, the commit, the command and the test split; it is stored as
benchmarks/results/FOLDER/<name>.json (FOLDER: the benchmark, e.g.
released_mnistm), with <name>_accuracy_vs_time.png and the run's history.json
as <name>_history.json beside it.

  python benchmarks/accuracy.py --history=RUN/history.json
  python benchmarks/accuracy.py --summarize=A/results.json,B.json,... \
      [--summary_json=benchmarks/results/FOLDER/NAME_seeds.json]
  python benchmarks/accuracy.py --interval=0.9894,5000
  python benchmarks/accuracy.py --compare=A/history.json,B/history.json \
      [--compare_from=STEP]

train nothing: the first prints a finished run's curve statistics (minutes
to 95%, the swing of its last third), the second the mean and sample std of
several runs' final and best-validation accuracy and minutes to 95% (e.g.
one per seed; each run's results.json or a file this script wrote), the
third the 95% interval of an accuracy measured on N images (how far a
figure on the held-out slice may sit from the accuracy on the images it
samples), the fourth several runs' test accuracy side by side at equal
steps and at equal minutes (e.g. float32 against bfloat16) and, after a
step, how each run fares against the first at every step both evaluated.
A run trained in stages (each resumed from the last one's checkpoint with
--init_from) is given as its histories joined by `+`, in order.
"""

import json
import os
import sys
from typing import Optional

# The checkout this script is in, before an installed pixelda_tf: its runs
# (sweeps.child_env) and the recorded provenance are then this checkout's.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# pylint: disable=g-import-not-at-top,wrong-import-position
from absl import app
from absl import flags

from pixelda_tf import config as config_lib
from pixelda_tf import provenance
from pixelda_tf import sweeps
from pixelda_tf import usage

import result_fields

NAME = flags.DEFINE_string("name", "experiment", "Experiment name.")
ROOT = flags.DEFINE_string("root", "runs/bench", "Where runs land.")
MODES = flags.DEFINE_list("modes", ["pixelda", "source_only", "target_only"],
                          "Modes to train.")
HISTORY = flags.DEFINE_string(
    "history", None, "Train nothing: print the curve statistics (minutes to "
    "95%, swing) of a finished run's history.json or results.json.")
COMPARE = flags.DEFINE_list(
    "compare", None, "Train nothing: print the target test accuracy of these "
    "runs (history.json or results.json files) side by side at equal steps "
    "(every --compare_every) and at equal minutes (every 10), e.g. a float32 "
    "and a bfloat16 run of one seed. A run trained in stages is its "
    "histories joined by '+', in order (a stage's minutes count on from the "
    "previous stage's last evaluation).")
COMPARE_FROM = flags.DEFINE_integer(
    "compare_from", 0, "--compare also prints, for each run after the "
    "first, the evaluations after this step that both it and the first "
    "run made: how many, how often it is ahead or behind, and the mean, "
    "min and max difference in points.")
COMPARE_EVERY = flags.DEFINE_integer("compare_every", 2500,
                                     "Steps between --compare rows.")
COMPARE_IMAGES = flags.DEFINE_bool(
    "compare_images", False, "--compare at equal training images instead of "
    "equal steps: each run's steps count in the first run's batches (from "
    "each run's config.json), e.g. a batch-16 run's step 2,000 sits beside "
    "a batch-32 run's step 1,000.")
SUMMARIZE = flags.DEFINE_list(
    "summarize", None, "Train nothing: print the mean and std over runs "
    "(e.g. seeds) of their final and best-validation test accuracy and "
    "of their minutes to 95% test accuracy. Give "
    "each run's results.json or a file this script wrote (its accuracy.json, "
    "or one stored in benchmarks/results; its --summarize_mode row).")
SUMMARY_JSON = flags.DEFINE_string(
    "summary_json", None, "--summarize (or --compare) also writes its "
    "summary (or table) here, with the facts every result file carries "
    "(e.g. benchmarks/results/released_mnistm/NAME_seeds.json).")
SUMMARIZE_MODE = flags.DEFINE_enum(
    "summarize_mode", "pixelda", list(config_lib.MODES),
    "The mode whose runs --summarize takes.")
INTERVAL = flags.DEFINE_list(
    "interval", None, "Train nothing: ACCURACY,N prints the 95% Wilson "
    "score interval of an accuracy measured on N images, e.g. "
    "--interval=0.9894,5000.")
PAPER = {"mnist_m": {"pixelda": 0.982, "source_only": 0.636,
                     "target_only": 0.964},
         "usps": {"pixelda": 0.959, "source_only": 0.789,
                  "target_only": 0.965}}


def plot(runs: dict, path: str, title: str) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
  for mode, r in runs.items():
    hist = r.get("val_history", [])
    if hist:
      ax.plot([h["minutes"] for h in hist],
              [100 * h["test_accuracy"] for h in hist], marker=".",
              label=mode)
  ax.set_xlabel("training minutes (wall clock, this machine)")
  ax.set_ylabel("target test accuracy (%)")
  ax.set_title(title)
  ax.grid(alpha=0.3)
  ax.legend()
  fig.tight_layout()
  fig.savefig(path)


def curve_stats(history: list, threshold: float = 0.95) -> dict:
  """Minutes to `threshold` test accuracy, and the swing of the last third
  of the evaluations (max - min, sample std, and the mean change between
  consecutive evaluations, which a rising trend barely moves), for the
  averaged and the raw weights."""
  out = {"minutes_to_95": next((h["minutes"] for h in history
                                if (h.get("test_accuracy") or 0) >= threshold),
                               None)}
  tail = history[len(history) - max(len(history) // 3, 1):] if history else []
  for key in ("test_accuracy", "test_accuracy_raw"):
    values = [h[key] for h in tail if h.get(key) is not None]
    if len(values) >= 2:
      step_change = sum(abs(b - a) for a, b in zip(values, values[1:])) / (
          len(values) - 1)
      out[f"{key}_last_third"] = {"max_minus_min": max(values) - min(values),
                                  "std": sweeps.mean_std(values)["std"],
                                  "mean_step_change": step_change,
                                  "n": len(values)}
  return out


def wilson_interval(accuracy: float, n: int, z: float = 1.959964) -> tuple:
  """The Wilson score interval (95% for the default z) of an accuracy
  measured on `n` independent images: where the accuracy on the population
  they sample may lie. Unlike the normal approximation it stays inside
  [0, 1] near 100%."""
  if not 0 <= accuracy <= 1 or n < 1:
    raise ValueError(f"needs an accuracy in [0, 1] and n >= 1 images, got "
                     f"{accuracy} and {n}")
  scale = 1 + z * z / n
  centre = (accuracy + z * z / (2 * n)) / scale
  half = z * (accuracy * (1 - accuracy) / n + z * z / (4 * n * n)) ** 0.5
  return max(centre - half / scale, 0.0), min(centre + half / scale, 1.0)


def final_interval(final: dict) -> dict:
  """The final test accuracy's 95% interval and image count, when the run
  scored a test split."""
  accuracy, n = final.get("accuracy"), final.get("num_examples") or 0
  if accuracy is None or not n:
    return {}
  return {"test_examples": n,
          "final_test_interval_95": list(wilson_interval(accuracy, n))}


def read_history(path: str) -> list:
  """The evaluations of a run's history.json or results.json."""
  with open(path) as f:
    history = json.load(f)
  if isinstance(history, dict):  # results.json
    history = history.get("val_history", [])
  return history


def read_run(path: str, mode: str = "pixelda") -> dict:
  """A finished run of `mode` for --summarize, as its results.json holds it:
  from a run's results.json, or from a file this script wrote (accuracy.json
  or a stored benchmarks/results file), whose `mode` row it takes."""
  with open(path) as f:
    try:
      data = json.load(f)
    except ValueError as e:
      raise ValueError(f"{path} is not JSON ({e})") from None
  if not isinstance(data, dict):
    data = {}
  final = data.get("final")
  if isinstance(final, dict) and "mean" in final:
    raise ValueError(f"{path} is a --summarize output: give the files of "
                     "the runs it summarized")
  if isinstance(final, dict) and "accuracy" in final:  # a run's results.json
    if data.get("mode", mode) != mode:
      raise ValueError(f"{path} is a {data['mode']} run, not {mode} (set "
                       f"--summarize_mode={data['mode']} to summarize those)")
    if final["accuracy"] is None:
      raise ValueError(f"{path} has no final accuracy: "
                       f"{final.get('reason', 'the run did not finish')}")
    return {**data, "minutes_to_95": curve_stats(
        data.get("val_history") or [])["minutes_to_95"]}
  rows = data.get("runs")
  if not isinstance(rows, dict) or not rows or not all(
      isinstance(r, dict) and "final_test_accuracy" in r
      for r in rows.values()):
    raise ValueError(
        f"{path} is neither a run's results.json nor a file that "
        "benchmarks/accuracy.py wrote (give one of those)")
  if mode not in rows:
    raise ValueError(f"{path} holds the modes {', '.join(sorted(rows))} and "
                     f"no {mode} row (--summarize_mode picks the row)")
  row = rows[mode]
  missing = [k for k in ("steps", "minutes") if k not in row]
  if missing:
    raise ValueError(f"{path}: its {mode} row has no {' or '.join(missing)}")
  if row["final_test_accuracy"] is None:
    raise ValueError(f"{path}: its {mode} row has no final accuracy")
  best = row.get("best_val_checkpoint_test_accuracy")
  return {"final": {"accuracy": row["final_test_accuracy"]},
          **({"best": {"accuracy": best}} if best is not None else {}),
          "steps": row["steps"], "wall_time_s": 60 * row["minutes"],
          "data_sources": {"target/test": row.get("target")},
          "minutes_to_95": row.get("minutes_to_95")}


def minutes_to_95_summary(results: dict) -> dict:
  """Mean and sample std of the runs' training minutes to 95% test accuracy
  (first evaluation at or above it); runs that never reached it are listed
  in `not_reached`, not averaged."""
  reached = {str(i): r["minutes_to_95"] for i, r in sorted(results.items())
             if r.get("minutes_to_95") is not None}
  out = {"runs": reached, "not_reached": [
      str(i) for i in sorted(results) if str(i) not in reached]}
  if reached:
    out.update(sweeps.mean_std(list(reached.values())))
  return out


def read_stages(spec: str) -> list:
  """The evaluations of a run given as `A+B+...`: the histories of its
  stages in order. A step a stage evaluated again keeps the earlier
  stage's value, and each stage's minutes count on from the last
  evaluation before it (a stage's own minutes start at 0)."""
  joined, offset, seen = [], 0.0, set()
  for path in spec.split("+"):
    stage = read_history(path)
    for h in stage:
      if h["step"] not in seen:
        seen.add(h["step"])
        joined.append({**h, "minutes": h["minutes"] + offset})
    if joined:
      offset = joined[-1]["minutes"]
  return joined


def against_first(by_step: list, after: int) -> list:
  """For each run after the first (`by_step`: step -> test accuracy, one
  dict per run): the steps after `after` that it and the first run both
  scored, how often it is ahead, behind or level, and its test accuracy
  minus the first run's (mean, min, max)."""
  first, out = by_step[0], []
  for scores in by_step[1:]:
    diffs = [acc - first[step] for step, acc in sorted(scores.items())
             if step > after and step in first]
    out.append({"n": len(diffs), "ahead": sum(d > 0 for d in diffs),
                "behind": sum(d < 0 for d in diffs),
                "level": sum(d == 0 for d in diffs),
                "mean": sum(diffs) / len(diffs) if diffs else None,
                "min": min(diffs, default=None),
                "max": max(diffs, default=None)})
  return out


def compare(histories: list, every: int, minutes_every: float = 10,
            after: int = 0, scales: Optional[list] = None) -> dict:
  """Test accuracy of several runs at the steps all of them evaluated (every
  `every`, and the last shared one), at each `minutes_every` minutes up
  to the shortest run's end, rounded (the last evaluation at or before
  it), and each run against the first after step `after`. With `scales`
  (one per run), a run's step s counts as step s * scale (equal images:
  its batch size over the first run's)."""
  histories = [[h for h in hist if h.get("test_accuracy") is not None]
               for hist in histories]
  if not all(histories):
    raise ValueError("--compare: a run has no scored evaluations")
  scales = scales or [1] * len(histories)
  by_step = [{h["step"] * scale: h["test_accuracy"] for h in hist}
             for hist, scale in zip(histories, scales)]
  by_step = [{int(k) if float(k).is_integer() else k: v
              for k, v in scores.items()} for scores in by_step]
  shared = sorted(set.intersection(*(set(s) for s in by_step)))
  steps = [s for s in shared if s % every == 0]
  if shared and shared[-1] not in steps:
    steps.append(shared[-1])
  # A budget's last evaluation comes a little before its end (60 min).
  end = min(hist[-1]["minutes"] for hist in histories)
  marks = [minutes_every * k
           for k in range(1, int(round(end / minutes_every)) + 1)]
  at_minutes = []
  for mark in marks:
    row = {"minutes": mark}
    for i, hist in enumerate(histories):
      done = [h for h in hist if h["minutes"] <= mark + 1e-9]
      row[i] = ({"step": done[-1]["step"],
                 "test_accuracy": done[-1]["test_accuracy"]}
                if done else None)
    at_minutes.append(row)
  return {"by": "steps" if scales == [1] * len(histories) else
                f"images (steps of the first run's batch; scales {scales})",
          "at_steps": [{"step": s, **{i: b[s] for i, b in enumerate(by_step)}}
                       for s in steps],
          "at_minutes": at_minutes,
          "against_first": against_first(by_step, after)}


def batch_scales(specs: list) -> list:
  """Each run's batch size over the first run's, from the config.json
  beside its (last stage's) history."""
  sizes = []
  for spec in specs:
    path = os.path.join(os.path.dirname(spec.split("+")[-1]), "config.json")
    try:
      with open(path) as f:
        sizes.append(json.load(f)["train"]["batch_size"])
    except (OSError, ValueError, KeyError) as e:
      raise ValueError(f"--compare_images needs each run's config.json "
                       f"beside its history: {path}: {e}") from e
  return [size / sizes[0] for size in sizes]


def write_comparison(path: str, specs: list, table: dict) -> None:
  """--compare's table as a result file, with each run's results.json facts
  (steps, minutes, final accuracy, weights_sha256) where one sits beside its
  history: equal weights_sha256 means the same weights bit for bit."""
  runs = []
  for spec in specs:
    last = spec.split("+")[-1]
    run = {"history": spec}
    results_path = os.path.join(os.path.dirname(last), "results.json")
    if os.path.exists(results_path):
      with open(results_path) as f:
        results = json.load(f)
      run.update({k: results.get(k) for k in ("steps", "wall_time_s",
                                               "weights_sha256", "code")})
      run["final_test_accuracy"] = results.get("final", {}).get("accuracy")
      history = read_history(last)
      run["val_accuracy"] = [h.get("val_accuracy") for h in history]
      if any("score_seconds" in h for h in history):
        # The label-free scores' cost at each evaluation, and in all.
        run["score_seconds"] = [h.get("score_seconds") for h in history]
        run["score_share_of_training"] = (
            sum(t or 0 for t in run["score_seconds"]) /
            results["wall_time_s"])
      run["test_split"] = result_fields.run_test_split(os.path.dirname(last))
    runs.append(run)
  out = {"runs": runs, "compared_at": table["by"],
         "at_steps": [{"step": row["step"],
                       "test_accuracy": [row[i] for i in range(len(specs))]}
                      for row in table["at_steps"]],
         "against_first": table["against_first"]}
  splits = sorted({str(r.get("test_split")) for r in runs})
  out.update(result_fields.fields("; ".join(splits)))
  with open(path, "w") as f:
    json.dump(out, f, indent=2)


def main(argv):
  for flag in (HISTORY, INTERVAL, COMPARE, SUMMARIZE):
    if flag.value is not None and not flag.value:  # e.g. --compare=
      return usage.error(f"--{flag.name} was given no value (see --help)")
  if HISTORY.value:
    print(json.dumps(curve_stats(read_history(HISTORY.value)), indent=2))
    return 0
  if INTERVAL.value:
    try:
      if len(INTERVAL.value) != 2:
        raise ValueError(f"expected two values, got {len(INTERVAL.value)}")
      accuracy, n = INTERVAL.value
      low, high = wilson_interval(float(accuracy), int(n))
    except ValueError as e:
      return usage.error(f"--interval={','.join(INTERVAL.value)}: {e} (give "
                         "ACCURACY,N: a fraction and a count, e.g. "
                         "--interval=0.9894,5000)")
    print(f"{100 * float(accuracy):.2f}% on {int(n):,} images: 95% interval "
          f"{100 * low:.2f}-{100 * high:.2f}% (Wilson score)")
    return 0
  if COMPARE.value:
    try:
      table = compare([read_stages(p) for p in COMPARE.value],
                      COMPARE_EVERY.value, after=COMPARE_FROM.value,
                      scales=(batch_scales(COMPARE.value)
                              if COMPARE_IMAGES.value else None))
    except (OSError, ValueError) as e:  # a missing or unreadable history
      return usage.error(e)
    print("runs: " + ", ".join(f"[{i}] {p}"
                               for i, p in enumerate(COMPARE.value)))
    if COMPARE_IMAGES.value:
      print(f"at equal {table['by']}")
    for row in table["at_steps"]:
      print(f"step {row['step']:>7,}  " + "  ".join(
          f"[{i}] {100 * row[i]:.2f}%" for i in range(len(COMPARE.value))))
    for row in table["at_minutes"]:
      print(f"{row['minutes']:>5.0f} min  " + "  ".join(
          f"[{i}] n/a" if row[i] is None else
          f"[{i}] {100 * row[i]['test_accuracy']:.2f}% (step "
          f"{row[i]['step']:,})" for i in range(len(COMPARE.value))))
    for i, row in enumerate(table["against_first"], start=1):
      print(f"[{i}] - [0] after step {COMPARE_FROM.value:,}: " + (
          "no shared evaluations" if not row["n"] else
          f"{row['n']} shared evaluations, ahead {row['ahead']}, behind "
          f"{row['behind']}, level {row['level']}; mean "
          f"{100 * row['mean']:+.2f} points (min {100 * row['min']:+.2f}, "
          f"max {100 * row['max']:+.2f})"))
    if SUMMARY_JSON.value:
      write_comparison(SUMMARY_JSON.value, COMPARE.value, table)
    return 0
  if SUMMARIZE.value:
    try:
      results = {i: read_run(path, SUMMARIZE_MODE.value)
                 for i, path in enumerate(SUMMARIZE.value)}
    except (OSError, ValueError) as e:  # a missing or unreadable file
      return usage.error(e)
    summary = sweeps.summarize(results)
    summary["minutes_to_95"] = minutes_to_95_summary(results)
    summary["files"] = SUMMARIZE.value
    print(json.dumps(summary, indent=2))
    if SUMMARY_JSON.value:
      # The runs' own machines and commits stay in their files; these facts
      # are the summary's (its test split: the runs', as their files say).
      splits = []
      for i, path in enumerate(SUMMARIZE.value):
        with open(path) as f:
          data = json.load(f)
        split = data.get("test_split") or summary["runs"][i].get("target")
        if split not in splits:
          splits.append(split)
      summary.update(result_fields.fields("; ".join(map(str, splits))))
      summary["note"] = ("summary computed by `command` from the final and "
                         "best-validation accuracies and minutes to 95% of "
                         "the files in `files`; "
                         "`cpu` and `code_version` are the summary's, each "
                         "run's are in its file")
      with open(SUMMARY_JSON.value, "w") as f:
        json.dump(summary, f, indent=2)
    return 0
  train_args = argv[1:]
  out_dir = os.path.join(ROOT.value, NAME.value)
  code = provenance.code_version()
  runs = {}
  for mode in MODES.value:
    runs[mode] = sweeps.run_train(train_args, os.path.join(out_dir, mode),
                                  f"--mode={mode}")
    if runs[mode] is None:
      return 1
  target = next(iter(runs.values()))["config"]["data"]["target"]
  rows = {}
  for mode, r in runs.items():
    rows[mode] = {
        "final_test_accuracy": r["final"]["accuracy"],
        "best_val_checkpoint_test_accuracy": r.get("best", {}).get("accuracy"),
        "steps": r["steps"], "minutes": r["wall_time_s"] / 60,
        "target": r["data_sources"]["target/test"],
        "paper": PAPER.get(target, {}).get(mode),
        **final_interval(r.get("final", {})),
        **curve_stats(r.get("val_history", []))}
    final = rows[mode]["final_test_accuracy"]
    band = rows[mode].get("final_test_interval_95")
    band = (f" (95% interval {100 * band[0]:.2f}-{100 * band[1]:.2f}% on "
            f"{rows[mode]['test_examples']:,} images)" if band else "")
    print(f"{mode:12s} final "
          f"{'n/a' if final is None else f'{100 * final:.2f}%'}{band}  "
          f"best-val {rows[mode]['best_val_checkpoint_test_accuracy']}  "
          f"paper {rows[mode]['paper']}  steps {r['steps']}  "
          f"{rows[mode]['minutes']:.1f} min")
  with open(os.path.join(out_dir, "accuracy.json"), "w") as f:
    # The same target test split for every mode (one data config).
    split = next(iter(rows.values()))["target"]
    json.dump({**result_fields.fields(split), "command_args": train_args,
               "code": code, "runs": rows}, f, indent=2)
  try:
    plot(runs, os.path.join(out_dir, "accuracy_vs_time.png"), NAME.value)
  except ImportError:
    print("matplotlib is not installed: no plot (pip install -e '.[bench]')")
  return 0


if __name__ == "__main__":
  app.run(main)
