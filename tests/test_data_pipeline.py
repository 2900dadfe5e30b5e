"""The tf.data pipeline: ranges, determinism, resumption, evaluation order."""

import os
import subprocess
import sys

import numpy as np
import pytest


from pixelda_tf.config import DataConfig
from pixelda_tf.data import eval_dataset
from pixelda_tf.data import load_domain
from pixelda_tf.data import pipeline
from pixelda_tf.data import to_model_range
from pixelda_tf.data import train_dataset


pytestmark = pytest.mark.usefixtures("offline_data")


def mnist_to_usps(tmp_path, fake, **kw):
  return DataConfig(source="mnist", target="usps", data_dir=str(tmp_path),
                    mnist_dir=str(fake / "mnist"),
                    usps_path=str(fake / "usps.h5"), val_size=8,
                    download=False, **kw)


def batches(ds, n):
  return [{k: v.numpy() for k, v in b.items()} for b in ds.take(n)]


def test_train_batches_shapes_and_ranges(tmp_path, fake):
  b = batches(train_dataset(mnist_to_usps(tmp_path, fake), 16), 1)[0]
  assert b["source_images"].shape == (16, 32, 32, 3)
  assert b["target_images"].shape == (16, 32, 32, 3)
  for key in ("source_images", "target_images"):
    assert b[key].dtype == np.float32
    assert b[key].min() >= -1.0 and b[key].max() <= 1.0
  assert b["source_labels"].dtype == np.int32
  assert set(b["target_labels"].tolist()) <= set(range(10))


def test_resume_equals_skip_and_is_deterministic(tmp_path, fake):
  cfg = mnist_to_usps(tmp_path, fake)
  # 64 source / 32 target examples: 10 batches of 12 straddle epochs.
  full = batches(train_dataset(cfg, 12), 10)
  again = batches(train_dataset(cfg, 12), 10)
  resumed = batches(train_dataset(cfg, 12, start_step=7), 3)
  for a, b in zip(full, again):
    for k in a:
      np.testing.assert_array_equal(a[k], b[k])
  for a, b in zip(full[7:], resumed):
    for k in a:
      np.testing.assert_array_equal(a[k], b[k])
  other = batches(train_dataset(
      mnist_to_usps(tmp_path, fake, seed=3), 12), 1)[0]
  assert not np.array_equal(other["source_labels"], full[0]["source_labels"])


def test_each_epoch_is_a_permutation():
  idx = np.concatenate(list(pipeline.index_batches(10, 5, 0, 0).take(6)
                            .as_numpy_iterator()))
  for e in range(3):
    assert sorted(idx[10 * e:10 * e + 10].tolist()) == list(range(10))
  assert idx[:10].tolist() != idx[10:20].tolist()
  src = list(pipeline.index_batches(10, 5, 0, 1).take(2).as_numpy_iterator())
  assert np.concatenate(src).tolist() != idx[:10].tolist()


def test_unlabelled_target_labels_are_minus_one(tmp_path, fake):
  cfg = DataConfig(source="mnist", target="folder", data_dir=str(tmp_path),
                   mnist_dir=str(fake / "mnist"),
                   target_dir=str(fake / "target_flat"), val_size=2,
                   download=False)
  b = batches(train_dataset(cfg, 4), 1)[0]
  assert (b["target_labels"] == -1).all()
  assert b["target_images"].shape == (4, 32, 32, 3)


def test_eval_dataset_one_ordered_pass(tmp_path, fake):
  cfg = mnist_to_usps(tmp_path, fake)
  domain = load_domain(cfg, "target", "test")
  got = list(eval_dataset(cfg, "target", "test", 4).as_numpy_iterator())
  assert [len(y) for _, y in got] == [4, 4, 2]
  images = np.concatenate([x for x, _ in got])
  np.testing.assert_allclose(images, to_model_range(domain.images).numpy())
  np.testing.assert_array_equal(np.concatenate([y for _, y in got]),
                                domain.labels)


def test_to_model_range():
  grey = np.array([[[[0], [255]], [[51], [102]]]], np.uint8)  # (1, 2, 2, 1)
  out = to_model_range(grey).numpy()
  assert out.shape == (1, 2, 2, 3)
  np.testing.assert_allclose(out[0, 0, :, 0], [-1.0, 1.0])
  assert to_model_range(grey, image_size=8).shape == (1, 8, 8, 3)


@pytest.mark.slow
def test_cli_prints_one_line_per_split(tmp_path, fake):
  env = dict(os.environ, PIXELDA_OFFLINE="1", TF_CPP_MIN_LOG_LEVEL="3")
  cmd = [sys.executable, "-m", "pixelda_tf.data", "--target=usps",
         f"--mnist_dir={fake / 'mnist'}", f"--usps_path={fake / 'usps.h5'}",
         f"--data_dir={tmp_path}", "--val_size=8"]
  out = subprocess.run(cmd, capture_output=True, text=True, check=True,
                       env=env, cwd=os.path.dirname(os.path.dirname(__file__)))
  lines = out.stdout.strip().splitlines()
  assert len(lines) == 5 and lines[3].startswith("target val")
  bad = subprocess.run(cmd[:-3] + ["--usps_path=/nonexistent.h5",
                                   f"--data_dir={tmp_path}"],
                       capture_output=True, text=True, env=env,
                       cwd=os.path.dirname(os.path.dirname(__file__)))
  assert bad.returncode == 1 and "Traceback" not in bad.stderr
  assert "error: --usps_path=/nonexistent.h5 does not exist" in bad.stderr
  # Once: not also as a log line.
  assert bad.stderr.count("/nonexistent.h5 does not exist") == 1, bad.stderr
