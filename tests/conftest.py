"""Test-session setup: offline, tiny fake data, and two logical CPU devices so
MirroredStrategy can be tested without GPUs (set before TensorFlow starts)."""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)

# No test may touch the network: the data layer treats every host as
# unreachable (the one test of reachability itself unsets this).
os.environ["PIXELDA_OFFLINE"] = "1"

import pytest  # pylint: disable=g-import-not-at-top

# Before TensorFlow, as the binaries do: TensorFlow's oneDNN CPU kernels on
# (TF_ENABLE_ONEDNN_OPTS, which TensorFlow reads only when it loads; importing
# pixelda_tf itself changes nothing).
from pixelda_tf import runner  # pylint: disable=g-import-not-at-top
runner.prepare_process()

import tensorflow as tf  # pylint: disable=g-import-not-at-top

from pixelda_tf import runtime  # pylint: disable=g-import-not-at-top
from tests import make_fake_data  # pylint: disable=g-import-not-at-top

_cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    _cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
# As runtime.setup does: without a GPU, Grappler's remapper off under oneDNN
# (it fails on D's conv + bias + leaky ReLU and logs `remapper failed`), for
# the tests that build steps without going through setup.
runtime.configure_onednn()


@pytest.fixture(scope="session")
def fake(tmp_path_factory):
  """A folder of tiny fake data sets (see tests/make_fake_data.py)."""
  out = tmp_path_factory.mktemp("fake")
  make_fake_data.main(str(out))
  return out


@pytest.fixture
def offline_data(monkeypatch):
  """No network, and no data set cached in memory from another test's files
  (`pytestmark = pytest.mark.usefixtures("offline_data")`)."""
  from pixelda_tf.data import domains  # pylint: disable=g-import-not-at-top
  from pixelda_tf.data import net  # pylint: disable=g-import-not-at-top
  monkeypatch.setenv(net.OFFLINE_ENV, "1")
  domains._full.cache_clear()  # pylint: disable=protected-access


def pytest_configure(config):
  config.addinivalue_line(
      "markers", "slow: trains, exports or starts processes (seconds to a "
      "minute each); `pytest -m 'not slow'` runs the quick unit tier")
