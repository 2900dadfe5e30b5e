"""How every binary reports a failure it can name: one line, no traceback
(`pixelda_tf.runner.run` calls it for every user error).

Flag-free, so any binary (including export, whose --model_dir would clash
with the trainer's flags) and benchmark script can import it.
"""

import sys


def error(e: Exception) -> int:
  """Writes `error: <e>` to stderr, once (absl's log handler writes to
  stderr too, so logging it as well printed it twice); returns the exit
  status."""
  print(f"error: {e}", file=sys.stderr, flush=True)
  return 1
