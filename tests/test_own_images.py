"""Your own images: splits, layouts, class names, label checks,
image modes, and the folder-writing script. No training here: the story
(train, evaluate, adapt, export, serve) is tests/test_own_images_story.py.
"""

import io
import json
import os
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from pixelda_tf import config as config_lib
from pixelda_tf import training
from pixelda_tf.config import DataConfig
from pixelda_tf.data import DataError
from pixelda_tf.data import class_names
from pixelda_tf.data import domains
from pixelda_tf.data import images
from pixelda_tf.data import load_domain
from pixelda_tf.data import mnist
from pixelda_tf.data import mnist_m
from pixelda_tf.data import splits
from pixelda_tf.data import usps
from tests import make_fake_data
from tests import tiny

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


pytestmark = pytest.mark.usefixtures("offline_data")


def cfg_for(tmp_path, fake, **kw):
  return tiny.data_config(tmp_path, fake, **{"image_size": 16, **kw})


def write_class_folder(root, per_class, classes=None, size=12, seed=0,
                       start=0):
  """Sorted class subfolders: the layout where "the last N" is one class."""
  rng = np.random.default_rng(seed)
  classes = classes or [str(c) for c in range(len(per_class))]
  for name, n in zip(classes, per_class):
    os.makedirs(root / name, exist_ok=True)
    for i in range(n):
      Image.fromarray(rng.integers(0, 256, (size, size, 3), np.uint8)).save(
          root / name / f"{start + i:04d}.png")


def write_flat(root, n, size=12, seed=1):
  rng = np.random.default_rng(seed)
  os.makedirs(root, exist_ok=True)
  for i in range(n):
    Image.fromarray(rng.integers(0, 256, (size, size, 3), np.uint8)).save(
        root / f"{i:04d}.png")


def as_set(x):
  return {a.tobytes() for a in x}


# --- stratified_split ---------------------------------------------------------

def test_stratified_split_is_proportional_seeded_and_disjoint():
  labels = np.repeat(np.arange(4), [40, 30, 20, 10])   # sorted by class
  keep, held = splits.stratified_split(labels, 10, seed=5)
  assert np.bincount(labels[held], minlength=4).tolist() == [4, 3, 2, 1]
  assert len(keep) == 90 and not set(keep) & set(held)
  assert sorted(np.concatenate([keep, held])) == list(range(100))
  again = splits.stratified_split(labels, 10, seed=5)
  np.testing.assert_array_equal(held, again[1])
  other = splits.stratified_split(labels, 10, seed=6)[1]
  assert not np.array_equal(held, other)
  assert np.bincount(labels[other], minlength=4).tolist() == [4, 3, 2, 1]
  # Remainders go to the largest fractional shares: 7 * [.4 .3 .2 .1].
  _, held7 = splits.stratified_split(labels, 7, seed=0)
  assert np.bincount(labels[held7], minlength=4).tolist() == [3, 2, 1, 1]
  with pytest.raises(ValueError, match="cannot hold out 101 of 100"):
    splits.stratified_split(labels, 101, seed=0)


def test_auto_test_size():
  assert splits.auto_test_size(60000, 0) == 1000
  assert splits.auto_test_size(5000, 0) == 500
  assert splits.auto_test_size(9, 0) == 1
  assert splits.auto_test_size(100, 30) == 30
  assert splits.auto_test_size(100, 80) == 50   # never more than half


# --- stratified validation / test slices in every layout ----------------------

def _hist(domain, k=10):
  return np.bincount(domain.labels, minlength=k).tolist()


def test_builtin_arrays_val_slice_is_stratified(tmp_path, fake):
  # Fake USPS train: 40 images, labels i % 10; the test split is its own.
  cfg = cfg_for(tmp_path, fake, target="usps",
                usps_path=str(fake / "usps.h5"), val_size=20)
  val = load_domain(cfg, "target", "val")
  train = load_domain(cfg, "target", "train")
  test = load_domain(cfg, "target", "test")
  assert _hist(val) == [2] * 10 and _hist(train) == [2] * 10
  assert "stratified" in val.origin
  assert len(test) == 10 and not as_set(val.images) & as_set(train.images)


def test_class_folders_without_test_get_stratified_val_and_test(tmp_path,
                                                                 fake):
  root = tmp_path / "digits"
  write_class_folder(root, [20] * 10)
  cfg = cfg_for(tmp_path, fake, target="folder", target_dir=str(root),
                val_size=30, test_size=20)
  val, test, train = (load_domain(cfg, "target", s)
                      for s in ("val", "test", "train"))
  assert _hist(test) == [2] * 10 and _hist(val) == [3] * 10
  assert _hist(train) == [15] * 10
  assert "no test split of its own" in test.origin
  sets = [as_set(d.images) for d in (train, val, test)]
  assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])


def test_class_folders_with_test_get_a_stratified_val(tmp_path, fake):
  root = tmp_path / "digits"
  write_class_folder(root / "train", [12] * 10)
  write_class_folder(root / "test", [3] * 10, seed=9)
  cfg = cfg_for(tmp_path, fake, target="folder", target_dir=str(root),
                val_size=40)
  assert _hist(load_domain(cfg, "target", "val")) == [4] * 10
  assert _hist(load_domain(cfg, "target", "test")) == [3] * 10
  assert _hist(load_domain(cfg, "target", "train")) == [8] * 10


def test_released_train_only_gets_a_stratified_test_slice(tmp_path, fake):
  root = tmp_path / "mnist_m"
  shutil.copytree(fake / "mnist_m", root)
  shutil.rmtree(root / "mnist_m_test")
  os.remove(root / "mnist_m_test_labels.txt")
  cfg = cfg_for(tmp_path, fake, mnist_m_dir=str(root),
                mnist_m_variant="released", val_size=10, test_size=10)
  # 20 train images, 2 per class: 10 test, then 10 validation.
  assert _hist(load_domain(cfg, "target", "test")) == [1] * 10
  # 10 left, 1 per class; validation takes half (5), ties to the lower ids.
  assert _hist(load_domain(cfg, "target", "val")) == [1] * 5 + [0] * 5


# --- unlabelled targets, labelled test / validation folders -------------------

def test_flat_train_with_labelled_test_is_accepted(tmp_path, fake):
  root = tmp_path / "target"
  write_flat(root / "train", 12)
  write_class_folder(root / "test", [2, 3], classes=["3", "7"])
  cfg = cfg_for(tmp_path, fake, target="folder", target_dir=str(root))
  train = load_domain(cfg, "target", "train")
  test = load_domain(cfg, "target", "test")
  assert train.labels is None and len(train) == 12
  # Relabelled by name to the source's ids: folder "7" is MNIST's class 7.
  assert test.labels.tolist() == [3, 3, 7, 7, 7] and test.num_classes == 10
  val = load_domain(cfg, "target", "val")
  assert val.labels is None and "no labelled val split" in val.origin


def test_target_class_names_must_be_source_names(tmp_path, fake):
  root = tmp_path / "target"
  write_flat(root / "train", 4)
  write_class_folder(root / "test", [2, 2], classes=["cat", "dog"])
  cfg = cfg_for(tmp_path, fake, target="folder", target_dir=str(root))
  with pytest.raises(DataError, match=r"\['cat', 'dog'\].*source has "
                     r"\['0', '1', .*'9'\]"):
    load_domain(cfg, "target", "test")


def test_target_subfolders_that_are_not_classes(tmp_path, fake):
  """An unlabelled target organised in subfolders (day/, night/; or train/
  alone): refused with the way out named, read as one pool with it."""
  root = tmp_path / "target"
  write_flat(root / "day", 3)
  write_flat(root / "night", 2, seed=2)
  only_train = tmp_path / "target2"
  write_flat(only_train / "train", 4)
  for folder, n, names in ((root, 5, r"\['day', 'night'\]"),
                           (only_train, 4, r"\['train'\]")):
    cfg = cfg_for(tmp_path, fake, target="folder", target_dir=str(folder))
    with pytest.raises(DataError, match=names + ".*--target_labels=none"):
      load_domain(cfg, "target", "train")
    cfg = cfg_for(tmp_path, fake, target="folder", target_dir=str(folder),
                  target_labels="none")
    train = load_domain(cfg, "target", "train")
    assert train.labels is None and len(train) == n
    assert train.num_classes == 10


def test_target_val_dir_is_the_validation_split(tmp_path, fake):
  write_flat(tmp_path / "target", 10)
  write_class_folder(tmp_path / "val", [2, 1], classes=["a", "b"], seed=4)
  cfg = cfg_for(tmp_path, fake, source="folder",
                source_dir=str(fake / "source_folder"), mnist_dir=None,
                target="folder", target_dir=str(tmp_path / "target"),
                target_val_dir=str(tmp_path / "val"))
  val = load_domain(cfg, "target", "val")
  assert val.labels.tolist() == [0, 0, 1] and str(tmp_path / "val") in \
      val.origin
  assert len(load_domain(cfg, "target", "train")) == 10   # nothing carved
  write_class_folder(tmp_path / "val2", [1], classes=["z"])
  bad = cfg_for(tmp_path, fake, source="folder",
                source_dir=str(fake / "source_folder"), mnist_dir=None,
                target="folder", target_dir=str(tmp_path / "target"),
                target_val_dir=str(tmp_path / "val2"))
  with pytest.raises(DataError, match=r"target_val_dir.*\['z'\].*\['a', 'b'\]"):
    load_domain(bad, "target", "val")


def _copy_tree(local, there):
  """Copies a local folder tree to a tf.io.gfile path."""
  for root, _, files in os.walk(local):
    rel = os.path.relpath(root, local)
    dest = there if rel == "." else f"{there}/{rel}"
    tf.io.gfile.makedirs(dest)
    for name in files:
      tf.io.gfile.copy(os.path.join(root, name), f"{dest}/{name}")


def test_own_image_folders_read_through_tf_file_systems(tmp_path, fake):
  # TensorFlow's in-memory file system stands in for gs://: listing and
  # reading must go through tf.io.gfile, not os.
  local = tmp_path / "target"
  write_flat(local / "train", 7)
  write_class_folder(local / "test", [2, 3], classes=["3", "7"])
  there = f"ram://{tmp_path.name}/target"
  _copy_tree(str(local), there)
  assert not os.path.exists(there)
  for split in ("train", "test"):
    want = load_domain(cfg_for(tmp_path, fake, target="folder",
                               target_dir=str(local)), "target", split)
    got = load_domain(cfg_for(tmp_path, fake, target="folder",
                              target_dir=there), "target", split)
    np.testing.assert_array_equal(got.images, want.images)
    assert (got.labels is None) == (want.labels is None)
    if want.labels is not None:
      np.testing.assert_array_equal(got.labels, want.labels)
  assert there in got.origin
  # A source folder too, and an unreadable file is named.
  _copy_tree(str(fake / "source_folder"), f"{there}_source")
  cfg = cfg_for(tmp_path, fake, source="folder", mnist_dir=None,
                source_dir=f"{there}_source", target="folder",
                target_dir=there)
  assert len(load_domain(cfg, "source", "train")) == len(load_domain(
      cfg_for(tmp_path, fake, source="folder", mnist_dir=None,
              source_dir=str(fake / "source_folder"), target="folder",
              target_dir=there), "source", "train"))
  with tf.io.gfile.GFile(f"{there}/train/9999.png", "wb") as f:
    f.write(b"not a png")
  with pytest.raises(DataError, match="9999.png: not a readable image"):
    load_domain(cfg_for(tmp_path, fake, target="folder", target_dir=there,
                        image_size=32), "target", "train")


def test_missing_folders_name_their_flag(tmp_path, fake):
  for flag in ("source_dir", "target_dir", "target_val_dir"):
    kw = dict(source="folder", source_dir=str(fake / "source_folder"),
              target="folder", target_dir=str(fake / "target_flat"),
              mnist_dir=None)
    kw[flag] = "/no/such/folder"
    domains._full.cache_clear()  # pylint: disable=protected-access
    with pytest.raises(DataError, match=f"--{flag}=/no/such/folder is not a "
                       "folder"):
      load_domain(cfg_for(tmp_path, fake, **kw), "target", "val")


@pytest.mark.parametrize("mode, train_labelled, val_labelled, test_labelled", [
    ("auto", True, True, True),
    ("test", False, False, True),
    ("none", False, False, False),
])
def test_target_labels_flag(tmp_path, fake, mode, train_labelled,
                            val_labelled, test_labelled):
  cfg = cfg_for(tmp_path, fake, target="usps", usps_path=str(fake / "usps.h5"),
                val_size=10, target_labels=mode)
  got = [load_domain(cfg, "target", s).labels is not None
         for s in ("train", "val", "test")]
  assert got == [train_labelled, val_labelled, test_labelled]
  # Only "auto" carves a validation slice out of train.
  assert len(load_domain(cfg, "target", "train")) == (30 if mode == "auto"
                                                      else 40)


def test_config_checks_for_the_new_flags():
  base = config_lib.Config()
  with pytest.raises(config_lib.ConfigError, match="target_only.*none"):
    config_lib.validate(base.__class__(
        data=DataConfig(target_labels="none"),
        train=config_lib.TrainConfig(mode="target_only")))
  with pytest.raises(config_lib.ConfigError, match="--target_labels='some'"):
    config_lib.validate(base.__class__(data=DataConfig(target_labels="some")))
  with pytest.raises(config_lib.ConfigError, match="--test_size=-1"):
    config_lib.validate(base.__class__(data=DataConfig(test_size=-1)))


# --- class names ----------------------------------------------------------------

def test_class_names_and_num_classes_check(tmp_path, fake):
  cfg = cfg_for(tmp_path, fake, source="folder",
                source_dir=str(fake / "source_folder"), mnist_dir=None,
                target="folder", target_dir=str(fake / "target_flat"))
  assert class_names(cfg) == ["a", "b"]
  assert class_names(cfg_for(tmp_path, fake, target="usps",
                             usps_path="x")) == [str(i) for i in range(10)]
  source = load_domain(cfg, "source", "train")
  full = config_lib.Config(data=cfg)
  with pytest.raises(config_lib.ConfigError, match="2 classes but "
                     "--num_classes=10: pass --num_classes=2"):
    training._check_num_classes(source, full)  # pylint: disable=protected-access
  training._check_num_classes(  # pylint: disable=protected-access
      source, config_lib.Config(
          data=cfg, classifier=config_lib.ClassifierConfig(num_classes=2)))


def test_export_label_names_are_the_source_folder_names(tmp_path, fake):
  from pixelda_tf import exporting  # pylint: disable=g-import-not-at-top
  cfg = config_lib.Config(
      data=cfg_for(tmp_path, fake, source="folder",
                   source_dir=str(fake / "source_folder"), mnist_dir=None,
                   target="folder", target_dir=str(fake / "target_flat")),
      classifier=config_lib.ClassifierConfig(num_classes=2))
  assert exporting.label_names(cfg) == ["a", "b"]
  assert exporting.contract(cfg)["classifier"]["label_names"] == ["a", "b"]
  assert exporting.label_names(config_lib.Config()) == [str(i) for i in range(10)]


# --- labels checked where they are read ---------------------------------------

def test_idx_label_out_of_range_names_file_and_range(tmp_path, fake):
  folder = tmp_path / "mnist"
  shutil.copytree(fake / "mnist", folder)
  labels = np.arange(make_fake_data.N_TEST) % 10
  labels[5] = 10
  make_fake_data.write_idx(str(folder / "t10k-labels-idx1-ubyte.gz"), labels)
  with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte.gz: entry 5 "
                     r"has label 10 .*\[0, 10\)"):
    mnist.load_idx_folder(str(folder))


@pytest.mark.parametrize("value, shown", [(10, "10"), (2.5, "2.5"),
                                          (-1, "-1")])
def test_usps_h5_bad_label(tmp_path, value, shown):
  path = tmp_path / "usps.h5"
  with h5py.File(path, "w") as f:
    for split in ("train", "test"):
      f[f"{split}/data"] = np.zeros((4, 256), np.float32)
      target = np.arange(4).astype(np.float64 if value == 2.5 else np.int64)
      if split == "test":
        target[2] = value
      f[f"{split}/target"] = target
  with pytest.raises(DataError, match=rf"usps.h5:test/target: row 2 has label "
                     rf"{shown}.*\[0, 10\)"):
    usps.read_h5(str(path))


@pytest.mark.parametrize("label", ["11", "3.5", "x", "0"])
def test_usps_libsvm_bad_label_names_line(tmp_path, label):
  path = tmp_path / "usps"
  path.write_text("1 1:0.5\n" + f"{label} 1:0.5\n")
  with pytest.raises(DataError, match=f"usps:2: label '{label}' is not an "
                     "integer in 1..10"):
    usps.read_libsvm(str(path))


def test_usps_libsvm_accepts_float_written_labels(tmp_path):
  path = tmp_path / "usps"
  path.write_text("1.0 1:0.5\n10 2:1\n")
  assert usps.read_libsvm(str(path))[1].tolist() == [0, 9]


@pytest.mark.parametrize("label", ["10", "-1", "3.0"])
def test_released_label_file_bad_label_names_line(tmp_path, label):
  path = tmp_path / "mnist_m_train_labels.txt"
  path.write_text(f"00000000.png 1\n00000001.png {label}\n")
  with pytest.raises(DataError, match=rf"mnist_m_train_labels.txt:2: label "
                     rf"'{label}' of 00000001.png .*\[0, 10\)"):
    mnist_m._read_labels(str(path))  # pylint: disable=protected-access


# --- image modes ------------------------------------------------------------------

def _encode(im, fmt):
  buf = io.BytesIO()
  im.save(buf, fmt)
  return buf.getvalue()


def test_16_bit_grey_is_scaled_not_clipped():
  ramp = np.linspace(0, 65535, 64).astype(np.uint16).reshape(8, 8)
  want = np.round(ramp * (255 / 65535)).astype(np.uint8)
  png = _encode(Image.fromarray(ramp), "PNG")
  assert Image.open(io.BytesIO(png)).mode == "I;16"
  got = images.decode(png, "ramp.png")
  assert got.shape == (8, 8, 3)
  np.testing.assert_array_equal(got[..., 0], want)
  assert len(np.unique(got)) > 32          # clipped, it would be ~2 values
  # Mode "I" (32-bit) is taken as 16-bit data; below 0 / above 65535 clip.
  wide = ramp.astype(np.int32)
  wide[0, 0], wide[0, 1] = -5, 70000
  tif = _encode(Image.fromarray(wide), "TIFF")
  assert Image.open(io.BytesIO(tif)).mode == "I"
  got = images.decode(tif, "ramp.tif", mode="L")
  assert got[0, 0] == 0 and got[0, 1] == 255
  np.testing.assert_array_equal(got.reshape(-1)[2:], want.reshape(-1)[2:])


@pytest.mark.parametrize("mode, fmt", [
    ("P", "PNG"), ("PA", "TIFF"), ("LA", "PNG"), ("RGBA", "PNG"),
    ("CMYK", "JPEG"), ("1", "PNG"), ("L", "PNG"), ("RGB", "BMP"),
])
def test_other_modes_convert_as_pil_does(mode, fmt):
  rng = np.random.default_rng(0)
  rgba = Image.fromarray(rng.integers(0, 256, (6, 5, 4), np.uint8), "RGBA")
  if mode == "P":
    im = rgba.convert("RGB").quantize(8)
  elif mode == "PA":
    im = rgba.convert("RGB").quantize(8).convert("PA")
  else:
    im = rgba.convert(mode)
  data = _encode(im, fmt)
  with Image.open(io.BytesIO(data)) as reopened:
    assert reopened.mode == mode
    want = {m: np.asarray(reopened.convert(m)) for m in ("RGB", "L")}
  for m in ("RGB", "L"):
    np.testing.assert_array_equal(images.decode(data, "x", mode=m), want[m])
  # Alpha is dropped, not composited: a fully transparent pixel keeps its RGB.
  if mode == "RGBA":
    assert images.decode(data, "x").shape == (6, 5, 3)


def test_hidden_files_and_macos_folders_are_skipped(tmp_path, fake):
  root = tmp_path / "target"
  write_flat(root, 3)
  junk = b"\x00\x05\x16\x07 AppleDouble resource fork"
  (root / "._0000.png").write_bytes(junk)
  (root / ".thumb.jpg").write_bytes(junk)
  os.makedirs(root / "__MACOSX")
  (root / "__MACOSX" / "._0001.png").write_bytes(junk)
  cfg = cfg_for(tmp_path, fake, target="folder", target_dir=str(root))
  assert len(load_domain(cfg, "target", "train")) == 3


def test_a_name_that_is_not_utf8_is_named_with_the_fix(tmp_path, fake):
  root = tmp_path / "target"
  write_flat(root, 2)
  # As Info-ZIP's unzip leaves a Windows zip's "café.png" (cp1252).
  with open(os.path.join(os.fsencode(str(root)), b"caf\xe9.png"), "wb") as f:
    f.write((root / "0000.png").read_bytes())
  cfg = cfg_for(tmp_path, fake, target="folder", target_dir=str(root))
  with pytest.raises(DataError, match=r"not UTF-8 \(b'caf\\xe9.png'\).*"
                     "convmv"):
    load_domain(cfg, "target", "train")


def test_damaged_and_oversized_files_are_data_errors(tmp_path, fake,
                                                     monkeypatch):
  rng = np.random.default_rng(0)
  png = _encode(Image.fromarray(rng.integers(0, 256, (200, 200, 3),
                                             np.uint8)), "PNG")
  second_chunk = png.find(b"IDAT", png.find(b"IDAT") + 4) - 4
  assert second_chunk > 0        # PIL writes 64 KiB IDAT chunks
  # Zeros from there on, as an interrupted copy leaves it: PIL raises a
  # SyntaxError ("broken PNG file"), not an OSError.
  broken = png[:second_chunk] + bytes(len(png) - second_chunk)
  with pytest.raises(DataError, match=r"cut.png: not a readable image \("):
    images.decode(broken, "cut.png")
  root = tmp_path / "target"
  write_flat(root, 2)
  (root / "cut.png").write_bytes(broken)
  cfg = cfg_for(tmp_path, fake, target="folder", target_dir=str(root))
  with pytest.raises(DataError, match="cut.png: not a readable image"):
    load_domain(cfg, "target", "train")
  # Past twice PIL's pixel limit a file is refused by size, not as damaged.
  monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
  with pytest.raises(DataError, match="big.png: too large to decode safely.*"
                     "downscale"):
    images.decode(_encode(Image.new("RGB", (20, 20)), "PNG"), "big.png")


def test_float_tiff_is_read_as_0_to_1_and_other_files_are_counted(
    tmp_path, fake, caplog):
  ramp = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
  got = images.decode(_encode(Image.fromarray(ramp), "TIFF"), "f.tif",
                      mode="L")
  np.testing.assert_array_equal(got, np.round(ramp * 255).astype(np.uint8))
  with pytest.raises(DataError, match=r"hdr.tif: .*\[0, 1000\].*8- or "
                     "16-bit"):
    images.decode(_encode(Image.fromarray(ramp * 1000), "TIFF"), "hdr.tif")
  root = tmp_path / "target"
  write_flat(root, 2)
  (root / "IMG_1.heic").write_bytes(b"x")
  (root / "notes.txt").write_bytes(b"x")
  cfg = cfg_for(tmp_path, fake, target="folder", target_dir=str(root))
  with caplog.at_level("WARNING"):
    assert len(load_domain(cfg, "target", "train")) == 2
  assert "skipped 2 file(s)" in caplog.text and "IMG_1.heic" in caplog.text


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_exif_orientation_is_applied(fmt):
  """A phone's portrait photo: stored landscape with orientation 6 (rotate
  90 degrees clockwise to view)."""
  stored = np.zeros((16, 32, 3), np.uint8)        # 16 rows, 32 columns
  stored[:, :16] = 255                            # left half white
  exif = Image.Exif()
  exif[0x0112] = 6
  buf = io.BytesIO()
  Image.fromarray(stored).save(buf, fmt, exif=exif)
  got = images.decode(buf.getvalue(), "portrait")
  assert got.shape == (32, 16, 3)
  # Turned clockwise, the stored left half becomes the top half.
  assert got[:14].min() > 240 and got[18:].max() < 15


# --- the folders of the built-in comparison -------------------------------------

def test_folders_from_builtin_match_the_builtin_split(tmp_path, fake):
  sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
  try:
    import folders_from_builtin  # pylint: disable=g-import-not-at-top
  finally:
    sys.path.pop(0)
  out = tmp_path / "folders"
  counts = folders_from_builtin.write_folders(
      str(out), mnist.load_idx_folder(str(fake / "mnist")),
      usps.read_h5(str(fake / "usps.h5")), val_images=20, seed=3)
  assert counts["val_per_class"] == [2] * 10
  assert counts["target_train"] == 20 and counts["target_test"] == 10
  assert sorted(os.listdir(out / "mnist")) == [str(i) for i in range(10)]
  assert all(n.endswith(".png") for n in os.listdir(out / "usps" / "train"))
  builtin = cfg_for(tmp_path, fake, target="usps",
                    usps_path=str(fake / "usps.h5"), val_size=20, seed=3)
  folder = cfg_for(tmp_path, fake, source="folder",
                   source_dir=str(out / "mnist"), mnist_dir=None,
                   target="folder", target_dir=str(out / "usps"),
                   target_val_dir=str(out / "usps_val"), seed=3)
  for split in ("train", "val", "test"):
    a = load_domain(builtin, "target", split)
    b = load_domain(folder, "target", split)
    # USPS is 16x16 and so is image_size: the same pixels either way.
    assert as_set(a.images[..., 0]) == as_set(b.images[..., 0])
    if split != "train":
      assert sorted(a.labels.tolist()) == sorted(b.labels.tolist())
  assert load_domain(folder, "target", "train").labels is None
  assert len(load_domain(folder, "source", "train")) == 64
  with pytest.raises(FileExistsError, match="exists"):
    folders_from_builtin.write_folders(str(out), {}, {}, 20, 3)


def test_override_drops_the_runs_val_folder_for_another_target():
  base = tiny.tiny_config(data=dict(target_val_dir="/runs/val"))
  assert config_lib.override_data(base, {}).data.target_val_dir == "/runs/val"
  other = config_lib.override_data(base, {"target": "usps"})
  assert other.data.target_val_dir is None
  kept = config_lib.override_data(base, {"target": "usps",
                                   "target_val_dir": "/v"})
  assert kept.data.target_val_dir == "/v"


@pytest.mark.slow
def test_folders_from_builtin_binary(tmp_path, fake):
  env = dict(os.environ, PIXELDA_OFFLINE="1", PYTHONPATH=ROOT,
             TF_CPP_MIN_LOG_LEVEL="2")
  out = tmp_path / "folders"
  proc = subprocess.run(
      [sys.executable, os.path.join(ROOT, "benchmarks",
                                    "folders_from_builtin.py"),
       f"--out={out}", f"--mnist_dir={fake / 'mnist'}",
       f"--usps_path={fake / 'usps.h5'}", f"--data_dir={tmp_path / 'data'}",
       "--val_images=10", "--max_source=30"],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
  assert proc.returncode == 0, proc.stderr[-2000:]
  counts = json.loads(proc.stdout.strip().splitlines()[-1])
  assert counts["source"] == 30 and counts["val_per_class"] == [1] * 10
  assert sum(len(f) for _, _, f in os.walk(out / "mnist")) == 30
