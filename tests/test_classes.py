"""--classes: a subset of the built-in data sets' classes, and a generator
trained on a subset applied to the others (issue 48)."""

import dataclasses
import json
import os

import numpy as np
import pytest

from pixelda_tf import adapting
from pixelda_tf import classifiers
from pixelda_tf import config as config_lib
from pixelda_tf import rundir
from pixelda_tf.data import load_domain
from tests import tiny

pytestmark = pytest.mark.usefixtures("offline_data")

SPLITS = (("source", "train"), ("source", "test"), ("target", "train"),
          ("target", "val"), ("target", "test"))
# sha256 (first 16 hex digits) of every split of the fake MNIST -> released
# MNIST-M at 16x16, val_size 4, as the code gave them before --classes
# existed: a run without the flag must read exactly the same data (stored
# runs compare these fingerprints when they resume).
BEFORE = {"source/train": "30820123eed8dfb9", "source/test": "417da9e1af8f8ab6",
          "target/train": "d68d201068a44704", "target/val": "58b6a1933d00a2f0",
          "target/test": "6eef378af3585162"}


def _released(tmp_path, fake, **fields):
  return tiny.data_config(
      tmp_path, fake, image_size=tiny.SIZE, target="mnist_m",
      mnist_m_variant="released", mnist_m_dir=str(fake / "mnist_m"),
      val_size=4, **fields)


def test_without_classes_the_data_is_unchanged(tmp_path, fake):
  cfg = _released(tmp_path, fake)
  got = {f"{role}/{split}": rundir.data_fingerprint(
      load_domain(cfg, role, split))[:16] for role, split in SPLITS}
  assert got == BEFORE
  # Naming every class is no restriction: the same data, the same origins.
  every = dataclasses.replace(cfg, classes="0,1,2,3,4,5,6,7,8,9")
  for role, split in SPLITS:
    a, b = load_domain(cfg, role, split), load_domain(every, role, split)
    assert a.origin == b.origin
    np.testing.assert_array_equal(a.images, b.images)


@pytest.mark.parametrize("target_labels", ["auto", "test", "none"])
def test_classes_keep_only_those_labels_in_every_split(tmp_path, fake,
                                                       target_labels):
  everything = _released(tmp_path, fake, target_labels=target_labels)
  subset = dataclasses.replace(everything, classes="4,0,2")
  for role, split in SPLITS:
    full, part = (load_domain(c, role, split) for c in (everything, subset))
    # Labels the run may not use are still the ones selected by: the
    # unlabelled pool is the all-class pool's images of those classes.
    truth = full.labels if full.labels is not None else _truth(
        everything, role, split)
    keep = np.isin(truth, [0, 2, 4])
    assert 0 < len(part) < len(full), (role, split)
    # The all-class split restricted, in its order: the held-out slices
    # of a subset run are the all-class run's.
    np.testing.assert_array_equal(part.images, full.images[keep])
    if part.labels is not None:
      assert set(part.labels.tolist()) <= {0, 2, 4}
    assert part.origin.endswith("(classes 0,2,4 only: --classes)")
    assert part.num_classes == 10  # Ids are kept: T keeps its 10 outputs.


def _truth(cfg, role, split):
  """The labels of a split whose labels `target_labels` hides: with them
  hidden nothing is carved out of train (val stands in as train), and the
  fake MNIST-M has a test split of its own."""
  whole = dataclasses.replace(cfg, target_labels="auto", val_size=0)
  return load_domain(whole, role, "test" if split == "test" else "train"
                     ).labels


def test_a_resume_with_other_classes_is_refused():
  assert ("data", "classes") not in rundir.RESUMABLE_CHANGES
  # An older run's config.json (no `classes`) reads as all classes.
  old = config_lib.Config().to_dict()
  del old["data"]["classes"]
  assert config_lib.Config.from_dict(old).data.class_ids() is None


def test_class_ids_parse_sorted():
  assert config_lib.DataConfig(classes=" 4, 0,2").class_ids() == (0, 2, 4)
  assert config_lib.DataConfig().class_ids() is None


@pytest.mark.slow
def test_generator_of_a_subset_adapts_unseen_classes(tmp_path, fake):
  from pixelda_tf import training  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  cfg = tiny.tiny_config(
      data=dataclasses.asdict(_released(tmp_path, fake, classes="0,1,2,3,4")),
      train=dict(model_dir=str(tmp_path / "run"), train_steps=2,
                 checkpoint_every=2, eval_every=0, image_every=0, quiet=True))
  training.train(cfg, strategy=tf.distribute.get_strategy())
  run = cfg.train.model_dir
  assert json.load(open(os.path.join(run, "config.json")))["data"][
      "classes"] == "0,1,2,3,4"

  out = str(tmp_path / "adapted")
  manifest = adapting.adapt_dataset(run, out, {"classes": ""}, fmt="png")
  counts = manifest["examples_per_class"]
  assert all(counts[c] > 0 for c in range(10))
  assert manifest["trained_classes"] == [0, 1, 2, 3, 4]
  assert manifest["unseen_classes"] == [5, 6, 7, 8, 9]
  assert "G never saw classes [5, 6, 7, 8, 9]" in manifest["unseen_note"]
  assert len(os.listdir(os.path.join(out, "7"))) == counts[7]

  # Only the run's own classes: nothing unseen, no note.
  seen = adapting.adapt_dataset(run, str(tmp_path / "seen"), {}, fmt="png")
  assert seen["unseen_classes"] == [] and "unseen_note" not in seen
  assert seen["examples_per_class"][5:] == [0] * 5

  # The classifier tests on the target's unseen classes only, or on all.
  base = config_lib.Config.from_dict(manifest["config"])
  for classes, want in (("5,6,7,8,9", [5, 6, 7, 8, 9]), ("", list(range(10)))):
    tested = config_lib.override_data(base, {"classes": classes})
    result = classifiers.train_and_evaluate(out, tested, epochs=1,
                                            batch_size=16)
    assert result["target_classes"] == want
    n = len(load_domain(tested.data, "target", "test"))
    assert result["num_examples"] == n
    assert set(np.nonzero(np.sum(result["confusion_matrix"], axis=1))[0]
               ) <= set(want)

  # The floor: the source images themselves, through the same files.
  floor = adapting.adapt_dataset(run, str(tmp_path / "floor"), {"classes": ""},
                                 fmt="png", identity=True)
  assert floor["checkpoint"] is None and floor["unseen_classes"] == []
  source = load_domain(base.data, "source", "train")
  first = sorted(os.listdir(tmp_path / "floor" / "0"))[0]
  from PIL import Image  # pylint: disable=g-import-not-at-top
  png = np.asarray(Image.open(tmp_path / "floor" / "0" / first))
  np.testing.assert_array_equal(png, np.repeat(
      source.images[int(first.split("_")[0])], 3, axis=-1))


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_unseen_classes_benchmark_plans_the_four_arms(tmp_path):
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  script = os.path.join(ROOT, "benchmarks", "unseen_classes.py")
  out = subprocess.run(
      [sys.executable, script, f"--root={tmp_path}", "--seeds=3",
       "--reverse", "--train_steps=7", "--dry_run", "--",
       "--flagfile=configs/smoke.flags"], capture_output=True, text=True,
      check=True).stdout.splitlines()
  run = str(tmp_path / "seed3")
  assert [line.split()[2] for line in out] == [
      "pixelda_tf.train", "pixelda_tf.adapt", "pixelda_tf.classify",
      "pixelda_tf.train", "pixelda_tf.adapt", "pixelda_tf.classify",
      "pixelda_tf.adapt", "pixelda_tf.classify"]
  # (a) trains on the reversed split, 5-9, with the budget after the flags,
  # in a folder named by its classes.
  assert out[0].endswith("--flagfile=configs/smoke.flags --train_steps=7 "
                         f"--classes=5,6,7,8,9 --seed=3 --model_dir={run}"
                         "/seen56789/run")
  every = "--classes=0,1,2,3,4,5,6,7,8,9"
  assert all(every in line for line in out
             if "pixelda_tf.train" not in line)
  assert "--classes" not in out[3]  # The ceiling trains on all classes.
  assert out[3].endswith(f"--model_dir={run}/all/run")
  assert "--identity" in out[6] and f"--out={run}/source/adapted" in out[6]
  # (c) and (d) do not depend on the split: forward and reverse runs in one
  # root share them.
  forward = subprocess.run(
      [sys.executable, script, f"--root={tmp_path}", "--seeds=3",
       "--train_steps=7", "--dry_run", "--",
       "--flagfile=configs/smoke.flags"], capture_output=True, text=True,
      check=True).stdout.splitlines()
  assert f"--model_dir={run}/seen01234/run" in forward[0]
  assert forward[3:] == out[3:]
  assert not os.listdir(tmp_path)  # A dry run runs nothing.

  # The arithmetic, in the script's own process (its flags stay there).
  check = subprocess.run([sys.executable, "-c", """
import sys; sys.path.insert(0, 'benchmarks')
import numpy as np, unseen_classes as u
c = np.zeros((10, 10), int)
c[0, 0] = 3; c[0, 7] = 1; c[7, 7] = 1; c[7, 2] = 1
assert u.accuracy_on(c, [0]) == 0.75 and u.accuracy_on(c, [7]) == 0.5
assert u.accuracy_on(c, [0, 7]) == 4 / 6
assert abs(u.gap_closed(0.6, 0.4, 0.8) - 0.5) < 1e-9
assert u.gap_closed(0.6, 0.4, 0.4) is None
assert u.split_classes(['3', '1'], False) == ([1, 3], [0, 2, 4, 5, 6, 7, 8, 9])
s = u.summarize({
    '0': {'subset': {'unseen_B': 0.5}, 'gap_closed_B': 0.4, 'T_on_A': 0.9},
    '1': {'subset': {'unseen_B': 0.7}, 'gap_closed_B': None, 'T_on_A': 0.95}})
assert abs(s['subset']['unseen_B']['mean'] - 0.6) < 1e-9
assert s['subset']['unseen_B']['n'] == 2
assert s['gap_closed_B'] == {'mean': 0.4, 'std': 0.0, 'n': 1}
assert abs(s['T_on_A']['mean'] - 0.925) < 1e-9
# A rerun skips a finished training run, not one a signal interrupted.
import json, os
train = ['python', '-m', 'pixelda_tf.train', '--model_dir=%s']
results = os.path.join('%s', 'results.json')
assert not u.finished(train)
json.dump({'steps': 3, 'interrupted': True}, open(results, 'w'))
assert not u.finished(train)
json.dump({'steps': 7}, open(results, 'w'))
assert u.finished(train)
print('ok')
""" % (tmp_path, tmp_path)], cwd=ROOT, capture_output=True, text=True)
  assert check.stdout.strip() == "ok", check.stderr
