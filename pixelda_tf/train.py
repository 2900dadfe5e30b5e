r"""Trains PixelDA (or a baseline) and reports target test accuracy.

  python -m pixelda_tf.train --flagfile=configs/mnistm_cpu.flags

Rerunning the same command resumes from the last checkpoint in --model_dir.
Results land in <model_dir>/results.json; TensorBoard logs in <model_dir>/train.
"""

import json
import sys

from absl import app
from absl import logging

from pixelda_tf import config as config_lib
from pixelda_tf import flags as pixelda_flags
from pixelda_tf import pixelda
from pixelda_tf import training
from pixelda_tf.data import DataError


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}: every setting is a "
                         "--flag (see --helpfull)")
  try:
    cfg = pixelda_flags.config_from_flags()
    results = training.train(cfg)
  except (config_lib.ConfigError, DataError, FileNotFoundError,
          pixelda.NonFiniteLossError) as e:
    logging.error("%s", e)
    print(f"error: {e}", file=sys.stderr)
    return 1
  line = {"target_test_accuracy": results["final"]["accuracy"],
          "steps": results["steps"], "stopped_by": results["stopped_by"],
          "minutes": results["wall_time_s"] / 60,
          "weights_sha256": results["weights_sha256"]}
  if "reason" in results["final"]:
    line["reason"] = results["final"]["reason"]
  if "best" in results:
    line["best_val_checkpoint_test_accuracy"] = results["best"]["accuracy"]
    line["best_step"] = results["best"]["step"]
  print(json.dumps(line))
  return 0


if __name__ == "__main__":
  app.run(main)
