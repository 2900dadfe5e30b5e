"""Tiny configurations and batches that keep the tests fast."""

import dataclasses
import os

import numpy as np

from pixelda_tf import config as config_lib

SIZE = 16
BATCH = 8


def tiny_config(**sections) -> config_lib.Config:
  """A Config with small networks; `sections` override fields per section,
  e.g. tiny_config(loss=dict(style=0.0), runtime=dict(jit_compile=True))."""
  cfg = config_lib.Config(
      data=config_lib.DataConfig(image_size=SIZE),
      generator=config_lib.GeneratorConfig(filters=8, num_blocks=1),
      discriminator=config_lib.DiscriminatorConfig(filters=8, max_filters=16),
      train=config_lib.TrainConfig(batch_size=BATCH, seed=3),
      runtime=config_lib.RuntimeConfig(jit_compile=False))
  for name, fields in sections.items():
    cfg = dataclasses.replace(
        cfg, **{name: dataclasses.replace(getattr(cfg, name), **fields)})
  return config_lib.validate(cfg)


def data_config(tmp_path, fake, **fields) -> config_lib.DataConfig:
  """A DataConfig that reads the fake data sets (`fake` fixture) offline into
  tmp_path/data; `fields` override."""
  return config_lib.DataConfig(**{
      "data_dir": str(tmp_path / "data"), "mnist_dir": str(fake / "mnist"),
      "download": False, **fields})


def released_run(root, fake: str, val_size: int = 4, **train) -> str:
  """Trains a tiny 2-step run on the fake MNIST -> released MNIST-M files in
  `fake` (make_fake_data.main) into root/run; `train` overrides TrainConfig
  fields (default: a weight average, ema_decay=0.5). Returns the model_dir.
  Needs PIXELDA_OFFLINE=1 set by the caller."""
  # Imported here: tiny configs are used by tests that never train.
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from pixelda_tf import training  # pylint: disable=g-import-not-at-top
  cfg = tiny_config(
      data=dict(mnist_dir=os.path.join(fake, "mnist"),
                mnist_m_dir=os.path.join(fake, "mnist_m"),
                mnist_m_variant="released", data_dir=str(root / "data"),
                val_size=val_size, download=False),
      train=dict(dict(model_dir=str(root / "run"), train_steps=2,
                      checkpoint_every=2, eval_every=0, image_every=0,
                      summary_every=1, quiet=True, ema_decay=0.5), **train))
  training.train(cfg, strategy=tf.distribute.get_strategy())
  return cfg.train.model_dir


def batch(seed: int = 0, size: int = SIZE, n: int = BATCH) -> dict:
  rng = np.random.default_rng(seed)
  return {
      "source_images": rng.uniform(-1, 1, (n, size, size, 3)).astype("float32"),
      "source_labels": rng.integers(0, 10, n).astype("int32"),
      "target_images": rng.uniform(-1, 1, (n, size, size, 3)).astype("float32"),
      "target_labels": rng.integers(0, 10, n).astype("int32"),
  }


def weights(model) -> dict:
  """name -> numpy copy of every variable of a PixelDA's networks."""
  out = {}
  for net in ("generator", "discriminator", "classifier", "source_classifier"):
    # Seed-generator paths carry a process-wide counter: key by position.
    for i, v in enumerate(getattr(model.nets, net).variables):
      out[f"{net}/{i}/{v.path.split('/')[-1]}"] = np.array(v.numpy())
  return out
