"""Threads, devices, the distribution strategy and the arithmetic precision,
from RuntimeConfig."""

from __future__ import annotations

import json
import os
import platform
from typing import FrozenSet, Optional, Sequence, Tuple

from absl import logging
import tensorflow as tf

import pixelda_tf
from pixelda_tf import config as config_lib
from pixelda_tf import runner


def setup(cfg: config_lib.RuntimeConfig) -> tf.distribute.Strategy:
  """Configures TensorFlow and returns the strategy to build models under.

  Must run before TensorFlow creates its devices (before any op runs), since
  thread counts and logical devices cannot change afterwards. On a machine
  without GPUs where TensorFlow runs its oneDNN kernels it also turns
  Grappler's remapper off for the process (see `configure_onednn`); where
  oneDNN is off on x86 it logs a warning.

  Raises:
    config_lib.ConfigError: the runtime is already initialised with other
      settings, or TF_CONFIG is missing for `multi_worker`.
  """
  try:
    if cfg.intra_op_threads:
      tf.config.threading.set_intra_op_parallelism_threads(cfg.intra_op_threads)
    if cfg.inter_op_threads:
      tf.config.threading.set_inter_op_parallelism_threads(cfg.inter_op_threads)
    if cfg.num_cpu_devices > 1:
      cpu = tf.config.list_physical_devices("CPU")[0]
      tf.config.set_logical_device_configuration(
          cpu, [tf.config.LogicalDeviceConfiguration()] * cfg.num_cpu_devices)
  except RuntimeError as e:
    raise config_lib.ConfigError(
        "thread or device settings must be applied before TensorFlow starts; "
        f"call runtime.setup() first in the process ({e})") from e

  configure_onednn()
  if cfg.strategy == "default":
    return tf.distribute.get_strategy()
  if cfg.strategy == "mirrored":
    gpus = tf.config.list_logical_devices("GPU")
    devices = [d.name for d in gpus] or [
        d.name for d in tf.config.list_logical_devices("CPU")]
    logging.info("MirroredStrategy over %s", devices)
    return tf.distribute.MirroredStrategy(devices)
  # multi_worker
  if "TF_CONFIG" not in os.environ:
    raise config_lib.ConfigError(
        "--strategy=multi_worker needs the TF_CONFIG environment variable "
        "(cluster and task) on every worker")
  try:
    json.loads(os.environ["TF_CONFIG"])
  except json.JSONDecodeError as e:
    raise config_lib.ConfigError(f"TF_CONFIG is not valid JSON: {e}") from e
  return tf.distribute.MultiWorkerMirroredStrategy()


def configure_onednn() -> None:
  """Logs whether oneDNN is on and, on a machine without GPUs where it is,
  turns Grappler's remapper off for the process (see below); warns where it
  is off on x86. Part of `setup`; tests that skip `setup` call it alone."""
  if onednn_enabled():
    logging.info("oneDNN CPU kernels: on (TF_ENABLE_ONEDNN_OPTS=1%s)",
                 ", set by the binary" if runner.onednn_set_here() else "")
    if not tf.config.list_physical_devices("GPU"):
      # With oneDNN, Grappler's remapper fuses D's first Conv2D + BiasAdd +
      # LeakyRelu although the LeakyRelu gradient still reads the BiasAdd
      # output; the pass then fails on every train-step graph ("remapper
      # failed: ... fanout ... LeakyReluGrad"), logs an error and leaves the
      # graph unfused. Off, the step graph is the same and nothing is logged
      # GPU hosts keep the pass for their own fusions.
      tf.config.optimizer.set_experimental_options({"remapping": False})
      logging.info("Grappler's remapper: off (with oneDNN it fails on D's "
                   "conv + bias + leaky ReLU and logs an error every trace)")
  elif pixelda_tf.ON_X86 and os.environ.get(
      "TF_ENABLE_ONEDNN_OPTS", "").lower() not in ("0", "false"):
    logging.warning(
        "TensorFlow's oneDNN CPU kernels are off in this process, so CPU "
        "steps run ~30% slower: TensorFlow was loaded before the program "
        "set TF_ENABLE_ONEDNN_OPTS=1 (call "
        "pixelda_tf.runner.prepare_process() before importing TensorFlow, "
        "or set it in the environment), or this TensorFlow build has no "
        "oneDNN.")


def onednn_enabled() -> bool:
  """Whether TensorFlow runs its oneDNN CPU kernels in this process.

  Decided once, when TensorFlow loads, by TF_ENABLE_ONEDNN_OPTS (which
  the binaries set to 1 unless it is already set:
  `runner.prepare_process`).
  """
  try:
    # Not public API; the same switch tf.test uses to detect oneDNN.
    from tensorflow.python.util import _pywrap_util_port  # pylint: disable=g-import-not-at-top
    return bool(_pywrap_util_port.IsMklEnabled())
  except (ImportError, AttributeError):
    return False


# /proc/cpuinfo flags of x86 CPUs that run bfloat16 arithmetic natively
# (AVX512_BF16: Cooper Lake, Sapphire Rapids, AMD Zen 4+; AMX_BF16: Sapphire
# Rapids and later). Without them bfloat16 is emulated and mixed precision ran
# 2.6-8.8x slower than float32 on an AVX2-only CPU.
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
# GPUs with bfloat16 tensor cores: NVIDIA Ampere (compute capability 8.0) on.
GPU_BF16_CAPABILITY = (8, 0)
# The released-MNIST-M preset for each kind of machine `auto` tells apart
# (the README's presets table says the same). On CPUs with bfloat16 the
# small-D preset's hour ended above the official D's (benchmarks/README.md,
# "On a CPU with bfloat16").
SUITED_PRESETS = {
    "gpu": "configs/mnistm.flags",
    "cpu mixed_bfloat16": "configs/mnistm_released_cpu_small_d.flags",
    "cpu float32": "configs/mnistm_released_cpu_small_d.flags",
}


def resolve_precision(cfg: config_lib.RuntimeConfig) -> Tuple[str, str]:
  """The Keras dtype policy the networks train with, and why, in one line.

  `float32`, `mixed_bfloat16` and `mixed_float16` are taken as given; `auto`
  is decided by `choose_auto_precision` from this machine's GPUs, CPU flags
  and oneDNN switch. Call it after `setup` (it lists the devices).

  Returns:
    (policy name, reason): the name is `float32`, `mixed_bfloat16` or
    `mixed_float16`.
  """
  gpus = tf.config.list_physical_devices("GPU")
  if cfg.precision != "auto":
    if cfg.precision == "mixed_bfloat16" and not gpus:
      auto, why = choose_auto_precision(
          cpu_flags=read_cpu_flags(), on_x86=pixelda_tf.ON_X86,
          onednn=onednn_enabled())
      if auto != "mixed_bfloat16":
        # Emulated bfloat16 ran 2.6-8.8x slower than float32 on an AVX2 CPU.
        logging.warning("--precision=mixed_bfloat16 on a CPU that does not "
                        "run bfloat16 natively (%s): expect a much slower "
                        "step; --precision=auto picks float32 here", why)
    return cfg.precision, f"set by --precision={cfg.precision}"
  capabilities = []
  for gpu in gpus:
    details = tf.config.experimental.get_device_details(gpu)
    capabilities.append((details.get("device_name", gpu.name),
                         details.get("compute_capability")))
  return choose_auto_precision(
      cpu_flags=read_cpu_flags(), on_x86=pixelda_tf.ON_X86,
      onednn=onednn_enabled(), gpus=capabilities)


def choose_auto_precision(
    cpu_flags: FrozenSet[str], on_x86: bool, onednn: bool,
    gpus: Sequence[Tuple[str, Optional[Tuple[int, int]]]] = (),
) -> Tuple[str, str]:
  """`--precision=auto`'s rule, as a pure function of the machine.

  See `_auto_rule`. The reason also names the released-MNIST-M preset made
  for the kind of machine found (`SUITED_PRESETS`).

  Returns:
    (policy name, reason), the reason one line starting with `auto:`.
  """
  policy, why = _auto_rule(cpu_flags, on_x86, onednn, gpus)
  kind = "gpu" if gpus else f"cpu {policy}"
  return policy, f"{why}; the preset for this machine: {SUITED_PRESETS[kind]}"


def _auto_rule(
    cpu_flags: FrozenSet[str], on_x86: bool, onednn: bool,
    gpus: Sequence[Tuple[str, Optional[Tuple[int, int]]]] = (),
) -> Tuple[str, str]:
  """`choose_auto_precision` without the preset it names.

  With GPUs the step runs on them: bfloat16 if every GPU has compute
  capability >= 8.0. Otherwise bfloat16 only on an x86 CPU with native BF16
  (`CPU_BF16_FLAGS`) whose oneDNN kernels are on (TensorFlow's other CPU
  kernels emulate bfloat16). float32 everywhere else.

  Args:
    cpu_flags: the CPU's /proc/cpuinfo flags (`read_cpu_flags()`).
    on_x86: whether the CPU is x86-64.
    onednn: whether TensorFlow runs its oneDNN CPU kernels.
    gpus: (name, compute capability or None) of every GPU.

  Returns:
    (policy name, reason), the reason one line starting with `auto:`.
  """
  if gpus:
    slow = [f"{name} ({'.'.join(map(str, cc)) if cc else 'unknown'})"
            for name, cc in gpus
            if not cc or tuple(cc) < GPU_BF16_CAPABILITY]
    if slow:
      return "float32", ("auto: GPU compute capability below 8.0 has no "
                         f"native bfloat16: {', '.join(slow)}")
    return "mixed_bfloat16", ("auto: every GPU has compute capability >= 8.0 "
                              "(native bfloat16)")
  if not on_x86:
    return "float32", (f"auto: no GPU, and native BF16 is only detected on "
                       f"x86 CPUs (this is {platform.machine()})")
  found = [f for f in CPU_BF16_FLAGS if f in cpu_flags]
  if not found:
    return "float32", ("auto: the CPU has no native BF16 (neither "
                       f"{' nor '.join(CPU_BF16_FLAGS)} in /proc/cpuinfo)")
  if not onednn:
    return "float32", (f"auto: the CPU has {', '.join(found)} but "
                       "TensorFlow's oneDNN kernels are off, and its other "
                       "CPU kernels emulate bfloat16")
  return "mixed_bfloat16", (f"auto: the CPU has native BF16 "
                            f"({', '.join(found)}) and oneDNN is on")


def read_cpu_flags(path: str = "/proc/cpuinfo") -> FrozenSet[str]:
  """The CPU feature flags Linux reports (empty where it reports none)."""
  try:
    with open(path) as f:
      for line in f:
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
          return frozenset(value.split())
  except OSError:
    pass
  return frozenset()


def is_chief(strategy: tf.distribute.Strategy) -> bool:
  """True on the worker that writes checkpoints, summaries and results."""
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or not resolver.cluster_spec().as_dict():
    return True
  task_type, task_id = resolver.task_type, resolver.task_id
  return task_type in (None, "chief") or (task_type == "worker" and task_id == 0
                                          and "chief" not in
                                          resolver.cluster_spec().as_dict())
