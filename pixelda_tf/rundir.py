"""A run's folder (`--model_dir`): its layout and everything kept in it.

  <model_dir>/
    config.json        the Config, written once the data has loaded
    data_sources.json  each split's origin and the sha256 of its content
    checkpoints/       ckpt-N, the newest `keep_checkpoints`
    best/              the checkpoint --select_checkpoint keeps, best.json
    history.json       one entry per evaluation (step, minutes, accuracies)
    progress.json      training minutes at each kept checkpoint
    results.json       the final report (or the interrupted one)
    LOCK               held by the trainer for its lifetime (`runlock`)
    train/             TensorBoard logs

A run that is refused before its first step (other networks at
`--init_from`, a class count that does not fit the data...) leaves the
folder as it found it (`RunDir.discard_untrained`), so the corrected command
starts clean.

The trainer reads and writes it through `RunDir`; the read-only tools
(evaluate, adapt, export) through `load_config` and `restore`. Every JSON
file is written whole or not at all (`write_json`), and checkpoints are
restored newest first, skipping damaged ones with a warning, so a killed or
preempted run never leaves a folder that cannot be resumed or read.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import tempfile
import time
from typing import Dict, List, Optional

from absl import logging
import numpy as np
import tensorflow as tf

from pixelda_tf import config as config_lib
from pixelda_tf import errors
from pixelda_tf import state as state_lib
from pixelda_tf import runlock

CONFIG_FILE = "config.json"
CHECKPOINT_DIR = "checkpoints"
BEST_DIR = "best"
BEST_FILE = "best.json"
RESULTS_FILE = "results.json"
HISTORY_FILE = "history.json"
SOURCES_FILE = "data_sources.json"
PROGRESS_FILE = "progress.json"
SUMMARY_DIR = "train"  # TensorBoard's.
REFINE_FILE = "refine.json"  # A refined run's (pixelda_tf.refining).

# The sets below are derived from each config field's facts (`config.opt`).
# Where the data lives (the same files may move; what is compared is their
# content, `data_fingerprint`).
DATA_LOCATIONS = config_lib.fields_where("location")

# Settings that may change between the first run and a resumed one: budgets,
# intervals, where things are, and how (not what) the step computes.
RESUMABLE_CHANGES = config_lib.fields_where("resumable")

# Settings each worker of a MultiWorkerMirroredStrategy run may give itself:
# where its files are, its own logging and thread pools, and a budget (the
# first worker out of time stops them all). Every other setting must agree,
# or the workers would compute, evaluate or stop at different points.
PER_WORKER_SETTINGS = config_lib.fields_where("per_worker")


class CheckpointError(errors.UserError):
  """No checkpoint in a folder can be read, or one cannot be written."""


class CheckpointMismatchError(CheckpointError, ValueError):
  """A checkpoint whose variables are not the networks' (another run's, or
  other settings); a ValueError too, as it was."""


class DamagedFileError(CheckpointError, ValueError):
  """A run folder's JSON file does not parse (a copy cut short, a full disk
  elsewhere); the message names the file and the fix. A CheckpointError and
  a ValueError, so every binary reports it as one line."""

  def __init__(self, path: str, reason: str, fix: str):
    super().__init__(f"{path} is damaged ({reason}): {fix}")
    self.path, self.reason = path, reason


# What moving each damaged file away does, for the message: the fix to give.
_IF_MOVED_AWAY = {
    CONFIG_FILE: "move it away and rerun `python -m pixelda_tf.train` with "
                 "this run's original flags and --model_dir: it is written "
                 "again from them, and the checkpoints are kept (a restore "
                 "with other networks is refused); or restore it from a "
                 "backup",
    SOURCES_FILE: "move it away: the next train writes it again from the data "
                  "it loads (that resume cannot check the data is the first "
                  "run's)",
    BEST_FILE: "move it away: the best checkpoint is then chosen again "
               "from the next evaluation on",
    RESULTS_FILE: "move it away: the next train or evaluate writes it again",
    REFINE_FILE: "restore it from a backup, or refine again into a new "
                 "--model_dir",
}


def write_json(path: str, obj) -> None:
  """Writes JSON atomically: a reader never sees half a file."""
  tmp = path + ".tmp"
  with tf.io.gfile.GFile(tmp, "w") as f:
    json.dump(obj, f, indent=2, sort_keys=True)
  tf.io.gfile.rename(tmp, path, overwrite=True)


def read_json(path: str, default, fix: Optional[str] = None):
  """The JSON in `path`, or `default` when there is no such file.

  Raises:
    DamagedFileError: the file does not parse (cut short, not JSON); names
      it, and `fix` (default: what moving it away does, for a run folder's
      files).
  """
  if not tf.io.gfile.exists(path):
    return default
  with tf.io.gfile.GFile(path, "rb") as f:
    text = f.read()
  try:
    return json.loads(text)
  except ValueError as e:  # JSONDecodeError, or bytes that are not UTF-8.
    raise DamagedFileError(
        path, f"{_first_line(e)}; {len(text)} bytes",
        fix or _IF_MOVED_AWAY.get(os.path.basename(path), "restore it from a "
                                  "backup, or move it away")) from e


def _first_line(e: Exception) -> str:
  return (str(e).strip().splitlines() or [type(e).__name__])[0]


def _move_away(path: str) -> str:
  """Renames a damaged file to <path>.damaged (kept for a look, never read
  again); returns the new name."""
  aside = path + ".damaged"
  tf.io.gfile.rename(path, aside, overwrite=True)
  return aside


def load_config(model_dir: str) -> config_lib.Config:
  """The Config a run in `model_dir` was trained with (its config.json).

  Raises:
    FileNotFoundError: no config.json.
    DamagedFileError: it does not parse, or holds no Config.
  """
  path = os.path.join(model_dir, CONFIG_FILE)
  if not tf.io.gfile.exists(path):
    raise FileNotFoundError(
        f"{path} not found: {model_dir!r} is not a pixelda-tf model_dir "
        "(train writes config.json there)")
  d = read_json(path, None)
  if not isinstance(d, dict) or not all(isinstance(v, dict)
                                        for v in d.values()):
    raise DamagedFileError(path, "not a config's sections",
                           _IF_MOVED_AWAY[CONFIG_FILE])
  return config_lib.Config.from_dict(d)


def _kept(folder: str) -> List[str]:
  """Every checkpoint prefix the folder's `checkpoint` file lists, newest
  first, whether or not its files are all there."""
  state = tf.train.get_checkpoint_state(folder)
  if state is None:
    return []
  # Already joined to `folder` (relative or not) by get_checkpoint_state.
  paths = [*state.all_model_checkpoint_paths, state.model_checkpoint_path]
  newest_first = []
  for p in reversed(paths):
    if p and p not in newest_first:
      newest_first.append(p)
  return newest_first


def checkpoint_candidates(model_dir: str, which: str = "latest") -> List[str]:
  """The checkpoints `which` may restore, newest first.

  `latest` and `best` list every checkpoint kept in their folder, including
  ones whose files are missing or cut short (`restore_newest_intact` skips
  those with a warning): a damaged newest checkpoint has intact ones behind
  it, and is never mistaken for "not trained yet". Any other `which` is one
  checkpoint prefix.

  Raises:
    FileNotFoundError: nothing to restore, with what to run first.
  """
  if which not in ("latest", "best"):
    if not tf.io.gfile.exists(which + ".index"):
      raise FileNotFoundError(f"no checkpoint at {which!r} (expected "
                              f"{which}.index); pass latest, best or a prefix")
    return [which]
  folder = os.path.join(model_dir, CHECKPOINT_DIR if which == "latest"
                        else BEST_DIR)
  paths = _kept(folder)
  if not paths and which == "best" and tf.io.gfile.exists(
      os.path.join(model_dir, REFINE_FILE)):
    raise FileNotFoundError(
        f"{model_dir} is a refined run (pixelda_tf.refine): it has one "
        "checkpoint, the refinement's last; use --checkpoint=latest")
  if not paths and which == "best":
    raise FileNotFoundError(f"no best checkpoint in {folder}: "
                            + _why_no_best(model_dir))
  if not paths:
    raise FileNotFoundError(
        f"no {which} checkpoint in {folder}: train first with "
        f"`python -m pixelda_tf.train --model_dir={model_dir}`")
  return paths


def _why_no_best(model_dir: str) -> str:
  """Why a run has no best-by-validation checkpoint, and what to do."""
  try:
    cfg = load_config(model_dir)
    history = read_json(os.path.join(model_dir, HISTORY_FILE), [])
  except (FileNotFoundError, DamagedFileError, config_lib.ConfigError):
    cfg, history = None, []
  latest = "use --checkpoint=latest"
  if cfg is not None and not cfg.train.eval_every:
    return (f"this run never evaluated (--eval_every=0), so it has no best; "
            f"{latest}, or resume it with --eval_every > 0")
  if cfg is not None and cfg.train.select_checkpoint == "latest":
    return (f"it was trained with --select_checkpoint=latest, which keeps "
            f"none; {latest}")
  if history and all(h.get("val_accuracy") is None for h in history):
    return ("this run has no labelled target validation (each of its "
            f"{len(history)} evaluations in {HISTORY_FILE} scored none), and "
            "its --select_checkpoint kept the latest; "
            f"{latest}, or train with --select_checkpoint=SCORE (a "
            "label-free score: README, 'Without target labels') or "
            "--target_val_dir=DIR (labelled target images)")
  if cfg is None or history:
    return (f"{latest} (best/ lists no checkpoint: moved or deleted?)" if
            history else f"{latest}, or train first with "
            f"--model_dir={model_dir}")
  return (f"it has not evaluated yet (the first evaluation is at step "
          f"{cfg.train.eval_every}); {latest}, or train on with "
          f"`python -m pixelda_tf.train --model_dir={model_dir}`")


def restore_newest_intact(checkpoint: tf.train.Checkpoint, paths: List[str],
                          networks: str = "these networks",
                          advice: Optional[str] = None) -> str:
  """Restores the first of `paths` that reads, warning about each that does
  not (files missing, truncated or corrupt); returns the path restored.
  `advice` replaces the error's default (delete or restore the files).

  Raises:
    CheckpointError: none of them reads; names every file.
    ValueError: a checkpoint of other networks than `networks` (not damage);
      names that checkpoint.
  """
  damaged = []
  for path in paths:
    try:
      if not tf.io.gfile.exists(path + ".index"):
        raise FileNotFoundError(f"{path}.index is missing")
      checkpoint.restore(path).assert_existing_objects_matched()
      return path
    except (tf.errors.OpError, IndexError, OSError) as e:
      reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
      damaged.append(f"{path} ({reason})")
      logging.warning("checkpoint %s cannot be read: %s%s", path, reason,
                      "; trying the previous one" if path != paths[-1]
                      else "")
    except (AssertionError, ValueError) as e:
      # AssertionError: objects missing; ValueError: variable shapes differ.
      raise CheckpointMismatchError(
          f"checkpoint {path} does not match {networks}: {e}") from e
  folder = os.path.dirname(paths[0]) if paths else "the folder"
  raise CheckpointError(
      "no checkpoint can be read: " + "; ".join(damaged) + ". The files are "
      "damaged or missing (a full disk, a copy cut short?): " + (
          advice or f"delete them (or all of {folder}) to train from the "
          "start, or restore them from a backup"))


def restore(model_dir: str, which: str = "latest",
            strategy: Optional[tf.distribute.Strategy] = None,
            averaged: bool = True) -> state_lib.TrainingState:
  """Rebuilds a trained run's state (networks, averages: no train step) from
  `model_dir` and restores its weights.

  Args:
    model_dir: a training run's folder.
    which: `latest`, `best` (the one `--select_checkpoint` kept) or a
      checkpoint prefix.
    strategy: defaults to the default (single-device) strategy.
    averaged: for a run trained with `ema_decay`, load the averaged weights
      into G and T (what its evaluations scored); False keeps the raw ones.

  Returns:
    The model; `model.restored_from` is the checkpoint read (an older one
    than asked for when the newest is damaged: a warning says so).

  Raises:
    FileNotFoundError: no config or checkpoint.
    CheckpointError: no checkpoint of `which` can be read.
    ValueError: the checkpoint does not match the config's networks.
  """
  cfg = load_config(model_dir)
  # Training-only speed layers are swapped for the plain Keras ones (same
  # variables), so exported .keras files load without pixelda_tf; networks
  # trained in mixed precision hold float32 variables and are rebuilt in
  # float32, so what is evaluated and exported computes as a float32 run.
  cfg = dataclasses.replace(cfg, runtime=dataclasses.replace(
      cfg.runtime, fused_batch_norm=False, split_conv_grad=False,
      precision="float32"))
  paths = checkpoint_candidates(model_dir, which)
  model = state_lib.TrainingState(cfg,
                                  strategy or tf.distribute.get_strategy())
  model.restored_from = restore_newest_intact(
      model.checkpoint, paths,
      f"the networks in {os.path.join(model_dir, CONFIG_FILE)}")
  if averaged and model.average is not None:
    model.average.copy_to_variables()
  return model


def data_fingerprint(domain) -> str:
  """sha256 of a split's pixels and labels: what it is, not where it lives."""
  h = hashlib.sha256(np.ascontiguousarray(domain.images).tobytes())
  if domain.labels is not None:
    h.update(np.asarray(domain.labels, np.int64).tobytes())
  return h.hexdigest()


def prior_minutes(progress: Dict[str, float], history: list,
                  start_step: int) -> float:
  """Training minutes before the checkpoint at start_step.

  From progress.json; if its entry is missing (killed between the checkpoint
  and the progress write), the latest entry or evaluation at or before
  start_step, so the budget never restarts.
  """
  if str(start_step) in progress:
    return progress[str(start_step)]
  known = [(int(k), v) for k, v in progress.items() if int(k) <= start_step]
  known += [(h["step"], h["minutes"]) for h in history]
  return max(known)[1] if known else 0.0


class RunDir:
  """The trainer's side of a model_dir.

  In order: `open` (make the folder, check that it is writable),
  `check_settings` (before the data loads: refuse to resume other settings),
  `record_data` (after: write config.json, refuse other data), `attach`
  (checkpoint managers for the model; resume from the newest intact
  checkpoint), then `save`, `record_evaluation` and `write_results` as the
  run goes. Under MultiWorkerMirroredStrategy every worker saves (saving may
  involve collectives), but only the chief into model_dir; the others into a
  scratch folder, removed by `remove_scratch` when the run ends or fails (a
  SIGKILL leaves it behind).

  Attributes:
    path: the model_dir.
    history: the evaluations so far, across resumes.
    selection: what picks the best checkpoint: "val_accuracy", "latest"
      (none kept) or a history key "score/<name>"; set before `attach`.
    best: {"selection", "value", "step"} of the best checkpoint (step -1:
      none yet).
    saved_step: the step of the newest checkpoint written or restored.
    initialised_from: the `--init_from` checkpoint this run started from,
      when it had none of its own.
    trained: whether this process has reached the training loop (from
      then on, `discard_untrained` keeps everything).
  """

  def __init__(self, cfg: config_lib.Config, chief: bool,
               started: Optional[float] = None):
    self.cfg, self.chief, self.path = cfg, chief, cfg.train.model_dir
    self._started = time.time() if started is None else started
    self._prior_minutes = 0.0
    self.history: List[Dict] = []
    self.selection = "val_accuracy"
    self.best = self._no_best()
    self.saved_step = 0
    self.initialised_from: Optional[str] = None
    self.trained = False
    self._latest = self._best = self._scratch = None
    self._found: Optional[List[str]] = None  # What model_dir held (`open`).
    self._made_folder = False

  def open(self) -> None:
    """Makes model_dir, notes what it holds (for `discard_untrained`), and
    on the chief checks that the run can write there, before anything loads
    or trains: a read-only folder would otherwise fail at the first write,
    steps later.

    Raises:
      config_lib.ConfigError: model_dir cannot be created, or it (or one of
        its checkpoints/, best/, train/ folders) is not writable; names the
        folder and the fix.
    """
    self._made_folder = not tf.io.gfile.exists(self.path)
    try:
      tf.io.gfile.makedirs(self.path)
    except tf.errors.OpError as e:
      raise config_lib.ConfigError(
          f"--model_dir={self.path}: cannot create it ({e.message}); give a "
          "folder this process can write") from e
    self._found = [n.rstrip("/") for n in tf.io.gfile.listdir(self.path)]
    if not self.chief:
      return  # The other workers write into scratch folders.
    for name in ("", CHECKPOINT_DIR, BEST_DIR, SUMMARY_DIR):
      folder = os.path.join(self.path, name) if name else self.path
      if tf.io.gfile.isdir(folder) and not can_write(folder):
        raise config_lib.ConfigError(
            f"--model_dir={self.path}: cannot write in {folder} (read-only): "
            f"make it writable (e.g. chmod -R u+w {self.path}), or copy the "
            "run to a folder you can write and pass that --model_dir")

  def discard_untrained(self) -> None:
    """After a failure before the first step: removes what this run added to
    model_dir (the folder itself when this run made it), so that the
    corrected command starts clean, not as a resume of a run that never
    was. Keeps what was there before, anything once a step has started, any
    checkpoint, and files moved aside as damaged. Only the chief; a failure
    to remove is a warning (it must not hide the error)."""
    if not self.chief or self.trained or self._found is None:
      return
    try:
      for name in tf.io.gfile.listdir(self.path):
        name = name.rstrip("/")
        path = self.file(name)
        if (name in self._found or name.endswith(".damaged")
            or _holds_checkpoint(path)):
          continue
        if tf.io.gfile.isdir(path):
          tf.io.gfile.rmtree(path)
        else:
          tf.io.gfile.remove(path)
      if self._made_folder and not tf.io.gfile.listdir(self.path):
        tf.io.gfile.rmtree(self.path)
    except (OSError, tf.errors.OpError) as e:
      logging.warning("could not remove what this refused run wrote in %s: "
                      "%s", self.path, e)

  def file(self, name: str) -> str:
    return os.path.join(self.path, name)

  def minutes(self) -> float:
    """Training minutes, counted across resumes."""
    return self._prior_minutes + (time.time() - self._started) / 60

  def _init_candidates(self) -> List[str]:
    """The checkpoints `--init_from` names, newest first (FileNotFoundError
    when there are none)."""
    init = self.cfg.train.init_from
    if tf.io.gfile.exists(init + ".index"):
      return [init]
    if not tf.io.gfile.isdir(init):
      raise FileNotFoundError(
          f"--init_from={init}: no such run folder or checkpoint prefix "
          "(give a trained run's --model_dir, its checkpoints/ or best/ "
          "folder, or a prefix such as RUN/checkpoints/ckpt-1000)")
    kept = _kept(init)
    if kept:  # RUN/checkpoints or RUN/best itself.
      return kept
    if os.path.basename(os.path.normpath(init)) in (CHECKPOINT_DIR, BEST_DIR):
      raise FileNotFoundError(
          f"--init_from={init}: no checkpoint is listed there (no "
          "`checkpoint` file): train that run first, or name another run")
    try:
      return checkpoint_candidates(init, "latest")
    except FileNotFoundError as e:
      raise FileNotFoundError(f"--init_from={init}: {e}") from e

  def check_settings(self) -> None:
    """Refuses to resume a run with other model or training settings, and
    to start from an `--init_from` that holds no checkpoint; warns when the
    `--init_from` run may still be training."""
    init = self.cfg.train.init_from
    if init and not _kept(self.file(CHECKPOINT_DIR)):
      paths = self._init_candidates()  # Before the data loads: fail at once.
      folder = os.path.dirname(paths[0])
      trainer = (self.chief and os.path.basename(folder) in (
          CHECKPOINT_DIR, BEST_DIR) and runlock.holder(os.path.dirname(folder)))
      if trainer:
        logging.warning(
            "--init_from=%s: %s may still be training (%s); %s", init,
            os.path.abspath(os.path.dirname(folder)), trainer,
            f"it deletes old checkpoints as it saves: copy {paths[0]} first"
            if tf.io.gfile.exists(init + ".index") else
            "this run starts from the newest checkpoint there when it "
            f"restores (now {paths[0]})")
    if not tf.io.gfile.exists(self.file(CONFIG_FILE)):
      return
    old, new = load_config(self.path).to_dict(), self.cfg.to_dict()
    # Named as in config.json (section.field): flag names differ from fields.
    diffs = [f"{sec}.{field}: {old[sec][field]!r} -> {new[sec][field]!r}"
             for sec in new for field in new[sec]
             if (sec, field) not in RESUMABLE_CHANGES
             and old[sec][field] != new[sec][field]]
    if diffs:
      raise config_lib.ConfigError(
          f"{self.path} holds a run with other settings ({'; '.join(diffs)}; "
          f"see {CONFIG_FILE} there); use a new --model_dir, or the "
          "original flags to resume")

  def record_data(self, origins: Dict[str, str],
                  fingerprints: Dict[str, str]) -> None:
    """Writes config.json (first run) and refuses to resume on other data.

    Data paths may change between runs (the same files can move, a cache can
    be rebuilt), and `mnist_m_variant=auto` resolves at run time, so what is
    compared is each split's content fingerprint; the error names the
    origins.
    """
    if self.chief and not tf.io.gfile.exists(self.file(CONFIG_FILE)):
      write_json(self.file(CONFIG_FILE), self.cfg.to_dict())
    first = read_json(self.file(SOURCES_FILE), None)
    if first is None:
      if self.chief:
        write_json(self.file(SOURCES_FILE),
                   {"origins": origins, "sha256": fingerprints})
      return
    old = first.get("sha256", {})
    diffs = [f"{k}: {first.get('origins', {}).get(k)!r} -> {origins[k]!r}"
             for k, v in fingerprints.items() if k in old and old[k] != v]
    if diffs:
      raise config_lib.ConfigError(
          f"{self.path} was trained on other data ({'; '.join(diffs)}); pass "
          "the data flags of the first run (e.g. --bsds_dir) or use a new "
          "--model_dir")

  def attach(self, model: state_lib.TrainingState) -> int:
    """Checkpoint managers for `model`; restores the newest intact
    checkpoint, with the history, best and clock as of it (a run with none
    of its own starts from `--init_from`'s, with an empty history and
    clock). Returns the step to start from."""
    root = self.path
    if not self.chief:
      root = self._scratch = tempfile.mkdtemp(prefix="pixelda_worker")
    self._latest = tf.train.CheckpointManager(
        model.checkpoint, os.path.join(root, CHECKPOINT_DIR),
        # At least 2: a damaged newest checkpoint has an intact one behind it.
        # As many as asked: with 1, a damaged newest checkpoint has none
        # behind it (a save writes under a temporary name, so only damage
        # from outside the run can do that).
        max_to_keep=self.cfg.train.keep_checkpoints)
    self._best = tf.train.CheckpointManager(
        model.checkpoint, os.path.join(root, BEST_DIR), max_to_keep=2)
    kept = _kept(os.path.join(self.path, CHECKPOINT_DIR))
    init = self.cfg.train.init_from
    if kept or init:
      # A run's own checkpoints win; a run with none starts from --init_from.
      # A damaged checkpoint (a full disk, a copy cut short) is skipped with
      # a warning, and its steps are trained again.
      paths, networks = (
          (kept, f"the networks of {self.path}'s config") if kept else
          (self._init_candidates(), "this run's networks (--init_from needs "
           "the same networks, and --ema_decay on or off as there)"))
      try:
        path = restore_newest_intact(
            model.checkpoint, paths, networks, advice=None if kept else (
                f"--init_from={init}: point it at an intact run, its best/ "
                "folder or a checkpoint prefix, or leave it out to train "
                "from the start"))
      except ValueError as e:
        raise config_lib.ConfigError(str(e)) from e
    step = int(model.step.numpy())
    if kept:
      logging.info("resumed from %s at step %d%s", path, step,
                   " (--init_from is used only by a run with no checkpoint "
                   "of its own)" if init else "")
    elif init:
      if step >= self.cfg.train.train_steps:
        raise config_lib.ConfigError(
            f"--init_from={init} starts at step {step}, "
            f"and --train_steps={self.cfg.train.train_steps} is not past it: "
            f"steps count from 0, so give --train_steps={step} + the steps "
            "to train (or a --max_minutes budget and a large --train_steps)")
      logging.info("initialised from %s (--init_from) at step %d", path, step)
      self.initialised_from = path
    start = self.saved_step = step
    self.history = [h for h in self._recovered(
        HISTORY_FILE, [], "the history starts again at this resume (the "
        "evaluations before it stay in TensorBoard's train/ logs)")
                    if h["step"] <= start]
    self._prior_minutes = prior_minutes(
        self._recovered(PROGRESS_FILE, {}, "the training clock continues "
                        "from the last evaluation at or before step "
                        f"{start} in history.json (or 0)"),
        self.history, start)
    self.best = self._read_best()
    return start

  def _recovered(self, name: str, empty, what_then: str):
    """The JSON of history.json or progress.json; when one is damaged, a
    warning, the file moved to <name>.damaged, and `empty`: they only
    record, and nothing in them is needed to resume (the checkpoints hold
    the state)."""
    try:
      value = read_json(self.file(name), empty)
      if isinstance(value, type(empty)):
        return value
      raise DamagedFileError(
          self.file(name), f"a {type(value).__name__}, not a "
          f"{type(empty).__name__}", "")
    except DamagedFileError as e:
      done = (f"moved to {_move_away(self.file(name))}" if self.chief
              else "left in place (not the chief)")
      logging.warning("%s is damaged (%s): %s, and %s", e.path, e.reason,
                      done, what_then)
      return empty

  def _no_best(self) -> Dict:
    return {"selection": self.selection, "value": None, "step": -1}

  def _read_best(self) -> Dict:
    """best/best.json (one of a run before --select_checkpoint, {"val_accuracy",
    "step"}, read as chosen on val_accuracy); when damaged, rebuilt from the
    newest best/ checkpoint's step and that step's entry in the history, or
    a DamagedFileError saying how to go on when the history lacks it. Kept
    by another selection than this run's: none (the next evaluation
    starts best/ again)."""
    path = self.file(os.path.join(BEST_DIR, BEST_FILE))
    try:
      best = read_json(path, self._no_best())
    except DamagedFileError as e:
      kept = _kept(self.file(BEST_DIR))
      step = int(kept[0].rsplit("-", 1)[-1]) if kept else -1
      value = [h.get(self.selection) for h in self.history
               if h["step"] == step]
      if not kept or not value or value[0] is None:
        raise
      best = {"selection": self.selection, "value": value[0], "step": step}
      if self.chief:
        write_json(path, best)
      logging.warning("%s is damaged (%s): rebuilt from %s and "
                      "history.json: %s", e.path, e.reason, kept[0], best)
      return best
    if "selection" not in best:  # Written before --select_checkpoint.
      best = {"selection": "val_accuracy", "value": best["val_accuracy"],
              "step": best["step"]}
    if best["selection"] != self.selection:
      if best["step"] >= 0:
        logging.warning(
            "best/ holds the checkpoint of step %d, kept by %s; this run "
            "keeps by %s (--select_checkpoint): best/ starts again at the "
            "next evaluation", best["step"], best["selection"],
            self.selection)
      return self._no_best()
    return best

  @property
  def latest_checkpoint(self) -> Optional[str]:
    return self._latest.latest_checkpoint

  @property
  def kept_checkpoint(self) -> Optional[str]:
    """The newest checkpoint as the run keeps it, to name to the user: the
    chief's in model_dir (a non-chief worker's own copy is scratch)."""
    latest = self.latest_checkpoint
    if latest is None or self.chief:
      return latest
    return self.file(os.path.join(CHECKPOINT_DIR, os.path.basename(latest)))

  def save(self, step: int) -> None:
    """A checkpoint of step, and the minutes at each kept checkpoint (so a
    resume from any of them continues the clock from there)."""
    save_checkpoint(self._latest, step)
    self.saved_step = step
    if self.chief:
      kept = {p.rsplit("-", 1)[-1] for p in self._latest.checkpoints}
      done = {k: v for k, v in self._recovered(
          PROGRESS_FILE, {}, "it is written again from this save on").items()
              if k in kept}
      write_json(self.file(PROGRESS_FILE), {**done, str(step): self.minutes()})

  def record_evaluation(self, entry: Dict) -> None:
    """Appends an evaluation (step, minutes, val_accuracy, test_accuracy,
    score/*...) to the history; a higher value of `selection` also saves
    the best checkpoint (never the test accuracy: checkpoints are chosen on
    validation or label-free scores only)."""
    self.history.append(entry)
    if self.chief:
      write_json(self.file(HISTORY_FILE), self.history)
    value = entry.get(self.selection)
    if value is None or not math.isfinite(value):
      return  # "latest", or nothing to compare (no labelled validation).
    if self.best["step"] < 0 or value > self.best["value"]:
      self.best = {"selection": self.selection, "value": value,
                   "step": entry["step"]}
      save_checkpoint(self._best, entry["step"])
      if self.chief:
        write_json(self.file(os.path.join(BEST_DIR, BEST_FILE)), self.best)

  def restore_best(self, model: state_lib.TrainingState) -> bool:
    """Loads the best checkpoint into model; False (with a warning) when
    none of its files reads."""
    try:
      restore_newest_intact(model.checkpoint,
                            list(reversed(self._best.checkpoints)))
      return True
    except CheckpointError as e:
      logging.warning("best checkpoint not scored: %s", e)
      return False

  def restore_latest(self, model: state_lib.TrainingState) -> None:
    model.checkpoint.restore(self.latest_checkpoint).expect_partial()

  def write_results(self, results: Dict) -> None:
    """results.json (the chief's; the other workers write none)."""
    if self.chief:
      write_json(self.file(RESULTS_FILE), results)

  def remove_scratch(self) -> None:
    """Removes a non-chief worker's scratch checkpoints, when the run ends
    or fails after `attach`; a failure to remove them is only a warning (it
    must not hide the error that ended the run)."""
    if self._scratch:
      try:
        tf.io.gfile.rmtree(self._scratch)
      except (OSError, tf.errors.OpError) as e:
        logging.warning("could not remove the worker's scratch checkpoints "
                        "%s: %s", self._scratch, e)
      self._scratch = None


def can_write(folder: str) -> bool:
  """Whether this process can create a file in the local `folder`, by
  creating one (permission bits miss read-only mounts and ACLs). Object
  stores (gs://...) are taken as writable: their permissions show at the
  first write."""
  if "://" in folder:
    return True
  try:
    fd, probe = tempfile.mkstemp(prefix=".write_probe", dir=folder)
  except OSError:
    return False
  os.close(fd)
  os.remove(probe)
  return True


def _holds_checkpoint(path: str) -> bool:
  """Whether `path` is, or is a folder holding, a checkpoint's files."""
  def is_checkpoint(name):
    return name == "checkpoint" or name.endswith(".index") or ".data-" in name
  if not tf.io.gfile.isdir(path):
    return is_checkpoint(os.path.basename(path))
  return any(is_checkpoint(f) for _, _, files in tf.io.gfile.walk(path)
             for f in files)


def save_checkpoint(manager: tf.train.CheckpointManager, step: int
                    ) -> None:
  """manager.save, with an error naming the file when the write fails (a
  full disk, a lost mount). TensorFlow writes into a temporary name and
  renames at the end, so the checkpoints before it stay intact."""
  try:
    manager.save(checkpoint_number=step)
  except (tf.errors.OpError, OSError) as e:
    path = os.path.join(manager.directory, f"ckpt-{step}")
    kept = manager.latest_checkpoint or "no earlier checkpoint"
    raise CheckpointError(
        f"could not write checkpoint {path}: {e}. {kept} is kept: free "
        "space (or fix the folder) and rerun the same command to resume from "
        "it") from e
