"""The training loop end to end on tiny fake data: outputs, resume, NaN stop."""

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

from pixelda_tf import config as config_lib
from pixelda_tf import data
from pixelda_tf import pixelda
from pixelda_tf import training
from tests import tiny

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
  assert training._prior_minutes(progress, history, 8) == 3.0
  # Killed between checkpoint 10 and its progress entry: the latest known
  # clock at or before step 10, never a fresh budget.
  assert training._prior_minutes(progress, history, 10) == 3.0
  assert training._prior_minutes({}, history, 7) == 2.2
  assert training._prior_minutes({}, [], 5) == 0.0


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(fake,
                                                                  tmp_path):
  cfg = tiny.tiny_config(
      data=_data(fake, str(tmp_path)), optim=dict(learning_rate=1e30),
      train=dict(model_dir=str(tmp_path / "run"), train_steps=50,
                 checkpoint_every=1, eval_every=0, quiet=True))
  with pytest.raises(pixelda.NonFiniteLossError, match=r"at step \d+"):
    training.train(cfg, strategy=tf.distribute.get_strategy())
  model = pixelda.restore(str(tmp_path / "run"))
  assert 0 < int(model.step) < 50
  for v in model.nets.generator.variables:
    assert np.all(np.isfinite(v.numpy())), v.path


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
  model = pixelda.restore(model_dir)
  return model, tiny.weights(model)


def test_kill_9_and_rerun_finishes_like_an_unbroken_run(fake, tmp_path):
  env = {**os.environ, "PYTHONPATH": ROOT, "PIXELDA_OFFLINE": "1"}
  steps = 300
  broken, unbroken = str(tmp_path / "broken"), str(tmp_path / "unbroken")
  proc = subprocess.Popen(_train_cmd(fake, tmp_path, broken, steps), cwd=ROOT,
                          env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
  deadline = time.time() + 240
  marker = os.path.join(broken, "checkpoints", "ckpt-75.index")
  while not os.path.exists(marker) and proc.poll() is None:
    assert time.time() < deadline, "no checkpoint appeared"
    time.sleep(0.05)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert proc.returncode == -signal.SIGKILL, "the run ended before the kill"
  killed_at = int(pixelda.restore(broken).step)
  assert 0 < killed_at < steps
  for model_dir in (broken, unbroken):
    subprocess.run(_train_cmd(fake, tmp_path, model_dir, steps), cwd=ROOT,
                   env=env, check=True, capture_output=True, timeout=300)
  model_a, a = _final_weights(broken)
  model_b, b = _final_weights(unbroken)
  assert int(model_a.step) == int(model_b.step) == steps
  for k in a:
    np.testing.assert_array_equal(a[k], b[k], err_msg=k)
  for name, opt in model_a.optimizers.items():
    for va, vb in zip(opt.variables, model_b.optimizers[name].variables):
      np.testing.assert_array_equal(va.numpy(), vb.numpy())


def test_seed_summary_reports_mean_and_std():
  from pixelda_tf import seeds  # pylint: disable=g-import-not-at-top
  def run(final, best):
    return {"final": {"accuracy": final}, "best": {"accuracy": best},
            "steps": 10, "wall_time_s": 60.0,
            "data_sources": {"target/test": "MNIST-M"}}
  summary = seeds.summarize({0: run(0.9, 0.92), 1: run(0.8, 0.94)})
  assert summary["final"]["mean"] == pytest.approx(0.85)
  assert summary["final"]["std"] == pytest.approx(0.0707107)  # ddof=1
  assert summary["best"]["mean"] == pytest.approx(0.93)
  assert summary["runs"]["1"]["minutes"] == 1.0
