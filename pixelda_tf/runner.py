"""What every pixelda-tf binary shares: the process set-up TensorFlow must
see before it loads, one-line errors, and the flags several tools take.

A binary starts with

  from pixelda_tf import runner
  # At import, not in main: TensorFlow reads TF_ENABLE_ONEDNN_OPTS once,
  # when it loads, and the imports below load it.
  runner.prepare_process()

and its entry point is `runner.run(main)`. Importing the library changes no
process state; this module does so only when a binary calls it. It imports
neither TensorFlow nor the trainer's flags (--model_dir is the trainer's,
`pixelda_tf.flags`), so every binary can import it first.
"""

from __future__ import annotations

import functools
import os
from typing import Callable, List, Sequence, Tuple, Type

from absl import app
from absl import flags

import pixelda_tf
from pixelda_tf import errors
from pixelda_tf import flagfiles
from pixelda_tf import usage

ONEDNN_ENV = "TF_ENABLE_ONEDNN_OPTS"
_onednn_set_here = False


def prepare_process() -> None:
  """Turns TensorFlow's oneDNN CPU kernels on for this process.

  TensorFlow's x86 wheels carry oneDNN convolution, batch-norm and matmul
  kernels, but turn them on by default only on CPUs with AVX512_VNNI,
  AVX512_BF16, AVX_VNNI or AMX; elsewhere (e.g. AVX2-only AMD EPYC) they
  need TF_ENABLE_ONEDNN_OPTS=1. Without them the stock Eigen convolutions
  run the backward passes far slower, and the paper-size step takes 20-40%
  longer (measured with `python -m pixelda_tf.bench`). TensorFlow reads the
  variable once, when it loads, so this must run before TensorFlow is
  imported; an explicit TF_ENABLE_ONEDNN_OPTS is respected, and
  `runtime.setup` logs what was decided. Other platforms' builds are left
  to TensorFlow's own default.
  """
  global _onednn_set_here
  if pixelda_tf.ON_X86 and ONEDNN_ENV not in os.environ:
    os.environ[ONEDNN_ENV] = "1"
    _onednn_set_here = True


def onednn_set_here() -> bool:
  """Whether `prepare_process` set TF_ENABLE_ONEDNN_OPTS in this process."""
  return _onednn_set_here


@functools.lru_cache(maxsize=None)
def checkpoint_flag() -> flags.FlagHolder:
  """--checkpoint, defined once for every tool that restores a run."""
  return flags.DEFINE_string(
      "checkpoint", "latest", "latest, best (the one the run's "
      "--select_checkpoint kept) or a checkpoint prefix.")


@functools.lru_cache(maxsize=None)
def out_flag() -> flags.FlagHolder:
  """--out, for the tools that write one thing of their own."""
  return flags.DEFINE_string(
      "out", None, "What this tool writes: adapt's dataset folder or "
      "refine's run folder (must not exist; see --overwrite), or classify's "
      "result JSON.")


@functools.lru_cache(maxsize=None)
def split_flag(role: str, choices: Tuple[str, ...]) -> flags.FlagHolder:
  """--split, for the tools that read one split of a run's data.

  Args:
    role: "source" or "target": the domain whose split the tool reads.
    choices: the splits the tool can read; the first is the default.
  """
  return flags.DEFINE_enum("split", choices[0], list(choices),
                           f"The {role} split to read.")


@functools.lru_cache(maxsize=None)
def overwrite_flag() -> flags.FlagHolder:
  """--overwrite, for the tools that write a new folder at --out."""
  return flags.DEFINE_bool("overwrite", False, "Replace an existing --out.")


def run(main: Callable[[List[str]], int], *,
        more_errors: Sequence[Type[BaseException]] = (),
        positional: bool = False) -> None:
  """Parses the flags (flagfiles from any folder) and runs `main`.

  A usage error or a user error (`errors.user_errors()`, plus `more_errors`)
  prints one line, `error: <message>`, and exits 1; anything else is a bug
  and keeps its traceback.

  Args:
    main: the binary's main(argv) -> exit status.
    more_errors: exceptions this binary also reports as one line.
    positional: whether main takes arguments other than flags.
  """

  def guarded(argv: List[str]) -> int:
    if not positional and len(argv) > 1:
      return usage.error(f"unexpected arguments {argv[1:]}: every setting is "
                         "a --flag (see --helpfull)")
    caught = (app.UsageError, *errors.user_errors(), *more_errors)
    try:
      return main(argv)
    except caught as e:  # pylint: disable=catching-non-exception
      return usage.error(e)

  app.run(guarded, flags_parser=flagfiles.parse)
