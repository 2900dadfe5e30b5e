"""README "Adapt your own images", end to end, with the binaries.

Small generated folders: a labelled source (class subfolders `circle/`,
`square/`) and an unlabelled flat target. The README's commands run as
subprocesses (fresh processes, smoke-sized settings): train, evaluate,
adapt, export; then one serving request on the exported classifier.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from pixelda_tf import validators


# Trains, exports or starts processes: not in the quick tier.
pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMOKE = [
    "--image_size=16", "--batch_size=8", "--train_steps=4", "--max_minutes=0",
    "--g_filters=8", "--g_blocks=1", "--d_filters=8", "--d_max_filters=16",
    "--checkpoint_every=2", "--eval_every=2", "--summary_every=2",
    "--image_every=0", "--nojit_compile", "--quiet",
]


def _shapes(root, n, rng, colour):
  """n 20x20 images per class: white circles or squares on `colour`."""
  yy, xx = np.mgrid[:20, :20]
  for cls in ("circle", "square"):
    folder = os.path.join(root, cls)
    os.makedirs(folder, exist_ok=True)
    for i in range(n):
      c = rng.integers(6, 14, 2)
      r = rng.integers(3, 6)
      mask = ((yy - c[0]) ** 2 + (xx - c[1]) ** 2 <= r * r if cls == "circle"
              else (abs(yy - c[0]) <= r) & (abs(xx - c[1]) <= r))
      img = np.zeros((20, 20, 3), np.uint8) + np.array(colour, np.uint8)
      img[mask] = 255
      Image.fromarray(img).save(os.path.join(folder, f"{i:03d}.png"))


def _cli(*args):
  env = dict(os.environ, PIXELDA_OFFLINE="1", PYTHONPATH=ROOT,
             TF_CPP_MIN_LOG_LEVEL="2")
  proc = subprocess.run([sys.executable, "-m", *args], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return proc


@pytest.fixture(scope="module")
def story(tmp_path_factory):
  root = tmp_path_factory.mktemp("story")
  rng = np.random.default_rng(0)
  source, target = str(root / "source"), str(root / "target")
  _shapes(source, 12, rng, (0, 0, 0))
  # The target: the same shapes on a red background, labels thrown away.
  _shapes(str(root / "labelled_target"), 8, rng, (180, 30, 30))
  os.makedirs(target)
  for cls in ("circle", "square"):
    for name in os.listdir(root / "labelled_target" / cls):
      os.rename(root / "labelled_target" / cls / name,
                os.path.join(target, f"{cls}_{name}"))
  run = str(root / "run")
  train = _cli("pixelda_tf.train", "--source=folder", f"--source_dir={source}",
               "--target=folder", f"--target_dir={target}", "--num_classes=2",
               f"--model_dir={run}", f"--data_dir={root / 'data'}", *SMOKE)
  return root, run, train


def test_training_without_target_labels_finishes_and_says_why(story):
  _, run, train = story
  line = json.loads(train.stdout.strip().splitlines()[-1])
  assert line["target_test_accuracy"] is None and line["steps"] == 4
  assert "nothing labelled to score" in line["reason"]
  with open(os.path.join(run, "results.json")) as f:
    results = json.load(f)
  assert results["final"]["accuracy"] is None
  # Every evaluation has no accuracy, only the label-free scores.
  assert results["val_history"], results
  for entry in results["val_history"]:
    assert entry["val_accuracy"] is None and entry["test_accuracy"] is None
    assert "score/im" in entry and "score/domain_confusion" in entry
  # --select_checkpoint=auto keeps by the label-free default, and says so.
  default = f"score/{validators.LABEL_FREE_DEFAULT}"
  assert results["selection"] == default and "checkpoint_kept" not in results
  top = max(results["val_history"], key=lambda h: h[default])
  assert results["best"]["step"] == top["step"]
  assert results["best"]["accuracy"] is None and results["best"]["reason"]
  assert f"best/ keeps the checkpoint of highest {default}" in train.stderr
  assert tf.train.latest_checkpoint(os.path.join(run, "checkpoints"))


def test_a_label_free_score_keeps_a_checkpoint_and_ranks_runs(story):
  """--select_checkpoint=SCORE on the flat unlabelled folder: best/ keeps
  the evaluation with the highest score, results.json says what picked it
  and gives all its scores, --checkpoint=best restores it, and
  pixelda_tf.rank orders the two runs by the score."""
  root, first, _ = story
  run = str(root / "run_snd")
  _cli("pixelda_tf.train", "--source=folder",
       f"--source_dir={root / 'source'}", "--target=folder",
       f"--target_dir={root / 'target'}", "--num_classes=2",
       f"--model_dir={run}", f"--data_dir={root / 'data'}",
       "--select_checkpoint=snd", "--seed=1", *SMOKE)
  with open(os.path.join(run, "results.json")) as f:
    results = json.load(f)
  history = results["val_history"]
  top = max(history, key=lambda h: h["score/snd"])
  assert results["selection"] == "score/snd"
  assert results["best"]["step"] == top["step"]
  assert results["best"]["value"] == top["score/snd"]
  assert results["best"]["scores"] == {
      k: v for k, v in top.items() if k.startswith("score/")}
  assert "checkpoint_kept" not in results
  assert tf.train.latest_checkpoint(os.path.join(run, "best")).endswith(
      f"ckpt-{top['step']}")
  proc = _cli("pixelda_tf.evaluate", f"--model_dir={run}",
              "--checkpoint=best", f"--out_dir={root / 'eval_best'}")
  shown = json.loads(proc.stdout.strip().splitlines()[-1])
  assert shown["step"] == top["step"], shown
  # Ranked by the score of each run's kept checkpoint: the first run kept
  # its latest (auto without labels), this one its best-scoring.
  ranked = str(root / "ranked.json")
  _cli("pixelda_tf.rank", first, run, "--by=snd", f"--json={ranked}")
  with open(ranked) as f:
    rows = json.load(f)["runs"]
  with open(os.path.join(first, "history.json")) as f:
    first_snd = json.load(f)[-1]["score/snd"]
  values = {r["run"]: r["scores"]["score/snd"] for r in rows}
  assert values == {first: first_snd, run: top["score/snd"]}
  assert [r["run"] for r in rows] == sorted(values, key=lambda k: -values[k])


def test_evaluate_says_there_is_nothing_to_score(story):
  root, run, _ = story
  proc = _cli("pixelda_tf.evaluate", f"--model_dir={run}",
              f"--out_dir={root / 'eval'}")
  shown = json.loads(proc.stdout.strip().splitlines()[-1])
  assert shown["accuracy"] is None and "nothing to score" in proc.stderr
  assert os.path.exists(shown["files"]["samples_png"])


def test_adapt_writes_named_class_folders(story):
  root, run, _ = story
  out = str(root / "adapted")
  _cli("pixelda_tf.adapt", f"--model_dir={run}", f"--out={out}",
       "--format=png", "--samples_per_image=2")
  assert sorted(os.listdir(out)) == ["circle", "manifest.json", "square"]
  assert len(os.listdir(os.path.join(out, "circle"))) == 24


def test_export_and_one_serving_request(story):
  root, run, _ = story
  exports = str(root / "exports")
  _cli("pixelda_tf.export", f"--model_dir={run}", f"--export_dir={exports}")
  with open(os.path.join(exports, "keras", "1", "preprocessing.json")) as f:
    assert json.load(f)["classifier"]["label_names"] == ["circle", "square"]
  served = tf.saved_model.load(os.path.join(exports, "classifier", "1"))
  image = np.asarray(Image.open(
      os.path.join(root, "source", "circle", "000.png")))[None]
  out = served.signatures["uint8"](image=tf.constant(image))
  assert out["class_name"].numpy()[0] in (b"circle", b"square")
  assert out["probabilities"].shape == (1, 2)


def test_labelled_test_and_val_folders_are_scored(story, tmp_path):
  """A flat train/ beside a labelled test/, plus --target_val_dir: the
  validation history, the best checkpoint and the test accuracy work."""
  from pixelda_tf import training  # pylint: disable=g-import-not-at-top
  from pixelda_tf.data import domains  # pylint: disable=g-import-not-at-top
  from tests import tiny  # pylint: disable=g-import-not-at-top
  root, _, _ = story
  rng = np.random.default_rng(1)
  target = tmp_path / "target"
  _shapes(str(tmp_path / "flat"), 6, rng, (30, 30, 180))
  os.makedirs(target / "train")
  for cls in ("circle", "square"):
    for name in os.listdir(tmp_path / "flat" / cls):
      os.rename(tmp_path / "flat" / cls / name,
                target / "train" / f"{cls}_{name}")
  _shapes(str(target / "test"), 3, rng, (30, 30, 180))
  _shapes(str(tmp_path / "val"), 2, rng, (30, 30, 180))
  domains._full.cache_clear()  # pylint: disable=protected-access
  cfg = tiny.tiny_config(
      data=dict(source="folder", source_dir=str(root / "source"),
                target="folder", target_dir=str(target),
                target_val_dir=str(tmp_path / "val"), mnist_dir=None,
                data_dir=str(tmp_path / "data"), download=False),
      classifier=dict(num_classes=2),
      train=dict(model_dir=str(tmp_path / "run"), train_steps=2,
                 checkpoint_every=2, eval_every=1, image_every=0,
                 summary_every=1, quiet=True))
  results = training.train(cfg, strategy=tf.distribute.get_strategy())
  assert [h["step"] for h in results["val_history"]] == [1, 2]
  for h in results["val_history"]:
    assert 0 <= h["val_accuracy"] <= 1 and 0 <= h["test_accuracy"] <= 1
  assert results["final"]["num_examples"] == 6       # 3 circles, 3 squares
  assert results["best"]["step"] in (1, 2) and "checkpoint_kept" not in results
  assert str(tmp_path / "val") in results["data_sources"]["target/val"]
  # Without the validation folder: test accuracy is still tracked, and the
  # run keeps the checkpoint the label-free default picks (test labels are
  # never used to choose).
  cfg = tiny.tiny_config(
      data=dict(cfg.data.__dict__, target_val_dir=None),
      classifier=dict(num_classes=2),
      train=dict(cfg.train.__dict__, model_dir=str(tmp_path / "run2")))
  results = training.train(cfg, strategy=tf.distribute.get_strategy())
  assert [h["val_accuracy"] for h in results["val_history"]] == [None, None]
  assert all(0 <= h["test_accuracy"] <= 1 for h in results["val_history"])
  assert results["final"]["num_examples"] == 6
  assert results["selection"] == f"score/{validators.LABEL_FREE_DEFAULT}"
  assert results["best"]["num_examples"] == 6
  # The README's first layout: a flat, unlabelled target and a validation
  # folder, no test split. Validation picks the best checkpoint; nothing is
  # there to test it on, and results.json says so instead of failing.
  cfg = tiny.tiny_config(
      data=dict(cfg.data.__dict__, target_dir=str(target / "train"),
                target_val_dir=str(tmp_path / "val")),
      classifier=dict(num_classes=2),
      train=dict(cfg.train.__dict__, model_dir=str(tmp_path / "run3")))
  results = training.train(cfg, strategy=tf.distribute.get_strategy())
  assert all(0 <= h["val_accuracy"] <= 1 for h in results["val_history"])
  assert results["final"]["accuracy"] is None
  assert results["best"]["step"] in (1, 2)
  assert results["best"]["accuracy"] is None and results["best"]["reason"]
  assert os.path.exists(tmp_path / "run3" / "results.json")


def test_target_only_without_target_labels_is_refused(story, tmp_path):
  from pixelda_tf import config as config_lib  # pylint: disable=g-import-not-at-top
  from pixelda_tf import training  # pylint: disable=g-import-not-at-top
  from tests import tiny  # pylint: disable=g-import-not-at-top
  root, _, _ = story
  cfg = tiny.tiny_config(
      data=dict(source="folder", source_dir=str(root / "source"),
                target="folder", target_dir=str(root / "target"),
                mnist_dir=None, data_dir=str(tmp_path / "data"),
                download=False),
      classifier=dict(num_classes=2),
      train=dict(mode="target_only", model_dir=str(tmp_path / "run")))
  with pytest.raises(config_lib.ConfigError, match="target_only.*has none"):
    training.train(cfg, strategy=tf.distribute.get_strategy())
