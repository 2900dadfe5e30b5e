"""benchmarks/step_profile.py: its arithmetic on fake timings; a smoke run."""

import importlib
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _step_profile():
  """Imports benchmarks/step_profile.py (a script folder, not a package)."""
  sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
  try:
    return importlib.import_module("step_profile")
  finally:
    sys.path.pop(0)


def _parts():
  # G: 1 GFLOP forward in 0.1 s, 3 GFLOP forward + backward in 0.2 s; D and
  # T as fast per FLOP.
  def part(forward_s, forward_backward_s, forward_gflop,
           forward_backward_gflop):
    return {"forward_s": forward_s, "forward_backward_s": forward_backward_s,
            "inference_s": forward_s / 2, "forward_gflop": forward_gflop,
            "forward_backward_gflop": forward_backward_gflop}
  return {"generator": part(0.1, 0.2, 1.0, 3.0),
          "discriminator": part(0.05, 0.1, 0.5, 1.5),
          "classifier": part(0.02, 0.1, 0.2, 1.5)}


def test_network_figures_rates_fractions_and_the_remainder():
  profile = _step_profile()
  out = profile.network_figures(_parts(), fused_s=0.5, peak_gflops=100.0)
  g = out["networks"]["generator"]
  assert g["forward_gflops"] == pytest.approx(10.0)
  assert g["forward_fraction_of_peak"] == pytest.approx(0.1)
  assert g["forward_backward_gflops"] == pytest.approx(15.0)
  assert g["forward_backward_fraction_of_peak"] == pytest.approx(0.15)
  assert g["share_of_step"] == pytest.approx(0.4)
  assert out["networks"]["classifier"]["forward_fraction_of_peak"] == (
      pytest.approx(0.1))
  assert out["sum_s"] == pytest.approx(0.4)
  assert out["remainder_s"] == pytest.approx(0.1)
  assert out["sum_share"] == pytest.approx(0.8)
  # 6 GFLOP counted over the 0.5 s step: 12 GFLOP/s, 12% of the peak.
  assert out["step_gflops"] == pytest.approx(12.0)
  assert out["step_fraction_of_peak"] == pytest.approx(0.12)


def test_hour_shares_split_the_wall_clock_by_interval():
  profile = _step_profile()
  # Per step: 0.5 s stepping, 25 s / 250 = 0.1 s evaluating, 1 s / 250 =
  # 0.004 s saving, 0.05 s / 50 = 0.001 s of summaries; image grids never.
  out = profile.hour_shares(
      0.5, {"evaluations": 25.0, "checkpoints": 1.0, "summaries": 0.05,
            "image grids": 3.0},
      {"evaluations": 250, "checkpoints": 250, "summaries": 50,
       "image grids": 0})
  total = 0.605
  assert out["steps_per_hour"] == pytest.approx(3600 / total)
  assert out["shares"]["steps"] == pytest.approx(0.5 / total)
  assert out["shares"]["evaluations"] == pytest.approx(0.1 / total)
  assert out["shares"]["checkpoints"] == pytest.approx(0.004 / total)
  assert out["shares"]["image grids"] == 0.0
  assert sum(out["shares"].values()) == pytest.approx(1.0)
  assert out["seconds_per_hour"]["summaries"] == pytest.approx(
      3600 * 0.001 / total)


def test_report_names_every_part():
  profile = _step_profile()
  every = {"evaluations": 250, "checkpoints": 250, "summaries": 50}
  result = {
      "description": "batch 32", "batch_size": 32, "jit_compile": False,
      "fused": {"precision": "float32", "onednn": True, "median_s": 0.5,
                "images_per_s": 64.0, "gflop_per_step": 6.0, "gflops": 12.0,
                "fraction_of_peak": 0.12, "matmul_peak_gflops": 100.0,
                "matmul_dtype": "float32", "other_cpu_fraction": 0.0},
      "networks": profile.network_figures(_parts(), 0.5, 100.0),
      "networks_other_cpu_fraction": 0.0,
      "evaluation": {"evaluation_s": 25.0, "first_s": 30.0,
                     "pieces_s": {"test_accuracy": 10.0},
                     "image_grid_s": 0.1},
      "eval_sizes": {"val": 1000, "test": 5000},
      "saving": {"checkpoint_s": 1.0, "summary_s": 0.05}, "every": every,
      "hour": profile.hour_shares(0.5, {"evaluations": 25.0,
                                        "checkpoints": 1.0,
                                        "summaries": 0.05}, every),
      "input_pipeline": {"reason": "no data flags given"}}
  text = profile.format_report(result)
  for name in ("generator", "discriminator", "classifier", "evaluations",
               "checkpoints", "summaries", "input pipeline"):
    assert name in text
  assert "sum of the parts 0.400 s = 80% of the fused step" in text
  assert "(every 250 steps)" in text
  # The stored figure against this step: 156,000 images/s x 0.5 s / 64.
  assert "1,219x what this step consumes" in text


@pytest.mark.slow
def test_smoke_run_writes_every_figure(tmp_path):
  out = tmp_path / "profile.json"
  env = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "2"}
  proc = subprocess.run(
      [sys.executable, os.path.join(ROOT, "benchmarks", "step_profile.py"),
       "--flagfile=configs/mnistm_released_cpu_small_d.flags",
       "--flagfile=configs/smoke.flags", "--precision=float32", "--steps=2",
       "--warmup=1", "--matmul_size=256", "--eval_repeats=1",
       "--save_repeats=1", "--eval_test_images=500", f"--json={out}"],
      cwd=ROOT, env=env, capture_output=True, text=True, check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "sum of the parts" in proc.stdout
  result = json.loads(out.read_text())
  assert set(result["networks"]["networks"]) == {
      "generator", "discriminator", "classifier"}
  assert result["eval_sizes"] == {"val": 200, "test": 500}
  assert set(result["evaluation"]["pieces_s"]) == {
      "val_accuracy", "test_accuracy", "label_free_scores",
      "test_accuracy_raw", "average_swap"}
  assert sum(result["hour"]["shares"].values()) == pytest.approx(1.0)
  assert result["test_split"].startswith("none")
