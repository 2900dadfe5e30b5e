"""The oneDNN switch: importing pixelda_tf turns TensorFlow's oneDNN CPU
kernels on (they are off by default on CPUs without AVX-512), respects an
explicit TF_ENABLE_ONEDNN_OPTS=0, and warns when it came too late; a train
step under oneDNN logs no Grappler error."""

import os
import platform
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = pytest.mark.skipif(
    platform.machine().lower() not in ("x86_64", "amd64"),
    reason="TensorFlow's oneDNN kernels ship in the x86 wheels")

_PROBE = """
import sys
if sys.argv[1] == "tf_first":
  import tensorflow
from pixelda_tf import config, pixelda, runtime
from tests import tiny
cfg = tiny.tiny_config()
model = pixelda.PixelDA(cfg, runtime.setup(cfg.runtime))
model.train_step(tiny.batch())
print("ONEDNN", runtime.onednn_enabled())
"""


def _probe(order, onednn_env=None):
  env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
  if onednn_env is not None:
    env["TF_ENABLE_ONEDNN_OPTS"] = onednn_env
  env["PYTHONPATH"] = ROOT
  env["TF_CPP_MIN_LOG_LEVEL"] = "2"
  proc = subprocess.run([sys.executable, "-c", _PROBE, order], env=env,
                        capture_output=True, text=True, check=True, cwd=ROOT)
  (line,) = [l for l in proc.stdout.splitlines() if l.startswith("ONEDNN")]
  return line.split()[1] == "True", proc.stderr


def test_importing_the_package_first_turns_onednn_on():
  on, stderr = _probe("package_first")
  assert on
  assert "oneDNN CPU kernels are off" not in stderr
  # Grappler's remapper fails on the step graph under oneDNN unless
  # runtime.setup turns it off.
  assert "remapper failed" not in stderr


def test_explicit_off_is_respected_without_a_warning():
  on, stderr = _probe("package_first", onednn_env="0")
  assert not on
  assert "oneDNN CPU kernels are off" not in stderr


def test_tensorflow_imported_first_warns_when_it_stays_off():
  # Off on AVX2-only CPUs such as this project's CI machines; TensorFlow
  # turns oneDNN on by itself on CPUs with AVX-512, and then nothing is said.
  on, stderr = _probe("tf_first")
  assert on != ("import pixelda_tf first" in stderr)
