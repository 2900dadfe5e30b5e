"""The errors a user can fix from their message, in one place.

A binary reports any of them as one line (`error: <message>`, exit 1) and
everything else with a traceback (a bug). `UserError` is the base for new
errors; the older ones below live beside the code that raises them and are
listed in `user_errors()` instead (flag-free and TensorFlow-free at import,
so every binary can import this module before TensorFlow loads).
"""

from __future__ import annotations

from typing import Tuple, Type


class UserError(Exception):
  """A failure the message explains, with the fix: no traceback needed."""


class ConfigError(UserError, ValueError):
  """A configuration value is invalid; the message names the flag and the
  fix."""


def user_errors() -> Tuple[Type[BaseException], ...]:
  """Every exception a binary reports as one line.

  Imported here, when a binary runs, not at import: their modules load
  TensorFlow, which must load after the binary has set up the process.
  """
  # pylint: disable=g-import-not-at-top
  from pixelda_tf import exporting
  from pixelda_tf import pixelda
  from pixelda_tf import rundir
  from pixelda_tf import runlock
  from pixelda_tf.data import errors as data_errors
  return (UserError, data_errors.DataError, rundir.CheckpointError,
          runlock.LockedError, pixelda.NonFiniteLossError,
          exporting.ExportError, FileNotFoundError, FileExistsError)
