r"""Where a training minute goes: the step by network, evaluation, checkpoints.

  python benchmarks/step_profile.py \
      --flagfile=configs/mnistm_released_cpu_small_d.flags --precision=float32 \
      [--steps=20] [--warmup=3] [--json=benchmarks/results/step/NAME.json] \
      [--mnist_dir=PATH --mnist_m_dir=PATH]  # to time the input pipeline too

Builds the config's PixelDA (synthetic data: no dataset is needed) and prints:

1. fused step: the median time of the train step training runs
   (`pixelda_tf.bench.measure`, which also measures the matmul peak in the
   step's compute dtype, in this process).
2. per network (G, D, T): the median time of its forward pass alone and of
   forward + backward, called as the step calls it, in a `tf.function`
   compiled as the step is (XLA only with --jit_compile), under the
   config's precision: G on (source, z); D on the target and the adapted
   batch; T (and its source twin) on the source and the adapted batch.
   Backward = the gradient of the network's weights over all its calls,
   plus, where G trains through it, the gradient of the adapted images (a
   separate backward pass, as the step's separate G loss takes). Each with
   its counted GFLOP (`bench.layer_flops` forward, `bench.step_flops`
   forward + backward), GFLOP/s and fraction of the matmul peak. The parts'
   sum against the fused step: the remainder is the optimizers, weight
   average, losses and element-wise work, less any overlap between parts
   (negative when the fused step runs parts side by side). Beside them, the
   forward pass in inference mode: the gap to the training-mode forward is
   what dropout, noise and batch statistics cost.
3. evaluation: one evaluation as the loop makes one every --eval_every
   steps (`training._Scorer.evaluate`: validation and test accuracy, the
   raw weights' test accuracy under --ema_decay, the label-free scores), on
   random images of the preset's sizes (--eval_val_images,
   --eval_test_images), with its pieces; the first evaluation's extra
   (tracing) time apart. The scorer is the loop's own: only
   `data.load_domain` answers with random arrays. Also the image grid
   (--image_every).
4. checkpoint: one save as the loop saves (`rundir.RunDir.save`) into a
   temporary folder. An evaluation that improves the selected score saves
   best/ too: counted here as at most one more save per evaluation.
5. per hour: at the fused step's time, the share of the wall clock in steps,
   evaluations, checkpoints, best/ saves (at most), image grids and
   summaries (fetching the logs, the NaN check and the scalars, each
   --summary_every; also paid at each evaluation and checkpoint, where it
   is not counted again), and the steps an hour buys. The input pipeline:
   measured (images/s, as benchmarks/input_pipeline.py) when data flags
   (--mnist_dir, --mnist_m_dir, --usps_path, --source_dir, --target_dir)
   are given, else a pointer to the stored figure.

Timings need the machine to themselves; other load is reported as in
`pixelda_tf.bench` (its `LoadMonitor`, around the per-network timings).
"""

import contextlib
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
from typing import Callable, Dict, List
from unittest import mock

# Runnable from a checkout without installing the package.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# pylint: disable=g-import-not-at-top,wrong-import-position
# pixelda_tf.bench prepares the process (oneDNN) on import, before
# TensorFlow loads, and defines --steps, --warmup, --json and --matmul_size,
# which this script reads too.
from pixelda_tf import bench
from absl import app
from absl import flags
import numpy as np

import result_fields

VAL_IMAGES = flags.DEFINE_integer(
    "eval_val_images", None, "Target validation images to score (default: "
    "the config's --val_size).")
TEST_IMAGES = flags.DEFINE_integer(
    "eval_test_images", None, "Target test images to score (default: the "
    "config's --test_size, or 5,000 when it is 0).")
EVAL_REPEATS = flags.DEFINE_integer("eval_repeats", 2,
                                    "Timed evaluations after the first.")
SAVE_REPEATS = flags.DEFINE_integer("save_repeats", 3, "Timed checkpoints.")
INPUT_BATCHES = flags.DEFINE_integer(
    "input_batches", 200, "Batches to time the input pipeline on, when data "
    "flags are given (0: never).")

NETWORKS = ("generator", "discriminator", "classifier")
DATA_FLAGS = ("mnist_dir", "mnist_m_dir", "usps_path", "source_dir",
              "target_dir")
# benchmarks/README.md, "Input pipeline": MNIST -> MNIST-M offline, batch 32.
STORED_INPUT_IMAGES_PER_S = 156_000


# ---------------------------------------------------------------------------
# Pure arithmetic on the timings (tests/test_step_profile.py runs it on fake
# ones).

def network_figures(parts: Dict[str, dict], fused_s: float,
                    peak_gflops: float) -> dict:
  """Adds GFLOP/s and fractions of peak to each part, and the parts' sum.

  Args:
    parts: network -> {forward_s, forward_backward_s, forward_gflop,
      forward_backward_gflop}.
    fused_s: the fused step's median seconds.
    peak_gflops: the matmul peak.

  Returns:
    {"networks": parts with forward_gflops, forward_fraction_of_peak,
     forward_backward_gflops, forward_backward_fraction_of_peak and
     share_of_step (forward + backward over the fused step) added;
     "sum_s", "fused_s", "remainder_s" (fused - sum), "sum_share",
     "step_gflops", "step_fraction_of_peak" (all the parts' counted FLOPs
     over the fused step)}.
  """
  out = {}
  for name, p in parts.items():
    q = dict(p)
    for kind in ("forward", "forward_backward"):
      rate = p[f"{kind}_gflop"] / p[f"{kind}_s"]
      q[f"{kind}_gflops"] = rate
      q[f"{kind}_fraction_of_peak"] = rate / peak_gflops
    q["share_of_step"] = p["forward_backward_s"] / fused_s
    out[name] = q
  total = sum(p["forward_backward_s"] for p in parts.values())
  gflop = sum(p["forward_backward_gflop"] for p in parts.values())
  return {"networks": out, "sum_s": total, "fused_s": fused_s,
          "remainder_s": fused_s - total, "sum_share": total / fused_s,
          "step_gflops": gflop / fused_s,
          "step_fraction_of_peak": gflop / fused_s / peak_gflops}


def hour_shares(step_s: float, costs: Dict[str, float],
                every: Dict[str, int]) -> dict:
  """The wall clock of a training hour, by what it goes to.

  Args:
    step_s: seconds per train step.
    costs: name -> seconds of one occurrence (e.g. "evaluation").
    every: name -> its interval in steps (0: never).

  Returns:
    {"steps_per_hour", "shares": {"steps" and each name: fraction of the
     wall clock}, "seconds_per_hour": the same in seconds}.
  """
  per_step = {"steps": step_s}
  for name, seconds in costs.items():
    per_step[name] = seconds / every[name] if every.get(name) else 0.0
  total = sum(per_step.values())
  return {"steps_per_hour": 3600 / total,
          "shares": {k: v / total for k, v in per_step.items()},
          "seconds_per_hour": {k: 3600 * v / total
                               for k, v in per_step.items()}}


def median_time(fn: Callable[[], object], steps: int, warmup: int) -> dict:
  """{first_s, median_s, min_s} of `fn()` (each call waited for)."""
  first, times = bench.time_calls(fn, steps, warmup)
  return {"first_s": first, "median_s": statistics.median(times),
          "min_s": min(times)}


# ---------------------------------------------------------------------------
# The networks, one at a time.

def _g_trains_through(cfg) -> bool:
  """Whether G's loss reaches G through D and T (as `bench.step_flops`)."""
  w = cfg.loss
  return bool(w.style or w.task_in_g * w.task_adapted or w.pmse)


def network_calls(model, batch: dict) -> Dict[str, list]:
  """network -> [(Keras model, its inputs, whether G's loss needs the
  gradient of those inputs)], as `pixelda.pixelda_losses` calls them."""
  import tensorflow as tf
  nets, cfg = model.nets, model.cfg
  n = cfg.train.batch_size
  xs = tf.constant(batch["source_images"])
  xt = tf.constant(batch["target_images"])
  z = tf.random.stateless_uniform(
      [n, nets.generator.inputs[1].shape[-1]], [5, 6], -1.0, 1.0)
  # Its values do not change the cost: random images stand for G's output.
  adapted = tf.constant(bench.synthetic_batch(cfg, seed=1)["target_images"])
  through = _g_trains_through(cfg)
  return {"generator": [(nets.generator, [xs, z], False)],
          "discriminator": [(nets.discriminator, xt, False),
                            (nets.discriminator, adapted, through)],
          "classifier": [(nets.source_classifier, xs, False),
                         (nets.classifier, adapted, through)]}


def network_fns(model, name: str, calls: list):
  """(forward, forward + backward, forward in inference mode) of one
  network, as traced functions of nothing, compiled as the step is."""
  import tensorflow as tf
  from pixelda_tf import pixelda
  jit = model.cfg.runtime.jit_compile

  def outputs(call):
    return [tf.reduce_mean(call(net, inputs)) for net, inputs, _ in calls]

  def new_calls():
    values = [v.value for v in model.all_variables]
    return pixelda.StatelessCalls(model.all_variables, values,
                                  model.seed_index,
                                  [values[i] for i in model.seed_index])

  def forward():
    return outputs(new_calls())

  def inference():
    return [tf.reduce_mean(net(inputs, training=False))
            for net, inputs, _ in calls]

  def forward_backward():
    call = new_calls()
    params = call.values_of(model.variables(name))
    needed = [inputs for _, inputs, through in calls if through]
    with tf.GradientTape(persistent=True) as tape:
      tape.watch(params + needed)
      outs = outputs(call)
      own = tf.add_n(outs)
      # G's loss through this network: its own backward pass, as in the step.
      through = [o for o, (_, _, t) in zip(outs, calls) if t]
    grads = tape.gradient(own, params)
    if through:
      grads += tape.gradient(tf.add_n(through), needed)
    del tape
    return grads  # returned, so that no backward op is pruned

  def compiled(fn):
    return tf.function(fn, jit_compile=jit, autograph=False)
  return compiled(forward), compiled(forward_backward), compiled(inference)


def profile_networks(model, batch: dict, steps: int, warmup: int) -> dict:
  """network -> {forward_s, forward_backward_s, inference_s, forward_gflop,
  forward_backward_gflop, first_s}."""
  counted = bench.step_flops(model.nets, model.cfg)
  n = model.cfg.train.batch_size
  out = {}
  for name, calls in network_calls(model, batch).items():
    fns = network_fns(model, name, calls)
    f, fb, inference = [
        median_time(lambda fn=fn: [t.numpy() for t in fn()], steps, warmup)
        for fn in fns]
    out[name] = {
        "forward_s": f["median_s"], "forward_backward_s": fb["median_s"],
        "inference_s": inference["median_s"],
        "forward_gflop": sum(sum(layer["flops"] for layer in
                                 bench.layer_flops(net)) * n
                             for net, _, _ in calls) / 1e9,
        "forward_backward_gflop": counted[name] / 1e9,
        "first_s": fb["first_s"]}
  return out


# ---------------------------------------------------------------------------
# Evaluation, image grid, summaries and checkpoints, as the loop runs them.

@contextlib.contextmanager
def random_splits(cfg, sizes: Dict[tuple, int]):
  """`data.load_domain` gives random uint8 images of the config's size and
  random labels: `sizes[(role, split)]` of them (1,000 when not given)."""
  from pixelda_tf import data
  from pixelda_tf.data import domains
  made = {}

  def load_domain(data_cfg, role, split):
    if (role, split) not in made:
      n, s = sizes.get((role, split), 1000), data_cfg.image_size
      classes = cfg.classifier.num_classes
      rng = np.random.default_rng(len(made))
      made[role, split] = data.Domain(
          f"random {role}", rng.integers(0, 256, (n, s, s, 3), np.uint8),
          rng.integers(0, classes, n).astype(np.int64), classes,
          f"random {role} {split} images (step_profile)")
    return made[role, split]

  # Both names the loop's scorer reads its splits through.
  with mock.patch.object(domains, "load_domain", load_domain), \
       mock.patch.object(data, "load_domain", load_domain):
    yield


def _seconds(fn: Callable[[], object], repeats: int) -> float:
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t0)
  return statistics.median(times)


def profile_evaluation(model, sizes: Dict[tuple, int], repeats: int) -> dict:
  """One evaluation (`_Scorer.evaluate`), its first (tracing) call apart,
  its pieces, and one image grid."""
  # pylint: disable=protected-access
  from pixelda_tf import training
  cfg = model.cfg
  with random_splits(cfg, sizes):
    scorer = training._Scorer(model, cfg, {})
  t0 = time.perf_counter()
  scorer.evaluate(0, lambda: 0.0)
  first = time.perf_counter() - t0
  out = {"first_s": first,
         "evaluation_s": _seconds(lambda: scorer.evaluate(0, lambda: 0.0),
                                  repeats)}
  pieces = {"val_accuracy": lambda: scorer._report("val"),
            "test_accuracy": lambda: scorer._report("test"),
            "label_free_scores": scorer._label_free_scores}
  if model.average is not None:
    pieces["test_accuracy_raw"] = lambda: scorer._report("test", False)

    def swap():
      with model.average.applied():
        pass
    pieces["average_swap"] = swap
  out["pieces_s"] = {k: _seconds(fn, repeats) for k, fn in pieces.items()}
  scorer.image_summary(0)
  out["image_grid_s"] = _seconds(lambda: scorer.image_summary(0), repeats)
  return out


def profile_saving(model, logs, repeats: int) -> dict:
  """One checkpoint (`RunDir.save`) and one summary (`_fetch` with its NaN
  check, then `_write_summaries`), into a temporary folder."""
  import dataclasses
  import tensorflow as tf
  from pixelda_tf import rundir
  from pixelda_tf import training
  folder = tempfile.mkdtemp(prefix="step_profile_")
  cfg = dataclasses.replace(model.cfg, train=dataclasses.replace(
      model.cfg.train, model_dir=folder))
  run = rundir.RunDir(cfg, chief=True)
  run.open()
  run.attach(model)
  steps = itertools.count(1)
  run.save(next(steps))  # the first save also makes the folders
  checkpoint_s = _seconds(lambda: run.save(next(steps)), repeats)
  writer = tf.summary.create_file_writer(os.path.join(folder, "train"))
  n = cfg.train.batch_size

  def summary():
    # pylint: disable=protected-access
    values = training._fetch(logs, 2, model)
    training._write_summaries(values, 2, (time.time() - 1, 1), n)
  with writer.as_default():
    summary()
    summary_s = _seconds(summary, max(repeats, 5))
  writer.close()
  tf.io.gfile.rmtree(folder)
  return {"checkpoint_s": checkpoint_s, "summary_s": summary_s}


def profile_input(cfg, batches: int) -> dict:
  """images/s of `data.train_dataset` (as benchmarks/input_pipeline.py)."""
  from pixelda_tf import data
  it = iter(data.train_dataset(cfg.data, cfg.train.batch_size))
  for _ in range(20):
    next(it)
  t0 = time.perf_counter()
  for _ in range(batches):
    batch = next(it)
  batch["source_images"].numpy()
  seconds = time.perf_counter() - t0
  return {"images_per_s": 2 * cfg.train.batch_size * batches / seconds,
          "steps_per_s": batches / seconds, "batches": batches}


# ---------------------------------------------------------------------------
# The report.

def format_report(r: dict) -> str:
  f = r["fused"]
  lines = [
      f"config: {r['description']}; precision {f['precision']}, "
      f"jit_compile {r['jit_compile']}, oneDNN {f['onednn']}",
      f"fused step: {f['median_s']:.3f} s median ({f['images_per_s']:.1f} "
      f"img/s), {f['gflop_per_step']:.2f} GFLOP counted, "
      f"{f['gflops']:.1f} GFLOP/s = {100 * f['fraction_of_peak']:.1f}% of "
      f"the {f['matmul_peak_gflops']:.1f} GFLOP/s {f['matmul_dtype']} matmul "
      f"peak; other load {100 * f['other_cpu_fraction']:.0f}%",
      "",
      f"{'network':<14} {'fwd s':>7} {'GFLOP':>6} {'GFLOP/s':>8} "
      f"{'%peak':>6} {'fwd+bwd s':>10} {'GFLOP':>6} {'GFLOP/s':>8} "
      f"{'%peak':>6} {'%step':>6} {'infer s':>8}"]
  n = r["networks"]
  for name, p in n["networks"].items():
    lines.append(
        f"{name:<14} {p['forward_s']:>7.3f} {p['forward_gflop']:>6.2f} "
        f"{p['forward_gflops']:>8.1f} "
        f"{100 * p['forward_fraction_of_peak']:>5.1f}% "
        f"{p['forward_backward_s']:>10.3f} "
        f"{p['forward_backward_gflop']:>6.2f} "
        f"{p['forward_backward_gflops']:>8.1f} "
        f"{100 * p['forward_backward_fraction_of_peak']:>5.1f}% "
        f"{100 * p['share_of_step']:>5.1f}% {p['inference_s']:>8.3f}")
  lines += [
      f"sum of the parts {n['sum_s']:.3f} s = {100 * n['sum_share']:.0f}% of "
      f"the fused step; remainder {n['remainder_s']:+.3f} s (optimizers, "
      "weight average, losses, element-wise; less any overlap); other load "
      f"while timing them {100 * r['networks_other_cpu_fraction']:.0f}%; "
      "infer s: the forward pass in inference mode (no dropout, noise or "
      "batch statistics)", ""]
  e = r["evaluation"]
  sizes = r["eval_sizes"]
  lines.append(
      f"evaluation ({sizes['val']:,} validation + {sizes['test']:,} test "
      f"images): {e['evaluation_s']:.2f} s (the first {e['first_s']:.2f} s, "
      "with tracing); pieces: " + ", ".join(
          f"{k} {v:.2f} s" for k, v in e["pieces_s"].items()))
  lines.append(f"image grid {e['image_grid_s']:.3f} s; checkpoint "
               f"{r['saving']['checkpoint_s']:.3f} s; summary (fetch, NaN "
               f"check, scalars) {r['saving']['summary_s']:.3f} s")
  h = r["hour"]
  every = r["every"]
  lines += ["", f"per training hour at {f['median_s']:.3f} s/step: "
            f"{h['steps_per_hour']:,.0f} steps"]
  for k, share in h["shares"].items():
    when = f" (every {every[k]} steps)" if every.get(k) else ""
    lines.append(f"  {k:<14} {100 * share:>5.1f}%  "
                 f"{h['seconds_per_hour'][k]:>6.0f} s{when}")
  i = r["input_pipeline"]
  lines.append("")
  if "images_per_s" in i:
    lines.append(f"input pipeline: {i['images_per_s']:,.0f} images/s "
                 f"({i['steps_per_s']:,.0f} batches/s, "
                 f"{i['steps_per_s'] * f['median_s']:,.0f}x what the step "
                 "consumes)")
  else:
    stored = STORED_INPUT_IMAGES_PER_S
    lines.append(
        f"input pipeline: not measured ({i['reason']}); benchmarks/README.md"
        f", 'Input pipeline', measured {stored:,} images/s (MNIST -> MNIST-M"
        f" offline, batch 32): "
        f"{stored * f['median_s'] / (2 * r['batch_size']):,.0f}x what this "
        "step consumes")
  return "\n".join(lines)


def profile(cfg, steps: int, warmup: int, matmul_size: int,
            sizes: Dict[tuple, int], eval_repeats: int, save_repeats: int,
            input_batches: int) -> dict:
  """Every figure of the report, for `cfg` (a PixelDA config)."""
  import tensorflow as tf
  from pixelda_tf import pixelda
  from pixelda_tf import runtime
  if cfg.train.mode != "pixelda":
    raise app.UsageError(f"--mode={cfg.train.mode}: this profiles the "
                         "PixelDA step (G, D and T); use --mode=pixelda")
  strategy = runtime.setup(cfg.runtime)
  fused = bench.measure(cfg, strategy, steps, warmup, matmul_size)
  model = pixelda.PixelDA(cfg, strategy)
  batch = bench.synthetic_batch(cfg)
  with bench.LoadMonitor() as load:
    parts = profile_networks(model, batch, steps, warmup)
  logs = model.train_step(next(iter(strategy.experimental_distribute_dataset(
      tf.data.Dataset.from_tensors(batch)))))
  evaluation = profile_evaluation(model, sizes, eval_repeats)
  saving = profile_saving(model, logs, save_repeats)
  t = cfg.train
  every = {"evaluations": t.eval_every, "checkpoints": t.checkpoint_every,
           # None when --select_checkpoint=latest keeps no best/.
           "best/ saves": 0 if t.select_checkpoint == "latest"
                          else t.eval_every, "image grids": t.image_every,
           "summaries": t.summary_every}
  hour = hour_shares(fused["median_s"], {
      "evaluations": evaluation["evaluation_s"],
      "checkpoints": saving["checkpoint_s"],
      "best/ saves": saving["checkpoint_s"],
      "image grids": evaluation["image_grid_s"],
      "summaries": saving["summary_s"]}, every)
  given = [name for name in DATA_FLAGS if flags.FLAGS[name].present
           and not str(flags.FLAGS[name].value).startswith("(synthetic")]
  if given and input_batches:
    input_pipeline = profile_input(cfg, input_batches)
  else:
    input_pipeline = {"reason": "no data flags given" if not given
                      else "--input_batches=0"}
  return {"description": bench.describe(cfg),
          "batch_size": cfg.train.batch_size,
          "jit_compile": cfg.runtime.jit_compile, "fused": fused,
          "networks": network_figures(parts, fused["median_s"],
                                      fused["matmul_peak_gflops"]),
          "networks_other_cpu_fraction": load.other_cpu_fraction,
          "evaluation": evaluation, "eval_sizes": {
              "val": sizes["target", "val"], "test": sizes["target", "test"]},
          "saving": saving, "every": every, "hour": hour,
          "input_pipeline": input_pipeline,
          "refinement_note": (
              "T's counted fwd+bwd GFLOP include the target refinement "
              "terms, which its timed part leaves out")
          if any((cfg.loss.target_entropy, cfg.loss.pseudo_label,
                  cfg.loss.target_vat, cfg.loss.target_teacher)) else None}


def main(argv: List[str]) -> None:
  del argv
  configs = bench.configs_to_run(sys.argv, paper=False)
  cfg = configs["config"]
  d = cfg.data
  sizes = {("target", "val"): VAL_IMAGES.value or d.val_size or 1000,
           ("target", "test"): TEST_IMAGES.value or d.test_size or 5000,
           ("source", "test"): 1000}
  f = flags.FLAGS
  result = profile(cfg, f.steps, f.warmup, f.matmul_size, sizes,
                   EVAL_REPEATS.value, SAVE_REPEATS.value,
                   INPUT_BATCHES.value)
  print(format_report(result))
  if result["refinement_note"]:
    print("note: " + result["refinement_note"])
  if f.json:
    result.update(result_fields.fields(
        "none: timings on random images (evaluation on random arrays of the "
        "preset's split sizes)"))
    with open(f.json, "w") as out:
      json.dump(result, out, indent=2)


if __name__ == "__main__":
  from pixelda_tf import runner
  runner.run(main, positional=True)
