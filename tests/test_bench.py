"""The step benchmark's internals on a tiny config (no timing assertions)."""

import json
import os
import subprocess
import sys

import pytest
import tensorflow as tf
from absl import flags
from absl.testing import flagsaver

from pixelda_tf import bench
from pixelda_tf import models
from tests import tiny

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_flop_count_matches_a_hand_count():
  cfg = tiny.tiny_config()
  nets = models.Networks(cfg)
  g = {l["name"]: l for l in bench.layer_flops(nets.generator)}
  # 3x3 conv, 8 -> 8 channels on 16x16: 2 * 16*16 * 8 * 9*8 FLOPs an example.
  assert g["block0_conv1"]["flops"] == 2 * 16 * 16 * 8 * 9 * 8
  assert g["noise_dense"]["flops"] == 2 * 10 * 16 * 16
  assert g["noise_dense"]["first"] and not g["conv_in"]["first"]
  head = [l["name"] for l in bench.layer_flops(nets.classifier)]
  assert head == ["conv1", "conv2", "fc3", "fc4", "logits"]
  flops = bench.step_flops(nets, cfg)
  gen_fwd = sum(l["flops"] for l in g.values()) * tiny.BATCH
  noise = g["noise_dense"]["flops"] * tiny.BATCH
  # G: forward + backward-filter + backward-input (none into z).
  assert flops["generator"] == 3 * gen_fwd - noise
  assert set(flops) == {"generator", "discriminator", "classifier"}
  # VAT alone: T(target) forward; the probe's forward, tangent and input
  # gradient (3 forwards); the perturbed call's forward and both gradients
  # (3 forwards, less the first layer's input gradient).
  t = bench.layer_flops(nets.classifier)
  t_fwd = sum(l["flops"] for l in t) * tiny.BATCH
  t_first = sum(l["flops"] for l in t if l["first"]) * tiny.BATCH
  vat = bench.step_flops(nets, tiny.tiny_config(loss=dict(target_vat=1.0)))
  assert vat["classifier"] - flops["classifier"] == 7 * t_fwd - t_first
  assert vat["generator"] == flops["generator"]
  # The mean teacher: T(target) forward and filter and input gradients
  # (3 forwards, less the first layer's input gradient), and the averaged
  # T's forward.
  teacher = bench.step_flops(nets, tiny.tiny_config(
      loss=dict(target_teacher=1.0), train=dict(ema_decay=0.9)))
  assert teacher["classifier"] - flops["classifier"] == 4 * t_fwd - t_first
  # A noisy teacher: T(target) a forward pass (logs only), the averaged T's
  # forward, and T on the student's view with both gradients.
  noisy = bench.step_flops(nets, tiny.tiny_config(
      loss=dict(target_teacher=1.0, target_teacher_shift=2),
      train=dict(ema_decay=0.9)))
  assert noisy["classifier"] - flops["classifier"] == 5 * t_fwd - t_first
  # With the entropy term T(target) is trained too.
  noisy = bench.step_flops(nets, tiny.tiny_config(
      loss=dict(target_teacher=1.0, target_teacher_noise=0.1,
                target_entropy=0.1), train=dict(ema_decay=0.9)))
  assert noisy["classifier"] - flops["classifier"] == 7 * t_fwd - 2 * t_first


def _in_process(cfg, mode, steps, warmup, matmul_size):
  cfg = bench.with_mode(cfg, mode)
  return bench.measure(cfg, tf.distribute.get_strategy(), steps, warmup,
                       matmul_size)


@pytest.mark.slow
def test_run_all_reports_every_field_and_writes_json(tmp_path, capsys):
  results = bench.run_all({"tiny": tiny.tiny_config()}, ["plain"], steps=2,
                          warmup=0, matmul_size=64, load_warn=0.1,
                          runner=_in_process)
  (r,) = results
  for field in bench.FIELDS + ("config", "mode", "loaded", "first_step_s"):
    assert field in r, field
  assert r["config"] == "tiny" and r["mode"] == "plain"
  assert r["gflop_per_step"] > 0 and r["median_s"] > 0
  assert abs(r["images_per_s"] * r["median_s"] - tiny.BATCH) < 1e-6
  assert 0 <= r["other_cpu_fraction"] <= 1
  table = bench.format_table(results)
  assert "plain" in table and "GFLOP/s" in table
  path = tmp_path / "out.json"
  bench.write_json(str(path), results)
  loaded = json.loads(path.read_text())
  assert loaded["results"][0]["median_s"] == r["median_s"]
  assert "tiny" in capsys.readouterr().out


def test_modes_set_strategy_and_xla():
  cfg = bench.with_mode(tiny.tiny_config(), "mirrored")
  assert cfg.runtime.strategy == "mirrored" and cfg.runtime.jit_compile
  assert cfg.runtime.num_cpu_devices == 2
  assert not bench.with_mode(cfg, "plain").runtime.jit_compile
  fast = bench.with_mode(cfg, "fast").runtime
  assert fast.fused_batch_norm and fast.split_conv_grad
  assert not fast.jit_compile and fast.strategy == "default"
  plain = bench.with_mode(bench.with_mode(cfg, "fast"), "plain").runtime
  assert not (plain.fused_batch_norm or plain.split_conv_grad)


def test_a_failing_worker_reports_its_error(monkeypatch):
  # The worker process fails: the driver returns the error, not a crash.
  cfg = tiny.tiny_config()
  monkeypatch.setattr(bench.sys, "executable", "/bin/false")
  r = bench.run_mode(cfg, "plain", 1, 0, 64)
  assert "error" in r


def test_precisions_run_side_by_side_and_show_in_the_table():
  calls = []

  def runner(cfg, mode, steps, warmup, matmul_size):
    calls.append((mode, cfg.runtime.precision))
    return {"error": "not run"}

  results = bench.run_all({"tiny": tiny.tiny_config()}, ["plain", "fast"],
                          1, 0, 64, 0.1, runner=runner,
                          precisions=["float32", "mixed_bfloat16"])
  # Precisions innermost: each mode's rows are measured back to back.
  assert calls == [("plain", "float32"), ("plain", "mixed_bfloat16"),
                   ("fast", "float32"), ("fast", "mixed_bfloat16")]
  assert [r["requested_precision"] for r in results] == [
      "float32", "mixed_bfloat16"] * 2
  # Without --precisions, the config's own setting.
  calls.clear()
  bench.run_all({"tiny": tiny.tiny_config(runtime=dict(precision="auto"))},
                ["plain"], 1, 0, 64, 0.1, runner=runner)
  assert calls == [("plain", "auto")]


@pytest.mark.slow
def test_a_bf16_row_reports_its_precision():
  (r,) = bench.run_all({"tiny": tiny.tiny_config()}, ["plain"], steps=1,
                       warmup=0, matmul_size=64, load_warn=1.0,
                       runner=_in_process, precisions=["mixed_bfloat16"])
  assert r["precision"] == "mixed_bfloat16" and r["median_s"] > 0
  assert r["matmul_dtype"] == "bfloat16" and r["matmul_peak_gflops"] > 0
  row = bench.format_table([r]).splitlines()[-1].split()
  assert row[:3] == ["tiny", "plain", "bf16"]


def test_cpu_info_reads_model_and_features(tmp_path):
  path = tmp_path / "cpuinfo"
  path.write_text("processor\t: 0\nmodel name\t: Fake Xeon\n"
                  "flags\t\t: fpu avx2 avx512f amx_bf16 avx512_bf16\n")
  info = bench.cpu_info(str(path))
  assert info["model"] == "Fake Xeon"
  assert info["features"] == ["avx2", "avx512f", "avx512_bf16", "amx_bf16"]
  assert "fpu" in info["flags"]
  assert bench.cpu_info(str(tmp_path / "missing"))["model"] == "unknown"


@pytest.mark.slow
def test_accuracy_compare_lines_runs_up_by_step_and_by_minute(tmp_path):
  # Run 0 evaluates every 250 steps at 100 steps a minute, run 1 at 200.
  runs = [[{"step": s, "minutes": s / rate, "test_accuracy": base + s / 1e4}
           for s in range(250, last + 1, 250)]
          for rate, base, last in ((100, 0.5, 3000), (200, 0.4, 6000))]
  paths = [tmp_path / "a_history.json", tmp_path / "results.json"]
  paths[0].write_text(json.dumps(runs[0]))
  paths[1].write_text(json.dumps({"val_history": runs[1]}))
  # Run 1 again in two stages: the second resumed at step 3,000, its minutes
  # from 0, and its own (ignored) score of step 3,000.
  stages = [tmp_path / "stage1.json", tmp_path / "stage2.json"]
  stages[0].write_text(json.dumps(runs[1][:12]))
  stages[1].write_text(json.dumps(
      [{"step": 3000, "minutes": 0.0, "test_accuracy": 0.0}] +
      [{**h, "minutes": h["minutes"] - 15} for h in runs[1][12:]]))

  def compare(second):
    return subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "accuracy.py"),
         f"--compare={paths[0]},{second}", "--compare_every=1000",
         "--compare_from=1000"],
        capture_output=True, text=True, cwd=ROOT)

  lines = compare(paths[1]).stdout.splitlines()
  assert lines[1:4] == ["step   1,000  [0] 60.00%  [1] 50.00%",
                        "step   2,000  [0] 70.00%  [1] 60.00%",
                        "step   3,000  [0] 80.00%  [1] 70.00%"]
  # At equal minutes run 1 is twice as many steps along.
  assert lines[4:7] == [
      "   10 min  [0] 60.00% (step 1,000)  [1] 60.00% (step 2,000)",
      "   20 min  [0] 70.00% (step 2,000)  [1] 80.00% (step 4,000)",
      "   30 min  [0] 80.00% (step 3,000)  [1] 100.00% (step 6,000)"]
  # Steps 1,250-3,000: run 1 is 10 points behind at each of the 8.
  assert lines[7:] == [
      "[1] - [0] after step 1,000: 8 shared evaluations, ahead 0, behind 8, "
      "level 0; mean -10.00 points (min -10.00, max -10.00)"]
  assert compare(f"{stages[0]}+{stages[1]}").stdout.splitlines()[1:] == (
      lines[1:])
  # At equal images: run 1 trained at half the batch, so its step 2,000
  # sits beside run 0's step 1,000 (and each run's config.json is needed).
  for folder, batch in (("b32", 32), ("b16", 16)):
    (tmp_path / folder).mkdir()
    (tmp_path / folder / "config.json").write_text(
        json.dumps({"train": {"batch_size": batch}}))
  (tmp_path / "b32" / "history.json").write_text(json.dumps(runs[0]))
  (tmp_path / "b16" / "history.json").write_text(json.dumps(runs[1]))
  images = subprocess.run(
      [sys.executable, os.path.join(ROOT, "benchmarks", "accuracy.py"),
       f"--compare={tmp_path / 'b32' / 'history.json'},"
       f"{tmp_path / 'b16' / 'history.json'}", "--compare_every=1000",
       "--compare_images"], capture_output=True, text=True, cwd=ROOT)
  lines_images = images.stdout.splitlines()
  assert lines_images[1].startswith("at equal images")
  assert lines_images[2:5] == ["step   1,000  [0] 60.00%  [1] 60.00%",
                               "step   2,000  [0] 70.00%  [1] 80.00%",
                               "step   3,000  [0] 80.00%  [1] 100.00%"]
  (tmp_path / "b16" / "config.json").unlink()
  assert "config.json" in subprocess.run(
      images.args, capture_output=True, text=True, cwd=ROOT).stderr
  # A stage that is not there: one line naming it, no traceback.
  missing = compare(f"{stages[0]}+{tmp_path / 'stage3.json'}")
  assert missing.returncode == 1 and not missing.stdout
  assert "stage3.json" in missing.stderr and "Traceback" not in missing.stderr


def test_accuracy_interval_matches_published_wilson_intervals():
  def interval(arg):
    return subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "accuracy.py"),
         f"--interval={arg}"], capture_output=True, text=True, cwd=ROOT)

  # Newcombe (1998), Statistics in Medicine 17:857, the Wilson score method's
  # intervals for his examples: 81 of 263, 0.2553-0.3662; 15 of 148,
  # 0.0624-0.1605; 0 of 20, 0-0.1611 (the normal approximation gives 0-0
  # there). 10 of 10: 0.7225-1, computed (the approximation gives 1-1).
  assert interval(f"{81 / 263},263").stdout == (
      "30.80% on 263 images: 95% interval 25.53-36.62% (Wilson score)\n")
  assert interval(f"{15 / 148},148").stdout == (
      "10.14% on 148 images: 95% interval 6.24-16.05% (Wilson score)\n")
  assert interval("0,20").stdout == (
      "0.00% on 20 images: 95% interval 0.00-16.11% (Wilson score)\n")
  assert interval("1,10").stdout == (
      "100.00% on 10 images: 95% interval 72.25-100.00% (Wilson score)\n")
  for bad, says in (("1.2,5000", "in [0, 1]"), ("0.9", "expected two values"),
                    ("0.9,0", "n >= 1"), ("0.9,5000.5", "ACCURACY,N"),
                    ("", "no value")):
    out = interval(bad)
    assert out.returncode == 1 and not out.stdout
    assert says in out.stderr and "Traceback" not in out.stderr
  # The training path's rows: the final accuracy's interval and image count,
  # nothing for a run that scored no test split.
  rows = json.loads(subprocess.run(
      [sys.executable, "-c",
       "import json, sys; sys.path.insert(0, 'benchmarks'); import accuracy; "
       "print(json.dumps([accuracy.final_interval(f) for f in ("
       "{'accuracy': 0.5, 'num_examples': 10}, "
       "{'accuracy': None, 'num_examples': 0})]))"],
      capture_output=True, text=True, cwd=ROOT, check=True).stdout)
  assert rows[0]["test_examples"] == 10 and rows[1] == {}
  assert [round(x, 4) for x in rows[0]["final_test_interval_95"]] == [
      0.2366, 0.7634]


def test_accuracy_summarize_reads_results_and_its_own_files(tmp_path):
  # Seed 0 as a run's results.json, seed 1 as the file accuracy.py writes
  # (its pixelda row; the stored benchmarks/results files have this shape).
  run = tmp_path / "results.json"
  run.write_text(json.dumps({
      "mode": "pixelda", "final": {"accuracy": 0.96},
      "best": {"accuracy": 0.95}, "steps": 10,
      "wall_time_s": 120.0, "data_sources": {"target/test": "MNIST-M"},
      "val_history": [{"minutes": 1.0, "test_accuracy": 0.94},
                      {"minutes": 1.5, "test_accuracy": 0.951},
                      {"minutes": 2.0, "test_accuracy": 0.96}]}))
  row = {"final_test_accuracy": 0.97, "best_val_checkpoint_test_accuracy":
         0.99, "steps": 20, "minutes": 3.0, "target": "MNIST-M",
         "minutes_to_95": 2.5}
  written = tmp_path / "accuracy.json"
  written.write_text(json.dumps({"runs": {
      "source_only": {**row, "final_test_accuracy": 0.6}, "pixelda": row}}))
  # A run that kept no best-validation checkpoint counts in "final" only.
  no_best = tmp_path / "no_best.json"
  no_best.write_text(json.dumps({"runs": {"pixelda": {
      **row, "best_val_checkpoint_test_accuracy": None,
      "minutes_to_95": None}}}))

  def summarize(*paths, mode="pixelda"):
    return subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "accuracy.py"),
         "--summarize=" + ",".join(str(p) for p in paths),
         f"--summarize_mode={mode}"],
        capture_output=True, text=True, cwd=ROOT)

  out = summarize(run, written, no_best)
  assert out.returncode == 0, out.stderr
  summary = json.loads(out.stdout)
  assert summary["final"]["mean"] == pytest.approx(0.9666667)
  assert summary["final"]["std"] == pytest.approx(0.00577350)  # ddof=1
  assert summary["best"]["mean"] == pytest.approx(0.97)
  assert summary["best"]["n"] == 2
  assert summary["runs"]["1"] == {"final": 0.97, "best": 0.99, "steps": 20,
                                  "minutes": 3.0, "target": "MNIST-M"}
  # Minutes to 95%: the first evaluation at or above it (seed 0's history,
  # seed 1's stored figure); seed 2 never reached it and is not averaged.
  assert summary["minutes_to_95"] == {
      "runs": {"0": 1.5, "1": 2.5}, "not_reached": ["2"],
      "mean": pytest.approx(2.0), "std": pytest.approx(0.7071068), "n": 2}
  assert json.loads(summarize(written, mode="source_only").stdout)[
      "final"]["mean"] == pytest.approx(0.6)
  # Bad files get one line naming the file and the problem, no traceback:
  # a missing file, not JSON, a history, a baselines-only file, a pixelda
  # run asked for as source_only, a summary, an interrupted run, rows
  # without their figures.
  def write(name, content):
    (tmp_path / name).write_text(
        content if isinstance(content, str) else json.dumps(content))
    return tmp_path / name
  cases = [
      ((tmp_path / "missing.json",), "missing.json"),
      ((write("notes.txt", "96.5%"),), "not JSON"),
      ((write("history.json", [{"step": 1, "test_accuracy": 0.5}]),),
       "neither a run's results.json"),
      ((write("empty.json", {"runs": {}}),), "neither a run's results.json"),
      ((write("baselines.json", {"runs": {"source_only": row}}),),
       "holds the modes source_only and no pixelda row"),
      ((run,), "is a pixelda run, not source_only"),
      ((write("summary.json", summary),), "is a --summarize output"),
      ((write("stopped.json", {"final": {
          "accuracy": None, "reason": "interrupted: rerun the same command"},
                                "mode": "pixelda"}),),
       "has no final accuracy: interrupted"),
      ((write("no_steps.json", {"runs": {"pixelda": {
          "final_test_accuracy": 0.9}}}),), "has no steps or minutes"),
      ((write("no_final.json", {"runs": {"pixelda": {
          **row, "final_test_accuracy": None}}}),), "has no final accuracy")]
  for paths, says in cases:
    mode = "source_only" if says.startswith("is a pixelda") else "pixelda"
    out = summarize(written, *paths, mode=mode)
    assert out.returncode == 1 and not out.stdout, (says, out.stdout)
    assert says in out.stderr and "Traceback" not in out.stderr, (
        says, out.stderr)


def test_a_released_preset_runs_without_its_data_folder(monkeypatch):
  # The benchmark trains on synthetic batches, so a released-MNIST-M preset
  # must not stop for the --mnist_m_dir that training requires.
  monkeypatch.chdir(os.path.dirname(os.path.dirname(os.path.abspath(
      __file__))))  # The presets include each other by relative path.
  argv = ["bench", "--flagfile=configs/mnistm_released_cpu_small_d.flags"]
  with flagsaver.flagsaver():
    flags.FLAGS.unparse_flags()
    flags.FLAGS(argv)
    configs = bench.configs_to_run(argv, paper=False)
  flags.FLAGS.unparse_flags()
  assert list(configs) == ["config"]
  assert configs["config"].data.mnist_m_variant == "released"
  assert (configs["config"].discriminator.filters,
          configs["config"].discriminator.max_filters) == (32, 256)


def test_time_calls_times_steps_after_first_and_warmup():
  calls, entered = [], []

  class Monitor:

    def __enter__(self):
      entered.append(len(calls))
      return self

    def __exit__(self, *exc):
      entered.append(len(calls))
      return False

  first, times = bench.time_calls(lambda: calls.append(1), steps=3, warmup=2,
                                  monitor=Monitor())
  assert len(calls) == 6 and len(times) == 3
  assert entered == [3, 6]  # the monitor spans the timed calls only
  assert first >= 0 and all(t >= 0 for t in times)
