"""benchmarks/peer_step.py and its PyTorch steps: the rounds' order, the
PyTorch-GAN peer's table on fake timings, and (only where torch is
installed; the project does not depend on it) the PyTorch-GAN step's FLOP
count and one step."""

import importlib
import os
import sys

from absl import flags
from absl.testing import flagsaver
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _import(name):
  """Imports benchmarks/<name>.py (a script folder, not a package)."""
  sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
  try:
    return importlib.import_module(name)
  finally:
    sys.path.pop(0)


@pytest.fixture
def peer(monkeypatch):
  monkeypatch.chdir(ROOT)  # the presets include each other by relative path
  module = _import("peer_step")
  with flagsaver.flagsaver():
    flags.FLAGS.unparse_flags()
    flags.FLAGS(["peer_step", "--rounds=3", "--steps=1"])
    yield module
  flags.FLAGS.unparse_flags()


def test_rounds_alternate_which_framework_goes_first(peer):
  calls = []

  def fake(fw, p, seconds):
    def run():
      calls.append((fw, p))
      return {"median_s": seconds.pop(0)}
    return run

  med, runs = peer._rounds({  # pylint: disable=protected-access
      ("a", "float32"): fake("a", "float32", [1.0, 3.0, 2.0]),
      ("a", "bf16"): fake("a", "bf16", [1.0, 1.0, 1.0]),
      ("b", "float32"): fake("b", "float32", [5.0, 4.0, 9.0])})
  ab = [("a", "float32"), ("a", "bf16"), ("b", "float32")]
  assert calls == ab + ab[2:] + ab[:2] + ab
  assert med == {("a", "float32"): 2.0, ("a", "bf16"): 1.0,
                 ("b", "float32"): 5.0}
  assert [(r["round"], r["framework"]) for r in runs][:4] == [
      (0, "a"), (0, "a"), (0, "b"), (1, "b")]


def test_pytorch_gan_peer_runs_at_the_configs_batch(peer, monkeypatch):
  torch_args = []

  def fake_ours(cfg, precision):
    assert precision == "float32" and cfg.discriminator.max_filters == 256
    assert cfg.train.batch_size == 16  # the preset's
    return {"median_s": 0.5, "gflop_per_step": 25.0}

  def fake_torch(script, *args):
    torch_args.append((os.path.basename(script), args))
    return {"median_s": 2.0, "gflop_per_step": 100.0}

  monkeypatch.setattr(peer, "_ours", fake_ours)
  monkeypatch.setattr(peer, "_torch", fake_torch)
  out = peer._pytorch_gan_peer(  # pylint: disable=protected-access
      "configs/mnistm_released_cpu_small_d.flags")
  assert torch_args == [("torch_gan_step.py",
                         ("--batch_size=16", "--img_size=32"))] * 3
  ours, theirs = out["table"]
  assert (ours["framework"], theirs["framework"]) == ("pixelda-tf",
                                                      "pytorch-gan")
  assert ours["images_per_s"] == pytest.approx(32.0)
  assert theirs["gflops"] == pytest.approx(50.0)
  assert out["pytorch_gan_s_over_pixelda_tf_s"] == pytest.approx(4.0)
  assert len(out["runs"]) == 6


def test_pytorch_gan_flops_match_a_hand_count_and_a_step_runs():
  torch = pytest.importorskip("torch")
  gan = _import("torch_gan_step")
  batch, size = 32, 32
  step, nets = gan.make_step(size)
  flops = gan.step_flops(*nets, batch, size)
  pixels = size * size
  fc, l1 = 10 * 3 * pixels, pixels * 64 * 6 * 9
  res, l2 = 12 * pixels * 64 * 64 * 9, pixels * 3 * 64 * 9
  # Forward, filter and input gradients: 3 passes, less fc's input (z).
  assert flops["generator"] == 2 * batch * (3 * (fc + l1 + res + l2) - fc)
  stack = (16 * 16 * 64 * 27 + 8 * 8 * 128 * 64 * 9 + 4 * 4 * 256 * 128 * 9
           + 2 * 2 * 512 * 256 * 9)
  first = 16 * 16 * 64 * 27
  d = stack + 2 * 2 * 512 * 9
  # D: three calls, of which only D(fake) in G's step needs its first
  # layer's input gradient.
  assert flops["discriminator"] == 2 * batch * (9 * d - 2 * first)
  c = stack + 2 * 2 * 512 * 10
  assert flops["classifier"] == 2 * batch * (6 * c - first)
  torch.manual_seed(0)
  xs = torch.rand(2, 3, size, size) * 2 - 1
  assert torch.isfinite(torch.tensor(step(xs, torch.tensor([1, 2]), xs)))
