"""Threads, devices and the distribution strategy, from RuntimeConfig."""

from __future__ import annotations

import json
import os

from absl import logging
import tensorflow as tf

from pixelda_tf import config as config_lib


def setup(cfg: config_lib.RuntimeConfig) -> tf.distribute.Strategy:
  """Configures TensorFlow and returns the strategy to build models under.

  Must run before TensorFlow creates its devices (before any op runs), since
  thread counts and logical devices cannot change afterwards.

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


def is_chief(strategy: tf.distribute.Strategy) -> bool:
  """True on the worker that writes checkpoints, summaries and results."""
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or not resolver.cluster_spec().as_dict():
    return True
  task_type, task_id = resolver.task_type, resolver.task_id
  return task_type in (None, "chief") or (task_type == "worker" and task_id == 0
                                          and "chief" not in
                                          resolver.cluster_spec().as_dict())
