"""The USPS TFDS builder, on fake LIBSVM files."""

import tempfile

import numpy as np
import pytest

pytest.importorskip("dill")  # tfds.testing needs it (TFDS's test extra).
import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

from tests import make_fake_data  # pylint: disable=g-import-not-at-top

from pixelda_tf.data import tfds_usps  # pylint: disable=wrong-import-position

_FAKE = tempfile.mkdtemp(prefix="fake_usps_")
make_fake_data.write_usps(_FAKE, np.random.default_rng(0))


class PixeldaUspsTest(tfds.testing.DatasetBuilderTestCase):
  DATASET_CLASS = tfds_usps.PixeldaUsps
  EXAMPLE_DIR = _FAKE
  SPLITS = {"train": 40, "test": 10}
  # The download path, fed the fake LIBSVM files.
  DL_EXTRACT_RESULT = {"train": "usps_libsvm/usps.bz2",
                       "test": "usps_libsvm/usps.t.bz2"}
  SKIP_CHECKSUMS = True


if __name__ == "__main__":
  tfds.testing.test_main()
