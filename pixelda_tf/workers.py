"""Agreement between the workers of a run: one process, or several.

Under MultiWorkerMirroredStrategy every worker runs the same loop, and a
worker that stopped alone would leave the others waiting in their next
collective for ever. So wherever a worker may fail or decide on its own
(loading data, restoring, a signal, the time budget) all of them compare
notes in a collective and take the same branch. `for_run` gives the loop
either `MultiWorker`, which does that, or `SingleProcess`, whose every
method is the trivial answer (one process, MirroredStrategy included, always
agrees with itself), so the loop reads the same for both.

Every method of `MultiWorker` is a collective: each worker must call it at
the same point of the run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
from typing import ContextManager, Dict, List, Sequence, Union

import tensorflow as tf

from pixelda_tf import config as config_lib
from pixelda_tf import rundir
from pixelda_tf import runtime
from pixelda_tf import state as state_lib


# What the loop holds: either kind, the same methods.
Workers = Union["SingleProcess", "MultiWorker"]


def for_run(cfg: config_lib.Config,
            strategy: tf.distribute.Strategy) -> Workers:
  """`MultiWorker` under --strategy=multi_worker, else `SingleProcess`."""
  if cfg.runtime.strategy == "multi_worker":
    return MultiWorker(cfg, strategy)
  return SingleProcess()


def per_worker_flags() -> List[str]:
  """The `--flag` of every setting each worker may give its own
  (`rundir.PER_WORKER_SETTINGS`), in the config's order."""
  return [config_lib.flag_of(type(section.default), f.name)
          for section in dataclasses.fields(config_lib.Config)
          for f in dataclasses.fields(type(section.default))
          if (section.name, f.name) in rundir.PER_WORKER_SETTINGS]


class SingleProcess:
  """One process: nothing to agree on."""

  def together(self, what: str, advice: str) -> ContextManager[None]:
    """Runs the block (see `MultiWorker.together`)."""
    del what, advice
    return contextlib.nullcontext()

  def sum(self, values: Sequence[float], dtype: tf.DType) -> List[float]:
    """`values` themselves: the sum over one worker."""
    del dtype
    return list(values)

  def shared_settings(self, cfg: config_lib.Config,
                      fingerprints: Dict[str, str]) -> Dict[str, object]:
    """Nothing to compare."""
    del cfg, fingerprints
    return {}

  def require_same_settings(self, shared: Dict[str, object]) -> None:
    """Always the same."""
    del shared

  def attach(self, run: rundir.RunDir, model: state_lib.TrainingState) -> int:
    """`run.attach(model)`: the step training goes on from."""
    return run.attach(model)


class MultiWorker:
  """The workers of a MultiWorkerMirroredStrategy run, in agreement."""

  def __init__(self, cfg: config_lib.Config,
               strategy: tf.distribute.Strategy):
    self._cfg = cfg
    self._strategy = strategy

  @contextlib.contextmanager
  def together(self, what: str, advice: str):
    """Every worker leaves the block only when all of them got through it:
    one that failed raises its own error, the others a ConfigError saying
    that another worker could not `what` (then `advice`).

    A worker that stopped alone would leave the others waiting in their next
    collective (building the model, restoring, the first step), so every
    worker adds up who failed at the end of the block, a collective all of
    them reach.
    """
    try:
      yield
    except (Exception, KeyboardInterrupt):
      self.sum([1.0], tf.float64)
      raise
    failed, = self.sum([0.0], tf.float64)
    if failed:
      raise config_lib.ConfigError(
          f"another worker could not {what} (its own error names the "
          f"problem): {advice}")

  def sum(self, values: Sequence[float], dtype: tf.DType) -> List[float]:
    """`values` added up over every replica of every worker."""
    def add(x):
      return tf.distribute.get_replica_context().all_reduce("sum", x)
    out = self._strategy.run(add, args=(tf.constant(values, dtype),))
    return self._strategy.experimental_local_results(out)[0].numpy().tolist()

  def shared_settings(self, cfg: config_lib.Config,
                      fingerprints: Dict[str, str]) -> Dict[str, object]:
    """What every worker of a run must share, by name: each setting but
    `rundir.PER_WORKER_SETTINGS` (as in config.json), the precision in use
    (`auto` resolves on each machine) and each data split's content (sha256
    by split). Not a collective."""
    settings = cfg.to_dict()
    shared = {f"{sec}.{field}": settings[sec][field] for sec in settings
              for field in settings[sec]
              if (sec, field) not in rundir.PER_WORKER_SETTINGS}
    shared["precision in use"] = (
        runtime.resolve_precision(cfg.runtime)[0]
        if cfg.runtime.precision == "auto" else cfg.runtime.precision)
    shared.update({f"{split} data (sha256)": fingerprint
                   for split, fingerprint in fingerprints.items()})
    return shared

  def require_same_settings(self, shared: Dict[str, object]) -> None:
    """Raises ConfigError on every worker when any two disagree on `shared`
    (`shared_settings`)."""
    differ = self._disagreements(shared)
    if differ:
      here = "; ".join(f"{n} = {shared[n]!r}" for n in differ[:6])
      raise config_lib.ConfigError(
          f"the workers disagree on {', '.join(differ)} (this worker: {here}):"
          " start every worker with the same flags and the same data files "
          f"(only {', '.join(per_worker_flags())} may differ)")

  def attach(self, run: rundir.RunDir, model: state_lib.TrainingState) -> int:
    """`run.attach`: every worker restores, then all of them go on only if
    every worker restored the same step and the same weights.

    Each worker resolves the newest checkpoint itself, so they can disagree:
    when model_dir is not one folder that all of them read (seen on resume),
    when the `--init_from` run saved a new checkpoint while they restored,
    or when their `--init_from` copies differ. So after `together` the
    workers compare the step and a digest of the trained weights: every
    worker reaches the same verdict, and all of them stop together.
    """
    t = self._cfg.train
    with self.together("restore its checkpoint",
                       "every worker must read the same --model_dir and "
                       "--init_from (a shared or gs:// folder)"):
      step = run.attach(model)
      restored = {"step": step, "weights": model.trained_weights_sha256()}
    if self._disagreements(restored):
      raise config_lib.ConfigError(
          f"the workers restored different checkpoints (this worker: step "
          f"{step}, weights sha256 {restored['weights'][:12]}): every "
          "worker must read the same --model_dir (a shared or gs:// folder, "
          "not one per machine)"
          + (f", and the --init_from={t.init_from} run must not save while "
             "they restore: name one checkpoint "
             "(--init_from=RUN/checkpoints/ckpt-N) or wait until that run "
             "ends" if t.init_from else ""))
    return step

  def _disagreements(self, values: Dict[str, object]) -> List[str]:
    """The names in `values` whose value differs between workers; every
    worker gets the same answer.

    Two all-reduces: first how many values each worker compares (workers of
    other pixelda_tf versions compare other sets), then, for each value, two
    20-bit digests d of it and their squares, summed over the n replicas.
    The digests agree exactly when n * sum(d^2) == sum(d)^2; the float64
    sums of these integers are exact below 8,192 replicas.
    """
    def agree(n, total, squares):
      return n * int(squares) == int(total) ** 2

    k = float(len(values))
    n, total, squares = self.sum([1.0, k, k * k], tf.float64)
    if not agree(n, total, squares):
      raise config_lib.ConfigError(
          f"the workers compare different sets of settings (this worker: "
          f"{len(values)}): install the same pixelda_tf version on every "
          "machine")
    names = sorted(values)
    digests = []
    for name in names:
      text = json.dumps(values[name], sort_keys=True, default=str)
      hexdigest = hashlib.sha256(text.encode()).hexdigest()
      digests += [float(int(hexdigest[:5], 16)),
                  float(int(hexdigest[5:10], 16))]
    sums = self.sum(digests + [d * d for d in digests], tf.float64)
    half = len(digests)
    return [name for i, name in enumerate(names)
            if not all(agree(n, sums[j], sums[half + j])
                       for j in (2 * i, 2 * i + 1))]
