"""Held-out slices carved from a split: stratified, seeded, reusable.

Every validation or test slice the data layer carves out of a train split
goes through `stratified_split`, whatever the dataset or folder layout, so a
slice never ends up as one class because the files were sorted by class.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np

from pixelda_tf.data import errors


def stratified_split(labels: np.ndarray, n: int, seed: int,
                     stream: int = 0) -> Tuple[np.ndarray, np.ndarray]:
  """Holds out `n` examples, every class in proportion to its share.

  Each class c of size N_c gets floor(n * N_c / N) held-out examples; the
  remaining slots go to the classes with the largest fractional parts (ties:
  the lower class id). Which examples of a class are held out is drawn from
  `np.random.default_rng([seed, stream, c])`, so a seed (and stream) gives the
  same slice every time, and one class's draw does not depend on the others.

  Args:
    labels: int (N,) class ids.
    n: how many to hold out, 0 <= n <= N.
    seed: the data seed (`DataConfig.seed`).
    stream: separates slices carved with one seed (e.g. test vs validation).
  Returns:
    (keep_idx, held_idx): sorted int64 index arrays into `labels`, disjoint,
    together range(N); len(held_idx) == n.
  Raises:
    DataError (a ValueError): n outside [0, N].
  """
  y = np.asarray(labels, np.int64)
  total = len(y)
  if not 0 <= n <= total:
    raise errors.DataError(f"cannot hold out {n} of {total} examples")
  classes, counts = np.unique(y, return_counts=True)
  quota = n * counts / total
  take = np.floor(quota).astype(np.int64)
  # Largest remainder: lexsort sorts by the last key first.
  order = np.lexsort((classes, -(quota - take)))
  take[order[:n - take.sum()]] += 1
  held = []
  for c, k in zip(classes, take):
    members = np.flatnonzero(y == c)
    rng = np.random.default_rng([seed, stream, int(c)])
    held.append(rng.choice(members, size=int(k), replace=False))
  held_idx = np.sort(np.concatenate(held)).astype(np.int64)
  mask = np.ones(total, bool)
  mask[held_idx] = False
  return np.flatnonzero(mask).astype(np.int64), held_idx


def auto_test_size(num_examples: int, test_size: int) -> int:
  """Examples to carve as a test slice: `test_size`, or 0 = automatic.

  Automatic is 10% of the split, at most 1,000 (the size of the official
  validation slice): enough for a stable accuracy, little lost to training.
  Never more than half the split.
  """
  n = test_size if test_size > 0 else min(max(num_examples // 10, 1), 1000)
  return max(0, min(n, num_examples // 2))
