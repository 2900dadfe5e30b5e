r"""Where do a released-MNIST-M run's test errors come from?

  python benchmarks/error_sources.py --model_dir=RUN/pixelda \
      --checkpoint=RUN/pixelda/checkpoints/ckpt-64000 --z=4 \
      --json=benchmarks/results/error_sources/NAME_error_sources_STEP.json \
      [--png=benchmarks/results/error_sources/NAME_errors_STEP.png]

Released MNIST-M image i was made from MNIST image i of the same split
(benchmarks/mnistm_compare.py), so every target test image has a source
digit. For each test image this scores T (the run's classifier; averaged
weights when the run keeps an average; called as evaluate calls it, so
through its target path, on all three) three ways:
  target   on the released image itself (the run's test accuracy);
  source   on its MNIST digit (padded or resized as the run's source, grey
           repeated to three channels);
  adapted  on G(digit, z) for --z draws of z (`evaluation.noise`, seed 0).
A target error that T gets right on the digit and on every adapted draw is
one whose digit shape T reads in the source and adapted styles but not in
this target image's. The counts overlap (an error wrong on the digit can
also be wrong on some z); the last one is disjoint from the others.

"appearance" then asks which target looks G does not render. The released
images were made from the MNIST digit padded to 32x32 and set to 255 where
it is non-zero (benchmarks/mnistm_compare.py), so that layer marks the digit
pixels of the released image (and of each G(digit, z), whose digit is where
the run's source digit is non-zero: the same pixels when the run pads its
digits, --smaller_images=pad, as the released presets do). Two measures, in
grey levels: `contrast`, the mean over channels of |mean digit pixel - mean
background pixel|, and `background_std`, the spread of the background's
pixel values, each channel about its own mean (a flat field of any colour
is 0, a busy photo crop 40 or more).
For each, quantiles over the target test images and over the renders, and
per bin the share of the target images, their errors and error rate, and the
share of the renders.

Needs a run trained with --mnist_m_variant=released, MNIST as the source,
32x32 images (the released size) and target labels; the test images are
found in the released files by their bytes, so a held-out slice
(--test_size) and the released test split both work.
Read-only on the run's folder. Prints the JSON (with the code's commit).
"""

import hashlib
import json
import os
import sys

# Runnable from a checkout without installing the package.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
import numpy as np  # noqa: E402

FLAGS = flags.FLAGS


def _define_flags():
  """Defines the script's flags (once, from __main__: importing the module
  for its functions must not clash with pixelda_tf's --model_dir)."""
  flags.DEFINE_string("model_dir", None, "A finished run's folder.")
  flags.DEFINE_list("checkpoint", ["latest"],
                    "latest, best or a checkpoint prefix; several, comma-"
                    "separated, give one JSON with a list \"checkpoints\" "
                    "(the data are loaded once; a prefix may be in another "
                    "run folder with the same networks, e.g. a fork's).")
  flags.DEFINE_integer("z", 4, "Draws of z per digit for the adapted view.",
                       lower_bound=1)
  flags.DEFINE_string("json", None, "Also write the result here.")
  flags.DEFINE_string("png", None, "Also write the target error images "
                      "here (16 a row, in test order; of the last "
                      "checkpoint).")


def locate(images: np.ndarray, candidates: np.ndarray) -> np.ndarray:
  """Position in `candidates` of each image, matched byte for byte.

  Args:
    images: uint8 (N, H, W, C), the images to find.
    candidates: uint8 (M, H, W, C), where to find them.

  Returns:
    int64 (N,): for each image, its index in `candidates`.

  Raises:
    ValueError: an image is not among the candidates, or two candidates are
      the same bytes (the match would be ambiguous).
  """
  def key(x):
    return hashlib.sha1(np.ascontiguousarray(x).tobytes()).hexdigest()
  where = {}
  for i, c in enumerate(candidates):
    if where.setdefault(key(c), i) != i:
      raise ValueError(f"released images {where[key(c)]} and {i} are "
                       "identical; cannot tell which one a test image is")
  out = []
  for j, x in enumerate(images):
    if key(x) not in where:
      raise ValueError(f"test image {j} is not among the released images; "
                       "was the run trained on another MNIST-M variant?")
    out.append(where[key(x)])
  return np.array(out, np.int64)


def tally(labels, target_pred, source_pred, adapted_preds) -> dict:
  """Splits the target errors by what T does on the same digit elsewhere.

  Args:
    labels, target_pred, source_pred: int arrays (N,).
    adapted_preds: int array (K, N), one row per draw of z.
  """
  labels = np.asarray(labels)
  target_wrong = np.asarray(target_pred) != labels
  source_wrong = np.asarray(source_pred) != labels
  adapted_wrong = (np.asarray(adapted_preds) != labels).sum(0)
  k = len(adapted_preds)
  pairs = {}
  for i in np.nonzero(target_wrong)[0]:
    pair = f"{labels[i]}->{target_pred[i]}"
    pairs[pair] = pairs.get(pair, 0) + 1
  return {
      "examples": int(len(labels)),
      "accuracy": {"target": float(1 - target_wrong.mean()),
                   "source": float(1 - source_wrong.mean()),
                   "adapted": float(1 - adapted_wrong.mean() / k)},
      "target_errors": int(target_wrong.sum()),
      "of_which_source_wrong": int((target_wrong & source_wrong).sum()),
      "of_which_adapted_wrong_any": int(
          (target_wrong & (adapted_wrong > 0)).sum()),
      "of_which_adapted_wrong_all": int(
          (target_wrong & (adapted_wrong == k)).sum()),
      "of_which_right_on_source_and_every_adapted": int(
          (target_wrong & ~source_wrong & (adapted_wrong == 0)).sum()),
      "confusions": dict(sorted(pairs.items(), key=lambda kv: -kv[1])),
  }


# Lower bin edges, in grey levels (0-255), for the appearance measures.
BINS = {"contrast": (0, 20, 40, 80), "background_std": (0, 30, 40, 50, 60)}
QUANTILES = (0.1, 0.5, 0.9, 0.99)


def appearance(images: np.ndarray, digit: np.ndarray,
               background: np.ndarray | None = None) -> dict:
  """Digit contrast and background spread of each image.

  Args:
    images: uint8 (N, H, W, 3).
    digit: bool (N, H, W), True on the digit's pixels.
    background: bool (N, H, W), the pixels measured as background; default
      every pixel off the digit (benchmarks/mnistm_compare.py leaves out the
      digit layer's anti-aliased edge).

  Returns:
    {"contrast": float64 (N,), "background_std": float64 (N,)}: the mean
    over channels of |mean digit pixel - mean background pixel|, and the
    background's texture: the root of the mean over channels of each
    channel's variance over the background pixels (a flat field of any
    colour is 0), both in grey levels; and the means themselves,
    "digit_mean" and "background_mean", float64 (N, C).

  Raises:
    ValueError: shapes disagree, or an image has no digit or no background
      pixel.
  """
  if background is None:
    background = ~digit
  if (images.ndim != 4
      or not images.shape[:3] == digit.shape == background.shape):
    raise ValueError(f"images {images.shape}, digit masks {digit.shape} and "
                     f"background masks {background.shape} do not match: "
                     "give (N, H, W, C), (N, H, W) and (N, H, W)")
  fg = digit[..., None].astype(np.float64)
  bg = background[..., None].astype(np.float64)
  n_fg, n_bg = fg.sum((1, 2)), bg.sum((1, 2))  # (N, 1)
  empty = np.nonzero((n_fg[:, 0] == 0) | (n_bg[:, 0] == 0))[0]
  if len(empty):
    raise ValueError(f"image {empty[0]} has no digit or no background pixel: "
                     "its mask is not a released digit layer")
  x = images.astype(np.float64)
  fg_mean = (x * fg).sum((1, 2)) / n_fg  # (N, C)
  bg_mean = (x * bg).sum((1, 2)) / n_bg
  # Each channel about its own mean: a flat coloured field has no spread.
  var = (((x - bg_mean[:, None, None, :]) ** 2) * bg).sum((1, 2)) / n_bg
  return {"contrast": np.abs(fg_mean - bg_mean).mean(1),
          "background_std": np.sqrt(var.mean(1)),
          "digit_mean": fg_mean, "background_mean": bg_mean}


def binned(target: np.ndarray, wrong: np.ndarray, rendered: np.ndarray,
           edges) -> dict:
  """One appearance measure over the target images and G's renders.

  Args:
    target: float (N,), the measure on the target test images.
    wrong: bool (N,), T's errors on them.
    rendered: float (M,), the measure on the renders (any M).
    edges: increasing lower bin edges; the last bin is open.
  """
  target, wrong = np.asarray(target), np.asarray(wrong, bool)
  rendered = np.asarray(rendered)
  q = lambda v: {str(p): round(float(np.quantile(v, p)), 1)  # pylint: disable=unnecessary-lambda-assignment
                 for p in QUANTILES}
  bins = []
  for lo, hi in zip(edges, list(edges[1:]) + [np.inf]):
    t = (target >= lo) & (target < hi)
    bins.append({
        "from": lo, "to": None if hi == np.inf else hi,
        "target_share": float(t.mean()), "errors": int(wrong[t].sum()),
        "error_rate": float(wrong[t].mean()) if t.any() else None,
        "rendered_share": float(((rendered >= lo) & (rendered < hi)).mean())})
  return {"quantiles": {"target": q(target), "rendered": q(rendered),
                        "target_errors": q(target[wrong]) if wrong.any()
                                         else None},
          "bins": bins}


def _predict(model, images, batch=500):
  """Class indices int64 (N,) of float32 images (N, S, S, 3) in [-1, 1]."""
  from pixelda_tf import evaluation  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  unlabelled = np.zeros(len(images), np.int64)
  return evaluation.predict(model, tf.data.Dataset.from_tensor_slices(
      (images, unlabelled)).batch(batch))[1]


def main(argv):
  del argv
  from pixelda_tf import runner  # pylint: disable=g-import-not-at-top
  # Before the imports below load TensorFlow, which reads
  # TF_ENABLE_ONEDNN_OPTS once, when it loads.
  runner.prepare_process()
  from pixelda_tf import data  # pylint: disable=g-import-not-at-top
  from pixelda_tf import evaluation  # pylint: disable=g-import-not-at-top
  from pixelda_tf import exporting  # pylint: disable=g-import-not-at-top
  from pixelda_tf import provenance  # pylint: disable=g-import-not-at-top
  from pixelda_tf import rundir  # pylint: disable=g-import-not-at-top
  from pixelda_tf.data import pipeline  # pylint: disable=g-import-not-at-top
  from pixelda_tf.data import sources  # pylint: disable=g-import-not-at-top
  import result_fields  # pylint: disable=g-import-not-at-top  (this folder)

  cfg = rundir.load_config(FLAGS.model_dir)
  if cfg.data.target != "mnist_m" or cfg.data.source != "mnist":
    raise app.UsageError("needs a run from MNIST to the released MNIST-M")
  if cfg.data.image_size != 32:
    raise app.UsageError(
        f"the run's images are {cfg.data.image_size}x{cfg.data.image_size}; "
        "the byte match needs the released 32x32 (train at --image_size=32)")
  test = data.load_domain(cfg.data, "target", "test")
  if test.labels is None:
    raise app.UsageError("the run's target test split has no labels "
                         "(--target_labels=none): nothing to score")
  released, _, _ = sources.load(cfg.data, "target")
  split = "test" if "test_images" in released else "train"
  where = locate(test.images, released[f"{split}_images"])
  digits = data.load_domain(cfg.data, "source", split)
  if not np.array_equal(digits.labels[where], test.labels):
    raise ValueError(f"the released {split} labels differ from MNIST's at the "
                     "same positions: not the released MNIST-M")
  x_target = np.asarray(pipeline.to_model_range(test.images))
  x_source = np.asarray(pipeline.to_model_range(digits.images[where],
                                                cfg.data.image_size))
  # The released image's digit layer: MNIST's 28x28 digit padded, non-zero
  # = digit. A render's digit is where the run's source digit is non-zero
  # (the same pixels under --smaller_images=pad).
  raw, _, _ = sources.load(cfg.data, "source")
  layer = np.pad(raw[f"{split}_images"][where].reshape(len(where), 28, 28),
                 ((0, 0), (2, 2), (2, 2))) > 0
  seen = appearance(test.images, layer)
  source_layer = digits.images[where].max(-1) > 0

  def score(checkpoint):
    model = rundir.restore(FLAGS.model_dir, checkpoint)
    classifier, generator = model.nets.classifier, model.nets.generator
    noise_dim = generator.inputs[1].shape[-1]
    z = np.stack([evaluation.noise(0, int(i), FLAGS.z, noise_dim)
                  for i in where])
    renders = [np.concatenate([
        np.asarray(generator([x_source[i:i + 500], z[i:i + 500, k]],
                             training=False))
        for i in range(0, len(where), 500)]) for k in range(FLAGS.z)]
    target_pred = _predict(classifier, x_target)
    is_wrong = target_pred != test.labels
    out = {"model_dir": FLAGS.model_dir, "checkpoint": model.restored_from,
           "step": int(model.step), "released_split": split, "z": FLAGS.z,
           **tally(test.labels, target_pred, _predict(classifier, x_source),
                   np.stack([_predict(classifier, r) for r in renders]))}
    drawn = [appearance(np.asarray(exporting.to_uint8(r)), source_layer)
             for r in renders]
    out["appearance"] = {
        name: binned(seen[name], is_wrong,
                     np.concatenate([d[name] for d in drawn]), edges)
        for name, edges in BINS.items()}
    wrong = np.nonzero(is_wrong)[0]
    out["errors_released_index"] = [int(where[i]) for i in wrong]
    busy = [b for b in out["appearance"]["background_std"]["bins"]
            if b["from"] >= 50]
    print(f"step {out['step']}: target {out['accuracy']['target']:.2%}, "
          f"{out['target_errors']} errors ({sum(b['errors'] for b in busy)} "
          "on a background spread of 50 or more); background spread >= 50: "
          f"{sum(b['target_share'] for b in busy):.1%} of the target images, "
          f"{sum(b['rendered_share'] for b in busy):.2%} of G's renders",
          file=sys.stderr, flush=True)
    return out, wrong

  results = [score(c) for c in FLAGS.checkpoint]
  if len(results) == 1:
    out, wrong = results[0]
    out["code"] = provenance.code_version()
  else:
    out = {"checkpoints": [r for r, _ in results],
           "code": provenance.code_version()}
  if FLAGS.png and len(results[-1][1]):
    wrong = results[-1][1]
    rows = -(-len(wrong) // 16)
    grid = np.full((rows * 34, 16 * 34, 3), 255, np.uint8)
    for n, i in enumerate(wrong):
      r, c = divmod(n, 16)
      grid[r * 34 + 1:r * 34 + 33, c * 34 + 1:c * 34 + 33] = test.images[i]
    evaluation.save_png(FLAGS.png, grid)
  out = {**result_fields.fields(result_fields.run_test_split(
      FLAGS.model_dir, len(test.labels))), **out}
  text = json.dumps(out, indent=1)
  print(text)
  if FLAGS.json:
    with open(FLAGS.json, "w", encoding="utf-8") as f:
      f.write(text + "\n")


if __name__ == "__main__":
  _define_flags()
  flags.mark_flag_as_required("model_dir")
  app.run(main)
