r"""Writes MNIST -> USPS as image folders, to compare the folder path with the
built-in one.

  python benchmarks/folders_from_builtin.py --out=runs/folders \
      --mnist_dir=PATH --usps_path=PATH/usps.h5 [--val_images=200] \
      [--data_seed=0] [--blend_bsds_dir=PATH/BSR/BSDS500/data/images]

writes, from the data the project already reads (the same loaders as
--source=mnist --target=usps):

  OUT/mnist/<digit>/<index>.png     MNIST train, labelled source (28x28 grey)
  OUT/usps/train/<index>.png        USPS train minus the validation images,
                                    flat: the unlabelled target
  OUT/usps/test/<digit>/<index>.png USPS test, the labelled test split
  OUT/usps_val/<digit>/<index>.png  --val_images USPS train images, labelled

The validation images are `splits.stratified_split(labels, N, data_seed,
stream=2)`: exactly the slice that `--target=usps --val_size=N` holds out, so
with the same --val_size and --data_seed both paths train on the same target
images and validate on the same N.

With --blend_bsds_dir the USPS images become a target no built-in dataset
and no test makes ("USPS-M"): each digit resized to 32x32 and
difference-blended with a random crop of a BSDS500 *test* photo (MNIST-M's
recipe, `mnist_m.blend`, on other digits and other photos), RGB. Then train both with one flagfile:

  python -m pixelda_tf.train --flagfile=configs/usps_cpu.flags --val_size=200 \
      --mnist_dir=PATH --usps_path=PATH/usps.h5 --model_dir=runs/cmp/builtin
  python -m pixelda_tf.train --flagfile=configs/usps_cpu.flags \
      --source=folder --source_dir=runs/folders/mnist \
      --target=folder --target_dir=runs/folders/usps \
      --target_val_dir=runs/folders/usps_val --model_dir=runs/cmp/folders
"""

from __future__ import annotations

import json
import os
import sys

# The checkout this script is in, before an installed pixelda_tf: the code it
# runs and records as provenance is then this checkout's.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# At import, not in main: TensorFlow reads TF_ENABLE_ONEDNN_OPTS once, when
# it loads, and the imports below load it.
from pixelda_tf import runner  # pylint: disable=g-import-not-at-top,wrong-import-position
runner.prepare_process()

# pylint: disable=g-import-not-at-top,wrong-import-position
from absl import app
from absl import flags
import numpy as np
from PIL import Image

from pixelda_tf.data import errors
from pixelda_tf.data import images
from pixelda_tf.data import mnist
from pixelda_tf.data import mnist_m
from pixelda_tf.data import splits
from pixelda_tf.data import usps

FLAGS = flags.FLAGS


def define_flags() -> None:
  """Defined by the binary only: importing this module (the tests do, beside
  pixelda_tf.flags, which has --mnist_dir too) defines no flags."""
  flags.DEFINE_string("out", None, "Output folder (must not exist).")
  flags.DEFINE_string("mnist_dir", None, "Folder with the four MNIST IDX "
                      "files (else the offline copy).")
  flags.DEFINE_string("usps_path", None, "usps.h5, or a folder with LIBSVM's "
                      "usps.bz2 and usps.t.bz2.")
  flags.DEFINE_string("data_dir", "data", "Where prepared data and downloads "
                      "land.")
  flags.DEFINE_integer("val_images", 200, "Labelled USPS train images for the "
                       "validation folder.")
  flags.DEFINE_integer("data_seed", 0, "Seed of the validation draw (as "
                       "training's --data_seed).")
  flags.DEFINE_string("blend_bsds_dir", None, "BSDS500's images/ folder: "
                      "blend the USPS digits with its test/ photos (module "
                      "doc).")
  flags.DEFINE_integer("max_source", 0, "Write only the first N MNIST train "
                       "images (0 = all).")

def _write(folder: str, images: np.ndarray, labels, index: np.ndarray) -> None:
  """images[i] -> folder[/<label>]/<index[i]>.png; sorted names keep order."""
  width = len(str(max(int(index.max()), 1))) if len(index) else 1
  for i, image in zip(index, images):
    sub = folder if labels is None else os.path.join(folder,
                                                     str(int(labels[i])))
    os.makedirs(sub, exist_ok=True)
    Image.fromarray(image).save(os.path.join(sub, f"{int(i):0{width}d}.png"))


def blend_usps(usps_arrays, bsds_dir: str, seed: int) -> dict:
  """USPS-M (module doc): the USPS arrays with each split's digits resized to
  32x32 and blended with BSDS500 test photos, uint8 (N, 32, 32, 3)."""
  folder = os.path.join(bsds_dir, "test")
  names = sorted(n for n in os.listdir(folder) if n.endswith(".jpg"))
  if not names:
    raise ValueError(f"--blend_bsds_dir={bsds_dir}: no .jpg in {folder}")
  photos = [np.asarray(Image.open(os.path.join(folder, n)).convert("RGB"))
            for n in names]
  out = dict(usps_arrays)
  for split in ("train", "test"):
    digits = images.resize(usps_arrays[f"{split}_images"], mnist_m.SIZE)
    out[f"{split}_images"] = mnist_m.blend(digits, photos, seed, split)
  return out


def write_folders(out: str, mnist_arrays, usps_arrays, val_images: int,
                  seed: int, max_source: int = 0) -> dict:
  """Writes the four folders (module doc); returns their image counts."""
  if os.path.exists(out):
    raise FileExistsError(f"--out={out} exists; remove it or pick another")
  x, y = mnist_arrays["train_images"], mnist_arrays["train_labels"]
  n = min(len(x), max_source) if max_source else len(x)
  idx = np.arange(n)
  _write(os.path.join(out, "mnist"), x[idx], y, idx)
  ux, uy = usps_arrays["train_images"], usps_arrays["train_labels"]
  # The slice --target=usps --val_size=val_images holds out (domains).
  train_idx, val_idx = splits.stratified_split(uy, val_images, seed, stream=2)
  _write(os.path.join(out, "usps", "train"), ux[train_idx], None, train_idx)
  _write(os.path.join(out, "usps_val"), ux[val_idx], uy, val_idx)
  tx, ty = usps_arrays["test_images"], usps_arrays["test_labels"]
  test_idx = np.arange(len(tx))
  _write(os.path.join(out, "usps", "test"), tx, ty, test_idx)
  counts = {"source": n, "target_train": len(train_idx),
            "target_val": len(val_idx), "target_test": len(tx),
            "val_per_class": np.bincount(uy[val_idx], minlength=10).tolist(),
            "seed": seed}
  with open(os.path.join(out, "folders.json"), "w") as f:
    json.dump(counts, f, indent=2)
  return counts


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  if not FLAGS.out:
    raise app.UsageError("--out=FOLDER is required")
  try:
    mnist_arrays, _ = mnist.load(FLAGS.mnist_dir, FLAGS.data_dir)
    usps_arrays, _ = usps.load(FLAGS.usps_path, FLAGS.data_dir)
    if FLAGS.blend_bsds_dir:
      usps_arrays = blend_usps(usps_arrays, FLAGS.blend_bsds_dir,
                               FLAGS.data_seed)
    counts = write_folders(FLAGS.out, mnist_arrays, usps_arrays,
                           FLAGS.val_images, FLAGS.data_seed,
                           FLAGS.max_source)
  except (errors.DataError, FileExistsError, ValueError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  print(json.dumps(counts))
  return 0


if __name__ == "__main__":
  define_flags()
  sys.exit(app.run(main))
