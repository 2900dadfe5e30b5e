"""tf.data pipelines over in-memory uint8 arrays.

Order without iterator checkpoints: the example stream is epoch 0's
permutation, then epoch 1's, ... with epoch e's permutation
`stateless_shuffle(range(N), seed=[stream_seed, e])`. Batch k of that stream
is a pure function of (seed, k), so resuming at step s computes where batch s
starts (epoch and offset) and begins there, in O(1). Source and target have
their own N and so their own epochs; batches may straddle an epoch boundary.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import tensorflow as tf

from pixelda_tf.config import DataConfig
from pixelda_tf.data import domains

# Large enough to never run out, small enough for int64 arithmetic.
_EPOCHS = 1 << 40


def to_model_range(images, image_size: Optional[int] = None) -> tf.Tensor:
  """uint8 images (..., H, W, C), C in {1, 3} -> float32 (..., S, S, 3) in [-1, 1].

  Resized (bilinear) only if `image_size` is given and differs from H, W;
  grey is repeated to three channels.
  """
  x = tf.cast(images, tf.float32)
  if image_size is not None and tuple(x.shape[-3:-1]) != (image_size,) * 2:
    x = tf.clip_by_value(tf.image.resize(x, (image_size, image_size),
                                         antialias=True), 0.0, 255.0)
  if x.shape[-1] == 1:
    x = tf.repeat(x, 3, axis=-1)
  return x / 127.5 - 1.0


def index_batches(n: int, batch_size: int, seed: int, stream: int,
                  start_step: int = 0) -> tf.data.Dataset:
  """Infinite int64 (batch_size,) batches of indices into range(n).

  Args:
    n: number of examples.
    batch_size: indices per batch.
    seed: data seed; `stream` separates the source and target orders.
    start_step: the first batch to produce.
  """
  first = start_step * batch_size
  first_epoch, offset = first // n, first % n

  def epoch(e):
    # Streams interleave in the second seed word: (e, stream) -> 2e + stream.
    order = tf.random.experimental.stateless_shuffle(
        tf.range(n, dtype=tf.int64),
        seed=tf.stack([tf.constant(seed, tf.int64), 2 * e + stream]))
    skip = tf.where(e == first_epoch, offset, 0)
    return tf.data.Dataset.from_tensor_slices(order[skip:])

  return (tf.data.Dataset.range(first_epoch, _EPOCHS)
          .flat_map(epoch)
          .batch(batch_size, drop_remainder=True))


def _gather(domain: domains.Domain, idx: tf.Tensor, unlabelled: int):
  images = tf.gather(domain.images, idx)
  if domain.labels is None:
    labels = tf.fill(tf.shape(idx), unlabelled)
  else:
    labels = tf.cast(tf.gather(domain.labels, idx), tf.int32)
  return to_model_range(images), labels


def train_dataset(cfg: DataConfig, batch_size: int,
                  start_step: int = 0,
                  shuffle_seed: Optional[int] = None) -> tf.data.Dataset:
  """Infinite zipped source/target training batches; see the package doc.

  The batch order follows `shuffle_seed` (training passes its `--seed`, so
  training seeds see different orders of the same data); None means
  `cfg.seed`, the data seed.

  Elements are dicts: source_images / target_images float32 (B, S, S, 3) in
  [-1, 1], source_labels / target_labels int32 (B,) (-1 when unlabelled).
  Batch k with `start_step=s` equals batch s + k with `start_step=0`.
  """
  order_seed = cfg.seed if shuffle_seed is None else shuffle_seed
  source = domains.load_domain(cfg, "source", "train")
  target = domains.load_domain(cfg, "target", "train")
  # Constants once, captured by the map functions (not re-embedded per call).
  src = domains.Domain(source.name, tf.constant(source.images),
                       None if source.labels is None
                       else tf.constant(source.labels), source.num_classes,
                       source.origin)
  tgt = domains.Domain(target.name, tf.constant(target.images),
                       None if target.labels is None
                       else tf.constant(target.labels), target.num_classes,
                       target.origin)

  def fetch(s_idx, t_idx):
    s_x, s_y = _gather(src, s_idx, -1)
    t_x, t_y = _gather(tgt, t_idx, -1)
    return {"source_images": s_x, "source_labels": s_y,
            "target_images": t_x, "target_labels": t_y}

  ds = tf.data.Dataset.zip((
      index_batches(len(source), batch_size, order_seed, 0, start_step),
      index_batches(len(target), batch_size, order_seed, 1, start_step)))
  return ds.map(fetch, num_parallel_calls=tf.data.AUTOTUNE,
                deterministic=True).prefetch(tf.data.AUTOTUNE)


def eval_dataset(cfg: DataConfig, role: str, split: str,
                 batch_size: int) -> tf.data.Dataset:
  """One ordered pass: (images float32 (B, S, S, 3) in [-1, 1], labels int32).

  The last batch may be smaller. Labels are -1 for unlabelled data.
  """
  domain = domains.load_domain(cfg, role, split)
  labels = (np.full(len(domain), -1, np.int32) if domain.labels is None
            else domain.labels.astype(np.int32))
  ds = tf.data.Dataset.from_tensor_slices((domain.images, labels))
  return (ds.batch(batch_size)
          .map(lambda x, y: (to_model_range(x), y),
               num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
          .prefetch(tf.data.AUTOTUNE))
