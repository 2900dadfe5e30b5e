"""The training loop: data, steps, checkpoints, summaries, evaluation.

Reads top to bottom: set up the run directory and restore, build the data,
then step until `train_steps` or the time budget, with checkpoints, summaries,
validation and image grids at their intervals; finally evaluate on the target
test split and write `results.json`.

A run is resumable at any point: the data order, z and every random draw are
functions of (seed, step) or live in the checkpoint, so rerunning the same
command after a kill continues exactly where the last checkpoint left off.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import signal
import sys
import tempfile
import threading
import time
from typing import Dict, Optional

from absl import logging
import keras
import numpy as np
import tensorflow as tf

from pixelda_tf import config as config_lib
from pixelda_tf import data
from pixelda_tf import evaluation
from pixelda_tf import pixelda
from pixelda_tf import runlock
from pixelda_tf import runtime

RESULTS_FILE = "results.json"
BEST_FILE = "best.json"
HISTORY_FILE = "history.json"
SOURCES_FILE = "data_sources.json"
PROGRESS_FILE = "progress.json"
EVAL_BATCH = 500
GRID_ROWS = 8
GRID_NOISE_SAMPLES = 3

# Settings that may change between the first run and a resumed one.
_RESUMABLE_CHANGES = {
    ("train", f) for f in ("train_steps", "max_minutes", "checkpoint_every",
                           "eval_every", "summary_every", "image_every",
                           "keep_checkpoints", "quiet", "model_dir")
} | {("runtime", f) for f in ("strategy", "num_cpu_devices", "jit_compile",
                              "intra_op_threads", "inter_op_threads",
                              "fused_batch_norm", "split_conv_grad",
                              "precision")} | {
    ("data", f) for f in ("data_dir", "mnist_dir", "bsds_dir", "mnist_m_dir",
                          "usps_path", "source_dir", "target_dir",
                          "target_val_dir", "download")}


def _write_json(path: str, obj) -> None:
  """Writes JSON atomically: a reader never sees half a file."""
  tmp = path + ".tmp"
  with tf.io.gfile.GFile(tmp, "w") as f:
    json.dump(obj, f, indent=2, sort_keys=True)
  tf.io.gfile.rename(tmp, path, overwrite=True)


def _read_json(path: str, default):
  if not tf.io.gfile.exists(path):
    return default
  with tf.io.gfile.GFile(path) as f:
    return json.load(f)


def _check_same_run(cfg: config_lib.Config, model_dir: str) -> None:
  """Refuses to resume a run with different model or training settings."""
  old = pixelda.load_config(model_dir).to_dict()
  new = cfg.to_dict()
  # Named as in config.json (section.field): flag names differ from fields.
  diffs = [f"{sec}.{field}: {old[sec][field]!r} -> {new[sec][field]!r}"
           for sec in new for field in new[sec]
           if (sec, field) not in _RESUMABLE_CHANGES
           and old[sec][field] != new[sec][field]]
  if diffs:
    raise config_lib.ConfigError(
        f"{model_dir} holds a run with other settings ({'; '.join(diffs)}; "
        f"see {pixelda.CONFIG_FILE} there); use a new --model_dir, or the "
        "original flags to resume")


def _data_fingerprint(domain) -> str:
  """sha256 of a split's pixels and labels: what it is, not where it lives."""
  h = hashlib.sha256(np.ascontiguousarray(domain.images).tobytes())
  if domain.labels is not None:
    h.update(np.asarray(domain.labels, np.int64).tobytes())
  return h.hexdigest()


def _check_same_data(sources: Dict[str, str], fingerprints: Dict[str, str],
                     model_dir: str, chief: bool) -> None:
  """Refuses to resume on other data (e.g. BSDS500 first, offline photos now).

  Data paths may change between runs (the same files can move, a cache can
  be rebuilt), and `mnist_m_variant=auto` resolves at run time, so what is
  compared is each split's content fingerprint; the error names the origins.
  """
  path = os.path.join(model_dir, SOURCES_FILE)
  first = _read_json(path, None)
  if first is not None:
    old = first.get("sha256", {})
    diffs = [f"{k}: {first.get('origins', {}).get(k)!r} -> {sources[k]!r}"
             for k, v in fingerprints.items() if k in old and old[k] != v]
    if diffs:
      raise config_lib.ConfigError(
          f"{model_dir} was trained on other data ({'; '.join(diffs)}); pass "
          "the data flags of the first run (e.g. --bsds_dir) or use a new "
          "--model_dir")
  elif chief:
    _write_json(path, {"origins": sources, "sha256": fingerprints})


def _prior_minutes(progress: Dict[str, float], history: list,
                   start_step: int) -> float:
  """Training minutes before the checkpoint at start_step.

  From progress.json; if its entry is missing (killed between the checkpoint
  and the progress write, or a run from before progress.json), the latest
  entry or evaluation at or before start_step, so the budget never restarts.
  """
  if str(start_step) in progress:
    return progress[str(start_step)]
  known = [(int(k), v) for k, v in progress.items() if int(k) <= start_step]
  known += [(h["step"], h["minutes"]) for h in history]
  return max(known)[1] if known else 0.0


class Interrupted(Exception):
  """SIGINT or SIGTERM stopped the run after a checkpoint was written."""

  def __init__(self, signum: int, step: int, checkpoint: str):
    self.signum, self.step, self.checkpoint = signum, step, checkpoint
    super().__init__(
        f"{signal.Signals(signum).name} at step {step}: saved {checkpoint}; "
        "rerun the same command to resume")


class _StopSignals:
  """Turns SIGINT and SIGTERM (Ctrl-C, Kubernetes, Slurm, preemption) into a
  stop at the next step boundary.

  The step in flight finishes; the loop then saves a checkpoint and
  results.json and `train` raises `Interrupted`. The handler only records
  the signal (logging from a handler can re-enter a half-done write); once
  one arrived it stays installed to the end of the process, so further
  signals are ignored and nothing is left half written. Signal handlers can
  only be set from the main thread; elsewhere this does nothing.
  """

  def __init__(self):
    self.signum = None
    self._previous = {}

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      for s in (signal.SIGINT, signal.SIGTERM):
        self._previous[s] = signal.signal(s, self._handle)
    return self

  def __exit__(self, *exc_info):
    if self.signum is None:
      for s, handler in self._previous.items():
        signal.signal(s, handler if handler is not None else signal.SIG_DFL)
    return False

  @property
  def name(self) -> str:
    return signal.Signals(self.signum).name

  def _handle(self, signum, frame):
    del frame
    if self.signum is None:
      self.signum = signum


def _any_worker(strategy: tf.distribute.Strategy,
                cfg: config_lib.RuntimeConfig, flag: bool) -> bool:
  """True when any worker's `flag` is: workers read their own clocks, and one
  that stopped alone would leave the others waiting in a collective."""
  if cfg.strategy != "multi_worker":
    return flag

  def any_replica(x):
    # ReduceOp has SUM and MEAN only: any flag set makes the sum positive.
    return tf.distribute.get_replica_context().all_reduce("sum", x)

  out = strategy.run(any_replica, args=(tf.constant(float(flag)),))
  return float(strategy.experimental_local_results(out)[0]) > 0


def expected_last_step(step: int, train_steps: int, max_minutes: float,
                       minutes: float, minutes_per_step: float) -> int:
  """The step the run will end at: `train_steps`, or sooner when the time
  budget runs out first at the current pace."""
  if not max_minutes or minutes_per_step <= 0:
    return train_steps
  left = max(max_minutes - minutes, 0.0) / minutes_per_step
  return int(min(train_steps, step + math.ceil(left)))


class _Progress:
  """A progress bar with ETA on a terminal, log lines elsewhere. Its total
  follows whichever budget ends the run first: steps, or minutes at the
  current pace."""

  def __init__(self, total: int, start: int, quiet: bool, every: int,
               max_minutes: float = 0.0):
    self._bar = None
    self._every = max(every, 1)
    self._total, self._start, self._max_minutes = total, start, max_minutes
    self._began = time.time()
    if not quiet and sys.stdout.isatty():
      self._bar = keras.utils.Progbar(total, stateful_metrics=None)
      self._bar.update(start)
    self._quiet = quiet

  def update(self, step: int, logs: Dict[str, float],
             minutes: float = 0.0) -> None:
    shown = [(k.split("/")[-1], v) for k, v in logs.items()
             if k.startswith("loss/") and k != "loss/pmse"]
    if self._bar is not None:
      if self._max_minutes and step > self._start:
        pace = (time.time() - self._began) / 60 / (step - self._start)
        self._bar.target = expected_last_step(
            step, self._total, self._max_minutes, minutes, pace)
      self._bar.update(step, values=shown, finalize=False)
    elif not self._quiet and step % self._every == 0:
      logging.info("step %d: %s", step,
                   ", ".join(f"{k} {v:.4f}" for k, v in shown))


def train(cfg: config_lib.Config,
          strategy: Optional[tf.distribute.Strategy] = None) -> Dict:
  """Trains PixelDA (or a baseline) as `cfg` says; returns the results dict.

  Args:
    cfg: the experiment.
    strategy: an already created strategy; by default `runtime.setup` makes
      one from `cfg.runtime` (which must then run before TensorFlow starts).

  Raises:
    pixelda.NonFiniteLossError: a loss became NaN/inf (the last good
      checkpoint is kept).
    config_lib.ConfigError: model_dir holds a run with other settings.
    runlock.LockedError: another process trains in model_dir.
    Interrupted: SIGINT or SIGTERM arrived; the step in flight finished and
      a checkpoint and results.json (marked interrupted) were written.
  """
  started = time.time()
  strategy = strategy or runtime.setup(cfg.runtime)
  chief = runtime.is_chief(strategy)
  tf.io.gfile.makedirs(cfg.train.model_dir)
  # One trainer per model_dir (the chief: the other workers write elsewhere).
  with (runlock.RunLock(cfg.train.model_dir) if chief
        else contextlib.nullcontext()):
    return _train(cfg, strategy, chief, started)


def _train(cfg: config_lib.Config, strategy: tf.distribute.Strategy,
           chief: bool, started: float) -> Dict:
  """`train`, holding the model_dir's lock."""
  t, model_dir = cfg.train, cfg.train.model_dir
  config_path = os.path.join(model_dir, pixelda.CONFIG_FILE)
  if tf.io.gfile.exists(config_path):
    _check_same_run(cfg, model_dir)

  # Data first: a missing data set should fail before minutes of tracing,
  # and before anything is written into model_dir.
  sources, fingerprints = {}, {}
  unscored = {}  # split -> origin, for target splits with no labels
  for role, split in (("source", "train"), ("target", "train"),
                      ("target", "val"), ("target", "test")):
    dom = data.load_domain(cfg.data, role, split)
    sources[f"{role}/{split}"] = dom.origin
    fingerprints[f"{role}/{split}"] = _data_fingerprint(dom)
    logging.info("%s %s: %s, %d examples", role, split, dom.origin,
                 len(dom.images))
    if role == "source":
      _check_num_classes(dom, cfg)
    elif split != "train" and dom.labels is None:
      unscored[split] = dom.origin
    elif dom.labels is None and t.mode == "target_only":
      raise config_lib.ConfigError(
          f"--mode=target_only trains on target labels and {dom.origin} has "
          "none: give a labelled target (one subfolder per class) or another "
          "--mode")
  if chief and not tf.io.gfile.exists(config_path):
    _write_json(config_path, cfg.to_dict())
  _check_same_data(sources, fingerprints, model_dir, chief)
  if "val" in unscored:
    logging.info("no labelled target validation data (%s): validation is "
                 "skipped and the latest checkpoint is kept (give "
                 "--target_val_dir=FOLDER to keep the best-by-validation one)",
                 unscored["val"])

  model = pixelda.PixelDA(cfg, strategy)
  # Every worker saves (saving may involve collectives), but only the chief
  # into model_dir; the others into a scratch folder they remove at the end.
  ckpt_root = model_dir if chief else tempfile.mkdtemp(prefix="pixelda_worker")
  manager = tf.train.CheckpointManager(
      model.checkpoint, os.path.join(ckpt_root, pixelda.CHECKPOINT_DIR),
      # At least 2: a damaged newest checkpoint has an intact one behind it.
      max_to_keep=max(t.keep_checkpoints, 2))
  best_manager = tf.train.CheckpointManager(
      model.checkpoint, os.path.join(ckpt_root, pixelda.BEST_DIR),
      max_to_keep=2)
  if tf.train.latest_checkpoint(os.path.join(model_dir,
                                             pixelda.CHECKPOINT_DIR)):
    # The newest checkpoint that reads: a damaged one (a full disk, a copy cut
    # short) is skipped with a warning, and its steps are trained again.
    restore_from = pixelda.restore_newest_intact(
        model.checkpoint, pixelda.checkpoint_candidates(model_dir, "latest"))
    logging.info("resumed from %s at step %d", restore_from,
                 int(model.step.numpy()))
  best_path = os.path.join(model_dir, pixelda.BEST_DIR, BEST_FILE)
  best = _read_json(best_path, {"val_accuracy": -1.0, "step": -1})

  start_step = int(model.step.numpy())
  dataset = data.train_dataset(cfg.data, t.batch_size, start_step=start_step,
                               shuffle_seed=t.seed)
  batches = iter(strategy.experimental_distribute_dataset(dataset))
  # An unlabelled split is never scored (nor held in memory twice).
  val_data = (None if "val" in unscored
              else data.eval_dataset(cfg.data, "target", "val", EVAL_BATCH))
  writer = (tf.summary.create_file_writer(os.path.join(model_dir, "train"))
            if chief else tf.summary.create_noop_writer())
  grid_batch = next(iter(data.train_dataset(cfg.data, GRID_ROWS)))

  test_data = (None if "test" in unscored
               else data.eval_dataset(cfg.data, "target", "test", EVAL_BATCH))
  progress = _Progress(t.train_steps, start_step, t.quiet, t.summary_every,
                       t.max_minutes)
  # The evaluation history survives resumes; minutes count across them.
  history_path = os.path.join(model_dir, HISTORY_FILE)
  history = [h for h in _read_json(history_path, [])
             if h["step"] <= start_step]
  # Training minutes before this process, as of the checkpoint it resumed:
  # the time budget and the history's clock run across resumes.
  progress_path = os.path.join(model_dir, PROGRESS_FILE)
  prior_minutes = _prior_minutes(_read_json(progress_path, {}), history,
                                 start_step)

  def minutes():
    return prior_minutes + (time.time() - started) / 60

  def save(step):
    _save(manager, step)
    if chief:
      # Minutes at each kept checkpoint, so a resume from any of them
      # continues the clock from there.
      kept = {p.rsplit("-", 1)[-1] for p in manager.checkpoints}
      done = {k: v for k, v in _read_json(progress_path, {}).items()
              if k in kept}
      _write_json(progress_path, {**done, str(step): minutes()})
  step, saved_step, stopped = start_step, start_step, "train_steps"
  window_start, window_steps = time.time(), 0
  stop_signals = _StopSignals()
  with stop_signals, writer.as_default():
    while step < t.train_steps:
      # Every worker asks (with or without a budget or a signal of its own).
      out_of_time = bool(t.max_minutes) and minutes() >= t.max_minutes
      if _any_worker(strategy, cfg.runtime,
                     out_of_time or stop_signals.signum is not None):
        stopped = ("max_minutes" if stop_signals.signum is None
                   else stop_signals.name)
        break
      logs = {k: float(v) for k, v in model.train_step(next(batches)).items()}
      step += 1
      window_steps += 1
      pixelda.check_finite(logs, step)
      progress.update(step, logs, minutes())

      if t.summary_every and step % t.summary_every == 0:
        elapsed = time.time() - window_start
        logs["perf/step_time_s"] = elapsed / window_steps
        logs["perf/images_per_s"] = window_steps * t.batch_size / elapsed
        for name, value in logs.items():
          tf.summary.scalar(name, value, step=step)
        window_start, window_steps = time.time(), 0
      if t.image_every and step % t.image_every == 0:
        _image_summary(model, grid_batch, step)
      if t.eval_every and step % t.eval_every == 0 and len(unscored) < 2:
        acc = (None if "val" in unscored
               else _evaluate(model, val_data, cfg)["accuracy"])
        # Test accuracy too, for accuracy-vs-time curves; checkpoints are
        # chosen on validation only.
        test_acc = (None if "test" in unscored
                    else _evaluate(model, test_data, cfg)["accuracy"])
        for name, value in (("val", acc), ("test", test_acc)):
          if value is not None:
            tf.summary.scalar(f"accuracy/target_{name}", value, step=step)
        history.append({"step": step, "val_accuracy": acc,
                        "test_accuracy": test_acc,
                        "minutes": minutes()})
        if model.average is not None and test_acc is not None:
          # The raw weights' score too: what the average smooths.
          history[-1]["test_accuracy_raw"] = _evaluate(
              model, test_data, cfg, averaged=False)["accuracy"]
        if chief:
          _write_json(history_path, history)
        logging.info("step %d: target accuracy: validation %s, test %s",
                     step, _percent(acc), _percent(test_acc))
        if acc is not None and acc > best["val_accuracy"]:
          best = {"val_accuracy": acc, "step": step}
          _save(best_manager, step)
          if chief:
            _write_json(best_path, best)
      if step % t.checkpoint_every == 0:
        save(step)
        saved_step = step
    interrupted = stop_signals.signum is not None
    if interrupted:
      stopped = stop_signals.name  # also when it came during the last step
      logging.warning("%s: stopping at step %d; saving a checkpoint and "
                      "results first (further signals are ignored)",
                      stopped, step)
    # Still under the signal handlers: a second Ctrl-C cannot cut this save.
    if saved_step != step:
      save(step)

  results = {
      "config": cfg.to_dict(), "data_sources": sources, "steps": step,
      "stopped_by": stopped, "wall_time_s": 60 * minutes(),
      "mode": t.mode, "val_history": history}
  if interrupted:
    # No evaluation: a preempted job has seconds left. The handlers stay
    # installed (see _StopSignals), so this write is not cut either.
    if chief:
      _write_json(os.path.join(model_dir, RESULTS_FILE), {
          **results, "interrupted": True,
          "final": {"step": step, **_unscored_summary(
              f"interrupted by {stopped} at step {step}: rerun the same "
              "command to resume", prefix="")},
          "weights_sha256": _fingerprint(model)})
    else:
      tf.io.gfile.rmtree(ckpt_root)
    raise Interrupted(stop_signals.signum, step,
                      manager.latest_checkpoint or "no checkpoint yet")

  # The final report, on the target test split.
  results["final"] = {"step": step, **(
      _unscored_summary(unscored["test"]) if "test" in unscored
      else _summary(_evaluate(model, test_data, cfg)))}
  if "val" in unscored:
    results["checkpoint_kept"] = (
        "latest: no labelled target validation data, so no best-by-"
        "validation checkpoint (give --target_val_dir=FOLDER for one)")
  results["weights_sha256"] = _fingerprint(model)
  if best["step"] >= 0 and "test" in unscored:
    # Labelled validation (e.g. --target_val_dir) but no labelled test split.
    results["best"] = {**best, **_unscored_summary(unscored["test"])}
  elif best["step"] >= 0:
    try:
      pixelda.restore_newest_intact(
          model.checkpoint, list(reversed(best_manager.checkpoints)))
      results["best"] = {**best, **_summary(_evaluate(model, test_data, cfg))}
    except pixelda.CheckpointError as e:
      logging.warning("best-by-validation checkpoint not scored: %s", e)
    model.checkpoint.restore(manager.latest_checkpoint).expect_partial()
  if chief:
    _write_json(os.path.join(model_dir, RESULTS_FILE), results)
  else:
    tf.io.gfile.rmtree(ckpt_root)
  if "test" in unscored:
    logging.info("target test accuracy: none (%s)", results["final"]["reason"])
  else:
    logging.info("target test accuracy: final %.4f%s",
                 results["final"]["accuracy"],
                 f", best-by-validation {results['best']['accuracy']:.4f} "
                 f"(step {results['best']['step']})" if "best" in results
                 else "")
  return results


def _save(manager: tf.train.CheckpointManager, step: int) -> None:
  """manager.save, with an error naming the file when the write fails (a
  full disk, a lost mount). TensorFlow writes into a temporary name and
  renames at the end, so the checkpoints before it stay intact."""
  try:
    manager.save(checkpoint_number=step)
  except (tf.errors.OpError, OSError) as e:
    path = os.path.join(manager.directory, f"ckpt-{step}")
    kept = manager.latest_checkpoint or "no earlier checkpoint"
    raise pixelda.CheckpointError(
        f"could not write checkpoint {path}: {e}. {kept} is kept: free "
        "space (or fix the folder) and rerun the same command to resume from "
        "it") from e


def _fingerprint(model: pixelda.PixelDA) -> str:
  """sha256 of every network weight (and weight average): equal runs (or
  workers) match exactly."""
  digest = hashlib.sha256()
  averages = model.average.averages if model.average is not None else []
  for v in [*model.checkpoint_variables(), *averages]:
    digest.update(np.ascontiguousarray(v.numpy()).tobytes())
  return digest.hexdigest()


def _evaluate(model: pixelda.PixelDA, dataset, cfg: config_lib.Config,
              averaged: bool = True) -> Dict:
  """The classifier's report on `dataset`, with its averaged weights when the
  run keeps an average (`--ema_decay`) and `averaged`."""
  with (model.average.applied() if averaged and model.average is not None
        else contextlib.nullcontext()):
    return evaluation.evaluate(model.nets.classifier, dataset,
                               cfg.classifier.num_classes)


def _check_num_classes(source, cfg: config_lib.Config) -> None:
  """The classifier must have one output per source class (folders: exactly)."""
  n = cfg.classifier.num_classes
  if source.num_classes > n or (cfg.data.source == "folder"
                                and source.num_classes != n):
    raise config_lib.ConfigError(
        f"{source.origin} has {source.num_classes} classes but "
        f"--num_classes={n}: pass --num_classes={source.num_classes}")


def _percent(accuracy: Optional[float]) -> str:
  return "n/a" if accuracy is None else f"{accuracy:.4f}"


def _unscored_summary(origin: str,
                      prefix: str = "nothing labelled to score: ") -> Dict:
  """The accuracy fields of an unscored split: null, with the reason."""
  return {"accuracy": None, "per_class_accuracy": None, "num_examples": 0,
          "reason": prefix + origin}


def _summary(rep: Dict) -> Dict:
  return {"accuracy": rep["accuracy"],
          "per_class_accuracy": rep["per_class_accuracy"],
          "num_examples": rep["num_examples"]}


def _image_summary(model: pixelda.PixelDA, batch, step: int) -> None:
  """source | G(source, z) for several z | target, one row per example."""
  if not model.pixelda:
    return
  xs = np.asarray(batch["source_images"][:GRID_ROWS])
  with (model.average.applied() if model.average is not None
        else contextlib.nullcontext()):
    adapted = evaluation.adapted_columns(model.nets.generator, xs,
                                         GRID_NOISE_SAMPLES)
  columns = [xs, *adapted,
             batch["target_images"][:GRID_ROWS]]
  grid = evaluation.image_grid(columns, GRID_ROWS)
  tf.summary.image("source|adapted|target", grid[None], step=step)
