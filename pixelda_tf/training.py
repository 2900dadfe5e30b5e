"""The training loop: data, steps, checkpoints, summaries, evaluation.

`train` reads top to bottom as setup, loop and finish. Setup: check the run
folder, load the data, build the model and resume. Loop (`_steps`): step
until `train_steps`, the time budget or a stop signal, with summaries, image
grids, evaluations and checkpoints at their intervals, then save the last
step (`_save_last`). Finish: evaluate on the target test split and write
`results.json`. What is kept in the run folder, and how, is `rundir`'s; how
the workers of a multi-worker run agree at each point is `workers`'.

A run is resumable at any point: the data order, z and every random draw are
functions of (seed, step) or live in the checkpoint, so rerunning the same
command after a kill continues exactly where the last checkpoint left off.
"""

from __future__ import annotations

import contextlib
import functools
import math
import signal
import sys
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
from pixelda_tf import provenance
from pixelda_tf import rundir
from pixelda_tf import runlock
from pixelda_tf import runtime
from pixelda_tf import validators
from pixelda_tf import workers as workers_lib
from pixelda_tf.data import splits

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(Exception):
  """SIGINT or SIGTERM stopped the run after a checkpoint was written."""

  def __init__(self, signum: int, step: int, checkpoint: str):
    self.signum, self.step, self.checkpoint = signum, step, checkpoint
    super().__init__(
        f"{signal.Signals(signum).name} at step {step}: saved {checkpoint}; "
        "rerun the same command to resume")


def train(cfg: config_lib.Config,
          strategy: Optional[tf.distribute.Strategy] = None) -> Dict:
  """Trains PixelDA (or a baseline) as `cfg` says; returns the results dict.

  Args:
    cfg: the experiment.
    strategy: an already created strategy; by default `runtime.setup` makes
      one from `cfg.runtime` (which must then run before TensorFlow starts).

  Raises:
    pixelda.NonFiniteLossError: a loss or a weight became NaN/inf (the last
      good checkpoint is kept).
    config_lib.ConfigError: model_dir holds a run with other settings; or,
      under MultiWorkerMirroredStrategy, the workers were given different
      settings or data, another worker could not load its data or restore,
      or the workers restored different checkpoints.
    runlock.LockedError: another process trains in model_dir.
    rundir.CheckpointError: no checkpoint can be read, or one not written.
    Interrupted: SIGINT or SIGTERM arrived; the step in flight finished and
      a checkpoint and results.json (marked interrupted) were written.
  """
  started = time.time()
  strategy = strategy or runtime.setup(cfg.runtime)
  replicas = strategy.num_replicas_in_sync
  train_flag = functools.partial(config_lib.flag_of, config_lib.TrainConfig)
  config_lib.require(
      cfg.train.batch_size % replicas == 0,
      f"{train_flag('batch_size')}={cfg.train.batch_size} does not split "
      f"evenly over the {replicas} replicas of "
      f"{config_lib.flag_of(config_lib.RuntimeConfig, 'strategy')}="
      f"{cfg.runtime.strategy}: use a multiple of {replicas} (each replica "
      f"takes batch_size / {replicas})")
  model_dir = cfg.train.model_dir
  config_lib.require(
      not tf.io.gfile.exists(model_dir) or tf.io.gfile.isdir(model_dir),
      f"{train_flag('model_dir')}={model_dir} is a file: give a folder (new, "
      "or a run's to resume it)")
  # Once, up front: an interrupted run has seconds left for its results.
  code = provenance.code_version()
  chief = runtime.is_chief(strategy)
  run = rundir.RunDir(cfg, chief, started)
  run.open()  # Before the lock: it writes LOCK there.
  # One trainer per model_dir (the chief: the other workers write elsewhere).
  with (runlock.RunLock(cfg.train.model_dir) if chief
        else contextlib.nullcontext()):
    try:
      return _train(cfg, strategy, run, code)
    except BaseException:
      # Refused before a step (other networks at --init_from, a class count
      # the data does not fit...): what it wrote would make the corrected
      # command a resume of a run that never was.
      run.discard_untrained()
      raise
    finally:
      run.remove_scratch()


def _train(cfg: config_lib.Config, strategy: tf.distribute.Strategy,
           run: rundir.RunDir, code: Dict) -> Dict:
  """`train`, holding the model_dir's lock: setup, the loop, the finish."""
  t = cfg.train
  # Setup: the data, the model (restored or initialised), the input pipeline
  # from the step it resumes at, evaluation and summaries.
  workers = workers_lib.for_run(cfg, strategy)
  origins, unscored = _load_data(cfg, run, workers)
  model = pixelda.PixelDA(cfg, strategy)
  step = workers.attach(run, model)
  batches = iter(strategy.experimental_distribute_dataset(data.train_dataset(
      cfg.data, t.batch_size, start_step=step, shuffle_seed=t.seed)))
  scorer = _Scorer(model, cfg, unscored)
  writer = (tf.summary.create_file_writer(run.file(rundir.SUMMARY_DIR))
            if run.chief else tf.summary.create_noop_writer())
  progress = _Progress(t.train_steps, step, t.quiet, t.summary_every,
                       t.max_minutes)
  stop = _Stop(workers, t.max_minutes, run.minutes)

  # The loop, and the last checkpoint, under the signal handlers (so a
  # second Ctrl-C cannot cut the save).
  with stop, writer.as_default():
    step, stopped, logs, checked = _steps(cfg, model, run, batches, scorer,
                                          progress, stop, step)
    stopped = _save_last(run, model, stop, step, stopped, logs, checked)
  # The binary ends an interrupted run without Python's teardown
  # (`train.exit_at_once`): nothing may stay buffered.
  writer.flush()

  # Finish: results.json, with the final (and best) target test scores.
  results = {
      "config": cfg.to_dict(), "data_sources": origins, "steps": step,
      "stopped_by": stopped or "train_steps", "wall_time_s": 60 * run.minutes(),
      "mode": t.mode, "val_history": run.history, "code": code,
      "weights_sha256": model.weights_sha256()}
  if run.initialised_from:  # the checkpoint --init_from resolved to
    results["initialised_from"] = run.initialised_from
  if stopped in stop.SIGNAL_NAMES:
    _stop_interrupted(run, results, stopped)
  results.update(scorer.final_report(run, step))
  run.write_results(results)
  _log_final(results)
  return results


def _steps(cfg: config_lib.Config, model: pixelda.PixelDA,
           run: rundir.RunDir, batches, scorer: "_Scorer",
           progress: "_Progress", stop: "_Stop", step: int):
  """Trains from `step` until `train_steps`, the time budget or a signal,
  with summaries, image grids, evaluations and checkpoints at their
  intervals. Returns (the step reached, why it stopped: None when all steps
  are done, else `_Stop.check`'s answer, the last step's logs, whether they
  were checked for NaN and inf)."""
  t = cfg.train
  logs, checked, window = None, True, (time.time(), step)
  stopped = stop.check()  # A resumed run may be out of time already.
  run.trained = True  # From here on a failure keeps the folder as it is.
  while stopped is None and step < t.train_steps:
    logs, checked = model.train_step(next(batches)), False
    step += 1
    progress.update(step, run.minutes())
    stopped = stop.check()  # Every worker asks, once per step.
    if stopped in stop.SIGNAL_NAMES:
      break  # Save at once: a preempted job has seconds left.
    due = {k: every and step % every == 0 for k, every in (
        ("summary", t.summary_every), ("images", t.image_every),
        ("eval", t.eval_every), ("checkpoint", t.checkpoint_every))}
    if due["summary"] or due["eval"] or due["checkpoint"]:
      # Logs stay tensors until here: fetching them syncs with the device.
      values, checked = _fetch(logs, step, model), True
      progress.show(step, values)
    if due["summary"]:
      _write_summaries(values, step, window, t.batch_size)
      window = (time.time(), step)
    if due["images"]:
      scorer.image_summary(step)
    if due["eval"]:
      run.record_evaluation(scorer.evaluate(step, run.minutes))
    if due["checkpoint"]:
      run.save(step)
    if due["images"] or due["eval"] or due["checkpoint"]:
      # A signal during that work (an evaluation can take minutes on a
      # loaded machine) stops the run at this step, not after one more.
      # Every worker did the same work, so every worker asks here.
      late = stop.check()
      if late in stop.SIGNAL_NAMES:
        stopped = late
        break
  if stopped == "max_minutes" and step >= t.train_steps:
    stopped = None  # The last step used up the time: all steps are done.
  return step, stopped, logs, checked


def _save_last(run: rundir.RunDir, model: pixelda.PixelDA, stop: "_Stop",
               step: int, stopped: Optional[str], logs, checked: bool
               ) -> Optional[str]:
  """Checks the last logs and saves the last step; returns why the run
  stopped (a signal that came during the last evaluation or this save
  makes the run interrupted too)."""
  if stopped in stop.SIGNAL_NAMES:
    logging.warning("%s: stopping at step %d: %s, then results.json "
                    "(marked interrupted, without the final evaluation); "
                    "further signals are ignored", stopped, step,
                    "saved already" if run.saved_step == step
                    else "saving a checkpoint")
  # Never a checkpoint after a non-finite loss.
  if not checked:
    _fetch(logs, step, model)
  if run.saved_step != step:
    run.save(step)
  if stopped not in stop.SIGNAL_NAMES:
    # A signal during the last step's evaluation or the save above: the
    # run stops here as interrupted (every worker asks again).
    late = stop.check()
    if late in stop.SIGNAL_NAMES:
      logging.warning("%s after the last step: step %d is saved; writing "
                      "results (further signals are ignored)", late, step)
      stopped = late
  return stopped


def _stop_interrupted(run: rundir.RunDir, results: Dict, stopped: str):
  """Writes results.json marked interrupted, without an evaluation (a
  preempted job has seconds left; the signal handlers stay installed, see
  _Stop, so this write is not cut either), and raises Interrupted."""
  step = results["steps"]
  run.write_results({**results, "interrupted": True, "final": {
      "step": step, **_unscored_summary(
          f"interrupted by {stopped} at step {step}: rerun the same command "
          "to resume", prefix="")}})
  raise Interrupted(signal.Signals[stopped], step,
                    run.kept_checkpoint or "no checkpoint yet")


def _load_data(cfg: config_lib.Config, run: rundir.RunDir,
               workers: workers_lib.Workers):
  """Checks the settings against the run folder's, loads the data and
  records it there (the chief writes config.json). Returns `_read_data`'s
  (origin by split, origin by unscored split).

  Data comes before anything is written, so a missing data set fails at
  once. Under MultiWorkerMirroredStrategy every worker also checks, before
  the chief writes, that all of them were given the same settings and read
  the same data (`workers.MultiWorker.require_same_settings`).
  """
  advice = "every worker must be given the same flags and read the same data"
  with workers.together("check its settings or load its data", advice):
    run.check_settings()
    origins, fingerprints, unscored = _read_data(cfg)
    shared = workers.shared_settings(cfg, fingerprints)
  workers.require_same_settings(shared)
  run.selection = selection(cfg.train.select_checkpoint, "val" in unscored)
  with workers.together("record its data in --model_dir", advice):
    run.record_data(origins, fingerprints)
  if "val" in unscored:
    logging.info("no labelled target validation data (%s): each evaluation "
                 "logs the label-free score/* values only; %s", unscored["val"],
                 "the latest checkpoint is kept" if run.selection == "latest"
                 else f"best/ keeps the checkpoint of highest {run.selection}")
  return origins, unscored


def selection(select: str, unlabelled_val: bool) -> str:
  """--select_checkpoint as the history key that picks best/ ("latest"
  for none): "auto" is val_accuracy with labelled target validation images,
  else `validators.LABEL_FREE_DEFAULT`.

  Raises:
    ConfigError: val_accuracy with no labelled validation images.
  """
  if select == "auto":
    select = (validators.LABEL_FREE_DEFAULT if unlabelled_val
              else "val_accuracy")
  if select == "val_accuracy" and unlabelled_val:
    raise config_lib.ConfigError(
        "--select_checkpoint=val_accuracy needs labelled target validation "
        "images, and the target has none: give --target_val_dir=FOLDER (one "
        "subfolder per class), or keep by a label-free score "
        f"(--select_checkpoint=auto or one of {', '.join(validators.SCORES)})")
  return select if select in ("latest", "val_accuracy") else f"score/{select}"


def _read_data(cfg: config_lib.Config):
  """Loads every split once, to fail early and to fingerprint it. Returns
  (origin by split, sha256 by split, origin by unscored target split: those
  without labels)."""
  origins, fingerprints, unscored = {}, {}, {}
  for role, split in (("source", "train"), ("target", "train"),
                      ("target", "val"), ("target", "test")):
    dom = data.load_domain(cfg.data, role, split)
    origins[f"{role}/{split}"] = dom.origin
    fingerprints[f"{role}/{split}"] = rundir.data_fingerprint(dom)
    logging.info("%s %s: %s, %d examples", role, split, dom.origin,
                 len(dom.images))
    if role == "source":
      _check_num_classes(dom, cfg)
    elif split != "train" and dom.labels is None:
      unscored[split] = dom.origin
    elif dom.labels is None and cfg.train.mode == "target_only":
      raise config_lib.ConfigError(
          f"--mode=target_only trains on target labels and {dom.origin} has "
          "none: give a labelled target (one subfolder per class) or another "
          "--mode")
  return origins, fingerprints, unscored


def _fetch(logs: Dict[str, tf.Tensor], step: int,
           model: pixelda.PixelDA) -> Dict[str, float]:
  """The step's logs as Python floats; raises on NaN or inf in them or in
  the weights the step left (the logs are losses of the weights before the
  update, so an update that itself overflows shows only in the weights)."""
  values = {k: float(v) for k, v in logs.items()}
  pixelda.check_finite(values, step, model.nonfinite_variables())
  return values


def _write_summaries(values: Dict[str, float], step: int, window,
                     batch_size: int) -> None:
  """TensorBoard scalars, with the pace since the last summary."""
  elapsed, steps = time.time() - window[0], step - window[1]
  values = {**values, "perf/step_time_s": elapsed / steps,
            "perf/images_per_s": steps * batch_size / elapsed}
  for name, value in values.items():
    tf.summary.scalar(name, value, step=step)


class _Scorer:
  """The target validation and test accuracies, the label-free scores, and
  the image grid.

  Both use the averaged weights when the run keeps an average
  (`--ema_decay`). An unlabelled split gets no accuracy (nor is it held in
  memory twice); the label-free scores are computed at every evaluation,
  labels or not (`_label_free_inputs`).
  """

  def __init__(self, model: pixelda.PixelDA, cfg: config_lib.Config,
               unscored: Dict[str, str]):
    self.model, self.cfg, self.unscored = model, cfg, unscored
    self._data = {split: data.eval_dataset(cfg.data, "target", split,
                                           evaluation.EVAL_BATCH)
                  for split in ("val", "test") if split not in unscored}
    self._grid_batch = next(iter(data.train_dataset(cfg.data,
                                                     evaluation.GRID_ROWS)))
    self._score_inputs = _label_free_inputs(cfg)

  def _report(self, split: str, averaged: bool = True) -> Dict:
    model = self.model
    with (model.average.applied() if averaged and model.average is not None
          else contextlib.nullcontext()):
      return evaluation.evaluate(model.nets.classifier, self._data[split],
                                 self.cfg.classifier.num_classes)

  def _accuracy(self, split: str) -> Optional[float]:
    return (self._report(split)["accuracy"] if split in self._data
            else None)

  def evaluate(self, step: int, minutes) -> Dict:
    """A history entry: validation and test accuracy (test too, for
    accuracy-vs-time curves; checkpoints are chosen on validation only),
    and the training clock `minutes()` once they are scored."""
    entry = {"step": step, "val_accuracy": self._accuracy("val"),
             "test_accuracy": self._accuracy("test"),
             **self._label_free_scores()}
    entry["minutes"] = minutes()
    if self.model.average is not None and "test" in self._data:
      # The raw weights' score too: what the average smooths.
      entry["test_accuracy_raw"] = self._report(
          "test", averaged=False)["accuracy"]
    for split in ("val", "test"):
      if entry[f"{split}_accuracy"] is not None:
        tf.summary.scalar(f"accuracy/target_{split}",
                          entry[f"{split}_accuracy"], step=step)
    for name, value in entry.items():
      if name.startswith("score/"):
        tf.summary.scalar(name, value, step=step)
    logging.info("step %d: target accuracy: validation %s, test %s", step,
                 _percent(entry["val_accuracy"]),
                 _percent(entry["test_accuracy"]))
    return entry

  def _label_free_scores(self) -> Dict[str, float]:
    """validators' scores of the current weights (averaged where kept)."""
    model, inputs = self.model, self._score_inputs
    pixelda_mode = model.pixelda
    start = time.time()
    with (model.average.applied() if model.average is not None
          else contextlib.nullcontext()):
      scores = validators.checkpoint_scores(
          model.nets.classifier, inputs["target_images"],
          generator=model.nets.generator if pixelda_mode else None,
          discriminator=model.nets.discriminator if pixelda_mode else None,
          source_images=inputs["source_images"],
          source_labels=inputs["source_labels"], seed=self.cfg.data.seed,
          batch=evaluation.EVAL_BATCH)
    # What they cost, beside them: the budget pays for it.
    return {**scores, "score_seconds": time.time() - start}

  def final_report(self, run: rundir.RunDir, step: int) -> Dict:
    """results.json's test scores of the final and the best checkpoint,
    what picked the best (`selection`) and each one's evaluation (its
    validation accuracy and every label-free score) where it had one."""
    out = {"selection": run.selection,
           "final": {"step": step, **self._test_summary(),
                     **_evaluated(run.history, step)}}
    if run.best["step"] < 0:
      out["checkpoint_kept"] = (
          "latest: --select_checkpoint=latest" if run.selection == "latest"
          else f"latest: no evaluation gave {run.selection} a value")
      return out
    best = {**run.best, **_evaluated(run.history, run.best["step"])}
    if "test" in self.unscored:
      out["best"] = {**best, **self._test_summary()}
      return out
    try:
      if run.restore_best(self.model):
        out["best"] = {**best, **self._test_summary()}
    finally:
      run.restore_latest(self.model)
    return out

  def _test_summary(self) -> Dict:
    if "test" in self.unscored:
      return _unscored_summary(self.unscored["test"])
    rep = self._report("test")
    return {k: rep[k] for k in ("accuracy", "per_class_accuracy",
                                "num_examples")}

  def image_summary(self, step: int) -> None:
    """source | G(source, z) for several z | target, one row per example."""
    model, rows = self.model, evaluation.GRID_ROWS
    if not model.pixelda:
      return
    xs = np.asarray(self._grid_batch["source_images"][:rows])
    with (model.average.applied() if model.average is not None
          else contextlib.nullcontext()):
      adapted = evaluation.adapted_columns(model.nets.generator, xs,
                                           evaluation.GRID_SAMPLES)
    grid = evaluation.image_grid(
        [xs, *adapted, self._grid_batch["target_images"][:rows]], rows)
    tf.summary.image("source|adapted|target", grid[None], step=step)


def _label_free_inputs(cfg: config_lib.Config) -> Dict[str, np.ndarray]:
  """What the label-free scores look at, drawn once with the data seed:
  validators.TARGET_IMAGES target images from the target's validation split
  (for an unlabelled target, its train pool: there is no held-out
  unlabelled slice), labels unused; validators.SOURCE_IMAGES source images
  with their labels, every class in proportion, from the source's test
  split where it has one."""
  d = cfg.data
  target = data.load_domain(d, "target", "val")
  idx = np.random.default_rng([d.seed, 3]).choice(
      len(target), min(validators.TARGET_IMAGES, len(target)), replace=False)
  try:
    source = data.load_domain(d, "source", "test")
  except data.DataError:  # a source folder without test/
    source = data.load_domain(d, "source", "train")
  _, held = splits.stratified_split(
      source.labels, min(validators.SOURCE_IMAGES, len(source)), d.seed,
      stream=3)
  return {"target_images": np.asarray(data.to_model_range(
              target.images[np.sort(idx)])),
          "source_images": np.asarray(data.to_model_range(
              source.images[held])),
          "source_labels": source.labels[held]}


def _evaluated(history, step: int) -> Dict:
  """The history's evaluation of `step`, as results.json gives it: its
  validation accuracy and label-free scores ({} when none was made)."""
  entry = [h for h in history if h["step"] == step]
  if not entry:
    return {}
  return {"val_accuracy": entry[-1].get("val_accuracy"),
          "scores": {k: v for k, v in entry[-1].items()
                     if k.startswith("score/")}}


def _log_final(results: Dict) -> None:
  final = results["final"]
  if final["accuracy"] is None:
    logging.info("target test accuracy: none (%s)", final["reason"])
    return
  best = results.get("best")
  logging.info("target test accuracy: final %.4f%s", final["accuracy"],
               f", best by {best['selection']} {best['accuracy']:.4f} (step "
               f"{best['step']})" if best and best["accuracy"] is not None
               else "")


class _Stop:
  """Decides, once per step and the same on every worker, whether to stop:
  the time budget, or SIGINT/SIGTERM (Ctrl-C, Kubernetes, Slurm,
  preemption).

  On a signal, the step in flight finishes, and so does the evaluation,
  image grid or save in flight (the loop asks again after them, so no
  further step runs); the loop then saves a checkpoint and results.json,
  without the final evaluation, and `train` raises `Interrupted`. The handler
  only records the signal (logging from a handler can re-enter a half-done
  write). Once the run acts on a signal the handlers stay installed to the
  end of the process, so further signals are ignored and nothing is left
  half written; the loop asks once more after its final save, and leaving
  the block restores the previous handlers. Signal handlers can only be set
  from the main thread; elsewhere only the budget stops the run.

  Under MultiWorkerMirroredStrategy each worker reads its own clock and
  signals, and the workers add up what they saw (`workers.sum`): a worker
  that stopped alone would leave the others waiting in a collective, and a
  signal to one worker takes all of them down the interrupted path.
  """

  SIGNAL_NAMES = tuple(s.name for s in _SIGNALS)

  def __init__(self, workers: workers_lib.Workers, max_minutes: float,
               minutes):
    self._workers = workers
    self._max_minutes, self._minutes = max_minutes, minutes
    self._signum = None
    self._consumed = False  # check() reported a signal: handlers stay.
    self._previous = {}

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      for s in _SIGNALS:
        self._previous[s] = signal.signal(s, self._handle)
    return self

  def __exit__(self, exc_type, *exc_info):
    if not self._consumed:
      for s, handler in self._previous.items():
        signal.signal(s, handler if handler is not None else signal.SIG_DFL)
      if self._signum is not None and exc_type is None:
        # Recorded after the last check: act on it as if it came now.
        signal.raise_signal(self._signum)
    return False

  def _handle(self, signum, frame):
    del frame
    if self._signum is None:
      self._signum = signum

  def check(self) -> Optional[str]:
    """None, "max_minutes", "SIGINT" or "SIGTERM" (a signal wins)."""
    seen = [float(bool(self._max_minutes)
                  and self._minutes() >= self._max_minutes)]
    seen += [float(self._signum == s) for s in _SIGNALS]
    seen = self._workers.sum(seen, tf.float32)
    for s, count in zip(_SIGNALS, seen[1:]):
      if count > 0:
        self._consumed = True
        return s.name
    return "max_minutes" if seen[0] > 0 else None


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
      # Counted from this process's first step: Progbar's pace (and ETA)
      # divides the time since it started by the steps it was shown.
      self._bar = keras.utils.Progbar(total - start, stateful_metrics=None)
    self._quiet = quiet

  def update(self, step: int, minutes: float) -> None:
    """Moves the bar (no values: those need a device sync, see `show`)."""
    if self._bar is None:
      return
    if self._max_minutes and step > self._start:
      pace = (time.time() - self._began) / 60 / (step - self._start)
      self._bar.target = expected_last_step(
          step, self._total, self._max_minutes, minutes, pace) - self._start
    self._bar.update(step - self._start, finalize=False)

  def show(self, step: int, values: Dict[str, float]) -> None:
    """The losses, on the bar or in a log line."""
    shown = [(k.split("/")[-1], v) for k, v in values.items()
             if k.startswith("loss/") and k != "loss/pmse"]
    if self._bar is not None:
      self._bar.update(step - self._start, values=shown, finalize=False)
    elif not self._quiet and step % self._every == 0:
      logging.info("step %d: %s", step,
                   ", ".join(f"{k} {v:.4f}" for k, v in shown))


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
