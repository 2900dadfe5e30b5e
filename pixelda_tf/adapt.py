r"""Writes an adapted, labelled dataset with a trained generator.

  python -m pixelda_tf.adapt --model_dir=runs/mnistm --out=adapted/mnistm \
      --samples_per_image=3 --format=tfrecord

Each source image of --split is adapted with K = --samples_per_image z draws
(z of image i, draw k: `evaluation.noise(--seed, i, K, noise_dim)[k]`) and
labelled with its source label. --out becomes a folder with manifest.json and
either adapted.tfrecord or one PNG subfolder per class (readable by
keras.utils.image_dataset_from_directory and --source=folder). Data flags
(--source, --mnist_dir, ...) override the run's config.json; --classes too,
so a G trained on some classes can adapt others (manifest.json lists those
it never saw, `unseen_classes`). --identity writes the source images
themselves through the same files: the source-only floor for classify.
"""

from pixelda_tf import runner

# At import, not in main: TensorFlow reads TF_ENABLE_ONEDNN_OPTS once, when
# it loads, and the imports below load it.
runner.prepare_process()

# pylint: disable=g-import-not-at-top,wrong-import-position,g-bad-import-order
import json

from absl import app
from absl import flags

from pixelda_tf import adapting
from pixelda_tf import cli
from pixelda_tf import flags as pixelda_flags

OUT = runner.out_flag()
SAMPLES = flags.DEFINE_integer("samples_per_image", 1,
                               "z draws (adapted images) per source image.")
FORMAT = flags.DEFINE_enum("format", "tfrecord", list(adapting.FORMATS),
                           "tfrecord or png (one subfolder per class).")
SPLIT = runner.split_flag("source", ("train", "test"))
MAX_IMAGES = flags.DEFINE_integer("max_images", 0,
                                  "Adapt only the first N images (0 = all).")
CHECKPOINT = runner.checkpoint_flag()
OVERWRITE = runner.overwrite_flag()
RAW_WEIGHTS = flags.DEFINE_bool(
    "raw_weights", False, "For a run trained with --ema_decay: adapt with "
    "G's raw weights, not the averaged ones its evaluations scored.")
IDENTITY = flags.DEFINE_bool(
    "identity", False, "Write the source images unchanged (no G, no "
    "checkpoint read): a classifier trained on them by pixelda_tf.classify "
    "is the source-only floor of the same pipeline.")


def main(argv):
  del argv  # Flags only (`runner.run`).
  cli.refuse_training_flags(allowed=["model_dir"])
  if not flags.FLAGS["model_dir"].present or not OUT.value:
    raise app.UsageError("--model_dir=DIR and --out=PATH are required")
  manifest = adapting.adapt_dataset(
      pixelda_flags.HOLDERS["model_dir"].value, OUT.value,
      # --seed seeds z here; the data seed stays the run's.
      cli.data_overrides(),
      samples_per_image=SAMPLES.value, fmt=FORMAT.value, split=SPLIT.value,
      max_images=MAX_IMAGES.value, seed=pixelda_flags.SEED.value,
      which=CHECKPOINT.value, overwrite=OVERWRITE.value,
      averaged=not RAW_WEIGHTS.value, identity=IDENTITY.value)
  print(json.dumps({k: manifest[k] for k in (
      "format", "num_examples", "num_images", "samples_per_image",
      "examples_per_class", "checkpoint", "weights", "step",
      "unseen_classes", "wall_time_s")}
                   | {"out": OUT.value}))
  return 0


def run():
  """The console script's entry point (`pixelda-adapt`)."""
  runner.run(main)


if __name__ == "__main__":
  run()
