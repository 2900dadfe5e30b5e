"""The generated MNIST-M recipe pinned on tiny arrays.

The released set's recipe (recovered byte for byte by
benchmarks/mnistm_compare.py): digit binarized to 0/255 and padded 28->32,
`|crop - digit|` per channel, crop corner in [0, H - 33] x [0, W - 33].
"""

import os
import sys

import numpy as np
import pytest

from pixelda_tf.data import mnist_m


def _mnist(train: np.ndarray, test: np.ndarray) -> dict:
  return {"train_images": train, "train_labels": np.arange(len(train)),
          "test_images": test, "test_labels": np.arange(len(test))}


def test_digit_is_binarized_padded_and_difference_blended():
  rng = np.random.default_rng(0)
  # Grey levels 1 and 128 must count as ink, exactly like 255.
  digits = rng.choice(np.array([0, 1, 128, 255], np.uint8), (3, 28, 28))
  photo = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)  # one crop only
  out = mnist_m.generate(_mnist(digits, digits[:1]), [photo], seed=0)
  layer = np.zeros((3, 32, 32), np.int16)
  layer[:, 2:30, 2:30] = np.where(digits > 0, 255, 0)
  want = np.abs(photo.astype(np.int16)[None] - layer[..., None])
  assert out["train_images"].dtype == np.uint8
  np.testing.assert_array_equal(out["train_images"], want)
  np.testing.assert_array_equal(out["test_images"], want[:1])
  np.testing.assert_array_equal(out["train_labels"], [0, 1, 2])


def test_known_pixels():
  digit = np.zeros((1, 28, 28), np.uint8)
  digit[0, 0, 0] = 1      # faint ink -> full 255
  digit[0, 27, 27] = 200
  photo = np.full((32, 32, 3), [10, 100, 250], np.uint8)
  image = mnist_m.generate(_mnist(digit, digit), [photo], seed=3)[
      "train_images"][0]
  np.testing.assert_array_equal(image[2, 2], [245, 155, 5])
  np.testing.assert_array_equal(image[29, 29], [245, 155, 5])
  # The 2-pixel frame and untouched pixels show the photo itself.
  np.testing.assert_array_equal(image[0, 0], [10, 100, 250])
  np.testing.assert_array_equal(image[3, 2], [10, 100, 250])
  np.testing.assert_array_equal(image[30, 30], [10, 100, 250])


def test_crop_corner_range_is_that_of_the_released_set():
  # Pixel (y, x) of the photo encodes its position, so the corner of each
  # crop can be read off the output's top-left pixel (no ink there).
  h, w = 40, 36
  ys, xs = np.mgrid[:h, :w]
  photo = np.stack([ys, xs, np.zeros_like(ys)], -1).astype(np.uint8)
  digits = np.zeros((4000, 28, 28), np.uint8)
  out = mnist_m.generate(_mnist(digits, digits[:1]), [photo], seed=1)
  corner_y = out["train_images"][:, 0, 0, 0]
  corner_x = out["train_images"][:, 0, 0, 1]
  # [0, H - 33]: every start position except the last one, H - 32.
  assert set(corner_y.tolist()) == set(range(h - 32))
  assert set(corner_x.tolist()) == set(range(w - 32))
  # Roughly uniform: each of the 8 rows is drawn about 500 times.
  assert np.bincount(corner_y).min() > 400


def test_photo_of_exactly_32_pixels_has_one_crop():
  photo = np.arange(32 * 32 * 3).reshape(32, 32, 3).astype(np.uint8)
  digits = np.zeros((50, 32, 32), np.uint8)
  out = mnist_m.blend(digits, [photo], seed=0, split="test")
  np.testing.assert_array_equal(out, np.broadcast_to(photo, out.shape))


def test_photos_drawn_from_all_photos_and_seeded():
  photos = [np.full((40, 40, 3), v, np.uint8) for v in (0, 50, 100, 150)]
  digits = np.zeros((400, 28, 28), np.uint8)
  a = mnist_m.generate(_mnist(digits, digits[:1]), photos, seed=5)
  b = mnist_m.generate(_mnist(digits, digits[:1]), photos, seed=5)
  c = mnist_m.generate(_mnist(digits, digits[:1]), photos, seed=6)
  used = a["train_images"][:, 0, 0, 0]
  assert set(used.tolist()) == {0, 50, 100, 150}
  np.testing.assert_array_equal(a["train_images"], b["train_images"])
  assert not np.array_equal(a["train_images"], c["train_images"])


def test_digits_larger_than_32_rejected():
  big = np.zeros((1, 33, 33), np.uint8)
  with pytest.raises(ValueError, match="33x33"):
    mnist_m.generate(_mnist(big, big), [np.zeros((40, 40, 3), np.uint8)], 0)


# --- benchmarks/mnistm_compare.py's measurements --------------------------------

def _compare_module():
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  sys.path.insert(0, os.path.join(root, "benchmarks"))
  try:
    import mnistm_compare  # pylint: disable=g-import-not-at-top
  finally:
    sys.path.pop(0)
  return mnistm_compare


def test_locate_finds_photo_and_position_under_the_right_template():
  compare = _compare_module()
  rng = np.random.default_rng(0)
  photos = [rng.integers(0, 256, (40, 37, 3), dtype=np.uint8)
            for _ in range(3)]
  digits = rng.choice(np.array([0, 0, 90, 255], np.uint8), (4, 28, 28))
  layers = {"pad_binary": np.pad(np.where(digits > 0, 255, 0).astype(
                np.uint8), ((0, 0), (2, 2), (2, 2))),
            "pad_grey": np.pad(digits, ((0, 0), (2, 2), (2, 2)))}
  where = [(0, 0, 0), (2, 8, 5), (1, 3, 4), (2, 7, 0)]
  released = np.stack([
      np.abs(photos[p][y:y + 32, x:x + 32].astype(np.int16)
             - layers["pad_binary"][i][..., None].astype(np.int16))
      for i, (p, y, x) in enumerate(where)]).astype(np.uint8)
  out = compare.locate(released, layers, photos)
  assert out["pad_binary"]["reproduced_exactly"] == 4
  assert out["pad_grey"]["reproduced_exactly"] == 0
  assert out["pad_binary"]["max_y_minus_h"] == 8 - 40
  assert out["pad_binary"]["photos_used"] == 3


def test_stats_of_a_known_rectangle():
  compare = _compare_module()
  layer = np.zeros((1, 32, 32), np.uint8)
  layer[0, 10:14, 5:15] = 255
  layer[0, 20, 20] = 100  # one grey pixel, below the 128 mask threshold
  photo = np.full((1, 32, 32, 3), 40, np.uint8)
  image = np.abs(photo.astype(np.int16) - layer[..., None]).astype(np.uint8)
  s = compare.stats(image, layer)
  assert s["digit_grey_fraction"] == pytest.approx(1 / 41)
  assert s["stroke_area_px"] == 40
  assert (s["bbox_height_px"], s["bbox_width_px"]) == (4, 10)
  assert (s["centroid_y"], s["centroid_x"]) == (11.5, 9.5)
  assert s["bg_mean_rgb"] == [40, 40, 40] and s["bg_gradient"] == 0
  assert s["contrast_abs"] == pytest.approx(215 - 40)
  assert s["digit_brighter_fraction"] == 1
  # The within-image spread is each channel's about its own mean, on the
  # d == 0 pixels only: a flat red field is 0 whatever the digit's edge,
  # and a channel at 100 on the top half, 0 below, spreads by its Bernoulli std.
  photo = np.zeros((1, 32, 32, 3), np.uint8)
  photo[..., 0] = 200
  image = np.abs(photo.astype(np.int16) - layer[..., None]).astype(np.uint8)
  assert compare.stats(image, layer)["bg_std_within_image"] == 0
  photo[0, :16, :, 1] = 100
  image = np.abs(photo.astype(np.int16) - layer[..., None]).astype(np.uint8)
  s = compare.stats(image, layer)
  p = (16 * 32 - 40) / (32 * 32 - 41)  # background share of the top half
  assert s["bg_std_within_image"] == pytest.approx(
      np.sqrt(100 ** 2 * p * (1 - p) / 3))
  fit = compare.template_fit(image, {"right": layer,
                                     "wrong": np.zeros_like(layer)})
  assert fit["right"] < fit["wrong"]
