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

from pixelda_tf import runner

# At import, not in main: TensorFlow reads TF_ENABLE_ONEDNN_OPTS once, when
# it loads, and the imports below load it.
runner.prepare_process()

# pylint: disable=g-import-not-at-top,wrong-import-position,g-bad-import-order
import json

from absl import app
from absl import flags

from pixelda_tf import cli
from pixelda_tf import flags as pixelda_flags
from pixelda_tf import refining

_DEFAULTS = refining.RefineConfig()
OUT = runner.out_flag()
CHECKPOINT = runner.checkpoint_flag()
STEPS = flags.DEFINE_integer("steps", _DEFAULTS.steps, "T updates.")
ENTROPY = flags.DEFINE_float("entropy_weight", _DEFAULTS.entropy_weight,
                             "Weight of T's conditional entropy on target "
                             "images.")
TEACHER = flags.DEFINE_float("teacher_weight", _DEFAULTS.teacher_weight,
                             "Weight of KL(teacher || T) on target images.")
RESET = flags.DEFINE_integer(
    "teacher_reset_steps", _DEFAULTS.teacher_reset_steps,
    "The teacher becomes T's weight average every this many steps.")
OVERWRITE = runner.overwrite_flag()
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
  del argv  # Flags only (`runner.run`).
  cli.refuse_training_flags(allowed=["model_dir", *_SHARED])
  if not flags.FLAGS["model_dir"].present or not OUT.value:
    raise app.UsageError("--model_dir=DIR (a trained run) and --out=PATH are "
                         "required")
  results = refining.refine_run(
      pixelda_flags.HOLDERS["model_dir"].value, OUT.value,
      cli.data_overrides(), refine_config(), which=CHECKPOINT.value,
      overwrite=OVERWRITE.value)
  for row in refining.history_rows(results):
    print(json.dumps(row))
  print(json.dumps({k: results[k] for k in (
      "accuracy_before", "accuracy", "val_accuracy", "step", "checkpoint",
      "unscored", "wall_time_s", "out")}))
  return 0


def run():
  """The console script's entry point (`pixelda-refine`)."""
  runner.run(main)


if __name__ == "__main__":
  run()
