"""The training loop end to end on tiny fake data: outputs, resume, NaN stop."""

import dataclasses
import errno
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

from pixelda_tf import config as config_lib
from pixelda_tf import data
from pixelda_tf import pixelda
from pixelda_tf import rundir
from pixelda_tf import runlock
from pixelda_tf import training
from pixelda_tf import workers
from tests import tiny


# Trains, exports or starts processes: not in the quick tier.
pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _data(fake, tmp):
  fake = str(fake)
  return dict(mnist_dir=os.path.join(fake, "mnist"),
              mnist_m_variant="released",
              mnist_m_dir=os.path.join(fake, "mnist_m"),
              data_dir=os.path.join(tmp, "data"), val_size=8)


def _cfg(fake, tmp, **train):
  return tiny.tiny_config(
      data=_data(fake, tmp),
      train=dict(dict(model_dir=os.path.join(tmp, "run"), train_steps=4,
                      checkpoint_every=2, eval_every=2, summary_every=1,
                      image_every=2, quiet=True), **train))


def _tags(model_dir):
  tags = set()
  folder = os.path.join(model_dir, "train")
  for name in os.listdir(folder):
    for event in tf.compat.v1.train.summary_iterator(
        os.path.join(folder, name)):
      tags |= {v.tag for v in event.summary.value}
  return tags


def test_smoke_run_writes_checkpoints_summaries_and_results(fake, tmp_path):
  cfg = _cfg(fake, str(tmp_path))
  results = training.train(cfg, strategy=tf.distribute.get_strategy())
  run = cfg.train.model_dir
  assert tf.train.latest_checkpoint(os.path.join(run, "checkpoints")).endswith(
      "ckpt-4")
  assert tf.train.latest_checkpoint(os.path.join(run, "best")) is not None
  with open(os.path.join(run, "results.json")) as f:
    saved = json.load(f)
  assert saved["steps"] == results["steps"] == 4
  assert 0.0 <= saved["final"]["accuracy"] <= 1.0
  test_split = data.load_domain(cfg.data, "target", "test")
  assert saved["final"]["num_examples"] == len(test_split.images)
  assert "released" in saved["data_sources"]["target/test"].lower()
  assert config_lib.Config.from_dict(saved["config"]) == cfg
  assert [h["step"] for h in saved["val_history"]] == [2, 4]
  assert all(0 <= h["test_accuracy"] <= 1 for h in saved["val_history"])
  tags = _tags(run)
  assert {"loss/generator", "loss/discriminator", "loss/classifier",
          "learning_rate", "perf/images_per_s", "accuracy/target_val",
          "source|adapted|target"} <= tags
  # Rerunning the finished command resumes at the end and does no steps.
  again = training.train(cfg, strategy=tf.distribute.get_strategy())
  assert again["steps"] == 4


@pytest.mark.parametrize("mode", ["source_only", "target_only"])
def test_baseline_modes_run(fake, tmp_path, mode):
  cfg = _cfg(fake, str(tmp_path), mode=mode, image_every=0)
  results = training.train(cfg, strategy=tf.distribute.get_strategy())
  assert results["mode"] == mode and results["steps"] == 4


def test_resume_with_other_model_settings_is_refused(fake, tmp_path):
  cfg = _cfg(fake, str(tmp_path), train_steps=1, eval_every=0)
  training.train(cfg, strategy=tf.distribute.get_strategy())
  other = tiny.tiny_config(data=_data(fake, str(tmp_path)),
                           generator=dict(filters=4),
                           train=dict(model_dir=cfg.train.model_dir))
  with pytest.raises(config_lib.ConfigError, match="generator.filters: 8 -> 4"):
    training.train(other, strategy=tf.distribute.get_strategy())


def test_resume_on_moved_data_works_and_on_other_data_is_refused(fake,
                                                                  tmp_path):
  cfg = _cfg(fake, str(tmp_path), train_steps=1, eval_every=0, image_every=0)
  training.train(cfg, strategy=tf.distribute.get_strategy())

  def resume_on(folder, steps):
    moved = dataclasses.replace(cfg.data, mnist_m_dir=str(folder))
    return training.train(dataclasses.replace(
        cfg, data=moved, train=dataclasses.replace(cfg.train,
                                                   train_steps=steps)),
        strategy=tf.distribute.get_strategy())

  # The same files somewhere else: a path change, not a data change.
  moved = tmp_path / "moved_mnist_m"
  shutil.copytree(os.path.join(str(fake), "mnist_m"), moved)
  assert resume_on(moved, 2)["steps"] == 2
  # One test image changed: other data.
  image = sorted((moved / "mnist_m_test").iterdir())[0]
  pixels = np.asarray(Image.open(image))
  Image.fromarray(255 - pixels).save(image)
  # A new process would read the folder again: drop this one's memo.
  data.domains._full.cache_clear()  # pylint: disable=protected-access
  with pytest.raises(config_lib.ConfigError, match="trained on other data"):
    resume_on(moved, 3)


def test_time_budget_continues_across_resumes():
  progress = {"4": 1.5, "8": 3.0}
  history = [{"step": 6, "minutes": 2.2}]
  assert rundir.prior_minutes(progress, history, 8) == 3.0
  # Killed between checkpoint 10 and its progress entry: the latest known
  # clock at or before step 10, never a fresh budget.
  assert rundir.prior_minutes(progress, history, 10) == 3.0
  assert rundir.prior_minutes({}, history, 7) == 2.2
  assert rundir.prior_minutes({}, [], 5) == 0.0


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(fake,
                                                                  tmp_path):
  cfg = tiny.tiny_config(
      data=_data(fake, str(tmp_path)), optim=dict(learning_rate=1e30),
      train=dict(model_dir=str(tmp_path / "run"), train_steps=50,
                 checkpoint_every=1, eval_every=0, quiet=True))
  with pytest.raises(pixelda.NonFiniteLossError, match=r"at step \d+"):
    training.train(cfg, strategy=tf.distribute.get_strategy())
  model = rundir.restore(str(tmp_path / "run"))
  assert 0 < int(model.step) < 50
  for v in model.nets.generator.variables:
    assert np.all(np.isfinite(v.numpy())), v.path


def test_non_finite_loss_between_fetches_writes_no_bad_checkpoint(fake,
                                                                  tmp_path):
  # Logs are fetched only at summary, evaluation and checkpoint steps (and
  # before the final save): the NaN check still runs before every save.
  cfg = tiny.tiny_config(
      data=_data(fake, str(tmp_path)), optim=dict(learning_rate=1e30),
      train=dict(model_dir=str(tmp_path / "run"), train_steps=50,
                 checkpoint_every=3, summary_every=0, eval_every=0,
                 image_every=0, quiet=True))
  with pytest.raises(pixelda.NonFiniteLossError) as raised:
    training.train(cfg, strategy=tf.distribute.get_strategy())
  # Found at the first fetch after it went wrong: a checkpoint step.
  assert int(re.search(r"at step (\d+)", str(raised.value))[1]) % 3 == 0
  folder = tmp_path / "run" / "checkpoints"
  for path in (tf.train.get_checkpoint_state(str(folder)).
               all_model_checkpoint_paths if folder.exists() else []):
    reader = tf.train.load_checkpoint(path)
    for name in reader.get_variable_to_shape_map():
      value = reader.get_tensor(name)
      if np.issubdtype(np.asarray(value).dtype, np.floating):
        assert np.all(np.isfinite(value)), (path, name)


def test_weights_made_non_finite_by_the_update_are_caught_before_a_save():
  # The logs are the losses of the weights before the update; an update that
  # overflows shows only in the weights it leaves, which the fetch checks.
  model = pixelda.PixelDA(tiny.tiny_config(train=dict(ema_decay=0.9)),
                          tf.distribute.get_strategy())
  logs = {"loss/generator": tf.constant(0.5)}
  assert training._fetch(logs, 7, model) == {"loss/generator": 0.5}
  kernel = model.nets.generator.get_layer("conv_in").kernel
  kernel.assign(tf.fill(kernel.shape, np.inf))
  slot = [v for v in model.optimizers["discriminator"].variables
          if v.path.endswith("_velocity")][-1]
  slot.assign(tf.fill(slot.shape, np.nan))
  average = model.average.averages[0]
  average.assign(tf.fill(average.shape, np.nan))
  with pytest.raises(pixelda.NonFiniteLossError,
                     match=r"at step 7, after its update: .*conv_in/kernel"
                     ) as raised:
    training._fetch(logs, 7, model)
  assert slot.path in str(raised.value)
  assert f"average of {model.average.sources[0].path}" in str(raised.value)


def test_a_relative_model_dir_resumes_and_restores(fake, tmp_path,
                                                   monkeypatch):
  # What every README command and preset does: --model_dir=runs/...
  monkeypatch.chdir(tmp_path)
  cfg = _cfg(fake, str(tmp_path), eval_every=0, image_every=0)
  cfg = dataclasses.replace(cfg, train=dataclasses.replace(
      cfg.train, model_dir=os.path.join("runs", "rel")))
  half = dataclasses.replace(cfg, train=dataclasses.replace(
      cfg.train, train_steps=2))
  training.train(half, strategy=tf.distribute.get_strategy())
  again = training.train(cfg, strategy=tf.distribute.get_strategy())
  assert again["steps"] == 4
  model = rundir.restore(os.path.join("runs", "rel"))
  assert int(model.step) == 4
  assert model.restored_from.endswith("ckpt-4")


def test_init_from_starts_a_second_stage_where_the_first_ended(fake, tmp_path,
                                                                caplog):
  def stage(model_dir, steps, **kw):
    train = dict(model_dir=str(tmp_path / model_dir), train_steps=steps,
                 eval_every=0, image_every=0)
    train.update(kw.pop("train", {}))
    base = _cfg(fake, str(tmp_path))
    return dataclasses.replace(
        base, train=dataclasses.replace(base.train, **train), **kw)

  strategy = tf.distribute.get_strategy()
  training.train(stage("unbroken", 4), strategy=strategy)
  training.train(stage("first", 2), strategy=strategy)
  second = stage("second", 4, train=dict(init_from=str(tmp_path / "first")))
  results = training.train(second, strategy=strategy)
  assert results["steps"] == 4 and results["initialised_from"].endswith(
      os.path.join("first", "checkpoints", "ckpt-2"))
  # It started at step 2: its own checkpoints begin after it.
  kept = os.listdir(tmp_path / "second" / "checkpoints")
  assert "ckpt-4.index" in kept and "ckpt-2.index" not in kept
  # Two steps there and two here are the four steps of an unbroken run.
  _, want = _final_weights(str(tmp_path / "unbroken"))
  _, got = _final_weights(str(tmp_path / "second"))
  for k in want:
    np.testing.assert_array_equal(got[k], want[k], err_msg=k)
  # The first stage is left as it was.
  assert int(rundir.restore(str(tmp_path / "first")).step) == 2
  # Rerun, the second stage resumes its own checkpoints.
  assert training.train(second, strategy=strategy)["steps"] == 4
  # A refinement stage: other losses and budgets, from a checkpoint prefix.
  refine = stage("refine", 3, train=dict(
      init_from=str(tmp_path / "first" / "checkpoints" / "ckpt-2")),
                 loss=dataclasses.replace(second.loss, pseudo_label=1.0))
  with caplog.at_level("WARNING", logger="absl"):
    logs = training.train(refine, strategy=strategy)
  assert logs["steps"] == 3 and logs["config"]["train"]["init_from"]
  assert not any("still training" in r.getMessage() for r in caplog.records)
  # The checkpoints folder itself, of a run still training: it goes ahead
  # from the newest checkpoint and says the source may still be moving.
  with runlock.RunLock(str(tmp_path / "first")), caplog.at_level(
      "WARNING", logger="absl"):
    held = training.train(stage("held", 3, train=dict(
        init_from=str(tmp_path / "first" / "checkpoints"))), strategy=strategy)
  assert held["initialised_from"].endswith("ckpt-2")
  assert any(f"may still be training (PID {os.getpid()}" in r.getMessage()
             for r in caplog.records)
  os.makedirs(tmp_path / "empty" / "checkpoints")
  with pytest.raises(FileNotFoundError, match=r"empty.checkpoints: no "
                     "checkpoint is listed there"):
    training.train(stage("u", 3, train=dict(
        init_from=str(tmp_path / "empty" / "checkpoints"))), strategy=strategy)
  # A source whose checkpoints are all damaged: the advice is about
  # --init_from, not about deleting this run's files.
  shutil.copytree(tmp_path / "first", tmp_path / "broken")
  for name in os.listdir(tmp_path / "broken" / "checkpoints"):
    if ".data-" in name:
      with open(tmp_path / "broken" / "checkpoints" / name, "r+b") as f:
        f.truncate(10)
  with pytest.raises(rundir.CheckpointError, match=r"--init_from=.*broken: "
                     "point it at an intact run"):
    training.train(stage("v", 3, train=dict(
        init_from=str(tmp_path / "broken"))), strategy=strategy)
  with pytest.raises(FileNotFoundError, match=r"--init_from=.*nope: no such "
                     "run folder or checkpoint prefix"):
    training.train(stage("x", 3, train=dict(init_from=str(tmp_path / "nope"))),
                   strategy=strategy)
  # Refused before the data loads and anything is written.
  assert not os.path.exists(tmp_path / "x" / "config.json")
  with pytest.raises(config_lib.ConfigError, match=r"starts at step 2, and "
                     r"--train_steps=2 is not past it"):
    training.train(stage("w", 2, train=dict(init_from=str(tmp_path / "first"))),
                   strategy=strategy)
  other = stage("y", 3, train=dict(init_from=str(tmp_path / "first")),
                generator=dataclasses.replace(second.generator, filters=4))
  with pytest.raises(config_lib.ConfigError,
                     match="--init_from needs the same networks"):
    training.train(other, strategy=strategy)
  with pytest.raises(config_lib.ConfigError, match="own --model_dir"):
    config_lib.validate(stage("z", 3, train=dict(
        init_from=str(tmp_path / "z"))))


def _train_cmd(fake, tmp, model_dir, steps):
  fake = str(fake)
  return [sys.executable, "-m", "pixelda_tf.train",
          f"--mnist_dir={fake}/mnist", "--mnist_m_variant=released",
          f"--mnist_m_dir={fake}/mnist_m", f"--data_dir={tmp}/data",
          "--val_size=8", "--image_size=16", "--batch_size=8",
          "--g_filters=8", "--g_blocks=1", "--d_filters=8",
          "--d_max_filters=16", "--seed=3", "--nojit_compile", "--quiet",
          f"--train_steps={steps}", "--checkpoint_every=25", "--eval_every=0",
          "--summary_every=1000", "--image_every=0",
          f"--model_dir={model_dir}"]


def _final_weights(model_dir):
  model = rundir.restore(model_dir)
  return model, tiny.weights(model)


_ENV = {**os.environ, "PYTHONPATH": ROOT, "PIXELDA_OFFLINE": "1"}
_STEPS = 300


@pytest.fixture(scope="module")
def unbroken(fake, tmp_path_factory):
  """The final weights of a run that nothing interrupted."""
  tmp = tmp_path_factory.mktemp("unbroken")
  model_dir = str(tmp / "run")
  subprocess.run(_train_cmd(fake, tmp, model_dir, _STEPS), cwd=ROOT, env=_ENV,
                 check=True, capture_output=True, timeout=300)
  return _final_weights(model_dir)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM,
                                 signal.SIGINT])
def test_a_killed_or_stopped_run_reruns_like_an_unbroken_one(fake, tmp_path,
                                                             unbroken, sig):
  broken = str(tmp_path / "broken")
  proc = subprocess.Popen(_train_cmd(fake, tmp_path, broken, _STEPS), cwd=ROOT,
                          env=_ENV, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
  deadline = time.time() + 240
  marker = os.path.join(broken, "checkpoints", "ckpt-75.index")
  while not os.path.exists(marker) and proc.poll() is None:
    assert time.time() < deadline, "no checkpoint appeared"
    time.sleep(0.05)
  proc.send_signal(sig)
  seen = []
  if sig != signal.SIGKILL:
    # Once the loop has stopped, a second signal while it saves changes
    # nothing.
    for line in proc.stderr:
      seen.append(line)
      if "stopping at step" in line:
        proc.send_signal(sig)
        break
  _, err = proc.communicate(timeout=120)
  err = "".join(seen) + err
  stopped_at = int(rundir.restore(broken).step)
  assert 0 < stopped_at < _STEPS, "the run ended before the signal"
  if sig == signal.SIGKILL:
    assert proc.returncode == -signal.SIGKILL
  else:
    # The step in flight finished and was saved, not just the last periodic
    # checkpoint; results.json says what happened and how to go on.
    assert proc.returncode == 128 + sig, err
    assert f"interrupted: {signal.Signals(sig).name} at step {stopped_at}" in (
        err)
    assert "Traceback" not in err
    with open(os.path.join(broken, "results.json")) as f:
      results = json.load(f)
    assert results["interrupted"] and results["steps"] == stopped_at
    assert results["stopped_by"] == signal.Signals(sig).name
    assert results["final"]["accuracy"] is None
    assert "rerun the same command" in results["final"]["reason"]
  subprocess.run(_train_cmd(fake, tmp_path, broken, _STEPS), cwd=ROOT,
                 env=_ENV, check=True, capture_output=True, timeout=300)
  model_a, a = _final_weights(broken)
  model_b, b = unbroken
  assert int(model_a.step) == int(model_b.step) == _STEPS
  for k in a:
    np.testing.assert_array_equal(a[k], b[k], err_msg=k)
  for name, opt in model_a.optimizers.items():
    for va, vb in zip(opt.variables, model_b.optimizers[name].variables):
      np.testing.assert_array_equal(va.numpy(), vb.numpy())


def test_seed_summary_reports_mean_and_std():
  from pixelda_tf import sweeps  # pylint: disable=g-import-not-at-top
  def run(final, best):
    return {"final": {"accuracy": final}, "best": {"accuracy": best},
            "steps": 10, "wall_time_s": 60.0,
            "data_sources": {"target/test": "MNIST-M"}}
  summary = sweeps.summarize({0: run(0.9, 0.92), 1: run(0.8, 0.94)})
  assert summary["final"]["mean"] == pytest.approx(0.85)
  assert summary["final"]["std"] == pytest.approx(0.0707107)  # ddof=1
  assert summary["best"]["mean"] == pytest.approx(0.93)
  assert summary["runs"]["1"]["minutes"] == 1.0
  # The one mean ± std of the benchmarks: None values are left out.
  assert sweeps.mean_std([2.0, None, 4.0]) == {
      "mean": 3.0, "std": pytest.approx(2 ** 0.5), "n": 2}
  assert sweeps.mean_std([5.0]) == {"mean": 5.0, "std": 0.0, "n": 1}
  assert sweeps.mean_std([None]) == {"mean": None, "std": None, "n": 0}


def test_a_signal_to_the_sweep_driver_reaches_its_run_and_stops_the_sweep(
    tmp_path):
  # The driver's run stands in for a training run: it writes a file when it
  # is ready and one when SIGTERM reaches it (as train saves a checkpoint).
  from pixelda_tf import sweeps  # pylint: disable=g-import-not-at-top
  child = (
      "import pathlib, signal, sys, time\n"
      f"out = pathlib.Path({str(tmp_path)!r})\n"
      "def stop(signum, frame):\n"
      "  (out / 'stopped').write_text(str(signum))\n"
      "  sys.exit(128 + signum)\n"
      "signal.signal(signal.SIGTERM, stop)\n"
      "(out / 'ready').write_text('')\n"
      "time.sleep(60)\n")
  done = threading.Event()
  def kill_when_ready():
    # Only while the driver runs: a SIGTERM after it would end pytest.
    while not done.is_set():
      if (tmp_path / "ready").exists():
        os.kill(os.getpid(), signal.SIGTERM)
        return
      time.sleep(0.02)
  before = signal.getsignal(signal.SIGTERM)
  killer = threading.Thread(target=kill_when_ready, daemon=True)
  killer.start()
  started = time.time()
  try:
    with pytest.raises(SystemExit) as stopped:
      sweeps.run_passing_signals([sys.executable, "-c", child])
  finally:
    done.set()
    killer.join()
  assert stopped.value.code == 128 + signal.SIGTERM
  assert (tmp_path / "stopped").read_text() == str(int(signal.SIGTERM))
  assert time.time() - started < 30  # the run did not sleep its 60 s out
  # The driver's own handler is back once the run is over.
  assert signal.getsignal(signal.SIGTERM) is before
  assert sweeps.run_passing_signals([sys.executable, "-c", "pass"]) == 0


def test_sweep_children_run_the_drivers_pixelda_tf(tmp_path, monkeypatch):
  # From a folder holding another pixelda_tf (an older checkout), with yet
  # another first on PYTHONPATH, a child still imports the driver's copy.
  from pixelda_tf import sweeps  # pylint: disable=g-import-not-at-top
  for decoy in (tmp_path / "pixelda_tf", tmp_path / "old" / "pixelda_tf"):
    decoy.mkdir(parents=True)
    (decoy / "__init__.py").write_text("")
  if sys.version_info < (3, 11):  # no PYTHONSAFEPATH: the folder wins
    (tmp_path / "pixelda_tf" / "__init__.py").unlink()
    (tmp_path / "pixelda_tf").rmdir()
  monkeypatch.setenv("PYTHONPATH", str(tmp_path / "old"))
  monkeypatch.chdir(tmp_path)
  out = tmp_path / "where"
  code = sweeps.run_passing_signals(
      [sys.executable, "-c", "import pixelda_tf; open(%r, 'w').write("
       "pixelda_tf.__file__)" % str(out)], env=sweeps.child_env())
  assert code == 0
  assert out.read_text() == os.path.join(ROOT, "pixelda_tf", "__init__.py")
  assert sweeps.child_env()["PYTHONPATH"] == ROOT + os.pathsep + str(
      tmp_path / "old")


# --- Faults: a second process, damaged checkpoints, a full disk. ------------


def test_a_second_trainer_is_refused_naming_the_holder(fake, tmp_path):
  cfg = _cfg(fake, str(tmp_path), train_steps=1, eval_every=0, image_every=0)
  os.makedirs(cfg.train.model_dir)
  with runlock.RunLock(cfg.train.model_dir):
    with pytest.raises(runlock.LockedError,
                       match=rf"in use by another trainer \(PID {os.getpid()} "
                       rf"on host {socket.gethostname()}"):
      training.train(cfg, strategy=tf.distribute.get_strategy())
    # Refused before anything was written.
    assert sorted(os.listdir(cfg.train.model_dir)) == ["LOCK"]
  # Released at the end: the run goes ahead now, and releases it in turn.
  assert training.train(cfg, strategy=tf.distribute.get_strategy())[
      "steps"] == 1
  with open(os.path.join(cfg.train.model_dir, "LOCK")) as f:
    assert not f.read()


def test_holder_names_a_live_trainer_only(tmp_path):
  assert runlock.holder(str(tmp_path)) is None  # No LOCK.
  with runlock.RunLock(str(tmp_path)):
    assert runlock.holder(str(tmp_path)).startswith(f"PID {os.getpid()} ")
  assert runlock.holder(str(tmp_path)) is None  # Emptied at the end.
  lock = tmp_path / "LOCK"
  dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                        capture_output=True, text=True, check=True)
  lock.write_text(json.dumps({"host": socket.gethostname(),
                              "pid": int(dead.stdout)}))
  assert runlock.holder(str(tmp_path)) is None  # Died without releasing.
  lock.write_text(json.dumps({"host": "elsewhere", "pid": 7}))
  assert runlock.holder(str(tmp_path)).endswith("(another host: not checked)")


def test_a_lock_left_by_a_dead_run_is_taken_over(tmp_path, caplog):
  lock = tmp_path / "LOCK"
  lock.write_text(json.dumps({"host": "gone", "pid": 4242,
                              "started": "2026-01-01T00:00:00"}))
  with caplog.at_level("WARNING", logger="absl"):
    with runlock.RunLock(str(tmp_path)):
      assert json.loads(lock.read_text())["pid"] == os.getpid()
  assert any("took over" in r.getMessage() and "PID 4242 on host gone"
             in r.getMessage() for r in caplog.records)


def test_a_damaged_newest_checkpoint_falls_back_to_the_previous_one(
    fake, tmp_path, caplog):
  cfg = _cfg(fake, str(tmp_path), eval_every=0, image_every=0)
  run = cfg.train.model_dir
  unbroken = training.train(cfg, strategy=tf.distribute.get_strategy())
  newest = os.path.join(run, "checkpoints", "ckpt-4")
  data_file = newest + ".data-00000-of-00001"
  size = os.path.getsize(data_file)
  with open(data_file, "r+b") as f:
    f.truncate(size // 2)
  # Read-only tools: the previous checkpoint, with a warning naming the file.
  with caplog.at_level("WARNING", logger="absl"):
    model = rundir.restore(run)
  assert model.restored_from.endswith("ckpt-2") and int(model.step) == 2
  assert any(newest in r.getMessage() and "cannot be read" in r.getMessage()
             for r in caplog.records)
  # (evaluate, adapt and export restore through rundir.restore too.)
  # Training: resumes from step 2 and trains steps 3-4 again, exactly.
  again = training.train(cfg, strategy=tf.distribute.get_strategy())
  assert again["steps"] == 4
  assert again["weights_sha256"] == unbroken["weights_sha256"]
  # A newest checkpoint whose .index is gone (a copy cut short) is not taken
  # for "never trained": the previous one is restored, with a warning.
  os.remove(newest + ".index")
  caplog.clear()
  with caplog.at_level("WARNING", logger="absl"):
    assert rundir.restore(run).restored_from.endswith("ckpt-2")
  assert any(f"{newest}.index is missing" in r.getMessage()
             for r in caplog.records)
  again = training.train(cfg, strategy=tf.distribute.get_strategy())
  assert again["weights_sha256"] == unbroken["weights_sha256"]
  # Nothing readable: one error naming every file, and what to do.
  for name in os.listdir(os.path.join(run, "checkpoints")):
    if ".data-" in name:
      with open(os.path.join(run, "checkpoints", name), "r+b") as f:
        f.truncate(10)
  with pytest.raises(rundir.CheckpointError,
                     match=r"no checkpoint can be read: .*ckpt-4 .*ckpt-2 .*"
                     r"delete them"):
    rundir.restore(run)
  proc = subprocess.run(
      [sys.executable, "-m", "pixelda_tf.evaluate", f"--model_dir={run}"],
      cwd=ROOT, env=_ENV, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 1
  assert "no checkpoint can be read" in proc.stderr
  assert "Traceback" not in proc.stderr


def test_a_full_disk_during_a_save_keeps_the_previous_checkpoint(
    fake, tmp_path, monkeypatch):
  cfg = _cfg(fake, str(tmp_path), eval_every=0, image_every=0)
  run = cfg.train.model_dir
  training.train(dataclasses.replace(
      cfg, train=dataclasses.replace(cfg.train, train_steps=2)),
      strategy=tf.distribute.get_strategy())
  write = tf.train.Checkpoint._write  # pylint: disable=protected-access

  def disk_full(self, prefix, options=None):
    # Half a data file lands, then the disk is full.
    with open(prefix + ".data-00000-of-00001", "wb") as f:
      f.write(b"\0" * 100)
    raise OSError(errno.ENOSPC, "No space left on device",
                  prefix + ".data-00000-of-00001")

  monkeypatch.setattr(tf.train.Checkpoint, "_write", disk_full)
  with pytest.raises(rundir.CheckpointError,
                     match=r"could not write checkpoint .*ckpt-4: .*No space "
                     r"left.* .*ckpt-2 is kept"):
    training.train(cfg, strategy=tf.distribute.get_strategy())
  monkeypatch.setattr(tf.train.Checkpoint, "_write", write)
  model = rundir.restore(run)
  assert int(model.step) == 2 and model.restored_from.endswith("ckpt-2")
  assert training.train(cfg, strategy=tf.distribute.get_strategy())[
      "steps"] == 4


def test_a_missing_folder_names_its_flag_and_writes_nothing(fake, tmp_path):
  cfg = tiny.tiny_config(
      data=dict(source="folder", source_dir=str(tmp_path / "nowhere"),
                target="folder", target_dir=str(tmp_path / "nowhere2")),
      train=dict(model_dir=str(tmp_path / "run"), train_steps=1, quiet=True))
  with pytest.raises(data.DataError, match=r"--source_dir=.*nowhere is not a "
                     "folder"):
    training.train(cfg, strategy=tf.distribute.get_strategy())
  assert not os.path.exists(tmp_path / "run")  # Made by this run: removed.


class _TwoReplicas:
  """What `train` asks of a strategy before anything runs."""
  num_replicas_in_sync = 2


def test_a_batch_that_does_not_split_over_the_replicas_is_refused(
    fake, tmp_path):
  cfg = _cfg(fake, str(tmp_path), batch_size=5)
  with pytest.raises(config_lib.ConfigError, match="--batch_size=5 does not "
                     "split evenly over the 2 replicas.*multiple of 2"):
    training.train(cfg, strategy=_TwoReplicas())
  assert not os.path.exists(tmp_path / "run")


def test_a_model_dir_that_is_a_file_is_refused(fake, tmp_path):
  (tmp_path / "run").write_text("not a folder")
  with pytest.raises(config_lib.ConfigError, match="--model_dir=.*run is a "
                     "file: give a folder"):
    training.train(_cfg(fake, str(tmp_path)),
                   strategy=tf.distribute.get_strategy())
  inside = dataclasses.replace(
      _cfg(fake, str(tmp_path)).train,
      model_dir=str(tmp_path / "run" / "sub"))
  with pytest.raises(config_lib.ConfigError, match="cannot create it"):
    training.train(dataclasses.replace(_cfg(fake, str(tmp_path)),
                                       train=inside),
                   strategy=tf.distribute.get_strategy())
  assert (tmp_path / "run").read_text() == "not a folder"


def _interrupted_in_process(cfg, step):
  """Trains in this process until the SIGTERM a patched hook sends; returns
  results.json. The trainer keeps its handlers after a signal (by design),
  so pytest's are put back."""
  handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
  try:
    with pytest.raises(training.Interrupted, match=f"SIGTERM at step {step}"):
      training.train(cfg, strategy=tf.distribute.get_strategy())
  finally:
    for s, handler in handlers.items():
      signal.signal(s, handler)
  with open(os.path.join(cfg.train.model_dir, "results.json")) as f:
    return json.load(f)


def test_a_signal_stops_before_that_steps_evaluation(fake, tmp_path,
                                                     monkeypatch):
  # A preempted job has seconds left: after the signal, the step in flight
  # is saved at once, without the evaluation that step was due.
  cfg = _cfg(fake, str(tmp_path), train_steps=10, eval_every=1,
             checkpoint_every=100, image_every=0)
  step_fn = pixelda.PixelDA.train_step

  def step_then_signal(self, batch):
    logs = step_fn(self, batch)
    if int(self.step) == 3:
      os.kill(os.getpid(), signal.SIGTERM)
    return logs

  monkeypatch.setattr(pixelda.PixelDA, "train_step", step_then_signal)
  results = _interrupted_in_process(cfg, 3)
  assert results["interrupted"] and results["steps"] == 3
  assert [h["step"] for h in results["val_history"]] == [1, 2]
  assert int(rundir.restore(cfg.train.model_dir).step) == 3


def test_a_signal_during_the_last_evaluation_still_stops_as_interrupted(
    fake, tmp_path, monkeypatch):
  cfg = _cfg(fake, str(tmp_path), train_steps=4, eval_every=4,
             checkpoint_every=100, image_every=0)
  evaluate = training._Scorer.evaluate  # pylint: disable=protected-access

  def evaluate_then_signal(self, step, minutes):
    entry = evaluate(self, step, minutes)
    os.kill(os.getpid(), signal.SIGTERM)
    return entry

  monkeypatch.setattr(training._Scorer, "evaluate", evaluate_then_signal)  # pylint: disable=protected-access
  results = _interrupted_in_process(cfg, 4)
  assert results["interrupted"] and results["stopped_by"] == "SIGTERM"
  assert int(rundir.restore(cfg.train.model_dir).step) == 4


def test_after_a_signal_the_run_only_saves_and_writes_its_results(
    fake, tmp_path, monkeypatch):
  # Issue 47, item 16: a SIGTERM during an evaluation. The evaluation in
  # flight finishes; then no further step, no scoring, no best-checkpoint
  # restore: the run saves that step and writes results.json.
  cfg = _cfg(fake, str(tmp_path), train_steps=10, eval_every=2,
             checkpoint_every=100, image_every=0)
  after = []  # What ran after the signal.
  signalled = []

  def spy(cls, name, label, signal_after=None):
    real = getattr(cls, name)

    def wrapped(self, *args, **kwargs):
      if signalled:
        after.append(label(*args))
      out = real(self, *args, **kwargs)
      if signal_after and signal_after(*args) and not signalled:
        signalled.append(True)
        os.kill(os.getpid(), signal.SIGTERM)
      return out
    monkeypatch.setattr(cls, name, wrapped)

  # pylint: disable=protected-access
  spy(training._Scorer, "_report", lambda split, *a: f"score {split}",
      signal_after=lambda split, *a: split == "val" and _steps_done() == 4)
  spy(pixelda.PixelDA, "train_step", lambda batch: "train_step")
  spy(training._Scorer, "final_report", lambda run, step: "final_report")
  spy(training._Scorer, "image_summary", lambda step: "image_summary")
  spy(rundir.RunDir, "restore_best", lambda model: "restore_best")
  models = []
  init = pixelda.PixelDA.__init__

  def keep(self, *args, **kwargs):
    init(self, *args, **kwargs)
    models.append(self)
  monkeypatch.setattr(pixelda.PixelDA, "__init__", keep)

  def _steps_done():
    return int(models[-1].step) if models else -1

  results = _interrupted_in_process(cfg, 4)
  # The evaluation the signal came in finishes (test scored); nothing else.
  assert after == ["score test"], after
  assert results["steps"] == 4 and results["interrupted"]
  assert [h["step"] for h in results["val_history"]] == [2, 4]
  assert int(rundir.restore(cfg.train.model_dir).step) == 4


def test_an_interrupted_binary_exits_without_the_teardown(monkeypatch,
                                                         capsys):
  # The teardown can wait up to a minute on tf.data's autotuning thread:
  # everything is written by then, so the binary ends the process at once.
  from pixelda_tf import train as train_binary  # pylint: disable=g-import-not-at-top

  def interrupted(cfg):
    del cfg
    raise training.Interrupted(signal.SIGTERM, 7, "run/checkpoints/ckpt-7")

  def exit_now(status):
    raise SystemExit(f"os._exit({status})")

  monkeypatch.setattr(train_binary.pixelda_flags, "config_from_flags",
                      lambda: None)
  monkeypatch.setattr(training, "train", interrupted)
  monkeypatch.setattr(train_binary.os, "_exit", exit_now)
  with pytest.raises(SystemExit, match=r"os\._exit\(143\)"):
    train_binary.main(["train"])
  assert capsys.readouterr().err == (
      "interrupted: SIGTERM at step 7: saved run/checkpoints/ckpt-7; rerun "
      "the same command to resume\n")

  def ctrl_c_outside_the_steps(cfg):
    raise KeyboardInterrupt

  monkeypatch.setattr(training, "train", ctrl_c_outside_the_steps)
  with pytest.raises(SystemExit, match=r"os\._exit\(130\)"):
    train_binary.main(["train"])
  assert "interrupted outside the training steps" in capsys.readouterr().err


def test_one_process_is_always_in_agreement():
  cfg = tiny.tiny_config()
  one = workers.for_run(cfg, tf.distribute.get_strategy())
  assert isinstance(one, workers.SingleProcess)
  assert one.sum([0.0, 1.0], tf.float32) == [0.0, 1.0]
  assert one.shared_settings(cfg, {"source/train": "abc"}) == {}
  one.require_same_settings({"train.seed": 1})
  with pytest.raises(OSError, match="its own error"):
    with one.together("load its data", "advice"):
      raise OSError("its own error")
  several = dataclasses.replace(cfg, runtime=dataclasses.replace(
      cfg.runtime, strategy="multi_worker"))
  many = workers.for_run(several, tf.distribute.get_strategy())
  assert isinstance(many, workers.MultiWorker)
  # One worker of a multi-worker run agrees with itself.
  assert many.sum([1.0, 2.0], tf.float64) == [1.0, 2.0]
  shared = many.shared_settings(cfg, {"source/train": "abc"})
  assert shared["source/train data (sha256)"] == "abc"
  assert shared["train.seed"] == cfg.train.seed
  many.require_same_settings(shared)


def test_the_progress_bar_counts_from_the_resumed_step(monkeypatch):
  # Progbar's pace is time over the steps it was shown: a resumed run's bar
  # counts this process's steps, so its ETA is not 10x too short.
  monkeypatch.setattr(sys.stdout, "isatty", lambda: True, raising=False)
  progress = training._Progress(100, 90, quiet=False, every=1)  # pylint: disable=protected-access
  progress.update(95, 1.0)
  assert progress._bar.target == 10  # pylint: disable=protected-access
  assert progress._bar._seen_so_far == 5  # pylint: disable=protected-access


def test_the_progress_total_follows_the_budget_that_ends_the_run():
  # 60 minutes, 10 done at 0.01 min/step: 5,000 more steps, not 100,000.
  assert training.expected_last_step(1000, 100_000, 60, 10, 0.01) == 6000
  assert training.expected_last_step(1000, 3000, 60, 10, 0.01) == 3000
  assert training.expected_last_step(1000, 3000, 0, 10, 0.01) == 3000
  assert training.expected_last_step(1000, 100_000, 60, 61, 0.01) == 1000
