"""The oneDNN switch: the binaries turn TensorFlow's oneDNN CPU kernels on
(`runner.prepare_process`; TensorFlow leaves them off on CPUs without
AVX512_VNNI, AVX512_BF16, AVX_VNNI or AMX), importing the library changes
nothing, an explicit TF_ENABLE_ONEDNN_OPTS=0 is respected, a warning says
when it came too late, and a train step under oneDNN logs no Grappler
error."""

import os
import subprocess
import sys

import pytest

import pixelda_tf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Each test starts Python processes: not in the quick tier.
pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    not pixelda_tf.ON_X86,
    reason="TensorFlow's oneDNN kernels ship in the x86 wheels")]

_PROBE = """
import sys
if sys.argv[1] == "tf_first":
  import tensorflow
from pixelda_tf import runner
runner.prepare_process()
from pixelda_tf import pixelda, runtime
from tests import tiny
cfg = tiny.tiny_config()
strategy = runtime.setup(cfg.runtime)
if sys.argv[2] == "step":
  pixelda.PixelDA(cfg, strategy).train_step(tiny.batch())
print("ONEDNN", runtime.onednn_enabled())
"""


def _probe(order, step=False, onednn_env=None):
  """(oneDNN on?, stderr) of a fresh process that imports in `order`."""
  env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
  if onednn_env is not None:
    env["TF_ENABLE_ONEDNN_OPTS"] = onednn_env
  env["PYTHONPATH"] = ROOT
  env["TF_CPP_MIN_LOG_LEVEL"] = "2"
  proc = subprocess.run(
      [sys.executable, "-c", _PROBE, order, "step" if step else "setup"],
      env=env, capture_output=True, text=True, check=False, cwd=ROOT)
  assert proc.returncode == 0, proc.stderr[-3000:]
  (line,) = [x for x in proc.stdout.splitlines() if x.startswith("ONEDNN")]
  return line.split()[1] == "True", proc.stderr


def test_importing_the_library_sets_no_environment_variable():
  env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
  proc = subprocess.run(
      [sys.executable, "-c", "import os, pixelda_tf, pixelda_tf.training, "
       "pixelda_tf.exporting; print(os.environ.get('TF_ENABLE_ONEDNN_OPTS'))"],
      env={**env, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "2"},
      capture_output=True, text=True, check=True, cwd=ROOT)
  assert proc.stdout.split()[-1] == "None"


def test_the_test_session_runs_without_the_remapper():
  # conftest does what runtime.setup does, for tests that skip setup.
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from pixelda_tf import runtime  # pylint: disable=g-import-not-at-top
  if runtime.onednn_enabled() and not tf.config.list_physical_devices("GPU"):
    assert tf.config.optimizer.get_experimental_options()["remapping"] is False


def test_the_binary_setting_it_first_turns_onednn_on():
  on, stderr = _probe("binary_first", step=True)
  assert on
  # Grappler's remapper fails on the step graph under oneDNN unless
  # runtime.setup turns it off.
  assert "remapper failed" not in stderr


@pytest.mark.parametrize("value", ["0", "false"])
def test_explicit_off_is_respected_without_a_warning(value):
  on, stderr = _probe("binary_first", onednn_env=value)
  assert not on
  assert "oneDNN CPU kernels are off" not in stderr


def test_tensorflow_imported_first_warns_when_it_stays_off():
  # Off on AVX2-only CPUs such as this project's CI machines; TensorFlow
  # turns oneDNN on by itself on newer ones, and then nothing is said.
  on, stderr = _probe("tf_first")
  assert on != ("call pixelda_tf.runner.prepare_process() before importing "
                "TensorFlow" in stderr)
