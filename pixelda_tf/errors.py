"""The base of every error a user can fix from its message.

A binary reports a `UserError` as one line (`error: <message>`, exit 1) and
anything else with a traceback (a bug). Each subclass lives beside the code
that raises it and keeps the builtin base its callers catch (`ConfigError`
and `DataError` are ValueErrors, `ExportError` a RuntimeError, ...). This
module imports nothing heavy (no flags, no TensorFlow): every binary imports
it before TensorFlow loads, and the subclasses' modules import it.
"""

from __future__ import annotations

from typing import Tuple, Type


class UserError(Exception):
  """A failure the message explains, with the fix: no traceback needed."""


class ConfigError(UserError, ValueError):
  """A configuration value is invalid; the message names the flag and the
  fix."""


def user_errors() -> Tuple[Type[BaseException], ...]:
  """Every exception a binary reports as one line: `UserError`, and the
  builtins the library raises with a message naming the path and the fix (a
  missing run, checkpoint or --init_from: FileNotFoundError; an --out that
  exists: FileExistsError)."""
  return (UserError, FileNotFoundError, FileExistsError)
