r"""Refines a trained run's classifier on unlabelled target images (DIRT-T).

  python -m pixelda_tf.refine --model_dir=runs/mnistm_released_cpu_late_decay \
      --out=runs/mnistm_released_cpu_late_decay_dirtt
  python -m pixelda_tf.evaluate --model_dir=runs/mnistm_released_cpu_late_decay_dirtt
  python -m pixelda_tf.export --model_dir=runs/mnistm_released_cpu_late_decay_dirtt \
      --export_dir=exported/mnistm_dirtt

A DIRT-T phase (`pixelda_tf.refining`): T alone trains on the target's train
images, minimising its conditional entropy with KL(teacher || T), the
teacher being T at the start and its weight average at every reset; no
labels are used. Only T trains, so the default 3,000 steps take minutes on
a 2-core CPU. --out becomes a new run folder (the trained run is only
read); refine.json there holds the settings and the accuracy history,
which is also printed.

--learning_rate, --batch_size, --beta1, --ema_decay, --eval_every and --seed
set the phase's own values (defaults: `refining.RefineConfig`); data flags
(--target, --target_dir, ...) override the run's config.json; other training
flags are refused.
"""

import json

from absl import app
from absl import flags
import tensorflow as tf

from pixelda_tf import cli
from pixelda_tf import config as config_lib
from pixelda_tf import flagfiles
from pixelda_tf import flags as pixelda_flags
from pixelda_tf import pixelda
from pixelda_tf import refining
from pixelda_tf import rundir
from pixelda_tf import usage
from pixelda_tf.data import DataError

_DEFAULTS = refining.RefineConfig()
OUT = flags.DEFINE_string("out", None, "The refined run's folder (must not "
                          "exist).")
CHECKPOINT = flags.DEFINE_string("checkpoint", "latest",
                                 "latest, best or a checkpoint prefix.")
STEPS = flags.DEFINE_integer("steps", _DEFAULTS.steps, "T updates.")
ENTROPY = flags.DEFINE_float("entropy_weight", _DEFAULTS.entropy_weight,
                             "Weight of T's conditional entropy on target "
                             "images.")
TEACHER = flags.DEFINE_float("teacher_weight", _DEFAULTS.teacher_weight,
                             "Weight of KL(teacher || T) on target images.")
RESET = flags.DEFINE_integer(
    "teacher_reset_steps", _DEFAULTS.teacher_reset_steps,
    "The teacher becomes T's weight average every this many steps.")
OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace an existing --out.")
# Training flags that mean the same here, with the phase's own defaults.
_SHARED = ("learning_rate", "batch_size", "beta1", "ema_decay", "eval_every")


def refine_config() -> refining.RefineConfig:
  """The phase's settings from the flags given (RefineConfig's defaults for
  the shared training flags not given)."""
  shared = {name: pixelda_flags.HOLDERS[name].value for name in _SHARED
            if flags.FLAGS[name].present}
  return refining.RefineConfig(
      steps=STEPS.value, entropy_weight=ENTROPY.value,
      teacher_weight=TEACHER.value, teacher_reset_steps=RESET.value,
      seed=pixelda_flags.SEED.value, **shared)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  cli.refuse_training_flags(allowed=["model_dir", *_SHARED])
  if not flags.FLAGS["model_dir"].present or not OUT.value:
    raise app.UsageError("--model_dir=DIR (a trained run) and --out=PATH are "
                         "required")
  try:
    results = refining.refine_run(
        pixelda_flags.HOLDERS["model_dir"].value, OUT.value,
        cli.data_overrides(), refine_config(), which=CHECKPOINT.value,
        overwrite=OVERWRITE.value)
  except (config_lib.ConfigError, DataError, FileNotFoundError,
          FileExistsError, ValueError, rundir.CheckpointError,
          pixelda.NonFiniteLossError, tf.errors.OpError) as e:
    return usage.error(e)
  for row in refining.history_rows(results):
    print(json.dumps(row))
  print(json.dumps({k: results[k] for k in (
      "accuracy_before", "accuracy", "val_accuracy", "step", "checkpoint",
      "unscored", "wall_time_s", "out")}))
  return 0


def run():
  """The console script's entry point (`pixelda-refine`)."""
  app.run(main, flags_parser=flagfiles.parse)


if __name__ == "__main__":
  run()
