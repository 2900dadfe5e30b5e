"""Threads, devices and the distribution strategy, from RuntimeConfig."""

from __future__ import annotations

import json
import os

from absl import logging
import tensorflow as tf

import pixelda_tf
from pixelda_tf import config as config_lib


def setup(cfg: config_lib.RuntimeConfig) -> tf.distribute.Strategy:
  """Configures TensorFlow and returns the strategy to build models under.

  Must run before TensorFlow creates its devices (before any op runs), since
  thread counts and logical devices cannot change afterwards. On a machine
  without GPUs where TensorFlow runs its oneDNN kernels it also turns
  Grappler's remapper off for the process (see `_configure_onednn`); where
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

  _configure_onednn()
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


def _configure_onednn() -> None:
  if onednn_enabled():
    if not tf.config.list_physical_devices("GPU"):
      # With oneDNN, Grappler's remapper fuses D's first Conv2D + BiasAdd +
      # LeakyRelu although the LeakyRelu gradient still reads the BiasAdd
      # output; the pass then fails on every train-step graph ("remapper
      # failed: ... fanout ... LeakyReluGrad"), logs an error and leaves the
      # graph unfused. Off, the step graph is the same and nothing is logged
      # (WORKSPACE_NOTES, issue 3, round 6). GPU hosts keep the pass for
      # their own fusions.
      tf.config.optimizer.set_experimental_options({"remapping": False})
  elif pixelda_tf.ON_X86 and os.environ.get(
      "TF_ENABLE_ONEDNN_OPTS", "").lower() not in ("0", "false"):
    logging.warning(
        "TensorFlow's oneDNN CPU kernels are off in this process, so CPU "
        "steps run ~30% slower: TensorFlow was imported before pixelda_tf "
        "(import pixelda_tf first, or set TF_ENABLE_ONEDNN_OPTS=1 in the "
        "environment), or this TensorFlow build has no oneDNN.")


def onednn_enabled() -> bool:
  """Whether TensorFlow runs its oneDNN CPU kernels in this process.

  Decided once, when TensorFlow loads, by TF_ENABLE_ONEDNN_OPTS (which
  importing pixelda_tf sets to 1 unless it is already set).
  """
  try:
    # Not public API; the same switch tf.test uses to detect oneDNN.
    from tensorflow.python.util import _pywrap_util_port  # pylint: disable=g-import-not-at-top
    return bool(_pywrap_util_port.IsMklEnabled())
  except (ImportError, AttributeError):
    return False


def is_chief(strategy: tf.distribute.Strategy) -> bool:
  """True on the worker that writes checkpoints, summaries and results."""
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or not resolver.cluster_spec().as_dict():
    return True
  task_type, task_id = resolver.task_type, resolver.task_id
  return task_type in (None, "chief") or (task_type == "worker" and task_id == 0
                                          and "chief" not in
                                          resolver.cluster_spec().as_dict())
