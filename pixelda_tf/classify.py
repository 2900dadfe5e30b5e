r"""Trains a fresh classifier on an adapted dataset; reports target accuracy.

  python -m pixelda_tf.classify --train_dir=adapted/mnistm --arch=small_resnet
  # sets adapted from several checkpoints of G, trained on together:
  python -m pixelda_tf.classify --train_dir=adapted/g10k,adapted/g20k \
      --arch=task_tower --out=results/classify_g10k_g20k.json

The paper's decoupling check: G is trained once, then a classifier of another
architecture learns from its output alone (`--arch=task_tower`, T's own
architecture trained fresh, is the control). The target to test on defaults to
the one in the (first) adapted set's manifest (the run it came from); data
flags (--target, --mnist_m_dir, --target_dir, ...) override it; --classes
tests on those classes of the target only (the classifier still has an
output per class), e.g. the classes G never saw. A set written by
`pixelda_tf.adapt --identity` (the source images themselves) gives the
source-only floor of the same pipeline. Writes the result to --out (default
<train_dir>/classify_<arch>.json; required with several sets) and prints it.
"""

from pixelda_tf import runner

# At import, not in main: TensorFlow reads TF_ENABLE_ONEDNN_OPTS once, when
# it loads, and the imports below load it.
runner.prepare_process()

# pylint: disable=g-import-not-at-top,wrong-import-position,g-bad-import-order
import json
import os

from absl import app
from absl import flags

from pixelda_tf import adapting
from pixelda_tf import classifiers
from pixelda_tf import cli
from pixelda_tf import config as config_lib
from pixelda_tf import flags as pixelda_flags
from pixelda_tf import provenance
from pixelda_tf import rundir

TRAIN_DIR = flags.DEFINE_list(
    "train_dir", None, "Adapted dataset folder, or several, comma-separated "
    "(trained on together: e.g. sets adapted from several checkpoints).")
ARCH = flags.DEFINE_enum("arch", "small_resnet", list(classifiers.ARCHS),
                         "Classifier architecture (task_tower: T's own, "
                         "trained fresh, as a control).")
EPOCHS = flags.DEFINE_integer("epochs", 5, "Passes over the adapted data.")
MAX_EXAMPLES = flags.DEFINE_integer("max_examples", 0,
                                    "Train on the first N examples (0 = all).")
WITH_SOURCE = flags.DEFINE_bool(
    "with_source", False, "Also train on the labelled source images (as "
    "many as adapted examples), as PixelDA's task tower does.")
ADAPT_BN = flags.DEFINE_integer(
    "adapt_bn", 0, "After training, re-estimate batch-norm statistics on up "
    "to N unlabelled target train images (AdaBN; small_resnet; 0 = off).")
OUT = runner.out_flag()


def main(argv):
  del argv  # Flags only (`runner.run`).
  cli.refuse_training_flags(allowed=["batch_size", "learning_rate"])
  if not TRAIN_DIR.value:
    raise app.UsageError("--train_dir=PATH (from pixelda_tf.adapt) is required")
  if not all(TRAIN_DIR.value):
    raise app.UsageError(f"--train_dir={','.join(TRAIN_DIR.value)}: an "
                         "empty folder name; separate the sets by single "
                         "commas")
  if len(TRAIN_DIR.value) > 1 and not OUT.value:
    raise app.UsageError("--out=PATH is required with several --train_dir "
                         "sets (there is no one set to write the result in)")
  manifest = adapting.read_manifest(TRAIN_DIR.value[0])
  base = (config_lib.Config.from_dict(manifest["config"])
          if "config" in manifest else config_lib.Config())
  cfg = config_lib.override_data(base, cli.data_overrides())
  results = classifiers.train_and_evaluate(
      TRAIN_DIR.value, cfg, arch=ARCH.value, epochs=EPOCHS.value,
      batch_size=pixelda_flags.HOLDERS["batch_size"].value,
      learning_rate=pixelda_flags.HOLDERS["learning_rate"].value,
      seed=pixelda_flags.SEED.value, max_examples=MAX_EXAMPLES.value,
      with_source=WITH_SOURCE.value, adapt_bn=ADAPT_BN.value)
  suffix = ("_with_source" if WITH_SOURCE.value else "") + (
      "_adapt_bn" if ADAPT_BN.value else "")
  out = OUT.value or os.path.join(TRAIN_DIR.value[0],
                                  f"classify_{ARCH.value}{suffix}.json")
  rundir.write_json(out, {**results, "code": provenance.code_version()})
  print(json.dumps({k: results[k] for k in (
      "arch", "num_train", "num_source", "train_accuracy", "accuracy",
      "num_examples", "target_classes", "target_origin")}
                   | {k: results[k] for k in ("accuracy_before_adapt_bn",)
                      if k in results} | {"out": out}))
  return 0


def run():
  """The console script's entry point (`pixelda-classify`)."""
  runner.run(main)


if __name__ == "__main__":
  run()
