"""Every random draw of a train step, by named stream.

Each draw is a pure function of (seed, stream, step, ...): a resumed run
draws the same numbers again, nothing random is checkpointed, and N replicas
see what one device would. Draws over examples are made for the GLOBAL batch
and sliced per replica, so they do not depend on the number of replicas.

Stream ids (`Stream`) tell the draws of one step apart: stream k's stateless
seed is (seed + k * 2**32, step). Their values are part of the numerics of
every stored run: changing one changes every result after it.

The other seeded draws of a run are not made per step and live with what
they draw: the initial weights (`models`, from `TrainConfig.seed`), the data
order (`data.train_dataset`'s `shuffle_seed`) and the image grids' z
(`evaluation.noise`).
"""

from __future__ import annotations

import enum
from typing import Dict

import tensorflow as tf

from pixelda_tf import config as config_lib


class Stream(enum.IntEnum):
  """The step's named random streams, by id (the seed's high 32 bits)."""
  NOISE = 0  # z ~ U[-1, 1], G's input.
  VAT_DIRECTION = 1  # The VAT probe's start direction ~ N(0, 1).
  STUDENT_SHIFT = 2  # The noisy mean teacher: T's view's shift.
  STUDENT_NOISE = 3  # The noisy mean teacher: T's view's Gaussian noise.


# Dropout and noise layers draw from their own seed words (`layer_seeds`):
# (seed * LAYER_SEED_STRIDE + layer, step * replicas + replica).
LAYER_SEED_STRIDE = 1000003


def stream_seed(seed: int, stream: Stream, step: tf.Tensor) -> tf.Tensor:
  """int64 (2,): the stateless seed of `stream` at `step` (int64 scalar)."""
  return tf.stack([tf.constant(seed, tf.int64) + (int(stream) << 32), step])


class Streams:
  """The draws of one train step, each a pure function of (seed, step).

  Call inside a replica context (`strategy.run`): each draw returns this
  replica's rows.

  Args:
    cfg: the Config (the seed, the global batch, z's size and the loss
      settings that say which draws a step needs).
    num_replicas: replicas in sync (`strategy.num_replicas_in_sync`).
  """

  def __init__(self, cfg: config_lib.Config, num_replicas: int):
    self._cfg = cfg
    self._seed = cfg.train.seed
    self._global_batch = cfg.train.batch_size
    self._replicas = num_replicas

  def noise(self, step: tf.Tensor, local_batch: tf.Tensor) -> tf.Tensor:
    """z: (local_batch, noise_dim) float32 in [-1, 1)."""
    z = tf.random.stateless_uniform(
        [self._global_batch, self._cfg.generator.noise_dim],
        seed=stream_seed(self._seed, Stream.NOISE, step),
        minval=-1.0, maxval=1.0)
    return replica_rows(z, local_batch)

  def target_draws(self, step: tf.Tensor,
                   local_shape: tf.Tensor) -> Dict[str, tf.Tensor]:
    """The draws T's refinement terms read (`pixelda.target_refinement`),
    each only when its setting is on; {} for the baselines.

    Args:
      step: int64 scalar, the steps completed before this one.
      local_shape: int32 (4,), this replica's target_images shape
        (B, S, S, 3).

    Returns:
      target_vat_noise: (B, S, S, 3) ~ N(0, 1), with `target_vat` weighted.
      target_student_shift: (B, 2) int32 in [-s, s], with
        `target_teacher_shift` = s.
      target_student_noise: (B, S, S, 3) ~ N(0, sigma^2), with
        `target_teacher_noise` = sigma.
    """
    w = self._cfg.loss
    if self._cfg.train.mode != "pixelda":
      return {}
    global_shape = tf.concat([[self._global_batch], local_shape[1:]], axis=0)
    draws = {}
    if w.target_vat:
      draws["target_vat_noise"] = tf.random.stateless_normal(
          global_shape,
          seed=stream_seed(self._seed, Stream.VAT_DIRECTION, step))
    if w.noisy_teacher:
      draws.update(self._student_view(step, global_shape))
    return {k: replica_rows(v, local_shape[0]) for k, v in draws.items()}

  def _student_view(self, step: tf.Tensor,
                    global_shape: tf.Tensor) -> Dict[str, tf.Tensor]:
    """The noisy mean teacher's draws for the global batch."""
    w = self._cfg.loss
    draws = {}
    if w.target_teacher_shift:
      draws["target_student_shift"] = tf.random.stateless_uniform(
          [self._global_batch, 2],
          stream_seed(self._seed, Stream.STUDENT_SHIFT, step),
          minval=-w.target_teacher_shift, maxval=w.target_teacher_shift + 1,
          dtype=tf.int32)
    if w.target_teacher_noise:
      draws["target_student_noise"] = (
          w.target_teacher_noise * tf.random.stateless_normal(
              global_shape,
              stream_seed(self._seed, Stream.STUDENT_NOISE, step)))
    return draws

  def layer_seeds(self, step: tf.Tensor, num_layers: int) -> tf.Tensor:
    """uint32 (num_layers, 2): each dropout/noise layer's seed this step.

    A pure function of (seed, layer, step, replica): a resumed run draws the
    same masks again, and replicas draw independent ones.
    """
    if not num_layers:
      return tf.zeros([0, 2], tf.uint32)
    replica = tf.cast(
        tf.distribute.get_replica_context().replica_id_in_sync_group, tf.int64)
    layers_ = tf.range(num_layers, dtype=tf.int64)
    first = self._seed * LAYER_SEED_STRIDE + layers_
    second = tf.fill(tf.shape(layers_), step * self._replicas + replica)
    # Keep 32 bits of each word: uint32 seeds wrap like the generator's own.
    return tf.cast(tf.stack([first, second], axis=1) % (1 << 32), tf.uint32)


def replica_rows(global_values: tf.Tensor, local_batch) -> tf.Tensor:
  """This replica's rows of a draw made for the global batch."""
  replica = tf.distribute.get_replica_context().replica_id_in_sync_group
  start = tf.cast(replica, tf.int32) * local_batch
  return global_values[start:start + local_batch]
