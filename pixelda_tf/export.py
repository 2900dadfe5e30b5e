"""Exports a trained run for TF Serving and `keras.models.load_model`.

  python -m pixelda_tf.export --model_dir=runs/mnistm --export_dir=exports \
      [--version=N] [--checkpoint=latest|best|PREFIX] [--onnx]

writes exports/{generator,classifier,adapt_classify}/<N>/ (SavedModels) and
exports/keras/<N>/{generator,classifier}.keras + preprocessing.json; see
`pixelda_tf.exporting` for the signatures.
"""

from __future__ import annotations

from pixelda_tf import runner

# At import, not in main: TensorFlow reads TF_ENABLE_ONEDNN_OPTS once, when
# it loads (here in main, after the flags are checked).
runner.prepare_process()

# pylint: disable=g-import-not-at-top,wrong-import-position,g-bad-import-order
from absl import app
from absl import flags
from absl import logging

from pixelda_tf import cli
from pixelda_tf import flags as pixelda_flags

EXPORT_DIR = flags.DEFINE_string("export_dir", None,
                                 "Output folder: one subfolder per servable.")
VERSION = flags.DEFINE_integer("version", None,
                               "Version folder to write (>= 1); default: one "
                               "more than the highest already in export_dir.")
CHECKPOINT = runner.checkpoint_flag()
ONNX = flags.DEFINE_bool("onnx", False,
                         "Also write export_dir/onnx/<N>/*.onnx (needs tf2onnx).")


def main(argv):
  del argv  # Flags only (`runner.run`).
  # The export is the run's as trained: no data flag applies either.
  cli.refuse_training_flags(allowed=["model_dir"], data=False)
  if not flags.FLAGS["model_dir"].present or not EXPORT_DIR.value:
    raise app.UsageError("--model_dir=DIR (a training run) and "
                         "--export_dir=DIR are required")
  # TensorFlow loads only after the flags are checked: a mistake is
  # reported at once, not after seconds of import.
  from pixelda_tf import exporting
  paths = exporting.export_model_dir(pixelda_flags.HOLDERS["model_dir"].value,
                                     EXPORT_DIR.value,
                                     VERSION.value, CHECKPOINT.value,
                                     ONNX.value)
  for name, path in paths.items():
    logging.info("wrote %s: %s", name, path)
    print(f"{name}: {path}")
  return 0


def run():
  """The console script's entry point (`pixelda-export`)."""
  runner.run(main)


if __name__ == "__main__":
  run()
