"""Exports a trained run for TF Serving and `keras.models.load_model`.

  python -m pixelda_tf.export --model_dir=runs/mnistm --export_dir=exports \
      [--version=N] [--checkpoint=latest|best|PREFIX] [--onnx]

writes exports/{generator,classifier,adapt_classify}/<N>/ (SavedModels) and
exports/keras/<N>/{generator,classifier}.keras + preprocessing.json; see
`pixelda_tf.exporting` for the signatures.
"""

from __future__ import annotations

from pixelda_tf import runner

runner.prepare_process()  # Before the imports below load TensorFlow.

# pylint: disable=g-import-not-at-top,wrong-import-position,g-bad-import-order
from absl import flags
from absl import logging

from pixelda_tf import exporting

# Defined here, not in pixelda_tf.flags: that module is the trainer's, and a
# process importing both would define --model_dir twice.
MODEL_DIR = flags.DEFINE_string("model_dir", None,
                                "Training run folder (config.json, "
                                "checkpoints/).")
EXPORT_DIR = flags.DEFINE_string("export_dir", None,
                                 "Output folder: one subfolder per servable.")
VERSION = flags.DEFINE_integer("version", None,
                               "Version folder to write (>= 1); default: one "
                               "more than the highest already in export_dir.")
CHECKPOINT = runner.checkpoint_flag()
ONNX = flags.DEFINE_bool("onnx", False,
                         "Also write export_dir/onnx/<N>/*.onnx (needs tf2onnx).")
flags.mark_flags_as_required(["model_dir", "export_dir"])


def main(argv):
  del argv  # Flags only (`runner.run`).
  paths = exporting.export_model_dir(MODEL_DIR.value, EXPORT_DIR.value,
                                     VERSION.value, CHECKPOINT.value,
                                     ONNX.value)
  for name, path in paths.items():
    logging.info("wrote %s: %s", name, path)
    print(f"{name}: {path}")
  return 0


def run():
  """The console script's entry point (`pixelda-export`)."""
  runner.run(main, more_errors=(ValueError,))


if __name__ == "__main__":
  run()
