"""Evaluate, adapt and the fresh-classifier check on a tiny trained run.

One module-scoped run: fake MNIST -> released-format fake MNIST-M (made by
tests/make_fake_data.py), 2 training steps at 16x16 with tiny nets. The
library functions are tested in-process; two subprocesses check the binaries'
flag handling (only the data flags given override config.json) and their
one-line errors. Each subprocess pays ~5 s of TF import.
"""

import importlib
import json
import os
import re
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from pixelda_tf import adapting
from pixelda_tf import classifiers
from pixelda_tf import config as config_lib
from pixelda_tf import data
from pixelda_tf import evaluation
from pixelda_tf import rundir
from pixelda_tf.data import folders
from tests import make_fake_data
from tests import tiny


# Trains, exports or starts processes: not in the quick tier.
pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MNIST_TEST = make_fake_data.N_TEST     # fake MNIST test labels are i % 10
MNIST_M_TEST = 10                      # released fake MNIST-M test split
VAL_SIZE = 4


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  """(model_dir, fake data folder), with PIXELDA_OFFLINE=1 for the module."""
  root = tmp_path_factory.mktemp("evaluate_adapt")
  fake = str(root / "fake")
  with pytest.MonkeyPatch.context() as mp:
    mp.setenv("PIXELDA_OFFLINE", "1")
    make_fake_data.main(fake)
    yield tiny.released_run(root, fake, val_size=VAL_SIZE), fake


def _read_png(path):
  return tf.io.decode_png(tf.io.read_file(path)).numpy()


def test_evaluate_writes_consistent_report(run):
  model_dir, _ = run
  res = evaluation.evaluate_model_dir(model_dir, {})
  confusion = np.array(res["confusion_matrix"])
  assert confusion.shape == (10, 10)
  assert confusion.sum() == res["num_examples"] == MNIST_M_TEST
  assert res["accuracy"] == pytest.approx(np.trace(confusion) / MNIST_M_TEST)
  rows = confusion.sum(axis=1)
  for c, acc in enumerate(res["per_class_accuracy"]):
    assert acc == pytest.approx(confusion[c, c] / rows[c])
  assert res["step"] == 2 and res["checkpoint"].endswith("ckpt-2")
  assert "released" in res["data_origin"]
  with open(res["files"]["json"]) as f:
    assert json.load(f)["confusion_matrix"] == res["confusion_matrix"]
  assert _read_png(res["files"]["confusion_png"]).shape[-1] == 3
  # 8 rows of source | 3 adapted | target at 16x16.
  assert _read_png(res["files"]["samples_png"]).shape == (8 * 16, 5 * 16, 3)


def _digit_folder(fake, tmp_path):
  """Class folders named as the source's (MNIST digits): 3/ (5), 5/ (4)."""
  folder = str(tmp_path / "digits")
  for name, cls in (("a", "3"), ("b", "5")):
    shutil.copytree(os.path.join(fake, "source_folder", name),
                    os.path.join(folder, cls))
  return folder


def test_evaluate_on_labelled_folder(run, tmp_path):
  model_dir, fake = run
  folder = _digit_folder(fake, tmp_path)
  res = evaluation.evaluate_model_dir(
      model_dir, {"target": "folder", "target_dir": folder, "test_size": 4},
      out_dir=str(tmp_path / "eval"))
  # No test/ subfolder: the test split is a stratified --test_size slice,
  # labelled with the source's ids for those names.
  confusion = np.array(res["confusion_matrix"])
  assert res["num_examples"] == 4 and confusion.sum() == 4
  assert confusion.sum(axis=1).tolist() == [0, 0, 0, 2, 0, 2, 0, 0, 0, 0]
  assert res["data"]["mnist_m_dir"] is None     # dropped: nothing reads it
  assert folder in res["data_origin"] and "stratified" in res["data_origin"]
  assert os.path.exists(res["files"]["confusion_png"])
  with pytest.raises(data.DataError, match=r"\['a', 'b'\].*source has"):
    evaluation.evaluate_model_dir(model_dir, {
        "target": "folder",
        "target_dir": os.path.join(fake, "source_folder")})


def test_override_data_rules():
  base = tiny.tiny_config()
  cfg = config_lib.override_data(base, {"mnist_m_dir": "/x"})
  assert cfg.data.mnist_m_variant == "released"
  with pytest.raises(config_lib.ConfigError, match="trained at 16"):
    config_lib.override_data(base, {"image_size": 32})
  with pytest.raises(config_lib.ConfigError, match="target_dir"):
    config_lib.override_data(base, {"target": "folder"})


def test_evaluate_unlabelled_target_has_nothing_to_score(run, tmp_path):
  model_dir, fake = run
  res = evaluation.evaluate_model_dir(model_dir, {
      "target": "folder", "target_dir": os.path.join(fake, "target_flat")},
                                out_dir=str(tmp_path))
  assert res["accuracy"] is None and res["confusion_matrix"] is None
  assert "nothing labelled to score" in res["reason"]
  assert "confusion_png" not in res["files"]
  # The sample grid is still drawn: 6 target images, 5 columns at 16x16.
  assert _read_png(res["files"]["samples_png"]).shape == (6 * 16, 5 * 16, 3)
  with open(res["files"]["json"]) as f:
    assert json.load(f)["accuracy"] is None


def test_evaluate_without_checkpoint(run, tmp_path):
  model_dir, _ = run
  shutil.copy(os.path.join(model_dir, rundir.CONFIG_FILE), tmp_path)
  with pytest.raises(FileNotFoundError, match="train first"):
    evaluation.evaluate_model_dir(str(tmp_path), {})
  with pytest.raises(FileNotFoundError, match="not a pixelda-tf model_dir"):
    evaluation.evaluate_model_dir(str(tmp_path / "nothing"), {})


def _cli(*args):
  env = dict(os.environ, PIXELDA_OFFLINE="1", PYTHONPATH=ROOT,
             TF_CPP_MIN_LOG_LEVEL="2")
  return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=120)


def test_evaluate_binary_overrides_only_given_flags(run, tmp_path):
  model_dir, fake = run
  out = str(tmp_path / "eval")
  proc = _cli("pixelda_tf.evaluate", f"--model_dir={model_dir}",
              "--target=folder",
              f"--target_dir={_digit_folder(fake, tmp_path)}",
              "--test_size=4", "--checkpoint=latest", f"--out_dir={out}")
  assert proc.returncode == 0, proc.stderr[-2000:]
  shown = json.loads(proc.stdout.strip().splitlines()[-1])
  assert shown["num_examples"] == 4 and shown["step"] == 2
  assert sorted(os.listdir(out)) == [
      "folder_test_latest.json", "folder_test_latest_confusion.png",
      "folder_test_latest_samples.png"]


def test_evaluate_binary_error_is_one_line(run, tmp_path):
  model_dir, _ = run
  shutil.copy(os.path.join(model_dir, rundir.CONFIG_FILE), tmp_path)
  proc = _cli("pixelda_tf.evaluate", f"--model_dir={tmp_path}")
  assert proc.returncode == 1
  assert "Traceback" not in proc.stderr
  errors = [l for l in proc.stderr.splitlines() if l.startswith("error: ")]
  assert len(errors) == 1 and "train first" in errors[0]
  assert proc.stderr.count("train first") == 1, proc.stderr


@pytest.fixture(scope="module")
def adapted(run, tmp_path_factory):
  """format -> (folder, manifest): K=2 samples of the first 5 test images."""
  model_dir, _ = run
  root = tmp_path_factory.mktemp("adapted")
  out = {}
  for fmt in adapting.FORMATS:
    path = str(root / fmt)
    out[fmt] = path, adapting.adapt_dataset(
        model_dir, path, {}, samples_per_image=2, fmt=fmt, split="test",
        max_images=5, seed=1, batch_size=3)
  return out


@pytest.mark.parametrize("fmt", adapting.FORMATS)
def test_adapt_writes_k_samples_with_source_labels(adapted, fmt):
  path, manifest = adapted[fmt]
  assert manifest["num_examples"] == 10 and manifest["num_images"] == 5
  assert not [n for n in os.listdir(os.path.dirname(path)) if "partial" in n]
  ds, reread = adapting.load_adapted(path)
  assert reread == manifest
  images, labels = zip(*[(x.numpy(), int(y)) for x, y in ds])
  assert np.stack(images).shape == (10, 16, 16, 3)
  assert np.stack(images).dtype == np.uint8
  # Fake MNIST test labels are i % 10: images 0..4, two samples each.
  assert sorted(labels) == sorted([0, 1, 2, 3, 4] * 2)
  assert manifest["examples_per_class"] == [2] * 5 + [0] * 5


def test_adapted_png_folder_reads_as_class_folders(adapted):
  path, _ = adapted["png"]
  ds = keras.utils.image_dataset_from_directory(
      path, image_size=(16, 16), batch_size=None, shuffle=False)
  assert ds.class_names == [str(i) for i in range(10)]
  assert sorted(int(y) for _, y in ds) == sorted([0, 1, 2, 3, 4] * 2)


def test_adapted_png_folder_reads_as_source_folder(run, tmp_path):
  # --source=folder refuses empty class folders, so adapt all ten classes.
  model_dir, _ = run
  path = str(tmp_path / "all")
  adapting.adapt_dataset(model_dir, path, {}, fmt="png", split="test",
                     max_images=10)
  x, y, names = folders.read_folder(path, 16, True, "source_dir")
  assert x.shape == (10, 16, 16, 3) and names == adapting.class_dir_names(10)
  assert sorted(y.tolist()) == list(range(10))

def test_adapt_z_depends_only_on_seed_and_index(run, adapted, tmp_path):
  model_dir, _ = run
  path, _ = adapted["tfrecord"]
  one = adapting.adapt_dataset(model_dir, str(tmp_path / "k1"), {},
                           samples_per_image=1, split="test", max_images=3,
                           seed=1, batch_size=2)
  assert one["num_examples"] == 3
  first = [x.numpy() for x, _ in adapting.load_adapted(str(tmp_path / "k1"))[0]]
  both = [x.numpy() for x, _ in adapting.load_adapted(path)[0]]
  # Records are image-major; sample 0 of images 0..2 is the same whatever K
  # and the batch size.
  np.testing.assert_array_equal(np.stack(first), np.stack(both[0:6:2]))
  with pytest.raises(FileExistsError):
    adapting.adapt_dataset(model_dir, path, {})


def test_adapt_with_raw_or_averaged_weights(run, adapted, tmp_path):
  # The run keeps a weight average (ema_decay=0.5): adapt uses it unless
  # asked for the raw weights G trained with.
  model_dir, _ = run
  path, manifest = adapted["tfrecord"]
  raw_path = str(tmp_path / "raw")
  raw = adapting.adapt_dataset(model_dir, raw_path, {}, samples_per_image=2,
                               split="test", max_images=5, seed=1,
                               averaged=False)
  assert (manifest["weights"], raw["weights"]) == ("averaged", "raw")

  def written(folder):
    return np.stack([x.numpy() for x, _ in adapting.load_adapted(folder)[0]])

  def generated(averaged):
    # G's output as adapt rounds it, image-major.
    model = rundir.restore(model_dir, averaged=averaged)
    images = data.to_model_range(data.load_domain(
        model.cfg.data, "source", "test").images[:5])
    z = np.stack([evaluation.noise(1, i, 2, model.cfg.generator.noise_dim)
                  for i in range(5)])
    return np.stack([np.clip(np.round((model.adapt(
        images, tf.constant(z[:, k])).numpy() + 1.0) * 127.5), 0, 255)
                     for k in range(2)], axis=1).reshape(10, 16, 16, 3)

  want_raw, want_averaged = generated(False), generated(True)
  assert (want_raw != want_averaged).any()  # Else the test could not fail.
  np.testing.assert_array_equal(written(raw_path), want_raw)
  np.testing.assert_array_equal(written(path), want_averaged)


@pytest.mark.parametrize("arch", classifiers.ARCHS)
def test_classifier_archs(arch):
  for size in (16, 32):
    model = classifiers.build(arch, size, 10)
    assert model(np.zeros((2, size, size, 3), np.float32)).shape == (2, 10)


def test_fresh_classifier_trains_on_adapted_data(run, adapted):
  path, manifest = adapted["png"]
  cfg = config_lib.Config.from_dict(manifest["config"])
  res = classifiers.train_and_evaluate(path, cfg, arch="wide_cnn", epochs=1,
                                       batch_size=4)
  assert res["num_train"] == 10 and res["num_source"] == 0
  stats = res["pixel_statistics"]
  assert stats["adapted"]["images"] == 10
  assert stats["target_test"]["images"] == MNIST_M_TEST
  assert np.array(res["confusion_matrix"]).sum() == MNIST_M_TEST
  assert 0.0 <= res["accuracy"] <= 1.0
  # With the labelled source beside it, as many source images as adapted.
  both = classifiers.train_and_evaluate(path, cfg, arch="wide_cnn", epochs=1,
                                        batch_size=4, with_source=True)
  assert both["num_source"] == 10 and both["num_train"] == 20


def test_fresh_classifier_trains_on_several_sets(run, adapted, tmp_path):
  # Sets adapted from several generators (here: two formats of one) train
  # one classifier together; the result says where each set came from.
  (png, manifest), (tfrecord, _) = adapted["png"], adapted["tfrecord"]
  cfg = config_lib.Config.from_dict(manifest["config"])
  res = classifiers.train_and_evaluate([png, tfrecord], cfg, arch="wide_cnn",
                                       epochs=1, batch_size=4)
  assert res["num_train"] == 20 and res["train_dir"] == f"{png},{tfrecord}"
  assert [s["path"] for s in res["sets"]] == [png, tfrecord]
  assert [s["step"] for s in res["sets"]] == [2, 2]
  assert [s["weights"] for s in res["sets"]] == ["averaged"] * 2
  assert [s["num_examples"] for s in res["sets"]] == [10, 10]
  ds, _ = classifiers.load_sets([png, tfrecord])
  assert sorted(int(y) for _, y in ds) == sorted([0, 1, 2, 3, 4] * 4)


def _plain_folder(path, classes):
  png = tf.io.encode_png(tf.zeros([16, 16, 3], tf.uint8))
  for name in classes:
    os.makedirs(os.path.join(path, name))
    tf.io.write_file(os.path.join(path, name, "0.png"), png)
  return str(path)


def test_several_sets_must_share_their_classes(adapted, tmp_path):
  png, tfrecord = adapted["png"][0], adapted["tfrecord"][0]
  ten = _plain_folder(tmp_path / "ten", adapting.class_dir_names(10))
  ds, manifests = classifiers.load_sets([ten, tfrecord])
  assert manifests[0] == {} and len(list(ds)) == 10 + 10
  # A plain folder of two classes would read 3/ and 5/ as labels 0 and 1.
  two = _plain_folder(tmp_path / "two", ["3", "5"])
  for sets, other, known in (([tfrecord, two], two, tfrecord),
                             ([two, png], png, two),
                             ([ten, two], two, ten)):
    with pytest.raises(data.DataError, match=re.escape(other) +
                       " has the classes .* " + re.escape(known) + " has"):
      classifiers.load_sets(sets)
  # An older manifest without class_dirs is not checked, and the check goes
  # on against the first set that has classes.
  old = str(tmp_path / "old")
  shutil.copytree(tfrecord, old)
  manifest = adapting.read_manifest(tfrecord)
  del manifest["class_dirs"]
  rundir.write_json(os.path.join(old, adapting.MANIFEST), manifest)
  with pytest.raises(data.DataError, match=re.escape(two) + " has the"):
    classifiers.load_sets([old, png, two])
  for sets, match in (([], "no adapted set"),
                      ([png, png], "named more than once"),
                      ([png, str(tmp_path / "missing")], "is not a folder")):
    with pytest.raises(data.DataError, match=match):
      classifiers.load_sets(sets)


def test_classify_binary_on_several_sets(adapted, tmp_path):
  (png, _), (tfrecord, _) = adapted["png"], adapted["tfrecord"]
  proc = _cli("pixelda_tf.classify", f"--train_dir={png},{tfrecord}")
  assert proc.returncode == 1 and "Traceback" not in proc.stderr
  assert "--out=PATH is required with several --train_dir" in proc.stderr
  out = str(tmp_path / "both.json")
  proc = _cli("pixelda_tf.classify", f"--train_dir={png},{tfrecord}",
              "--arch=wide_cnn", "--epochs=1", f"--out={out}")
  assert proc.returncode == 0, proc.stderr[-2000:]
  result = rundir.read_json(out, None)
  assert result["num_train"] == 20
  assert [s["path"] for s in result["sets"]] == [png, tfrecord]


def test_pixel_statistics_against_numpy():
  rng = np.random.default_rng(0)
  x = rng.uniform(-1, 1, (5, 4, 4, 3)).astype(np.float32)
  x[0] = 0.25  # A flat image: no contrast.
  ds = tf.data.Dataset.from_tensor_slices((x, np.zeros(5, np.int64)))
  got = classifiers.pixel_statistics(ds, 4, 5)
  want = x[:4]
  assert got["images"] == 4
  np.testing.assert_allclose(got["mean"], want.mean(), rtol=1e-5)
  np.testing.assert_allclose(got["std"], want.std(), rtol=1e-5)
  np.testing.assert_allclose(
      got["per_image_std"],
      np.mean([0.0] + [want[i].std() for i in range(1, 4)]), rtol=1e-5)
  # Spread over the set: every second image of 5 when 2 are asked for.
  spread = classifiers.pixel_statistics(ds, 2, 5)
  assert spread["images"] == 2
  np.testing.assert_allclose(spread["mean"], x[[0, 2]].mean(), rtol=1e-5)


@pytest.mark.parametrize("kw, message", [
    (dict(epochs=0), "--epochs=0: must be >= 1"),
    (dict(batch_size=0), "--batch_size=0: must be > 0"),
    (dict(learning_rate=float("nan")), "--learning_rate=nan: must be finite"),
    (dict(learning_rate=-1.0), "--learning_rate=-1.0: must be finite"),
    (dict(max_examples=-1), "--max_examples=-1: must be >= 0"),
])
def test_classify_refuses_bad_settings_before_reading_data(tmp_path, kw,
                                                           message):
  with pytest.raises(config_lib.ConfigError, match=message):
    classifiers.train_and_evaluate(str(tmp_path / "no_such_set"),
                                   config_lib.Config(), **kw)


def test_adapt_bn_sets_batch_norm_statistics_from_target_images(run, adapted):
  _, manifest = adapted["png"]
  cfg = config_lib.Config.from_dict(manifest["config"])
  model = classifiers.build("small_resnet", cfg.data.image_size, 10)
  assert classifiers._adapt_batch_norm(model, cfg, 7, batch_size=3) == 7
  images = np.concatenate([x for x, _ in data.eval_dataset(
      cfg.data, "target", "train", 100)])[:7]
  stem = keras.Model(model.inputs, model.get_layer("stem").output)
  feats = stem(images).numpy()
  # Batches of 3, 3 and 1: the moving mean is the mean of the batch means.
  want = np.mean([feats[a:b].mean((0, 1, 2)) for a, b in
                  ((0, 3), (3, 6), (6, 7))], axis=0)
  bn = model.get_layer("stage0_bn1")
  np.testing.assert_allclose(bn.moving_mean.numpy(), want, rtol=1e-4,
                             atol=1e-6)
  assert bn.momentum == 0.99  # Restored.
  with pytest.raises(config_lib.ConfigError, match="wide_cnn has no batch"):
    classifiers.train_and_evaluate("unused", cfg, arch="wide_cnn",
                                   adapt_bn=10)


def test_load_adapted_takes_classes_from_sorted_visible_subfolders(tmp_path):
  # The rule own-image folders follow (data/folders.subfolders): a hidden
  # folder such as .ipynb_checkpoints is not a class.
  png = tf.io.encode_png(tf.zeros([4, 4, 3], tf.uint8))
  for name, count in (("b", 2), ("a", 1), (".ipynb_checkpoints", 3)):
    os.makedirs(tmp_path / name)
    for i in range(count):
      tf.io.write_file(str(tmp_path / name / f"{i}.png"), png)
  ds, manifest = adapting.load_adapted(str(tmp_path))
  assert sorted(int(label) for _, label in ds) == [0, 1, 1]
  assert manifest == {}


# --- benchmarks/checkpoint_ensemble.py ----------------------------------------

def _benchmark(name: str):
  """Imports benchmarks/<name>.py (a script folder, not a package)."""
  sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
  try:
    return importlib.import_module(name)
  finally:
    sys.path.pop(0)


def _checkpoint_ensemble():
  return _benchmark("checkpoint_ensemble")


def test_checkpoint_ensemble_plans_end_points_and_the_steps_they_need(
    tmp_path):
  ensemble = _checkpoint_ensemble()
  history = [{"step": 250 * i, "minutes": float(i), "test_accuracy": 0.9}
             for i in range(1, 9)]
  ends, steps = ensemble.plan(history, from_minutes=6.0, last=[1, 3])
  assert [h["step"] for h in ends] == [1500, 1750, 2000]
  assert steps == [1000, 1250, 1500, 1750, 2000]  # K=3 at step 1,500
  with pytest.raises(ValueError, match="K=7 needs 6 evaluations before"):
    ensemble.plan(history, from_minutes=6.0, last=[7])
  with pytest.raises(ValueError, match="at least 1"):
    ensemble.plan(history, from_minutes=6.0, last=[0, 2])
  with pytest.raises(ValueError, match="no evaluation at or after minute 9"):
    ensemble.plan(history, from_minutes=9.0, last=[1])
  # An evaluation whose checkpoint was not kept (--checkpoint_every does not
  # divide --eval_every) names the flags to train with.
  with pytest.raises(FileNotFoundError, match="--checkpoint_every"):
    ensemble.checkpoint_at(str(tmp_path), 1500)


def test_checkpoint_ensemble_combines_the_k_newest_up_to_each_end():
  checkpoint_ensemble = _checkpoint_ensemble()
  labels = np.array([0, 1])
  # At step 30 the newest alone is wrong on example 1; with step 20's
  # probabilities averaged in, both are right.
  probabilities = {
      10: np.array([[0.0, 1.0], [0.0, 1.0]]),
      20: np.array([[0.9, 0.1], [0.1, 0.9]]),
      30: np.array([[0.8, 0.2], [0.6, 0.4]]),
  }
  weights_of = {10: [np.array(1.0)], 20: [np.array(2.0)],
                30: [np.array(6.0)]}
  seen = []

  def score(values, probs):
    if values is not None:  # "weights": the scored model holds the means.
      seen.append(float(values[0]))
      return float(values[0])
    return float(np.mean(probs.argmax(-1) == labels))

  out = checkpoint_ensemble.combine([20, 30], [10, 20, 30], probabilities,
                                    weights_of, score, [1, 2])
  assert out["predictions"] == {1: [1.0, 0.5], 2: [0.5, 1.0]}
  assert out["weights"] == {1: [2.0, 6.0], 2: [1.5, 4.0]}
  assert seen == [2.0, 6.0, 1.5, 4.0]
  with pytest.raises(ValueError, match="K=3 needs 3 checkpoints up to step 20"):
    checkpoint_ensemble.combine([20], [10, 20, 30], probabilities, weights_of,
                                score, [3])


# --- benchmarks/error_sources.py ---------------------------------------------

def _error_sources():
  # pixelda_tf's flags (--model_dir among them) are defined first, as in any
  # process that imported the binaries: the script must not define its own
  # on import.
  importlib.import_module("pixelda_tf.flags")
  return _benchmark("error_sources")


def test_error_sources_finds_each_test_image_among_the_released_by_bytes():
  error_sources = _error_sources()
  released = np.arange(4 * 2 * 2 * 3, dtype=np.uint8).reshape(4, 2, 2, 3)
  assert error_sources.locate(released[[2, 0, 3]], released).tolist() == [
      2, 0, 3]
  other = released[:1].copy()
  other[0, 0, 0, 0] = 255
  with pytest.raises(ValueError, match="test image 1 is not among"):
    error_sources.locate(np.concatenate([released[:1], other]), released)
  twins = np.concatenate([released, released[1:2]])
  with pytest.raises(ValueError, match="released images 1 and 4 are identical"):
    error_sources.locate(released[:1], twins)


def test_error_sources_splits_the_target_errors_by_the_other_views():
  error_sources = _error_sources()
  # Example: 0 right everywhere; 1 wrong on the target only; 2 wrong
  # everywhere; 3 wrong on the target and one z; 4 right on the target, the
  # digit wrong; 5 right on the target, both z wrong; 6 wrong on the target
  # and the digit, every z right.
  labels = np.array([0, 1, 2, 3, 4, 5, 6])
  target = np.array([0, 9, 9, 9, 4, 5, 9])
  source = np.array([0, 1, 9, 3, 9, 5, 9])
  adapted = np.array([[0, 1, 9, 9, 4, 9, 6],
                      [0, 1, 9, 3, 4, 9, 6]])
  out = error_sources.tally(labels, target, source, adapted)
  assert out["examples"] == 7 and out["target_errors"] == 4
  assert out["accuracy"] == pytest.approx(
      {"target": 3 / 7, "source": 4 / 7, "adapted": 9 / 14})
  assert out["of_which_source_wrong"] == 2  # 2 and 6, not 4
  assert out["of_which_adapted_wrong_any"] == 2  # 2 and 3, not 5
  assert out["of_which_adapted_wrong_all"] == 1  # 2, not 5
  assert out["of_which_right_on_source_and_every_adapted"] == 1  # 1 only
  assert out["confusions"] == {"1->9": 1, "2->9": 1, "3->9": 1, "6->9": 1}


def test_error_sources_appearance_matches_a_per_image_reference():
  error_sources = _error_sources()
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (5, 8, 8, 3)).astype(np.uint8)
  digit = rng.random((5, 8, 8)) < 0.3
  digit[:, 0, 0], digit[:, 0, 1] = True, False  # never empty, never full
  out = error_sources.appearance(images, digit)
  for i in range(5):
    x = images[i].astype(np.float64)
    fg, bg = x[digit[i]], x[~digit[i]]  # (pixels, 3)
    assert out["contrast"][i] == pytest.approx(
        np.abs(fg.mean(0) - bg.mean(0)).mean())
    assert out["background_std"][i] == pytest.approx(
        np.sqrt(bg.var(0).mean()))
  # An explicit background: only its pixels count (about half of those off
  # the digit here).
  background = ~digit & (rng.random((5, 8, 8)) < 0.5)
  background[:, 0, 1] = True
  out = error_sources.appearance(images, digit, background=background)
  for i in range(5):
    x = images[i].astype(np.float64)
    fg, bg = x[digit[i]], x[background[i]]
    assert out["contrast"][i] == pytest.approx(
        np.abs(fg.mean(0) - bg.mean(0)).mean())
    assert out["background_std"][i] == pytest.approx(
        np.sqrt(bg.var(0).mean()))
  # A flat background has no spread whatever its colour; the contrast is
  # the digit's distance from it in grey levels.
  flat = np.zeros((1, 4, 4, 3), np.uint8)
  flat[0] = (200, 40, 40)
  mask = np.zeros((1, 4, 4), bool)
  mask[0, 1:3, 1:3] = True
  flat[0, 1:3, 1:3] = (0, 40, 100)
  out = error_sources.appearance(flat, mask)
  assert out["background_std"][0] == 0.0
  assert out["contrast"][0] == pytest.approx(260 / 3)


def test_error_sources_appearance_rejects_masks_that_are_no_digit_layer():
  error_sources = _error_sources()
  images = np.zeros((2, 4, 4, 3), np.uint8)
  mask = np.zeros((2, 4, 4), bool)
  mask[0, 0, 0] = True
  with pytest.raises(ValueError, match="image 1 has no digit or no background"):
    error_sources.appearance(images, mask)
  with pytest.raises(ValueError, match=r"do not match.*\(N, H, W, C\)"):
    error_sources.appearance(images, mask[:, :3])
  with pytest.raises(ValueError, match=r"background masks \(2, 4, 3\) do not"):
    error_sources.appearance(images, mask, background=~mask[:, :, :3])


def test_error_sources_bins_shares_errors_and_renders():
  error_sources = _error_sources()
  target = np.array([5.0, 15, 25, 35, 90])
  wrong = np.array([True, False, True, True, False])
  rendered = np.array([1.0, 2, 3, 95])
  out = error_sources.binned(target, wrong, rendered, (0, 10, 30))
  assert [(b["from"], b["to"]) for b in out["bins"]] == [
      (0, 10), (10, 30), (30, None)]
  assert [b["target_share"] for b in out["bins"]] == [0.2, 0.4, 0.4]
  assert [b["errors"] for b in out["bins"]] == [1, 1, 1]
  assert [b["error_rate"] for b in out["bins"]] == [1.0, 0.5, 0.5]
  assert [b["rendered_share"] for b in out["bins"]] == [0.75, 0.0, 0.25]
  assert out["quantiles"]["target_errors"]["0.5"] == 25.0
  assert out["quantiles"]["rendered"]["0.1"] == pytest.approx(1.3)
  empty = error_sources.binned(target, wrong, rendered, (0, 10, 30, 50, 80))
  assert empty["bins"][3]["error_rate"] is None  # no target image in [50, 80)
  assert error_sources.binned(target, np.zeros(5, bool), rendered, (0,))[
      "quantiles"]["target_errors"] is None
