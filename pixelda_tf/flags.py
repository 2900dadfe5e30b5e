"""Command-line flags of the pixelda-tf binaries, parsed once into a Config.

Every `Config` field has one flag, defined here from the field's own facts
(`config.opt`: name, help; type and default from the field itself, so they
can never disagree); `--seed` is the training seed, `--data_seed` the one
that makes the data sets themselves. Binaries import this module, call
`app.run`, then `config_from_flags()`; the library itself never reads flags.

  python -m pixelda_tf.flags > docs/options.md

writes the options reference (`options_markdown`).
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any, Dict, List, Tuple

from absl import flags

from pixelda_tf import config as config_lib

FLAGS = flags.FLAGS
_DEFAULTS = config_lib.Config()


def _table() -> Dict[str, Tuple[str, str, str]]:
  """flag name -> (config section, field, help), in section and field order."""
  table = {}
  for section in dataclasses.fields(_DEFAULTS):
    cls = type(section.default)
    for f in dataclasses.fields(cls):
      table[config_lib.flag_name(cls, f.name)] = (
          section.name, f.name, f.metadata["help"])
  return table


_FLAGS: Dict[str, Tuple[str, str, str]] = _table()


def _field(section: str, field: str) -> dataclasses.Field:
  cls = type(getattr(_DEFAULTS, section))
  return {f.name: f for f in dataclasses.fields(cls)}[field]


def _default(section: str, field: str) -> Any:
  return getattr(getattr(_DEFAULTS, section), field)


def _define(name: str, section: str, field: str,
            help_: str) -> flags.FlagHolder:
  default = _default(section, field)
  kind = _field(section, field).type
  if kind == "bool":
    return flags.DEFINE_bool(name, default, help_)
  if kind == "int":
    return flags.DEFINE_integer(name, default, help_)
  if kind == "float":
    return flags.DEFINE_float(name, default, help_)
  return flags.DEFINE_string(name, default, help_)


HOLDERS: Dict[str, flags.FlagHolder] = {
    name: _define(name, *spec) for name, spec in _FLAGS.items()}
SEED = HOLDERS["seed"]


def config_from_flags() -> config_lib.Config:
  """Builds and validates the Config from the parsed flags."""
  sections: Dict[str, Dict[str, Any]] = {}
  for name, (section, field, _) in _FLAGS.items():
    value = HOLDERS[name].value
    if value == "" and _default(section, field) is None:
      value = None  # An empty path means "not set".
    sections.setdefault(section, {})[field] = value
  return config_lib.validate(config_lib.Config(
      **{name: type(getattr(_DEFAULTS, name))(**values)
         for name, values in sections.items()}))


def _type_name(section: str, field: str) -> str:
  kind = _field(section, field).type
  return {"bool": "bool", "int": "int", "float": "float"}.get(kind, "string")


def _default_text(section: str, field: str) -> str:
  value = _default(section, field)
  if value is None:
    return "(unset)"
  if isinstance(value, bool):
    return str(value).lower()
  return repr(value) if isinstance(value, str) else str(value)


def options_markdown() -> str:
  """docs/options.md: every flag by config section, with its type, default,
  help and whether a resumed run (or one worker of many) may change it."""
  lines: List[str] = [
      "# Options",
      "",
      "Every setting of `python -m pixelda_tf.train` (and the data flags the",
      "other tools take), by config section. Generated from the fields of",
      "`pixelda_tf/config.py` by `python -m pixelda_tf.flags > "
      "docs/options.md`;",
      "a test fails when this file is out of date.",
      "",
      "*Resume*: a rerun of the same `--model_dir` may change it (anything",
      "else must match the run's config.json). *Per worker*: each worker of a",
      "multi-worker run may set its own. Booleans also take `--noNAME`.",
  ]
  for section in dataclasses.fields(_DEFAULTS):
    cls = type(section.default)
    title = cls.__doc__.strip().splitlines()[0]
    lines += ["", f"## {section.name}: {title}", "",
              "| flag | type | default | resume | per worker | help |",
              "| --- | --- | --- | --- | --- | --- |"]
    for f in dataclasses.fields(cls):
      name = config_lib.flag_name(cls, f.name)
      help_ = f.metadata["help"].replace("|", "\\|")
      lines.append(
          f"| `--{name}` | {_type_name(section.name, f.name)} | "
          f"`{_default_text(section.name, f.name)}` | "
          f"{'yes' if f.metadata['resumable'] else ''} | "
          f"{'yes' if f.metadata['per_worker'] else ''} | {help_} |")
  return "\n".join(lines) + "\n"


if __name__ == "__main__":
  sys.stdout.write(options_markdown())
