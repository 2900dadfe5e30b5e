"""USPS as a TFDS builder (`tfds.builder("pixelda_usps")` after importing this).

The loaders in `usps.py` are what the trainer uses (they avoid TFDS's slow
import and download retries); this builder exposes the same files to TFDS
users and is tested with `tfds.testing.DatasetBuilderTestCase`.
"""

from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds

from pixelda_tf.data import usps


class PixeldaUsps(tfds.core.GeneratorBasedBuilder):
  """USPS handwritten digits, 16x16 grey, 7,291 train / 2,007 test."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First release."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Put either `usps.h5` (train/data (N,256) float in [0,1], train/target, same
  under test/) or LIBSVM's `usps.bz2` and `usps.t.bz2` in the manual_dir.
  Without them the LIBSVM files are downloaded from
  https://www.csie.ntu.edu.tw/~cjlin/libsvmtools/datasets/multiclass/.
  """

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(16, 16, 1)),
            "label": tfds.features.ClassLabel(num_classes=10),
        }),
        supervised_keys=("image", "label"),
        homepage="https://www.csie.ntu.edu.tw/~cjlin/libsvmtools/datasets/"
                 "multiclass.html#usps",
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    # TFDS wants epath here, not os.path, so any filesystem works.
    manual = dl_manager._manual_dir  # pylint: disable=protected-access
    h5 = manual / "usps.h5" if manual else None
    libsvm = {split: manual / name if manual else None
              for split, (name, _) in usps.LIBSVM_FILES.items()}
    if h5 is not None and h5.exists():
      arrays = usps.read_h5(str(h5))
    else:
      if not all(p is not None and p.exists() for p in libsvm.values()):
        libsvm = dl_manager.download({
            split: usps.URL + name
            for split, (name, _) in usps.LIBSVM_FILES.items()})
      arrays = {}
      for split, path in libsvm.items():
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = (
            usps.read_libsvm(str(path)))
    return {split: self._generate_examples(arrays[f"{split}_images"],
                                           arrays[f"{split}_labels"])
            for split in ("train", "test")}

  def _generate_examples(self, images: np.ndarray, labels: np.ndarray):
    for i, (image, label) in enumerate(zip(images, labels)):
      # File order is the split's order, so the index is a stable key.
      yield i, {"image": image[..., None], "label": int(label)}
