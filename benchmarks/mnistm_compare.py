r"""Compares the released MNIST-M with the generated recipes, image for image.

  python benchmarks/mnistm_compare.py --mnist_dir=MNIST_IDX_DIR \
      --bsds_dir=BSR/BSDS500/data/images --released_dir=MNIST_M_DIR \
      --n=5000 --locate=500 --json=benchmarks/results/mnistm_compare/mnistm_compare.json

Released train image i was made from MNIST train image i, so every set here
uses the same first `--n` MNIST train digits; only the recipe differs. Sets:
  released       the released PNGs (first --n of mnist_m_train/)
  generated      `mnist_m.generate` as shipped (binarized, padded digits)
  resize_grey    the recipe before RECIPE_VERSION 2: digit resized 28->32
                 (bilinear), grey levels kept
  pad_grey       padded, grey levels kept (ablation)
  resize_binary  resized, then binarized (ablation)
The four generated sets share photos and crop positions (`mnist_m.blend`,
same seed), so they differ only in the digit layer.

Measured, per set:
  * located: for the first --locate released images, the BSDS500 photo and
    position whose crop reproduces the image exactly under each digit
    template (the released PNGs are lossless, so a match is byte for byte);
    photo-choice uniformity (chi-square p) and the corner range.
  * template fit: the implied background `where(T >= 128, 255 - x, x)` for
    each candidate digit template T; the right template leaves a smooth
    photo (lowest mean |gradient|), a wrong one leaves digit edges.
  * digit layer: grey fraction (0 < d < 255 among d > 0), stroke area,
    stroke width (area / skeleton length), bounding box and centroid.
  * background (d == 0) pixels: per-channel mean, within-image spread (each
    channel about its own mean, so colour is not spread: error_sources'
    `appearance`), mean |gradient| between neighbouring background pixels.
  * contrast: |mean(digit pixels) - mean(background pixels)| (d >= 128 and
    d == 0; `appearance`), fraction of images whose digit is brighter than
    the background.
  * two-sample test: a small CNN told to separate released from a set,
    trained on the first half of the indices, accuracy on the second half
    (50% = indistinguishable).
"""

import json
import os
import sys
import time

# Runnable from a checkout without installing the package.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# At import, not in main: TensorFlow reads TF_ENABLE_ONEDNN_OPTS once, when
# it loads, and the imports below load it.
from pixelda_tf import runner  # pylint: disable=g-import-not-at-top,wrong-import-position
runner.prepare_process()

from absl import app  # pylint: disable=g-import-not-at-top,wrong-import-position
from absl import flags  # pylint: disable=wrong-import-position
import numpy as np  # pylint: disable=wrong-import-position

from pixelda_tf import provenance  # pylint: disable=wrong-import-position
from pixelda_tf.data import images  # pylint: disable=wrong-import-position
from pixelda_tf.data import mnist  # pylint: disable=wrong-import-position
from pixelda_tf.data import mnist_m  # pylint: disable=wrong-import-position
from pixelda_tf.data import photos as photos_lib  # pylint: disable=wrong-import-position

import error_sources  # pylint: disable=wrong-import-position  (this folder)
import result_fields  # pylint: disable=wrong-import-position  (this folder)

# Flags are defined only when this file runs as a script, so tests can import
# its measurements beside pixelda_tf.flags (which also defines --mnist_dir).
FLAGS = flags.FLAGS

def _define_flags():
  """Defines the script's flags (once, from __main__)."""
  flags.DEFINE_string("mnist_dir", None, "The four MNIST IDX files.")
  flags.DEFINE_string(
      "bsds_dir", None, "BSDS500 images folder (with train/) or BSR_bsds500.tgz.")
  flags.DEFINE_string(
      "released_dir", None,
      "Released MNIST-M folder holding mnist_m_train/ and its label file.")
  flags.DEFINE_integer("n", 5000, "Images per set (the first n indices).")
  flags.DEFINE_integer(
      "locate", 500, "Released images to locate exactly in the photos (0: skip).")
  flags.DEFINE_integer("seed", 0, "Seed of the generated sets.")
  flags.DEFINE_integer("epochs", 8, "Two-sample CNN epochs.")
  flags.DEFINE_list(
      "classify", ["generated", "resize_grey", "pad_grey", "resize_binary"],
      "Sets to run the two-sample test on (against released); empty: none.")
  flags.DEFINE_string("json", None, "Write the results here.")


TEMPLATES = ("pad_binary", "pad_grey", "resize_grey", "resize_binary")
_MAX_CANDIDATES = 100_000  # flat photo regions: many equal 2x2 keys
_CHUNK = 2048  # candidate crops checked at once


def digit_layers(x: np.ndarray) -> dict:
  """Candidate 32x32 digit layers (uint8, 0 = black) from 28x28 digits."""
  pad = ((0, 0), (2, 2), (2, 2))
  resized = images.resize(x, mnist_m.SIZE)
  return {
      "pad_binary": np.pad(np.where(x > 0, 255, 0).astype(np.uint8), pad),
      "pad_grey": np.pad(x, pad),
      "resize_grey": resized,
      "resize_binary": np.where(resized > 0, 255, 0).astype(np.uint8),
  }


def read_released(folder: str, n: int) -> tuple:
  labels_path = os.path.join(folder, "mnist_m_train_labels.txt")
  if not os.path.exists(labels_path):
    raise app.UsageError(f"{labels_path} is missing; --released_dir must hold "
                         "mnist_m_train/ and mnist_m_train_labels.txt")
  with open(labels_path, encoding="utf-8") as f:
    rows = [line.split() for line in f if line.strip()][:n]
  x = np.stack([images.read(os.path.join(folder, "mnist_m_train", name))
                for name, _ in rows])
  return x, np.array([int(label) for _, label in rows], np.int64)


def _keys(a: np.ndarray) -> np.ndarray:
  """uint64 key of each 2x2 top-left patch: 8 of its 12 bytes."""
  b = np.concatenate([a[..., 0, 0, :], a[..., 0, 1, :], a[..., 1, 0, :2]], -1)
  k = np.zeros(b.shape[:-1], np.uint64)
  for j in range(8):
    k |= b[..., j].astype(np.uint64) << np.uint64(8 * j)
  return k


def locate(released: np.ndarray, layers: dict, photos: list) -> dict:
  """Finds, per released image, the photo crops that reproduce it exactly.

  The 2-pixel border is black in every template, so the image's top-left 2x2
  equals the crop's: a key lookup over all photo positions gives candidates,
  and each is checked on all 32x32x3 pixels under every template.
  """
  s = mnist_m.SIZE
  n = len(released)
  order = np.argsort(_keys(released))
  sorted_keys = _keys(released)[order]
  candidates = [[] for _ in range(n)]
  for p, photo in enumerate(photos):
    h, w = photo.shape[:2]
    quad = np.stack([photo[:h - s + 1, :w - s + 1],
                     photo[:h - s + 1, 1:w - s + 2],
                     photo[1:h - s + 2, :w - s + 1]], -2)
    k = np.concatenate([quad[..., 0, :], quad[..., 1, :],
                        quad[..., 2, :2]], -1)
    keys = np.zeros(k.shape[:-1], np.uint64)
    for j in range(8):
      keys |= k[..., j].astype(np.uint64) << np.uint64(8 * j)
    flat = keys.ravel()
    lo = np.searchsorted(sorted_keys, flat, "left")
    hi = np.searchsorted(sorted_keys, flat, "right")
    for h_ in np.flatnonzero(hi > lo):
      y, x = divmod(int(h_), keys.shape[1])
      for q in order[lo[h_]:hi[h_]]:
        if len(candidates[q]) < _MAX_CANDIDATES:
          candidates[q].append((p, y, x))
  found = {t: np.full((n, 3), -1, np.int64) for t in layers}
  ambiguous = {t: 0 for t in layers}
  target = released.astype(np.int16)
  for i in range(n):
    if not candidates[i]:
      continue
    hits = {t: 0 for t in layers}
    for c in range(0, len(candidates[i]), _CHUNK):
      cand = np.array(candidates[i][c:c + _CHUNK])
      crops = np.stack([photos[p][y:y + s, x:x + s] for p, y, x in cand])
      crops = crops.astype(np.int16)
      for t, layer in layers.items():
        d = layer[i].astype(np.int16)[None, :, :, None]
        ok = np.flatnonzero((np.abs(crops - d) == target[i]).all((1, 2, 3)))
        if len(ok) and not hits[t]:
          found[t][i] = cand[ok[0]]
        hits[t] += len(ok)
    for t in layers:
      ambiguous[t] += hits[t] > 1
  shapes = np.array([p.shape[:2] for p in photos])
  out = {"images": n}
  for t in layers:
    hit = found[t][:, 0] >= 0
    out[t] = {"reproduced_exactly": int(hit.sum()),
              "ambiguous_position": ambiguous[t]}
    if t == "pad_binary" and hit.any():
      from scipy import stats  # pylint: disable=g-import-not-at-top
      p, y, x = found[t][hit].T
      counts = np.bincount(p, minlength=len(photos))
      out[t].update({
          "photos_used": int((counts > 0).sum()),
          "photo_choice_chi2_p": float(stats.chisquare(counts).pvalue),
          "max_y_minus_h": int((y - shapes[p, 0]).max()),
          "max_x_minus_w": int((x - shapes[p, 1]).max()),
          "min_y": int(y.min()), "min_x": int(x.min()),
          "y_fraction_ks_p": float(stats.kstest(
              (y + 0.5) / (shapes[p, 0] - s), "uniform").pvalue),
          "x_fraction_ks_p": float(stats.kstest(
              (x + 0.5) / (shapes[p, 1] - s), "uniform").pvalue)})
  return out


def _grad(x: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
  """Per-image mean |difference| of horizontal and vertical neighbours."""
  x = x.astype(np.float32)
  dx = np.abs(x[:, :, 1:] - x[:, :, :-1]).mean(-1)
  dy = np.abs(x[:, 1:] - x[:, :-1]).mean(-1)
  if valid is None:
    return (dx.mean((1, 2)) + dy.mean((1, 2))) / 2
  vx = valid[:, :, 1:] & valid[:, :, :-1]
  vy = valid[:, 1:] & valid[:, :-1]
  return ((dx * vx).sum((1, 2)) + (dy * vy).sum((1, 2))) / np.maximum(
      vx.sum((1, 2)) + vy.sum((1, 2)), 1)


def template_fit(x: np.ndarray, layers: dict) -> dict:
  """Mean |gradient| of the background implied by each template."""
  out = {}
  for t, layer in layers.items():
    bg = np.where((layer >= 128)[..., None], 255 - x.astype(np.int16), x)
    out[t] = float(_grad(bg).mean())
  return out


def stats(x: np.ndarray, layer: np.ndarray) -> dict:
  """Digit-layer, background and contrast statistics (see module doc)."""
  from scipy import ndimage  # pylint: disable=g-import-not-at-top
  from skimage import morphology  # pylint: disable=g-import-not-at-top
  mask = layer >= 128
  bg = layer == 0
  on = layer > 0
  grey = ((layer > 0) & (layer < 255)).sum((1, 2)) / np.maximum(
      on.sum((1, 2)), 1)
  area = mask.sum((1, 2))
  skeleton = np.array([morphology.skeletonize(m).sum() for m in mask])
  ys, xs = np.mgrid[:layer.shape[1], :layer.shape[2]]
  cy = (mask * ys).sum((1, 2)) / np.maximum(area, 1)
  cx = (mask * xs).sum((1, 2)) / np.maximum(area, 1)
  rows, cols = mask.any(2), mask.any(1)
  height = layer.shape[1] - np.argmax(rows, 1) - np.argmax(rows[:, ::-1], 1)
  width = layer.shape[2] - np.argmax(cols, 1) - np.argmax(cols[:, ::-1], 1)
  dist = np.array([ndimage.distance_transform_edt(m)[
      morphology.skeletonize(m)].mean() if m.any() else 0 for m in mask])
  xf = x.astype(np.float32)
  # Means, contrast and texture as error_sources measures them (a flat field
  # of any colour has no spread), on the pixels clear of the digit's edge.
  looks = error_sources.appearance(x, mask, background=bg)
  bg_mean, fg_mean = looks["background_mean"], looks["digit_mean"]  # (N, 3)
  m = lambda v: float(np.mean(v))  # pylint: disable=unnecessary-lambda-assignment
  return {
      "digit_grey_fraction": m(grey),
      "stroke_area_px": m(area),
      "stroke_width_px": m(area / np.maximum(skeleton, 1)),
      "stroke_width_2dt_px": m(2 * dist - 1),
      "bbox_height_px": m(height), "bbox_width_px": m(width),
      "centroid_y": m(cy), "centroid_x": m(cx),
      "centroid_y_std": float(np.std(cy)), "centroid_x_std": float(np.std(cx)),
      "bg_mean_rgb": [round(float(v), 2) for v in bg_mean.mean(0)],
      "bg_std_within_image": m(looks["background_std"]),
      "bg_gradient": m(_grad(x, bg)),
      "image_mean_rgb": [round(float(v), 2) for v in xf.mean((0, 1, 2))],
      "image_std": float(xf.std()),
      "contrast_abs": m(looks["contrast"]),
      "digit_brighter_fraction": m(fg_mean.mean(1) > bg_mean.mean(1)),
  }


def two_sample(a: np.ndarray, b: np.ndarray, seed: int, epochs: int) -> dict:
  """Held-out accuracy of a small CNN telling `a` (1) from `b` (0).

  Trains on the first half of the indices of both, tests on the second half,
  so test digits are unseen and each appears once in each set.
  """
  import keras  # pylint: disable=g-import-not-at-top
  keras.utils.set_random_seed(seed)
  half = len(a) // 2
  x_train = np.concatenate([a[:half], b[:half]])
  y_train = np.concatenate([np.ones(half), np.zeros(half)]).astype(np.float32)
  x_test = np.concatenate([a[half:], b[half:]])
  y_test = np.concatenate([np.ones(len(a) - half),
                           np.zeros(len(b) - half)]).astype(np.float32)
  model = keras.Sequential([
      keras.Input(x_train.shape[1:]),
      keras.layers.Rescaling(1 / 127.5, offset=-1),
      keras.layers.Conv2D(32, 3, activation="relu", padding="same"),
      keras.layers.MaxPooling2D(),
      keras.layers.Conv2D(64, 3, activation="relu", padding="same"),
      keras.layers.MaxPooling2D(),
      keras.layers.Conv2D(64, 3, activation="relu", padding="same"),
      keras.layers.GlobalAveragePooling2D(),
      keras.layers.Dense(1, activation="sigmoid")])
  model.compile(keras.optimizers.Adam(1e-3), "binary_crossentropy",
                metrics=["accuracy"])
  start = time.time()
  hist = model.fit(x_train, y_train, batch_size=64, epochs=epochs, verbose=0,
                   shuffle=True)
  _, acc = model.evaluate(x_test, y_test, verbose=0, batch_size=256)
  return {"heldout_accuracy": float(acc),
          "train_accuracy": float(hist.history["accuracy"][-1]),
          "train_images": len(x_train), "test_images": len(x_test),
          "epochs": epochs, "seconds": round(time.time() - start, 1)}


def main(argv):
  del argv
  for name in ("mnist_dir", "bsds_dir", "released_dir"):
    if not FLAGS[name].value:
      raise app.UsageError(f"--{name} is required")
  n = FLAGS.n
  digits = mnist.load_idx_folder(FLAGS.mnist_dir)
  files, _, where = photos_lib.bsds500(FLAGS.bsds_dir, "", download=False)
  photos = photos_lib.decode_all(files, where, mnist_m.SIZE)
  released, labels = read_released(FLAGS.released_dir, n)
  n = len(released)
  x28 = digits["train_images"][:n]
  label_agreement = float((labels == digits["train_labels"][:n]).mean())
  layers = digit_layers(x28)

  sets = {"released": (released, layers["pad_binary"])}
  shipped = mnist_m.generate(
      {"train_images": x28, "train_labels": digits["train_labels"][:n],
       "test_images": x28[:1], "test_labels": digits["train_labels"][:1]},
      photos, FLAGS.seed)["train_images"]
  sets["generated"] = (shipped, layers["pad_binary"])
  for t in ("resize_grey", "pad_grey", "resize_binary"):
    sets[t] = (mnist_m.blend(layers[t], photos, FLAGS.seed, "train"),
               layers[t])

  result = {"n": n, "seed": FLAGS.seed, "photos": len(photos),
            "released_labels_equal_mnist_train_labels": label_agreement}
  if FLAGS.locate:
    start = time.time()
    k = min(FLAGS.locate, n)
    result["located"] = locate(released[:k],
                               {t: v[:k] for t, v in layers.items()}, photos)
    result["located"]["seconds"] = round(time.time() - start, 1)
  result["template_fit"] = {name: template_fit(x, layers)
                            for name, (x, _) in sets.items()}
  result["stats"] = {name: stats(x, layer)
                     for name, (x, layer) in sets.items()}
  result["two_sample"] = {}
  for name in FLAGS.classify:
    result["two_sample"][name] = two_sample(released, sets[name][0],
                                            FLAGS.seed, FLAGS.epochs)
    print(f"two-sample released vs {name}: "
          f"{100 * result['two_sample'][name]['heldout_accuracy']:.1f}% "
          f"held out ({result['two_sample'][name]['seconds']} s)", flush=True)
  report(result)
  if FLAGS.json:
    with open(FLAGS.json, "w", encoding="utf-8") as f:
      split = (f"the first {n} images of the released mnist_m_train/ against "
               f"each generated set from the same {n} MNIST train digits; the "
               "two-sample CNN trains on the first half of the indices and "
               f"tests on the second half (seed {FLAGS.seed})")
      json.dump({**result_fields.fields(split), **result,
                 "code": provenance.code_version()}, f, indent=2)


def report(result: dict) -> None:
  print(f"\n{result['n']} images per set; released labels equal MNIST train "
        f"labels: {100 * result['released_labels_equal_mnist_train_labels']:.2f}%")
  if "located" in result:
    loc = result["located"]
    print(f"located in the BSDS500 train photos ({loc['images']} released "
          "images, exact byte match):")
    for t in TEMPLATES:
      print(f"  {t:14s} {loc[t]['reproduced_exactly']:6d} reproduced, "
            f"{loc[t]['ambiguous_position']} at several positions")
    extra = {k: v for k, v in loc["pad_binary"].items()
             if k not in ("reproduced_exactly", "ambiguous_position")}
    print("  pad_binary crops:", json.dumps(extra))
  names = list(result["stats"])
  print("\nimplied-background |gradient| per template (lowest = explains the "
        "set):")
  print(f"{'template':22s}" + "".join(f"{n:>14s}" for n in names))
  for t in TEMPLATES:
    print(f"{t:22s}" + "".join(f"{result['template_fit'][n][t]:14.2f}"
                               for n in names))
  print(f"\n{'statistic':22s}" + "".join(f"{n:>14s}" for n in names))
  for key in result["stats"]["released"]:
    cells = []
    for n in names:
      v = result["stats"][n][key]
      cells.append("/".join(f"{c:.0f}" for c in v) if isinstance(v, list)
                   else f"{v:.3f}")
    print(f"{key:22s}" + "".join(f"{c:>14s}" for c in cells))
  if result["two_sample"]:
    print("\ntwo-sample CNN, held-out accuracy released vs set (50% = "
          "indistinguishable):")
    for n, r in result["two_sample"].items():
      print(f"  {n:14s} {100 * r['heldout_accuracy']:5.1f}%  (train "
            f"{100 * r['train_accuracy']:.1f}%, {r['test_images']} test "
            f"images, {r['seconds']} s)")


if __name__ == "__main__":
  _define_flags()
  app.run(main)
