"""Flag handling shared by the evaluate, adapt and classify binaries.

These tools start from a trained run's config.json; only the data flags the
user actually passed override it (`FLAGS[name].present`), and training flags
are refused rather than silently ignored.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any, Dict, Iterable

from absl import app
from absl import flags
from absl import logging

from pixelda_tf import config as config_lib
from pixelda_tf import flags as pixelda_flags

FLAGS = flags.FLAGS
# Data flags carry their DataConfig field's name.
DATA_FLAGS = tuple(f.name for f in dataclasses.fields(config_lib.DataConfig)
                   if f.name in pixelda_flags.HOLDERS)


def data_overrides(with_seed: bool = True) -> Dict[str, Any]:
  """DataConfig field -> value for every data flag given on the command line.

  Args:
    with_seed: let a given --seed set the data seed (MNIST-M generation and
      folder order) too.
  """
  out = {}
  for name in DATA_FLAGS:
    if FLAGS[name].present:
      value = pixelda_flags.HOLDERS[name].value
      # As config_from_flags: an empty path means "not set".
      out[name] = None if value == "" else value
  if with_seed and FLAGS["seed"].present:
    out["seed"] = pixelda_flags.SEED.value
  return out


def refuse_training_flags(allowed: Iterable[str] = ()) -> None:
  """Raises UsageError if a Config flag other than a data flag was passed."""
  allowed = set(DATA_FLAGS) | set(allowed)
  given = sorted(n for n in pixelda_flags.HOLDERS
                 if FLAGS[n].present and n not in allowed)
  if given:
    raise app.UsageError(
        f"--{', --'.join(given)} cannot change a trained model; this tool "
        "takes the run's settings from its config.json and only data flags "
        "(--target, --mnist_m_dir, --target_dir, ...) override them")


def error(e: Exception) -> int:
  """One line on stderr instead of a traceback; the exit status."""
  logging.error("%s", e)
  print(f"error: {e}", file=sys.stderr)
  return 1
