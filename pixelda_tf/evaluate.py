r"""Evaluates a trained run's classifier on a labelled target split.

  python -m pixelda_tf.evaluate --model_dir=runs/mnistm
  python -m pixelda_tf.evaluate --model_dir=runs/mnistm --checkpoint=best \
      --target=folder --target_dir=my_digits     # one subfolder per class

Data flags (--target, --mnist_m_dir, --target_dir, --data_dir, ...) override
the run's config.json; everything else comes from the run. Prints the metrics
as JSON and writes into --out_dir (default <model_dir>/eval), with PREFIX =
<target>_<split>_<checkpoint>: PREFIX.json, PREFIX_confusion.png and
PREFIX_samples.png (source | adapted for 3 z | target).

With nothing labelled in the split (an unlabelled target), it says so on
stderr, writes the JSON (accuracy null, with the reason) and the sample grid,
and exits 0.
"""

from pixelda_tf import runner

# At import, not in main: TensorFlow reads TF_ENABLE_ONEDNN_OPTS once, when
# it loads (here in main, after the flags are checked).
runner.prepare_process()

# pylint: disable=g-import-not-at-top,wrong-import-position,g-bad-import-order
import json
import sys

from absl import app
from absl import flags

from pixelda_tf import cli
from pixelda_tf import flags as pixelda_flags

CHECKPOINT = runner.checkpoint_flag()
SPLIT = runner.split_flag("target", ("test", "val"))
OUT_DIR = flags.DEFINE_string("out_dir", None,
                              "Where the files go (default <model_dir>/eval).")


def main(argv):
  del argv  # Flags only (`runner.run`).
  cli.refuse_training_flags(allowed=["model_dir"])
  if not flags.FLAGS["model_dir"].present:
    raise app.UsageError("--model_dir=DIR (a training run) is required")
  # TensorFlow loads only after the flags are checked: a mistake is
  # reported at once, not after seconds of import.
  from pixelda_tf import evaluation
  results = evaluation.evaluate_model_dir(
      pixelda_flags.HOLDERS["model_dir"].value, cli.data_overrides(),
      which=CHECKPOINT.value, split=SPLIT.value, out_dir=OUT_DIR.value)
  shown = {k: results[k] for k in (
      "accuracy", "per_class_accuracy", "confusion_matrix", "num_examples",
      "reason", "data_origin", "checkpoint", "step", "files") if k in results}
  if results["accuracy"] is None:
    print(f"nothing to score: {results['reason']}", file=sys.stderr)
  print(json.dumps(shown))
  return 0


def run():
  """The console script's entry point (`pixelda-evaluate`)."""
  runner.run(main)


if __name__ == "__main__":
  run()
