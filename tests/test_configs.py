"""Every experiment's smoke-sized sibling trains end to end (on fake data)."""

import glob
import os

from absl import flags
from absl.testing import flagsaver
import pytest
import tensorflow as tf

from pixelda_tf import flags as pixelda_flags
from pixelda_tf import training


# Trains, exports or starts processes: not in the quick tier.
pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAGS = flags.FLAGS
SMOKE = sorted(os.path.basename(p) for p in
               glob.glob(os.path.join(ROOT, "configs", "*_smoke.flags")))


def test_every_experiment_has_a_smoke_sibling():
  experiments = {os.path.basename(p)[:-len(".flags")] for p in
                 glob.glob(os.path.join(ROOT, "configs", "*.flags"))}
  for name in experiments - {"data_smoke"}:
    if not name.endswith("_smoke"):
      assert f"{name}_smoke" in experiments, name


@pytest.mark.parametrize("flagfile", [f for f in SMOKE if f != "data_smoke.flags"])
def test_smoke_config_trains(flagfile, fake, tmp_path, monkeypatch):
  monkeypatch.chdir(ROOT)  # flagfiles include each other by relative path
  # The smoke files' own settings, with data pointed at the fake files.
  data = [f"--mnist_dir={fake}/mnist", f"--data_dir={tmp_path}/data",
          "--val_size=8", f"--model_dir={tmp_path}/run", "--quiet"]
  with flagsaver.flagsaver():
    FLAGS.unparse_flags()
    FLAGS(["prog", f"--flagfile=configs/{flagfile}", *data])
    if FLAGS.target == "usps":
      FLAGS(["prog", f"--flagfile=configs/{flagfile}", *data,
             f"--usps_path={fake}/usps.h5"])
    else:
      FLAGS(["prog", f"--flagfile=configs/{flagfile}", *data,
             "--mnist_m_variant=released", f"--mnist_m_dir={fake}/mnist_m"])
    cfg = pixelda_flags.config_from_flags()
  FLAGS.unparse_flags()
  results = training.train(cfg, strategy=tf.distribute.get_strategy())
  assert results["steps"] == cfg.train.train_steps
  assert 0.0 <= results["final"]["accuracy"] <= 1.0
