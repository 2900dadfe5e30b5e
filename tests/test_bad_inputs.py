"""One line for every bad input (issue 47): each case, its message, its fix.

Each test gives the bad input, checks the message (one line, naming the file
or flag), and where the message suggests a fix, runs the fix. Run folders are
made without training (a PixelDA saved into the trainer's layout), so most
cases take a second; the ones that export, train a classifier or start a
binary are marked slow.
"""

import dataclasses
import logging as std_logging
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from pixelda_tf import adapting
from pixelda_tf import classifiers
from pixelda_tf import config as config_lib
from pixelda_tf import data
from pixelda_tf import evaluation
from pixelda_tf import exporting
from pixelda_tf import pixelda
from pixelda_tf import rundir
from pixelda_tf.data import folders
from tests import tiny

pytestmark = pytest.mark.usefixtures("offline_data")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _config(tmp_path, fake, **train) -> config_lib.Config:
  """tiny's config on the fake MNIST -> released MNIST-M, model_dir
  tmp_path/run."""
  return tiny.tiny_config(
      data=dict(mnist_dir=str(fake / "mnist"),
                mnist_m_dir=str(fake / "mnist_m"), mnist_m_variant="released",
                data_dir=str(tmp_path / "data"), val_size=4, download=False),
      train=dict(model_dir=str(tmp_path / "run"), **train))


def _run_folder(cfg: config_lib.Config, steps=(1,)) -> pixelda.PixelDA:
  """A run folder in the trainer's layout (config.json, checkpoints/ckpt-N
  for N in steps), without training."""
  model = pixelda.PixelDA(cfg, tf.distribute.get_strategy())
  model_dir = cfg.train.model_dir
  os.makedirs(model_dir, exist_ok=True)
  rundir.write_json(os.path.join(model_dir, rundir.CONFIG_FILE), cfg.to_dict())
  manager = tf.train.CheckpointManager(
      model.checkpoint, os.path.join(model_dir, rundir.CHECKPOINT_DIR),
      max_to_keep=5)
  for step in steps:
    model.step.assign(step)
    manager.save(checkpoint_number=step)
  return model


def _damage(path: str) -> None:
  """Cuts a file short, as a copy interrupted half way does."""
  with open(path, "rb") as f:
    text = f.read()
  with open(path, "wb") as f:
    f.write(text[:len(text) // 2] or b"{")


def _one_line(e) -> str:
  message = str(e.value if hasattr(e, "value") else e)
  assert "\n" not in message, message
  return message


# --- 3, 14: a damaged config.json, history.json, progress.json ---------------

def test_a_damaged_json_file_is_one_line_naming_it_and_the_fix(tmp_path):
  path = str(tmp_path / rundir.HISTORY_FILE)
  rundir.write_json(path, [{"step": 1, "minutes": 0.5}])
  _damage(path)
  with pytest.raises(rundir.DamagedFileError) as e:
    rundir.read_json(path, [])
  assert _one_line(e).startswith(f"{path} is damaged (")
  # Every binary catches one of these.
  assert isinstance(e.value, rundir.CheckpointError)
  assert isinstance(e.value, ValueError)
  with open(path, "wb") as f:
    f.write(b"\xff\xfe not utf-8")
  with pytest.raises(rundir.DamagedFileError, match="is damaged"):
    rundir.read_json(path, [])


def test_a_damaged_config_json_names_the_file_and_the_fix(tmp_path, fake):
  cfg = _config(tmp_path, fake)
  _run_folder(cfg)
  path = os.path.join(cfg.train.model_dir, rundir.CONFIG_FILE)
  _damage(path)
  for read in (lambda: rundir.load_config(cfg.train.model_dir),
               lambda: rundir.restore(cfg.train.model_dir),
               lambda: evaluation.evaluate_model_dir(cfg.train.model_dir, {})):
    with pytest.raises(rundir.DamagedFileError) as e:
      read()
    assert _one_line(e).startswith(f"{path} is damaged (")
    assert "move it away and rerun `python -m pixelda_tf.train`" in str(
        e.value)
  with open(path, "w") as f:
    f.write("[1, 2]")  # JSON, but not a config.
  with pytest.raises(rundir.DamagedFileError, match="not a config's sections"):
    rundir.load_config(cfg.train.model_dir)


@pytest.mark.slow
def test_the_damaged_config_json_fix_rewrites_it_and_keeps_the_checkpoints(
    tmp_path, fake):
  from pixelda_tf import training  # pylint: disable=g-import-not-at-top
  cfg = _config(tmp_path, fake, train_steps=2, checkpoint_every=2,
                eval_every=0, image_every=0, summary_every=1, quiet=True)
  training.train(cfg, strategy=tf.distribute.get_strategy())
  model_dir = cfg.train.model_dir
  path = os.path.join(model_dir, rundir.CONFIG_FILE)
  _damage(path)
  proc = subprocess.run(
      [sys.executable, "-m", "pixelda_tf.evaluate", f"--model_dir={model_dir}"],
      capture_output=True, text=True, cwd=str(tmp_path), timeout=300,
      env={**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "2"})
  assert proc.returncode == 1 and "Traceback" not in proc.stderr
  errors = [l for l in proc.stderr.splitlines() if l.startswith("error: ")]
  assert errors == [errors[0]] and f"{path} is damaged (" in errors[0]
  # The fix: move it away, rerun train with the original flags.
  os.rename(path, path + ".moved")
  training.train(cfg, strategy=tf.distribute.get_strategy())
  assert rundir.load_config(model_dir) == cfg
  assert rundir.restore(model_dir).restored_from.endswith("ckpt-2")


def _attach(cfg):
  run = rundir.RunDir(cfg, chief=True)
  model = pixelda.PixelDA(cfg, tf.distribute.get_strategy())
  return run, run.attach(model), model


def test_damaged_history_and_progress_are_moved_away_and_the_run_resumes(
    tmp_path, fake, caplog):
  cfg = _config(tmp_path, fake)
  _run_folder(cfg, steps=(2, 4))
  history = [{"step": 2, "minutes": 1.0, "val_accuracy": 0.5},
             {"step": 4, "minutes": 2.0, "val_accuracy": 0.25}]
  files = {}
  for name, value in ((rundir.HISTORY_FILE, history),
                      (rundir.PROGRESS_FILE, {"2": 1.1, "4": 2.2})):
    files[name] = os.path.join(cfg.train.model_dir, name)
    rundir.write_json(files[name], value)
  # progress.json alone: the clock continues from the history's minutes.
  _damage(files[rundir.PROGRESS_FILE])
  began = time.time()
  with caplog.at_level(std_logging.WARNING):
    run, start, _ = _attach(cfg)
  assert start == 4 and run.history == history
  # 2.0 plus the seconds since the clock restarted: bounded by the wall
  # time since before the attach, however loaded the machine is.
  assert 2.0 <= run.minutes() <= 2.0 + (time.time() - began) / 60
  assert os.path.exists(files[rundir.PROGRESS_FILE] + ".damaged")
  assert not os.path.exists(files[rundir.PROGRESS_FILE])
  assert f"{files[rundir.PROGRESS_FILE]} is damaged" in caplog.text
  # history.json too: the history starts again; the checkpoint still wins.
  _damage(files[rundir.HISTORY_FILE])
  caplog.clear()
  with caplog.at_level(std_logging.WARNING):
    run, start, model = _attach(cfg)
  assert start == 4 and run.history == [] and run.minutes() < 0.1
  assert "the history starts again" in caplog.text
  assert os.path.exists(files[rundir.HISTORY_FILE] + ".damaged")
  # A save writes progress.json afresh.
  run.save(5)
  assert set(rundir.read_json(files[rundir.PROGRESS_FILE], {})) == {"5"}


def test_a_damaged_best_json_is_rebuilt_from_best_and_the_history(tmp_path,
                                                                  fake):
  cfg = _config(tmp_path, fake)
  model = _run_folder(cfg, steps=(2, 4))
  model_dir = cfg.train.model_dir
  best_dir = os.path.join(model_dir, rundir.BEST_DIR)
  model.step.assign(2)
  tf.train.CheckpointManager(model.checkpoint, best_dir, max_to_keep=2).save(
      checkpoint_number=2)
  best = os.path.join(best_dir, rundir.BEST_FILE)
  rundir.write_json(best, {"val_accuracy": 0.5, "step": 2})
  rundir.write_json(os.path.join(model_dir, rundir.HISTORY_FILE), [
      {"step": 2, "minutes": 1.0, "val_accuracy": 0.5},
      {"step": 4, "minutes": 2.0, "val_accuracy": 0.25}])
  _damage(best)
  run, _, _ = _attach(cfg)
  assert run.best == {"selection": "val_accuracy", "value": 0.5, "step": 2}
  assert rundir.read_json(best, None) == run.best
  # Without the history's score it cannot be rebuilt: one line, the fix.
  _damage(best)
  os.remove(os.path.join(model_dir, rundir.HISTORY_FILE))
  with pytest.raises(rundir.DamagedFileError) as e:
    _attach(cfg)
  assert _one_line(e).startswith(f"{best} is damaged (")
  assert "move it away" in str(e.value)
  os.rename(best, best + ".moved")  # The fix.
  run, start, _ = _attach(cfg)
  assert start == 4 and run.best == {"selection": "val_accuracy",
                                     "value": None, "step": -1}


def test_best_json_of_an_older_run_or_another_selection(tmp_path, fake,
                                                       caplog):
  cfg = _config(tmp_path, fake)
  _run_folder(cfg, steps=(2, 4))
  best = os.path.join(cfg.train.model_dir, rundir.BEST_DIR, rundir.BEST_FILE)
  os.makedirs(os.path.dirname(best))
  # Written before --select_checkpoint: kept by validation accuracy.
  rundir.write_json(best, {"val_accuracy": 0.5, "step": 2})
  run, _, _ = _attach(cfg)
  assert run.best == {"selection": "val_accuracy", "value": 0.5, "step": 2}
  # A resume that keeps by a label-free score starts best/ again.
  run = rundir.RunDir(cfg, chief=True)
  run.selection = "score/snd"
  run.attach(pixelda.PixelDA(cfg, tf.distribute.get_strategy()))
  assert run.best == {"selection": "score/snd", "value": None, "step": -1}
  assert "kept by val_accuracy; this run keeps by score/snd" in caplog.text
  run.record_evaluation({"step": 4, "val_accuracy": 0.9, "score/snd": 1.5})
  assert run.best == {"selection": "score/snd", "value": 1.5, "step": 4}
  run.record_evaluation({"step": 6, "val_accuracy": 0.95, "score/snd": 1.2})
  assert run.best["step"] == 4 and rundir.read_json(best, None) == run.best


# --- 4: a read-only run folder ----------------------------------------------

def _train_cfg(tmp_path, fake, **train) -> config_lib.Config:
  """`_config` for a run that trains: 3 steps, a checkpoint each, quiet."""
  return _config(tmp_path, fake, **{
      **dict(train_steps=3, checkpoint_every=1, eval_every=0, image_every=0,
             summary_every=1, quiet=True), **train})


def _train(cfg):
  from pixelda_tf import training  # pylint: disable=g-import-not-at-top
  return training.train(cfg, strategy=tf.distribute.get_strategy())


def _read_only(folder: str, monkeypatch) -> None:
  """Makes `folder` read-only; as root, where permission bits do not stop
  writes, the writability probe is told so (the check still runs)."""
  os.chmod(folder, 0o555)
  if rundir.can_write(folder):  # Root.
    can_write = rundir.can_write
    monkeypatch.setattr(rundir, "can_write",
                        lambda f: os.path.normpath(f) != os.path.normpath(
                            folder) and can_write(f))


@pytest.mark.slow
@pytest.mark.parametrize("sub", ["", rundir.CHECKPOINT_DIR])
def test_a_read_only_run_folder_is_refused_before_anything_runs(
    tmp_path, fake, monkeypatch, sub):
  cfg = _train_cfg(tmp_path, fake)
  _run_folder(cfg, steps=(1,))
  model_dir = cfg.train.model_dir
  folder = os.path.join(model_dir, sub) if sub else model_dir
  can_write = rundir.can_write
  before = {d: sorted(os.listdir(os.path.join(model_dir, d)))
            for d in ("", rundir.CHECKPOINT_DIR)}
  _read_only(folder, monkeypatch)
  try:
    with pytest.raises(config_lib.ConfigError) as e:
      _train(cfg)
  finally:
    os.chmod(folder, 0o755)
  assert _one_line(e) == (
      f"--model_dir={model_dir}: cannot write in {folder} (read-only): make "
      f"it writable (e.g. chmod -R u+w {model_dir}), or copy the run to a "
      "folder you can write and pass that --model_dir")
  # Before the data loaded or a step ran: nothing written, no LOCK.
  assert before == {d: sorted(os.listdir(os.path.join(model_dir, d)))
                    for d in ("", rundir.CHECKPOINT_DIR)}
  # The fix: writable again (chmod above), the same command resumes.
  monkeypatch.setattr(rundir, "can_write", can_write)
  assert _train(cfg)["steps"] == 3


def test_the_writability_probe_sees_a_read_only_folder(tmp_path):
  assert rundir.can_write(str(tmp_path))
  assert not os.listdir(tmp_path)  # The probe cleans up.
  os.chmod(tmp_path, 0o555)
  try:
    if os.geteuid() == 0:
      pytest.skip("root writes into read-only folders: the probe rightly "
                  "says it can (the trainer's test simulates the refusal)")
    assert not rundir.can_write(str(tmp_path))
  finally:
    os.chmod(tmp_path, 0o755)


# --- 6: a refused train leaves nothing behind --------------------------------

def _refusals(tmp_path, fake):
  """case -> (overrides that are refused, the error, its message, the
  overrides of the corrected command). --init_from cases start from a run at
  step 2 (tmp_path/first)."""
  first = _with(_config(tmp_path, fake),
                dict(train=dict(model_dir=str(tmp_path / "first"))))
  _run_folder(first, steps=(2,))
  broken = tmp_path / "broken"
  shutil.copytree(tmp_path / "first", broken)
  for name in os.listdir(broken / rundir.CHECKPOINT_DIR):
    if ".data-" in name:
      with open(broken / rundir.CHECKPOINT_DIR / name, "r+b") as f:
        f.truncate(10)
  init = dict(train=dict(init_from=first.train.model_dir))
  return {
      "num_classes": (dict(classifier=dict(num_classes=5)),
                      config_lib.ConfigError, "has 10 classes but "
                      "--num_classes=5: pass --num_classes=10", {}),
      "init_from_missing": (
          dict(train=dict(init_from=str(tmp_path / "nope"))),
          FileNotFoundError, "no such run folder or checkpoint prefix", init),
      "init_from_damaged": (
          dict(train=dict(init_from=str(broken))), rundir.CheckpointError,
          "point it at an intact run", init),
      "init_from_not_past_its_step": (
          dict(train=dict(init_from=first.train.model_dir, train_steps=2)),
          config_lib.ConfigError, "starts at step 2, and --train_steps=2 is "
          "not past it", init),
      "init_from_other_networks": (
          dict(train=dict(init_from=first.train.model_dir),
               generator=dict(filters=4)),
          config_lib.ConfigError, "--init_from needs the same networks", init),
  }


def _with(cfg, overrides):
  """cfg with fields replaced, by section: {"train": {"train_steps": 2}}."""
  return dataclasses.replace(cfg, **{
      section: dataclasses.replace(getattr(cfg, section), **fields)
      for section, fields in overrides.items()})


@pytest.mark.slow
@pytest.mark.parametrize("case", [
    "num_classes", "init_from_missing", "init_from_damaged",
    "init_from_not_past_its_step", "init_from_other_networks"])
@pytest.mark.parametrize("folder", ["new", "holding_a_file"])
def test_a_refused_train_leaves_the_folder_as_it_was_and_the_fix_trains(
    tmp_path, fake, case, folder):
  bad, error, message, fixed = _refusals(tmp_path, fake)[case]
  cfg = _train_cfg(tmp_path, fake)
  model_dir = cfg.train.model_dir
  if folder == "holding_a_file":
    os.makedirs(model_dir)
    with open(os.path.join(model_dir, "notes.txt"), "w") as f:
      f.write("the user's")
  with pytest.raises(error) as e:
    _train(_with(cfg, bad))
  assert message in _one_line(e)
  if folder == "new":
    assert not os.path.exists(model_dir)  # No LOCK, config.json, ...
  else:
    assert os.listdir(model_dir) == ["notes.txt"]
  # The corrected command trains in the same --model_dir.
  results = _train(_with(cfg, fixed))
  assert results["steps"] == 3
  assert results.get("initialised_from", "").endswith(
      "ckpt-2") == bool(fixed)


def test_a_refusal_after_training_began_or_in_a_run_keeps_everything(
    tmp_path, fake):
  # Never a checkpoint, never what was there: a resumed run's folder.
  cfg = _config(tmp_path, fake)
  _run_folder(cfg, steps=(1,))
  model_dir = cfg.train.model_dir
  before = sorted(os.listdir(model_dir))
  run = rundir.RunDir(cfg, chief=True)
  run.open()
  rundir.write_json(run.file(rundir.SOURCES_FILE), {})
  run.trained = True
  run.discard_untrained()
  assert sorted(os.listdir(model_dir)) == sorted(
      before + [rundir.SOURCES_FILE])
  run.trained = False
  os.makedirs(run.file(rundir.BEST_DIR))
  _run_folder(_with(cfg, dict(train=dict(model_dir=run.file(
      rundir.BEST_DIR)))), steps=(1,))
  run.discard_untrained()
  # What this run added goes; a new folder holding a checkpoint stays.
  assert sorted(os.listdir(model_dir)) == sorted(before + [rundir.BEST_DIR])


# --- 8: --checkpoint=best with no labelled validation ------------------------

def test_no_best_checkpoint_names_the_real_cause(tmp_path, fake):
  cfg = _config(tmp_path, fake)
  _run_folder(cfg, steps=(2,))
  model_dir = cfg.train.model_dir
  rundir.write_json(os.path.join(model_dir, rundir.HISTORY_FILE), [
      {"step": 1, "minutes": 0.1, "val_accuracy": None, "test_accuracy": None},
      {"step": 2, "minutes": 0.2, "val_accuracy": None, "test_accuracy": None}])
  with pytest.raises(FileNotFoundError) as e:
    rundir.checkpoint_candidates(model_dir, "best")
  message = _one_line(e)
  assert "no labelled target validation" in message
  assert "--eval_every" not in message
  assert "--checkpoint=latest" in message and "--target_val_dir" in message
  # The fix: --checkpoint=latest.
  assert rundir.checkpoint_candidates(model_dir, "latest")[0].endswith(
      "ckpt-2")
  # A run that never evaluated says so; one not evaluated yet says when.
  for eval_every, want in ((0, "never evaluated (--eval_every=0)"),
                           (500, "not evaluated yet (the first evaluation "
                                 "is at step 500)")):
    other = _config(tmp_path / str(eval_every), fake, eval_every=eval_every)
    _run_folder(other, steps=(2,))
    with pytest.raises(FileNotFoundError, match=want.replace(
        "(", r"\(").replace(")", r"\)")):
      rundir.checkpoint_candidates(other.train.model_dir, "best")
  # A run told to keep none says so.
  other = _config(tmp_path / "latest", fake, select_checkpoint="latest")
  _run_folder(other, steps=(2,))
  with pytest.raises(FileNotFoundError, match="--select_checkpoint=latest, "
                     "which keeps none; use --checkpoint=latest"):
    rundir.checkpoint_candidates(other.train.model_dir, "best")


# --- 11: --keep_checkpoints=1 ------------------------------------------------

def test_keep_checkpoints_1_keeps_1(tmp_path, fake):
  cfg = _config(tmp_path, fake, keep_checkpoints=1)
  run, _, _ = _attach(cfg)
  for step in (1, 2, 3):
    run.save(step)
  folder = os.path.join(cfg.train.model_dir, rundir.CHECKPOINT_DIR)
  kept = rundir._kept(folder)  # pylint: disable=protected-access
  assert [os.path.basename(p) for p in kept] == ["ckpt-3"]
  assert sorted(n for n in os.listdir(folder) if n.endswith(".index")) == [
      "ckpt-3.index"]


# --- 9: export --onnx without tf2onnx ----------------------------------------

def test_onnx_without_tf2onnx_is_refused_before_anything_is_written(
    tmp_path, fake, monkeypatch):
  cfg = _config(tmp_path, fake)
  model = _run_folder(cfg)
  monkeypatch.setitem(sys.modules, "tf2onnx", None)  # import fails
  out = str(tmp_path / "out")
  for export in (
      lambda: exporting.export_model_dir(cfg.train.model_dir, out, onnx=True),
      lambda: exporting.export(model, out, onnx=True)):
    with pytest.raises(exporting.ExportError) as e:
      export()
    assert "`pip install tf2onnx onnx`" in _one_line(e)
    assert not os.path.exists(out)


@pytest.mark.slow
def test_the_onnx_fix_leaving_it_out_exports(tmp_path, fake, monkeypatch):
  # `pip install` cannot run offline; the other fix the message gives can.
  cfg = _config(tmp_path, fake)
  _run_folder(cfg)
  monkeypatch.setitem(sys.modules, "tf2onnx", None)
  out = str(tmp_path / "out")
  paths = exporting.export_model_dir(cfg.train.model_dir, out)
  assert os.path.isdir(paths[exporting.CLASSIFIER])
  assert not os.path.exists(os.path.join(out, exporting.ONNX_DIR))


# --- 10: a wrong input dtype at serving --------------------------------------

@pytest.mark.slow
def test_a_wrong_dtype_names_image_and_the_other_signature(tmp_path, fake):
  cfg = _config(tmp_path, fake)
  model = pixelda.PixelDA(cfg, tf.distribute.get_strategy())
  module = exporting.build_servables(model.nets, cfg)[exporting.GENERATOR]
  path = str(tmp_path / "generator")
  tf.saved_model.save(module, path, signatures=module.signatures())
  loaded = tf.saved_model.load(path)
  pixels = np.zeros((2, 16, 16, 3), np.uint8)
  seeds = tf.constant([1, 2], tf.int64)
  for signature, inputs, want in (
      ("serving_default", {"image": tf.constant(pixels)},
       "image_float32_in_minus1_to_1__for_uint8_images_use_the_uint8_"
       "signature"),
      ("seed", {"image": tf.constant(pixels), "seed": seeds},
       "image_float32_in_minus1_to_1_and_seed_int64__for_uint8_images_use_"
       "the_uint8_seed_signature"),
      ("uint8", {"image": tf.constant(pixels, tf.float32)},
       "image_uint8_in_0_to_255__for_float32_images_use_the_serving_default_"
       "signature")):
    with pytest.raises(tf.errors.InvalidArgumentError) as e:
      loaded.signatures[signature](**inputs)
    assert want in str(e.value) and "input #0" in str(e.value)
  # The restored methods name the input itself.
  with pytest.raises(TypeError, match="name='image'"):
    loaded.serving_default(tf.constant(pixels))
  # The fix: the uint8 signature takes the uint8 pixels.
  out = loaded.signatures["uint8_seed"](image=tf.constant(pixels), seed=seeds)
  assert out["adapted_uint8"].shape == (2, 16, 16, 3)


# --- 12: an adapted set with an empty class ----------------------------------

@pytest.mark.slow
def test_an_empty_class_is_named_by_adapt_and_classify(tmp_path, fake,
                                                       caplog):
  cfg = _config(tmp_path, fake)
  _run_folder(cfg)
  model_dir, out = cfg.train.model_dir, str(tmp_path / "adapted")
  with caplog.at_level(std_logging.WARNING):
    manifest = adapting.adapt_dataset(model_dir, out, {}, fmt="png",
                                      split="test", max_images=3)
  # Fake MNIST test labels are i % 10: the first 3 are classes 0, 1, 2.
  assert manifest["empty_classes"] == [str(c) for c in range(3, 10)]
  assert ("no images of classes ['3', '4', '5', '6', '7', '8', '9'] (of 10)"
          in caplog.text)
  assert "adapt with a larger --max_images (0 = all)" in caplog.text
  caplog.clear()
  with caplog.at_level(std_logging.WARNING):
    res = classifiers.train_and_evaluate(out, cfg, arch="wide_cnn", epochs=1,
                                         batch_size=4)
  assert res["empty_classes"] == manifest["empty_classes"]
  assert "no training images of classes" in caplog.text
  # The fix: a larger --max_images.
  caplog.clear()
  with caplog.at_level(std_logging.WARNING):
    manifest = adapting.adapt_dataset(model_dir, out, {}, fmt="png",
                                      split="test", max_images=10,
                                      overwrite=True)
    res = classifiers.train_and_evaluate(out, cfg, arch="wide_cnn", epochs=1,
                                         batch_size=4)
  assert manifest["empty_classes"] == [] and res["empty_classes"] == []
  assert "no images of class" not in caplog.text
  assert "no training images of class" not in caplog.text


# --- 5: classify on a folder of other classes than the target's --------------

def _class_folder(root, classes, per_class=3, seed=0):
  rng = np.random.default_rng(seed)
  for name in classes:
    os.makedirs(root / name, exist_ok=True)
    for i in range(per_class):
      Image.fromarray(rng.integers(0, 256, (12, 12, 3), np.uint8)).save(
          root / name / f"{i}.png")
  return str(root)


def test_classify_refuses_classes_the_target_is_not_labelled_with(
    tmp_path, fake, monkeypatch):
  train_dir = _class_folder(tmp_path / "cats_dogs", ["cat", "dog"])
  # As the binary with no manifest and no target flags: the default config.
  monkeypatch.chdir(tmp_path)
  with pytest.raises(data.DataError) as e:
    classifiers.train_and_evaluate(train_dir, config_lib.Config())
  message = _one_line(e)
  assert message.startswith(f"{train_dir} has the classes ['cat', 'dog'], "
                            "but the target it would be tested on "
                            "(--target=mnist_m) is labelled ['0', ")
  assert f"--source=folder --source_dir={train_dir} --target=folder" in message
  assert not os.path.exists(tmp_path / "data")  # No MNIST-M cache written.


@pytest.mark.slow
def test_the_classify_fix_names_a_target_with_those_classes(tmp_path, fake):
  train_dir = _class_folder(tmp_path / "cats_dogs", ["cat", "dog"])
  target = _class_folder(tmp_path / "target", ["cat", "dog"], seed=1)
  cfg = config_lib.override_data(
      config_lib.Config(data=config_lib.DataConfig(
          image_size=16, data_dir=str(tmp_path / "data"), download=False)),
      {"source": "folder", "source_dir": train_dir, "target": "folder",
       "target_dir": target})
  res = classifiers.train_and_evaluate(train_dir, cfg, arch="wide_cnn",
                                       epochs=1, batch_size=4)
  assert res["num_train"] == 6 and len(res["confusion_matrix"]) == 2
  assert 0.0 <= res["accuracy"] <= 1.0


# --- 7: a one-class source ---------------------------------------------------

def test_a_one_class_source_says_to_add_a_class(tmp_path, fake):
  source = tmp_path / "source"
  _class_folder(source, ["cat"])
  cfg = tiny.data_config(tmp_path, fake, source="folder",
                         source_dir=str(source), mnist_dir=None,
                         target="folder", target_dir=str(fake / "target_flat"),
                         image_size=16)
  with pytest.raises(data.DataError) as e:
    data.load_domain(cfg, "source", "train")
  assert _one_line(e) == (
      f"--source_dir={source} has one class (cat): a classifier needs at "
      f"least 2 to tell apart; add a second class subfolder to {source} (one "
      "subfolder per class)")
  _class_folder(source, ["dog"])  # The fix.
  domain = data.load_domain(cfg, "source", "train")
  assert domain.num_classes == 2 and len(domain) == 6


# --- 15: a remote folder that cannot be reached ------------------------------

def test_an_unreachable_remote_folder_is_not_called_missing(tmp_path, fake,
                                                            monkeypatch):
  url = "gs://pixelda-no-such-bucket/source"
  isdir, stat = tf.io.gfile.isdir, tf.io.gfile.stat
  reachable = {"up": False}

  def fake_isdir(path):
    return path.startswith(url) and reachable["up"] or (
        not path.startswith("gs://") and isdir(path))

  def fake_stat(path):
    if not path.startswith("gs://"):
      return stat(path)
    if not reachable["up"]:
      # What TensorFlow's GCS file system raises with no network.
      raise tf.errors.FailedPreconditionError(
          None, None, "Error executing an HTTP request: libcurl code 6 "
          "meaning 'Could not resolve hostname'\n\t when reading metadata")
    raise tf.errors.NotFoundError(None, None, "not found")

  monkeypatch.setattr(tf.io.gfile, "isdir", fake_isdir)
  monkeypatch.setattr(tf.io.gfile, "stat", fake_stat)
  cfg = tiny.data_config(tmp_path, fake, source="folder", source_dir=url,
                         mnist_dir=None, target="folder",
                         target_dir=str(fake / "target_flat"), image_size=16)
  for read in (lambda: folders.require_folder(url, "source_dir"),
               lambda: data.class_names(cfg),
               lambda: data.load_domain(cfg, "source", "train")):
    with pytest.raises(data.DataError) as e:
      read()
    assert _one_line(e).startswith(
        f"--source_dir={url} could not be reached (FailedPreconditionError: "
        "Error executing an HTTP request: libcurl code 6 meaning 'Could not "
        "resolve hostname'): check the network connection and the "
        "credentials")
  # Reached, and not there: that one is "not a folder".
  with pytest.raises(data.DataError, match=r"^--target_dir=gs://pixelda-"
                     r"no-such-bucket/other is not a folder$"):
    reachable["up"] = True
    folders.require_folder("gs://pixelda-no-such-bucket/other", "target_dir")
  folders.require_folder(url, "source_dir")  # The fix: the network is back.
