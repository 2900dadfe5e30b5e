"""Loads the configured source and target and prints one line per split.

  python -m pixelda_tf.data --flagfile=configs/data_smoke.flags
  python -m pixelda_tf.data --target=mnist_m --bsds_dir=PATH/BSR/BSDS500/data/images
"""

from pixelda_tf import runner

# At import, not in main: TensorFlow reads TF_ENABLE_ONEDNN_OPTS once, when
# it loads, and the imports below load it.
runner.prepare_process()

# pylint: disable=g-import-not-at-top,wrong-import-position,g-bad-import-order
import time

import numpy as np

from pixelda_tf import flags as pixelda_flags
from pixelda_tf.data import domains
from pixelda_tf.data import errors


def _describe(role: str, split: str, d: domains.Domain, seconds: float) -> str:
  if d.labels is None:
    counts = "unlabelled"
  else:
    counts = " ".join(str(c) for c in np.bincount(d.labels,
                                                  minlength=d.num_classes))
  return (f"{role:6s} {split:5s} {d.name}: {d.origin} | {d.images.shape} "
          f"{d.images.dtype} | labels {counts} | {seconds:.1f} s")


def main(argv):
  del argv  # Flags only (`runner.run`).
  cfg = pixelda_flags.config_from_flags().data
  for role, splits in (("source", ("train", "test")),
                       ("target", ("train", "val", "test"))):
    for split in splits:
      start = time.time()
      try:
        d = domains.load_domain(cfg, role, split)
      except errors.DataError as e:
        if role == "target" or split != "test":
          raise
        # A source folder needs no test split: training never reads it.
        print(f"{role:6s} {split:5s} none: {e}", flush=True)
        continue
      print(_describe(role, split, d, time.time() - start), flush=True)
  return 0


def run():
  """The console script's entry point (`pixelda-data`)."""
  runner.run(main)


if __name__ == "__main__":
  run()
