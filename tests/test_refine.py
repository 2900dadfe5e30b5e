"""The DIRT-T phase (`pixelda_tf.refining`, the refine binary) on a tiny run:
only T changes, the refined run reads like any run, the trained run is only
read, and bad settings fail before any work."""

import hashlib
import json
import os
import shutil
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
from tests import tiny

# Trains and starts processes: not in the quick tier.
pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUICK = dict(steps=4, batch_size=4, eval_every=2)


@pytest.fixture(scope="module")
def run(tmp_path_factory, fake):
  """A tiny trained run with a weight average (ema_decay=0.5), offline, on
  the session's fake data (only read here)."""
  with pytest.MonkeyPatch.context() as mp:
    mp.setenv("PIXELDA_OFFLINE", "1")
    yield tiny.released_run(tmp_path_factory.mktemp("refine"), str(fake))


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


def test_saved_average_is_the_refined_average(run, tmp_path):
  # After one update the average (warm-up decay min(0.998, 2/11)) is
  # 2/11 of the start plus 9/11 of the updated weights; that is what the
  # refined run's averaged T must hold.
  out = str(tmp_path / "r")
  refining.refine_run(run, out, {}, refining.RefineConfig(
      steps=1, batch_size=4, learning_rate=1e-2))
  start = _variables(rundir.restore(run, averaged=True), "classifier")
  raw = _variables(rundir.restore(out, averaged=False), "classifier")
  saved = _variables(rundir.restore(out, averaged=True), "classifier")
  assert max(np.abs(a - b).max() for a, b in zip(start, raw)) > 1e-3
  for s0, r1, got in zip(start, raw, saved):
    np.testing.assert_allclose(got, 2 / 11 * s0 + 9 / 11 * r1, atol=1e-6)


def test_run_without_an_average_keeps_the_refined_average_in_t(
    tmp_path, fake, monkeypatch):
  # A baseline run (source_only) trained without --ema_decay.
  monkeypatch.setenv("PIXELDA_OFFLINE", "1")
  model_dir = tiny.released_run(tmp_path, str(fake), mode="source_only",
                                ema_decay=0.0)
  out = str(tmp_path / "r")
  results = refining.refine_run(model_dir, out, {},
                                refining.RefineConfig(**QUICK))
  start = _variables(rundir.restore(model_dir), "classifier")
  refined = rundir.restore(out)
  assert refined.average is None
  assert any(not np.array_equal(a, b) for a, b in zip(
      _variables(refined, "classifier"), start))
  assert evaluation.evaluate_model_dir(
      out, {}, out_dir=str(tmp_path / "e"))["accuracy"] == results["accuracy"]


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


def test_teacher_is_reset_to_the_average(run, tmp_path):
  # With an average that is the student itself (ema_decay ~ 0), a reset
  # every step makes the teacher the student each step starts from:
  # KL(teacher || student) is 0 where logged; never reset, it grows.
  def kl(name, reset, ema_decay=1e-9, every=2):
    results = refining.refine_run(
        run, str(tmp_path / name), {},
        refining.RefineConfig(**{**QUICK, "eval_every": every},
                              teacher_reset_steps=reset, ema_decay=ema_decay,
                              learning_rate=1e-2))
    return [r["teacher_kl"] for r in results["history"][1:]]

  assert max(kl("every_step", 1)) < 1e-6
  assert min(kl("never", 1000)) > 1e-6
  # Reset after steps 2 and 4: steps 1 and 3 start at the teacher.
  logged = kl("every_2", 2, every=1)
  assert max(logged[0], logged[2]) < 1e-6 < min(logged[1], logged[3])
  # With a real average the reset teacher is the average, not the student.
  assert min(kl("average", 1, ema_decay=0.998)) > 1e-6


def test_xla_refines_as_plain(run, tmp_path):
  # The refined run reads jit_compile from the run's config: a copy of the
  # run with it on refines to the same weights.
  jit_run = str(tmp_path / "jit_run")
  shutil.copytree(run, jit_run)
  cfg = rundir.read_json(os.path.join(jit_run, rundir.CONFIG_FILE), None)
  assert cfg["runtime"]["jit_compile"] is False
  cfg["runtime"]["jit_compile"] = True
  rundir.write_json(os.path.join(jit_run, rundir.CONFIG_FILE), cfg)
  plain, xla = (
      _variables(rundir.restore(refining.refine_run(
          model_dir, str(tmp_path / name), {},
          refining.RefineConfig(**QUICK, learning_rate=1e-2))["out"]),
                 "classifier")
      for model_dir, name in ((run, "plain"), (jit_run, "xla")))
  for a, b in zip(plain, xla):
    np.testing.assert_allclose(a, b, atol=1e-5)


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
  # Found at the step it happens, not at the next evaluation.
  with pytest.raises(pixelda.NonFiniteLossError, match="step 1 "):
    refining.refine_run(run, str(tmp_path / "r"), {},
                        refining.RefineConfig(**{**QUICK, "eval_every": 0}))
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
  before = _digests(run)
  parent = os.path.dirname(run)
  os.symlink(run, tmp_path / "link")
  for out in (run + "/", str(tmp_path / "link"), os.path.join(run, "r"),
              parent):
    with pytest.raises(config_lib.ConfigError, match="folder of its own"):
      refining.refine_run(run, out, {}, refining.RefineConfig(**QUICK),
                          overwrite=True)
  assert _digests(run) == before
  (tmp_path / "taken").mkdir()
  with pytest.raises(FileExistsError, match="--overwrite"):
    refining.refine_run(run, str(tmp_path / "taken"), {},
                        refining.RefineConfig(**QUICK))
  (tmp_path / "a_file").write_text("x")
  with pytest.raises(config_lib.ConfigError, match="is a file"):
    refining.refine_run(run, str(tmp_path / "a_file"), {},
                        refining.RefineConfig(**QUICK), overwrite=True)
  (tmp_path / "taken" / "old").write_text("x")
  refining.refine_run(run, str(tmp_path / "taken"), {},
                      refining.RefineConfig(**QUICK), overwrite=True)
  assert sorted(os.listdir(tmp_path / "taken")) == [
      "checkpoints", "config.json", "refine.json"]
  with pytest.raises(FileNotFoundError, match="--checkpoint=latest"):
    rundir.checkpoint_candidates(str(tmp_path / "taken"), "best")
  with pytest.raises(data.DataError, match="fewer than --batch_size=100000"):
    refining.refine_run(run, str(tmp_path / "r"), {},
                        refining.RefineConfig(steps=1, batch_size=100000))


def _cli(*args, cwd=ROOT):
  env = dict(os.environ, PIXELDA_OFFLINE="1", PYTHONPATH=ROOT,
             TF_CPP_MIN_LOG_LEVEL="2")
  return subprocess.run([sys.executable, "-m", "pixelda_tf.refine", *args],
                        cwd=cwd, env=env, capture_output=True, text=True,
                        timeout=120)


def test_binary_prints_the_history_and_refuses_training_flags(run, tmp_path):
  # A relative --out, from another folder: the refined run reads there.
  proc = _cli(f"--model_dir={run}", "--out=r", "--steps=2",
              "--batch_size=4", "--eval_every=1", "--learning_rate=0.01",
              cwd=tmp_path)
  assert proc.returncode == 0, proc.stderr[-2000:]
  out = str(tmp_path / "r")
  lines = [json.loads(l) for l in proc.stdout.strip().splitlines()]
  assert [l["step"] for l in lines[:-1]] == [0, 1, 2]
  assert lines[-1]["out"] == "r"
  assert int(rundir.restore(out).step) == 2
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
