"""Measures the training input pipeline's throughput in images per second.

  python benchmarks/input_pipeline.py --flagfile=configs/data_smoke.flags \
      --batch_size=32 --bench_steps=500

Counts source + target images (2 * batch_size per step), after a warm-up, so
the figure compares directly with what a training step consumes (about
64 images per ~1 s step on 2 CPU cores at batch 32).
"""

import os
import sys
import time

# Runnable from a checkout without installing the package.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# At import, not in main: TensorFlow reads TF_ENABLE_ONEDNN_OPTS once, when
# it loads, and the imports below load it.
from pixelda_tf import runner  # pylint: disable=g-import-not-at-top,wrong-import-position
runner.prepare_process()

from absl import app  # pylint: disable=g-import-not-at-top,wrong-import-position
from absl import flags  # pylint: disable=wrong-import-position

from pixelda_tf import flags as pixelda_flags
from pixelda_tf.data import train_dataset

BENCH_STEPS = flags.DEFINE_integer("bench_steps", 500, "Batches to time.")
WARMUP = flags.DEFINE_integer("bench_warmup", 20, "Untimed batches first.")


def main(argv):
  del argv
  cfg = pixelda_flags.config_from_flags()
  start = time.time()
  ds = train_dataset(cfg.data, cfg.train.batch_size)
  it = iter(ds)
  for _ in range(WARMUP.value):
    next(it)
  setup = time.time() - start
  start = time.time()
  for _ in range(BENCH_STEPS.value):
    batch = next(it)
  batch["source_images"].numpy()
  seconds = time.time() - start
  images = 2 * cfg.train.batch_size * BENCH_STEPS.value
  print(f"setup+warmup {setup:.1f} s; {BENCH_STEPS.value} batches of "
        f"{cfg.train.batch_size}+{cfg.train.batch_size} in {seconds:.2f} s: "
        f"{images / seconds:,.0f} images/s, "
        f"{BENCH_STEPS.value / seconds:,.0f} steps/s")


if __name__ == "__main__":
  app.run(main)
