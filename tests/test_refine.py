"""The DIRT-T phase (`pixelda_tf.refining`, the refine binary) on a tiny run:
only T changes, the refined run reads like any run, the trained run is only
read, and bad settings fail before any work."""

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from pixelda_tf import config as config_lib
from pixelda_tf import data
from pixelda_tf import evaluation
from pixelda_tf import losses
from pixelda_tf import pixelda
from pixelda_tf import refining
from pixelda_tf import rundir
from pixelda_tf import training
from tests import make_fake_data
from tests import tiny

# Trains and starts processes: not in the quick tier.
pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUICK = dict(steps=4, batch_size=4, eval_every=2)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  """A tiny trained run with a weight average (ema_decay=0.5), offline."""
  root = tmp_path_factory.mktemp("refine")
  fake = str(root / "fake")
  with pytest.MonkeyPatch.context() as mp:
    mp.setenv("PIXELDA_OFFLINE", "1")
    make_fake_data.main(fake)
    cfg = tiny.tiny_config(
        data=dict(mnist_dir=os.path.join(fake, "mnist"),
                  mnist_m_dir=os.path.join(fake, "mnist_m"),
                  mnist_m_variant="released", data_dir=str(root / "data"),
                  val_size=4, download=False),
        train=dict(model_dir=str(root / "run"), train_steps=2,
                   checkpoint_every=2, eval_every=0, image_every=0,
                   summary_every=1, quiet=True, ema_decay=0.5))
    training.train(cfg, strategy=tf.distribute.get_strategy())
    yield cfg.train.model_dir


def _variables(model, net):
  return [v.numpy() for v in getattr(model.nets, net).variables]


def _averages(model, net):
  mine = {id(v) for v in getattr(model.nets, net).variables}
  return [a.numpy() for a, v in zip(model.average.averages,
                                    model.average.sources) if id(v) in mine]


def _digests(folder):
  out = {}
  for parent, _, files in os.walk(folder):
    for name in files:
      with open(os.path.join(parent, name), "rb") as f:
        out[os.path.join(parent, name)] = hashlib.sha256(f.read()).hexdigest()
  return out


def _assert_all_equal(a, b):
  assert len(a) == len(b)
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x, y)


def test_refinement_changes_only_t_and_reads_as_a_run(run, tmp_path):
  before = _digests(run)
  out = str(tmp_path / "refined")
  results = refining.refine_run(run, out, {},
                                refining.RefineConfig(**QUICK))
  assert _digests(run) == before  # The trained run is only read.
  assert sorted(os.listdir(out)) == ["checkpoints", "config.json",
                                     "refine.json"]
  assert not [p for p in os.listdir(tmp_path) if ".partial-" in p]
  assert [r["step"] for r in results["history"]] == [0, 2, 4]
  assert rundir.read_json(os.path.join(out, "refine.json"), None) == (
      json.loads(json.dumps(results)))

  trained = rundir.restore(run, averaged=False)
  refined = rundir.restore(out, averaged=False)
  assert int(refined.step) == int(trained.step) == results["step"] == 2
  for net in ("generator", "discriminator"):
    _assert_all_equal(_variables(refined, net), _variables(trained, net))
  _assert_all_equal(_averages(refined, "generator"),
                    _averages(trained, "generator"))
  changed = [not np.array_equal(a, b) for a, b in zip(
      _variables(refined, "classifier"), _variables(trained, "classifier"))]
  assert any(changed)
  assert any(not np.array_equal(a, b) for a, b in zip(
      _averages(refined, "classifier"), _averages(trained, "classifier")))

  # What evaluate scores on the refined run is the last history entry: the
  # refined average was saved as T's average.
  report = evaluation.evaluate_model_dir(out, {}, out_dir=str(tmp_path / "e"))
  assert report["accuracy"] == results["accuracy"]
  assert results["accuracy_before"] == evaluation.evaluate_model_dir(
      run, {}, out_dir=str(tmp_path / "e0"))["accuracy"]


def test_refinement_starts_from_the_averaged_classifier(run, tmp_path):
  # One step of at most ~1e-7 per weight: the refined T is where it started,
  # the trained run's averaged T, not its raw one; G keeps its raw weights.
  out = str(tmp_path / "r")
  refining.refine_run(run, out, {}, refining.RefineConfig(
      steps=1, batch_size=4, learning_rate=1e-7))
  start = _variables(rundir.restore(out, averaged=False), "classifier")
  averaged = _variables(rundir.restore(run, averaged=True), "classifier")
  raw = rundir.restore(run, averaged=False)
  assert max(np.abs(a - b).max() for a, b in zip(
      _variables(raw, "classifier"), averaged)) > 1e-4  # Else no test.
  for a, b in zip(start, averaged):
    np.testing.assert_allclose(a, b, atol=1e-6)
  _assert_all_equal(
      _variables(rundir.restore(out, averaged=False), "generator"),
      _variables(raw, "generator"))


def test_refinement_repeats_exactly_per_seed(run, tmp_path):
  def refined_t(name, seed):
    refining.refine_run(run, str(tmp_path / name), {},
                        refining.RefineConfig(**QUICK, seed=seed))
    return _variables(rundir.restore(str(tmp_path / name), averaged=False),
                      "classifier")

  first = refined_t("a", 0)
  _assert_all_equal(refined_t("b", 0), first)
  assert any(not np.array_equal(a, b)
             for a, b in zip(refined_t("c", 1), first))


def test_teacher_is_reset_to_the_student(run, tmp_path):
  # Reset every step: the teacher is the student each step starts from, so
  # KL(teacher || student) is 0 where it is logged; never reset, it grows.
  def kl(name, reset):
    results = refining.refine_run(
        run, str(tmp_path / name), {},
        refining.RefineConfig(**QUICK, teacher_reset_steps=reset,
                              learning_rate=1e-2))
    return [r["teacher_kl"] for r in results["history"][1:]]

  assert max(kl("every_step", 1)) < 1e-6
  assert min(kl("never", 1000)) > 1e-6


def test_unlabelled_target_refines_with_nothing_to_score(run, tmp_path):
  results = refining.refine_run(run, str(tmp_path / "r"),
                                {"target_labels": "none"},
                                refining.RefineConfig(**QUICK))
  assert sorted(results["unscored"]) == ["test", "val"]
  assert {r["test_accuracy"] for r in results["history"]} == {None}
  assert results["history"][-1]["teacher_kl"] is not None


def test_non_finite_loss_writes_nothing(run, tmp_path, monkeypatch):
  monkeypatch.setattr(losses, "conditional_entropy",
                      lambda logits: tf.fill(tf.shape(logits)[:1], np.nan))
  with pytest.raises(pixelda.NonFiniteLossError, match="step 2"):
    refining.refine_run(run, str(tmp_path / "r"), {},
                        refining.RefineConfig(**QUICK))
  assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("settings, message", [
    (dict(steps=0), "--steps=0"),
    (dict(learning_rate=float("inf")), "--learning_rate=inf"),
    (dict(entropy_weight=0.0, teacher_weight=0.0), "nothing to train"),
    (dict(teacher_weight=-1.0), "--teacher_weight=-1.0"),
    (dict(ema_decay=1.0), "--ema_decay=1.0"),
    (dict(teacher_reset_steps=0), "--teacher_reset_steps=0"),
    (dict(eval_every=-1), "--eval_every=-1"),
    (dict(beta1=1.0), "--beta1=1.0"),
])
def test_bad_settings_fail_before_reading_the_run(tmp_path, settings, message):
  with pytest.raises(config_lib.ConfigError, match=message):
    refining.refine_run(str(tmp_path / "no_run"), str(tmp_path / "out"), {},
                        refining.RefineConfig(**settings))


def test_bad_folders_and_batches(run, tmp_path):
  with pytest.raises(config_lib.ConfigError, match="folder of its own"):
    refining.refine_run(run, run + "/", {}, refining.RefineConfig(**QUICK))
  (tmp_path / "taken").mkdir()
  with pytest.raises(FileExistsError, match="--overwrite"):
    refining.refine_run(run, str(tmp_path / "taken"), {},
                        refining.RefineConfig(**QUICK))
  with pytest.raises(data.DataError, match="fewer than --batch_size=100000"):
    refining.refine_run(run, str(tmp_path / "r"), {},
                        refining.RefineConfig(steps=1, batch_size=100000))


def _cli(*args):
  env = dict(os.environ, PIXELDA_OFFLINE="1", PYTHONPATH=ROOT,
             TF_CPP_MIN_LOG_LEVEL="2")
  return subprocess.run([sys.executable, "-m", "pixelda_tf.refine", *args],
                        cwd=ROOT, env=env, capture_output=True, text=True,
                        timeout=120)


def test_binary_prints_the_history_and_refuses_training_flags(run, tmp_path):
  out = str(tmp_path / "r")
  proc = _cli(f"--model_dir={run}", f"--out={out}", "--steps=2",
              "--batch_size=4", "--eval_every=1", "--learning_rate=0.01")
  assert proc.returncode == 0, proc.stderr[-2000:]
  lines = [json.loads(l) for l in proc.stdout.strip().splitlines()]
  assert [l["step"] for l in lines[:-1]] == [0, 1, 2]
  assert lines[-1]["out"] == out
  settings = rundir.read_json(os.path.join(out, "refine.json"),
                              None)["settings"]
  assert (settings["steps"], settings["batch_size"], settings["eval_every"],
          settings["learning_rate"], settings["ema_decay"]) == (
              2, 4, 1, 0.01, refining.RefineConfig().ema_decay)

  proc = _cli(f"--model_dir={run}", f"--out={tmp_path / 's'}",
              "--train_steps=5")
  assert proc.returncode != 0
  assert "--train_steps cannot change a trained model" in proc.stderr
  assert not os.path.exists(tmp_path / "s")
