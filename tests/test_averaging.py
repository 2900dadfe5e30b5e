"""The weight average: its arithmetic, and how training and restore use it."""

import numpy as np
import pytest
import tensorflow as tf

from pixelda_tf import averaging
from pixelda_tf import pixelda
from pixelda_tf import rundir
from tests import tiny


def test_average_follows_the_warm_up_formula():
  v = tf.Variable([0.0, 10.0])
  avg = averaging.WeightAverage([v], decay=0.99)
  expected = np.array([0.0, 10.0])
  for t, value in enumerate(([1.0, 0.0], [2.0, 4.0], [3.0, 8.0]), start=1):
    v.assign(value)
    avg.update(tf.constant(t, tf.int64))
    d = min(0.99, (1 + t) / (10 + t))
    expected = d * expected + (1 - d) * np.array(value)
    np.testing.assert_allclose(avg.averages[0].numpy(), expected, rtol=1e-6)


def test_applied_swaps_in_and_back_even_on_error():
  v = tf.Variable([1.0])
  avg = averaging.WeightAverage([v], decay=0.5)
  v.assign([3.0])
  avg.update(tf.constant(1, tf.int64))  # decay min(0.5, 2/11): 1*2/11+3*9/11
  inside = None
  with pytest.raises(RuntimeError):
    with avg.applied():
      inside = float(v.numpy()[0])
      raise RuntimeError("boom")
  np.testing.assert_allclose(inside, (2 * 1.0 + 9 * 3.0) / 11, rtol=1e-6)
  assert float(v.numpy()[0]) == 3.0


@pytest.mark.parametrize("decay", [-0.1, 0.0, 1.0])
def test_bad_decay_refused(decay):
  with pytest.raises(ValueError, match="decay"):
    averaging.WeightAverage([tf.Variable(1.0)], decay=decay)


@pytest.mark.slow
def test_training_keeps_an_average_that_restore_loads(tmp_path):
  cfg = tiny.tiny_config(train=dict(ema_decay=0.5,
                                    model_dir=str(tmp_path / "run")))
  model = pixelda.PixelDA(cfg, tf.distribute.get_strategy())
  for seed in range(3):
    model.train_step(tiny.batch(seed))
  raw = model.nets.classifier.get_weights()
  averaged = [a.numpy() for a in model.average.averages]
  # The average lags the weights: it differs from them after a few steps.
  assert any(not np.array_equal(a, w) for a, w in zip(averaged, raw))
  manager = tf.train.CheckpointManager(
      model.checkpoint, str(tmp_path / "run" / rundir.CHECKPOINT_DIR), 1)
  manager.save(checkpoint_number=3)
  with open(tmp_path / "run" / rundir.CONFIG_FILE, "w") as f:
    f.write(cfg.to_json())
  restored = rundir.restore(str(tmp_path / "run"))
  kept = rundir.restore(str(tmp_path / "run"), averaged=False)
  for mine, theirs, a in zip(model.average._variables,
                             restored.average._variables, averaged):
    np.testing.assert_array_equal(theirs.numpy(), a)
  np.testing.assert_array_equal(kept.nets.classifier.get_weights()[0], raw[0])
  assert not np.array_equal(restored.nets.classifier.get_weights()[0], raw[0])
