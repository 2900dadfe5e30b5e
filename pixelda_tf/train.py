r"""Trains PixelDA (or a baseline) and reports target test accuracy.

  python -m pixelda_tf.train --flagfile=configs/mnistm_cpu.flags

Rerunning the same command resumes from the last checkpoint in --model_dir.
SIGINT (Ctrl-C) or SIGTERM ends the step in flight, saves a checkpoint and
results.json (marked interrupted) and exits 130 / 143.
Results land in <model_dir>/results.json; TensorBoard logs in <model_dir>/train.
"""

from pixelda_tf import runner

# At import, not in main: TensorFlow reads TF_ENABLE_ONEDNN_OPTS once, when
# it loads (here in main, after the flags are checked).
runner.prepare_process()

# pylint: disable=g-import-not-at-top,wrong-import-position,g-bad-import-order
import json
import os
import signal
import sys

from absl import logging

from pixelda_tf import flags as pixelda_flags


def main(argv):
  del argv  # Flags only (`runner.run`).
  cfg = pixelda_flags.config_from_flags()
  # TensorFlow loads only after the flags are checked: a mistake is
  # reported at once, not after seconds of import.
  from pixelda_tf import training
  try:
    results = training.train(cfg)
  except training.Interrupted as e:
    # Printed only: absl's log handler would write it to stderr a second time.
    print(f"interrupted: {e}", file=sys.stderr)
    exit_at_once(128 + e.signum)
  except KeyboardInterrupt:
    # Ctrl-C outside the steps (loading data, tracing, the final
    # evaluation): checkpoints already written stay as they are.
    print("interrupted outside the training steps: checkpoints already "
          "written are kept; rerun the same command to resume",
          file=sys.stderr)
    exit_at_once(128 + signal.SIGINT)
  line = {"target_test_accuracy": results["final"]["accuracy"],
          "steps": results["steps"], "stopped_by": results["stopped_by"],
          "minutes": results["wall_time_s"] / 60,
          "weights_sha256": results["weights_sha256"]}
  if "reason" in results["final"]:
    line["reason"] = results["final"]["reason"]
  if "best" in results:
    line["best_val_checkpoint_test_accuracy"] = results["best"]["accuracy"]
    line["best_step"] = results["best"]["step"]
    line["best_by"] = results["best"]["selection"]
  print(json.dumps(line))
  return 0


def exit_at_once(status: int) -> None:
  """Ends an interrupted run's process now, without Python's teardown.

  Everything is written by then (the checkpoint and results.json, or
  nothing more after a Ctrl-C outside the steps; the lock released), and a
  preempted job has seconds. The teardown can take far
  longer: destroying the input pipeline's iterator waits for tf.data's
  autotuning thread, which can sleep out its whole period (up to a minute)
  when it misses the wake-up; under load one exit came 45 s after the last
  write (issue 47, item 16).
  """
  logging.flush()
  sys.stdout.flush()
  sys.stderr.flush()
  os._exit(status)  # pylint: disable=protected-access


def run():
  """The console script's entry point (`pixelda-train`)."""
  runner.run(main)


if __name__ == "__main__":
  run()
