"""Config flags in the evaluate, adapt, classify and refine binaries.

These tools start from a trained run's config.json; only the data flags the
user actually passed override it (`FLAGS[name].present`), and training flags
are refused rather than silently ignored.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, Iterable

from absl import app
from absl import flags

from pixelda_tf import config as config_lib
from pixelda_tf import flags as pixelda_flags

FLAGS = flags.FLAGS
# Data flag name -> its DataConfig field (they match, except --data_seed).
DATA_FLAGS = {config_lib.flag_name(config_lib.DataConfig, f.name): f.name
              for f in dataclasses.fields(config_lib.DataConfig)}


def data_overrides() -> Dict[str, Any]:
  """DataConfig field -> value for every data flag given on the command line
  (`--data_seed` sets the data seed: MNIST-M generation, folder splits)."""
  out = {}
  for flag, field in DATA_FLAGS.items():
    if FLAGS[flag].present:
      value = pixelda_flags.HOLDERS[flag].value
      # As config_from_flags: an empty path means "not set" (an empty
      # --classes stays empty: all classes).
      unset = value == "" and getattr(config_lib.DataConfig(), field) is None
      out[field] = None if unset else value
  return out


def refuse_training_flags(allowed: Iterable[str] = (),
                          data: bool = True) -> None:
  """Raises UsageError if a Config flag other than `allowed` was passed.

  Args:
    allowed: Config flags this tool reads itself (e.g. model_dir).
    data: whether the data flags override the run's config (`--seed` then
      seeds the tool's own draws, e.g. adapt's z, and is allowed too).
  """
  allowed = set(allowed) | (set(DATA_FLAGS) | {"seed"} if data else set())
  given = sorted(n for n in pixelda_flags.HOLDERS
                 if FLAGS[n].present and n not in allowed)
  if given:
    raise app.UsageError(
        f"--{', --'.join(given)} cannot change a trained model; this tool "
        "takes the run's settings from its config.json"
        + (" and only data flags (--target, --mnist_m_dir, --target_dir, "
           "...) override them" if data else ""))
