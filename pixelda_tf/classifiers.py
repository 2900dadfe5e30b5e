"""Fresh classifiers trained on an adapted dataset: the decoupling check.

PixelDA's claim is that G, once trained, makes labelled target-like data that
any classifier can learn from. So the first two architectures are
deliberately NOT the task tower T (conv32-pool-conv48-pool-fc100-fc100): a
small ResNet with batch norm and global pooling, and a wider plain CNN with
dropout. The third, `task_tower`, is T's architecture trained fresh (one
first layer for all images), the control: what T reaches when it learns from
the final G's images alone rather than from G's images as G trains.
"""

from __future__ import annotations

import math
import time
from typing import Dict, List, Optional, Sequence, Tuple, Union

from absl import logging
import keras
from keras import layers
import numpy as np
import tensorflow as tf

from pixelda_tf import adapting
from pixelda_tf import config as config_lib
from pixelda_tf import data
from pixelda_tf import evaluation
from pixelda_tf import models
from pixelda_tf.data import folders

ARCHS = ("small_resnet", "wide_cnn", "task_tower")
# Images per domain that `pixel_statistics` summarises in a classify result.
STATS_IMAGES = 1000


def build_small_resnet(image_size: int, num_classes: int,
                       name: str = "small_resnet") -> keras.Model:
  """Three stages of one residual block (32, 64, 128 channels; stride 2 after
  the first), global average pooling, a linear layer.

  Input: float32 (B, S, S, 3) in [-1, 1]. Output: (B, num_classes) logits.
  """
  image = keras.Input((image_size, image_size, 3), name="image")
  x = layers.Conv2D(32, 3, padding="same", use_bias=False, name="stem")(image)
  for i, width in enumerate((32, 64, 128)):
    stride = 1 if i == 0 else 2
    shortcut = x
    if stride != 1 or x.shape[-1] != width:
      shortcut = layers.Conv2D(width, 1, strides=stride, use_bias=False,
                               name=f"stage{i}_proj")(x)
    y = layers.BatchNormalization(name=f"stage{i}_bn1")(x)
    y = layers.ReLU(name=f"stage{i}_relu1")(y)
    y = layers.Conv2D(width, 3, strides=stride, padding="same", use_bias=False,
                      name=f"stage{i}_conv1")(y)
    y = layers.BatchNormalization(name=f"stage{i}_bn2")(y)
    y = layers.ReLU(name=f"stage{i}_relu2")(y)
    y = layers.Conv2D(width, 3, padding="same", use_bias=False,
                      name=f"stage{i}_conv2")(y)
    x = layers.Add(name=f"stage{i}_add")([shortcut, y])
  x = layers.BatchNormalization(name="final_bn")(x)
  x = layers.ReLU(name="final_relu")(x)
  x = layers.GlobalAveragePooling2D(name="pool")(x)
  return keras.Model(image, layers.Dense(num_classes, name="logits")(x),
                     name=name)


def build_wide_cnn(image_size: int, num_classes: int,
                   name: str = "wide_cnn") -> keras.Model:
  """conv3x3 64 x2, pool, conv3x3 128 x2, pool, dropout, dense 256, logits.

  Input: float32 (B, S, S, 3) in [-1, 1]. Output: (B, num_classes) logits.
  """
  image = keras.Input((image_size, image_size, 3), name="image")
  x = image
  for i, width in enumerate((64, 128)):
    for j in range(2):
      x = layers.Conv2D(width, 3, padding="same", activation="relu",
                        name=f"conv{i}_{j}")(x)
    x = layers.MaxPooling2D(2, name=f"pool{i}")(x)
  x = layers.Flatten(name="flatten")(x)
  x = layers.Dropout(0.3, name="dropout")(x)
  x = layers.Dense(256, activation="relu", name="fc")(x)
  return keras.Model(image, layers.Dense(num_classes, name="logits")(x),
                     name=name)


def build(arch: str, image_size: int, num_classes: int,
          seed: int = 0) -> keras.Model:
  """`arch`'s network; `seed` draws task_tower's initial weights (the other
  two draw theirs from Keras' global seed)."""
  if arch == "small_resnet":
    return build_small_resnet(image_size, num_classes)
  if arch == "wide_cnn":
    return build_wide_cnn(image_size, num_classes)
  if arch == "task_tower":
    return models.build_classifier(image_size, num_classes, seed=seed,
                                   name=arch)
  raise config_lib.ConfigError(f"--arch={arch!r}: use one of "
                               f"{', '.join(ARCHS)}")


def pixel_statistics(images: tf.data.Dataset, n: int, total: int) -> Dict:
  """Summarises about `n` images spread evenly over a dataset of `total`
  unbatched (image, label) in [-1, 1] (every (total // n)-th: a PNG
  adapted set is stored class by class): the mean and std over all their
  values, and the mean of each image's own std over its pixels and
  channels (its contrast)."""
  every = max(total // n, 1)
  x = np.stack([image.numpy() for image, _ in
                images.shard(every, 0).take(n)])
  return {"images": len(x), "mean": float(x.mean()), "std": float(x.std()),
          "per_image_std": float(x.reshape(len(x), -1).std(axis=1).mean())}


def load_sets(train_dirs: Sequence[str]) -> Tuple[tf.data.Dataset,
                                                   List[Dict]]:
  """The adapted sets in `train_dirs`, one after another, as one dataset of
  (uint8 image, label), and their manifests ({} for a plain class folder).

  Sets adapted from several generators (checkpoints of one run, or runs)
  train one classifier together, so a label must mean one class in all of
  them: their classes (a manifest's `class_dirs`, or a plain folder's
  subfolders) must be the same list. Images are resized to the
  classifier's size later, so their sizes may differ.

  Raises:
    DataError: no set, a set named twice, a missing set, or classes that
      differ from another set's.
  """
  if not train_dirs:
    raise data.DataError("no adapted set to train on")
  twice = sorted({p for p in train_dirs if train_dirs.count(p) > 1})
  if twice:
    raise data.DataError(f"{', '.join(twice)} named more than once: name "
                         "each adapted set once")
  loaded = [adapting.load_adapted(path) for path in train_dirs]
  joined, known = None, None
  for path, (ds, manifest) in zip(train_dirs, loaded):
    classes = _classes_of(path, manifest)
    if known and classes is not None and classes != known[1]:
      raise data.DataError(
          f"{path} has the classes {classes}, {known[0]} has {known[1]}: a "
          "label must mean one class in every set; adapt the sets with runs "
          "of one set of classes")
    known = known or ((path, classes) if classes is not None else None)
    joined = ds if joined is None else joined.concatenate(ds)
  return joined, [manifest for _, manifest in loaded]


def _classes_of(path: str, manifest: Dict) -> Optional[List[str]]:
  """A set's class names in label order: its manifest's `class_dirs`, a plain
  folder's subfolders, or None (an older manifest without them)."""
  classes = manifest.get("class_dirs")
  if classes is None and "format" not in manifest:  # A plain folder.
    classes = folders.subfolders(path)
  return classes


def check_classes(train_dirs: Sequence[str], manifests: Sequence[Dict],
                  cfg: config_lib.Config) -> Optional[List[str]]:
  """Refuses sets whose classes are not the ones the target is labelled
  with (the source's names, `data.class_names`): label i must be one class
  in both, or the score means nothing. Reads no target data. Returns the
  sets' classes (None when no set records them).

  Raises:
    DataError: the classes differ; says which flags name a matching target.
  """
  classes = next((c for c in (_classes_of(p, m) for p, m in
                              zip(train_dirs, manifests)) if c is not None),
                 None)
  try:
    names = list(data.class_names(cfg.data))
  except data.DataError:  # The source folder moved: reading the target says.
    return classes
  if classes is None or list(classes) == names:
    return classes
  where = next(p for p, m in zip(train_dirs, manifests)
               if _classes_of(p, m) is not None)
  raise data.DataError(
      f"{where} has the classes {list(classes)}, but the target it would be "
      f"tested on (--target={cfg.data.target}"
      + (f" --target_dir={cfg.data.target_dir}" if cfg.data.target_dir
         else "") + f") is labelled {names}: label i must be one class in "
      "both. Name a target with these classes, e.g. --source=folder "
      f"--source_dir={where} --target=folder --target_dir=LABELLED_FOLDER "
      "(its class subfolders named as these)")


def train_and_evaluate(train_dir: Union[str, Sequence[str]],
                       cfg: config_lib.Config,
                       arch: str = "small_resnet", epochs: int = 5,
                       batch_size: int = 64, learning_rate: float = 1e-3,
                       seed: int = 0, max_examples: int = 0,
                       eval_split: str = "test",
                       with_source: bool = False,
                       adapt_bn: int = 0) -> Dict:
  """Trains `arch` with model.fit on an adapted dataset; tests on the target.

  Args:
    train_dir: an adapted dataset (pixelda_tf.adapt --out) or any folder
      with one PNG subfolder per class, or a list of them (`load_sets`:
      e.g. sets adapted from several checkpoints of G).
    cfg: its `data` names the target to test on (and the source, for
      `with_source`); `classifier.num_classes` and `data.image_size` size
      the network.
    max_examples: train on the first N examples only (0 = all; of
      several sets, in their order).
    with_source: also train on labelled source images, as many as there
      are adapted examples (or all of the source's train split if fewer),
      as PixelDA's task tower trains on both.
    adapt_bn: after training, re-estimate the batch-norm statistics on up
      to this many unlabelled target train images (AdaBN; 0 = off); the
      result then also holds `accuracy_before_adapt_bn`.

  Returns:
    dict with arch, num_params, num_train (adapted + source), num_source,
    epochs, train_accuracy (last epoch), the target report
    (`evaluation.report` keys), target_origin, pixel_statistics of up
    to STATS_IMAGES adapted and target test images, wall_time_s.
  """
  config_lib.require(epochs >= 1, f"--epochs={epochs}: must be >= 1")
  config_lib.require(batch_size > 0, f"--batch_size={batch_size}: must be > 0")
  config_lib.require(0 < learning_rate < math.inf,
                     f"--learning_rate={learning_rate}: must be finite and "
                     "> 0, e.g. 0.001")
  config_lib.require(max_examples >= 0,
                     f"--max_examples={max_examples}: must be >= 0 (0 = all)")
  config_lib.require(adapt_bn >= 0, "--adapt_bn must be >= 0 (0 = off)")
  config_lib.require(
      not adapt_bn or arch == "small_resnet",
      f"--adapt_bn re-estimates batch-norm statistics, and {arch} has no "
      "batch norm: use --arch=small_resnet")
  train_dirs = [train_dir] if isinstance(train_dir, str) else list(train_dir)
  ds, manifests = load_sets(train_dirs)
  # Before any target data is read (or a default target cached).
  classes = check_classes(train_dirs, manifests, cfg)
  size = cfg.data.image_size
  num_classes = (len(classes) if classes is not None
                 else cfg.classifier.num_classes)
  if max_examples:
    ds = ds.take(max_examples)
  # Load once into memory (adapted sets are small next to RAM), so the
  # shuffle is over the whole set and epochs do not re-decode PNGs.
  ds = ds.map(lambda x, y: (data.to_model_range(x, size),
                            tf.cast(y, tf.int64))).cache()
  num_train = int(ds.reduce(0, lambda n, _: n + 1))
  if num_train == 0:
    raise data.DataError(f"{','.join(train_dirs)}: no training examples")
  counts = np.bincount([int(y) for _, y in ds], minlength=num_classes)
  empty = [(classes[i] if classes is not None else str(i))
           for i in range(num_classes) if counts[i] == 0]
  if empty:
    # Not refused: a part of the classes is a legitimate quick look. But
    # the classifier cannot predict these, and its target score says so.
    logging.warning(
        "%s: no training images of class%s %s (of %d)%s: the classifier "
        "never learns %s; adapt with a larger --max_images (0 = all)%s",
        ",".join(train_dirs), "es" if len(empty) > 1 else "", empty,
        num_classes, f", in the first --max_examples={max_examples}"
        if max_examples else "", "them" if len(empty) > 1 else "it",
        " or a larger --max_examples" if max_examples else "")
  stats = {"adapted": pixel_statistics(ds, STATS_IMAGES, num_train)}
  num_source = 0
  if with_source:
    source = data.load_domain(cfg.data, "source", "train")
    if source.labels is None:
      raise data.DataError(f"{source.origin} has no labels to train on")
    num_source = min(num_train, len(source.labels))
    ds = ds.concatenate(tf.data.Dataset.from_tensor_slices(
        (source.images[:num_source], source.labels[:num_source].astype(
            "int64"))).map(lambda x, y: (data.to_model_range(x, size), y))
                        .cache())
    num_train += num_source
  # A known length, so Keras counts the steps of an epoch (and does not warn
  # that the input "ran out of data" at the end of each).
  ds = ds.apply(tf.data.experimental.assert_cardinality(num_train))
  train = (ds.shuffle(num_train, seed=seed, reshuffle_each_iteration=True)
           .batch(batch_size).prefetch(tf.data.AUTOTUNE))
  # Keras draws initial weights and dropout masks from its global seed.
  keras.utils.set_random_seed(seed)
  model = build(arch, size, num_classes, seed)
  model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                loss=keras.losses.SparseCategoricalCrossentropy(
                    from_logits=True),
                metrics=["accuracy"])
  started = time.time()
  # The dataset shuffles itself (seeded); fit cannot shuffle a tf.data input.
  history = model.fit(train, epochs=epochs, verbose=0, shuffle=False)
  target = data.load_domain(cfg.data, "target", eval_split)
  if target.labels is None:
    raise data.DataError(f"{target.origin} has no labels to test on")
  test = data.eval_dataset(cfg.data, "target", eval_split, 500)
  stats["target_" + eval_split] = pixel_statistics(
      test.unbatch(), STATS_IMAGES, len(target.labels))
  extra = {}
  if adapt_bn:
    extra = {"accuracy_before_adapt_bn": evaluation.evaluate(
                 model, test, num_classes)["accuracy"],
             "adapt_bn_images": _adapt_batch_norm(model, cfg, adapt_bn)}
  rep = evaluation.evaluate(model, test, num_classes)
  return {
      "arch": arch, "num_params": int(model.count_params()),
      "train_dir": ",".join(train_dirs), "num_train": num_train,
      # Where each set's images came from (its manifest's checkpoint, step
      # and weights: averaged or raw).
      "sets": [{"path": path, **{k: m[k] for k in (
          "checkpoint", "weights", "step", "num_examples",
          "samples_per_image") if k in m}}
               for path, m in zip(train_dirs, manifests)],
      "num_source": num_source, "epochs": epochs,
      "batch_size": batch_size, "seed": seed,
      "train_accuracy": float(history.history["accuracy"][-1]),
      "target": cfg.data.target, "eval_split": eval_split,
      # The target classes tested on (`--classes`), all by default.
      "target_classes": list(cfg.data.class_ids() or range(num_classes)),
      "target_origin": target.origin, **rep, **extra,
      "empty_classes": empty,
      "pixel_statistics": stats,
      "wall_time_s": time.time() - started,
  }


def _adapt_batch_norm(model: keras.Model, cfg: config_lib.Config,
                      max_images: int, batch_size: int = 500) -> int:
  """AdaBN (Li et al. 2016): every batch-norm layer's moving mean and
  variance become the average of their batch statistics over up to
  `max_images` target train images (labels unused). Weights are unchanged.
  Returns the number of images used."""
  bns = [layer for layer in model.layers
         if isinstance(layer, keras.layers.BatchNormalization)]
  momenta = [bn.momentum for bn in bns]
  seen = 0
  try:
    for i, (images, _) in enumerate(data.eval_dataset(
        cfg.data, "target", "train", batch_size)):
      images = images[:max_images - seen]
      # moving <- moving * m + batch * (1 - m), with m = i / (i + 1): after
      # batch i the moving value is the mean of batches 0..i.
      for bn in bns:
        bn.momentum = i / (i + 1)
      model(images, training=True)
      seen += int(images.shape[0])
      if seen >= max_images:
        break
  finally:
    for bn, m in zip(bns, momenta):
      bn.momentum = m
  if not seen:
    raise data.DataError("no target train images to re-estimate batch-norm "
                         "statistics on")
  return seen
