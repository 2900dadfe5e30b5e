"""How every binary reports a failure it can name: one line, no traceback.

Flag-free, so any binary (including export, whose --model_dir would clash
with the trainer's flags) can import it.
"""

import sys

from absl import logging


def error(e: Exception) -> int:
  """Writes `error: <e>` to stderr (and the log); returns the exit status."""
  logging.error("%s", e)
  print(f"error: {e}", file=sys.stderr)
  return 1
