"""Every binary reports a user's mistake as one line naming the flag: no
traceback, no usage dump (issue 47), through the shared runner."""

import os
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest

from pixelda_tf import config as config_lib
from pixelda_tf import errors
from pixelda_tf import runner

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = pytest.mark.slow  # Each case starts a Python process.


def _run(module, *args, cwd=ROOT):
  """(exit status, stderr lines that are not TensorFlow's start-up log)."""
  proc = subprocess.run(
      [sys.executable, "-m", module, *args], cwd=cwd, capture_output=True,
      text=True, timeout=120,
      env={**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "2"})
  lines = [x for x in proc.stderr.splitlines()
           if x.strip() and not x.startswith((
               "WARNING: All log messages before absl", "I0000", "E0000",
               "W0000")) and "cpu_feature_guard" not in x
           and "To enable the following" not in x]
  return proc.returncode, lines


@pytest.fixture(scope="module")
def one_class(tmp_path_factory):
  folder = tmp_path_factory.mktemp("one_class")
  os.makedirs(folder / "a")
  Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / "a" / "0.png")
  return folder


@pytest.mark.parametrize("module,args,message", [
    ("pixelda_tf.data", ["--source=bogus"],
     "error: --source='bogus' is not valid; use one of mnist, usps, folder"),
    ("pixelda_tf.data", ["--image_size=0"],
     "error: --image_size=0: use a multiple of 4"),
    ("pixelda_tf.data", ["--source=folder", "--source_dir={one_class}",
                         "--num_classes=1"],
     "error: --num_classes must be >= 2"),
    ("pixelda_tf.seeds", ["--seeds=a,b"],
     "error: --seeds=a,b: give whole numbers, comma-separated"),
    ("pixelda_tf.evaluate", [], "error: --model_dir=DIR (a training run) is "
     "required"),
    ("pixelda_tf.evaluate", ["--model_dir=runs/x", "--batch_size=3"],
     "error: --batch_size cannot change a trained model"),
    ("pixelda_tf.adapt", ["--model_dir=runs/x"],
     "error: --model_dir=DIR and --out=PATH are required"),
    ("pixelda_tf.classify", [], "error: --train_dir=PATH (from "
     "pixelda_tf.adapt) is required"),
    ("pixelda_tf.refine", ["--model_dir=runs/x"],
     "error: --model_dir=DIR (a trained run) and --out=PATH are required"),
    ("pixelda_tf.bench", ["--modes=warp"], "error: unknown modes ['warp']"),
    ("pixelda_tf.export", ["--model_dir=/no/such/run", "--export_dir=x"],
     "error: /no/such/run/config.json not found"),
    ("pixelda_tf.export", ["--export_dir=x"],
     "error: --model_dir=DIR (a training run) and --export_dir=DIR are "
     "required"),
    ("pixelda_tf.export", ["--model_dir=runs/x", "--export_dir=x",
                           "--target=usps"],
     "error: --target cannot change a trained model"),
    ("pixelda_tf.train", ["stray"], "error: unexpected arguments ['stray']"),
    ("pixelda_tf.rank", ["runs/x"], "error: give two or more run folders"),
    ("pixelda_tf.rank", ["/no/a", "/no/b"], "error: /no/a is not a folder"),
    ("pixelda_tf.rank", ["--by=accuracy", "/no/a", "/no/b"],
     "error: flag --by=accuracy: value should be one of <entropy|im|"),
])
def test_a_mistake_is_one_line_naming_the_flag(module, args, message,
                                               one_class):
  args = [a.format(one_class=one_class) for a in args]
  status, lines = _run(module, *args)
  assert status == 1
  assert lines == [lines[-1]] and lines[-1].startswith(message), lines


@pytest.mark.parametrize("module,args", [
    ("pixelda_tf.train", ["--batch_size=0"]),
    ("pixelda_tf.evaluate", []),
    ("pixelda_tf.export", ["--export_dir=x"])])
def test_a_flag_mistake_is_reported_before_tensorflow_loads(module, args):
  # Loading TensorFlow takes seconds; a mistake in a flag should not wait.
  code = (f"import runpy, sys\nsys.argv = {[module, *args]!r}\n"
          f"try:\n  runpy.run_module({module!r}, run_name='__main__')\n"
          "except SystemExit as e:\n"
          "  print(e.code, 'tensorflow' in sys.modules)\n")
  proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT,
                        capture_output=True, text=True, timeout=120,
                        env={**os.environ, "PYTHONPATH": ROOT})
  assert proc.stdout.split() == ["1", "False"], proc.stderr[-2000:]
  assert "error: " in proc.stderr


def test_config_errors_are_user_errors():
  assert issubclass(config_lib.ConfigError, errors.UserError)
  assert issubclass(config_lib.ConfigError, ValueError)
  assert issubclass(config_lib.ConfigError, errors.user_errors())


def test_every_library_error_is_a_user_error():
  # Imported here: these modules load TensorFlow.
  # pylint: disable=g-import-not-at-top
  from pixelda_tf import exporting
  from pixelda_tf import rundir
  from pixelda_tf import runlock
  from pixelda_tf import step
  from pixelda_tf.data import errors as data_errors
  for error in (data_errors.DataError, rundir.CheckpointError,
                rundir.DamagedFileError, runlock.LockedError,
                exporting.ExportError, step.NonFiniteLossError):
    assert issubclass(error, errors.UserError), error
  # Their builtin bases stay, for callers that catch those.
  assert issubclass(data_errors.DataError, ValueError)
  assert issubclass(rundir.DamagedFileError, ValueError)
  assert issubclass(exporting.ExportError, RuntimeError)


def test_shared_flags_are_defined_once():
  assert runner.checkpoint_flag() is runner.checkpoint_flag()
  assert runner.out_flag() is runner.out_flag()
