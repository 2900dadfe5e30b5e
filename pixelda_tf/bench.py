r"""Step benchmark: how fast is one fused PixelDA train step on this machine?

    python -m pixelda_tf.bench [--flagfile=configs/mnistm_cpu.flags] \
        [--steps=20] [--warmup=3] [--modes=fast,plain,xla,mirrored] \
        [--precisions=float32,mixed_bfloat16] [--json=out.json]

For the paper-size step (batch 32, 32x32, G 64 filters x 6 blocks: the
`Config()` defaults) and, when a flagfile is given (or
`configs/mnistm_cpu.flags` exists), for that config, it prints per mode:
median step time over `--steps` steps after `--warmup` steps, images/s,
counted GFLOP per step, achieved GFLOP/s and its fraction of a matmul peak
(in the step's compute dtype) measured in the same process, first-step (trace + compile) time, and peak
RSS. Every (config, mode) runs in a fresh subprocess, so first-step time and
peak RSS are that mode's own. Data are synthetic: no dataset is needed.

Modes: `fast` (no XLA, with the CPU speed layers `--fused_batch_norm` and
`--split_conv_grad`), `plain` (no XLA, stock Keras layers), `xla`
(per-replica step XLA-compiled), `mirrored` (MirroredStrategy over 2 logical
CPU devices, XLA per replica), `mirrored_plain` and `mirrored_fast` (the same
without XLA, and with the speed layers). Runtime flags (e.g.
`--intra_op_threads`) and the environment (e.g. `XLA_FLAGS`, or
`TF_ENABLE_ONEDNN_OPTS=0` to time TensorFlow without its oneDNN CPU kernels,
which the binaries turn on) pass through to every mode; the
`oneDNN` column says whether each worker ran with them.

Precisions: each mode runs once per `--precisions` entry (`float32`,
`mixed_bfloat16`, `mixed_float16`, `auto`; by default the config's own
`--precision`); the `precision` column is the policy the worker trained with
(what `auto` resolved to). FLOPs are the same count in every precision; the
peak is a matmul in the row's compute dtype (bfloat16 for `mixed_bfloat16`).

FLOPs are counted from the model definitions, not measured: a conv or dense
layer's forward pass costs 2 * MACs; each call of a network in the step adds
its backward-filter cost (once per loss whose gradient takes that network's
weights) and its backward-input cost (once per loss whose gradient flows
through it, skipping a layer whose input is the network's input when nothing
upstream needs that gradient). Element-wise ops, batch norm and the optimizers
are not counted. This is what the step graph executes, including the backward
passes that the D, T and G losses each take through D(adapted) and T(adapted).

Other load: during each timed window the worker compares the whole machine's
busy CPU time (/proc/stat) with its own (getrusage); if other processes used
more than `--load_warn` of the machine, the row is flagged and a warning is
printed: re-run when `uptime` shows low load.
"""

from __future__ import annotations

from pixelda_tf import runner

# At import, not in main: TensorFlow reads TF_ENABLE_ONEDNN_OPTS once, when
# it loads, and the imports below load it.
runner.prepare_process()

# pylint: disable=g-import-not-at-top,wrong-import-position,g-bad-import-order
import contextlib
import dataclasses
import json
import os
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Callable, Dict, List, Optional, Tuple

from absl import app
from absl import flags

from pixelda_tf import config as config_lib
from pixelda_tf import flags as pixelda_flags
from pixelda_tf import provenance
from pixelda_tf import sweeps

MODES = {
    # name: (strategy, jit_compile, num_cpu_devices, CPU speed layers:
    # --fused_batch_norm and --split_conv_grad)
    "fast": ("default", False, 0, True),
    "plain": ("default", False, 0, False),
    "xla": ("default", True, 0, False),
    "mirrored": ("mirrored", True, 2, False),
    "mirrored_plain": ("mirrored", False, 2, False),
    "mirrored_fast": ("mirrored", False, 2, True),
}
DEFAULT_CONFIG_FLAGFILE = "configs/mnistm_cpu.flags"

_STEPS = flags.DEFINE_integer("steps", 20, "Timed steps per mode.")
_WARMUP = flags.DEFINE_integer("warmup", 3, "Untimed steps after the first.")
_MODES = flags.DEFINE_list("modes", "fast,plain,xla,mirrored",
                           "Modes to run: " + ", ".join(MODES))
_PRECISIONS = flags.DEFINE_list(
    "precisions", None, "Precisions to run every mode in: "
    + ", ".join(config_lib.PRECISIONS) + " (default: the config's "
    "--precision).")
_JSON = flags.DEFINE_string("json", None, "Also write the results here.")
_PAPER = flags.DEFINE_bool("paper", True, "Benchmark the paper-size step.")
_MATMUL = flags.DEFINE_integer("matmul_size", 2048,
                               "Side of the square matmul that measures peak.")
_LOAD_WARN = flags.DEFINE_float(
    "load_warn", 0.10, "Warn when other processes use more than this "
    "fraction of the machine's CPU time while timing.")
_WORKER = flags.DEFINE_string("worker", None, "Internal: run one mode on "
                              "the config JSON file given by --worker_config.")
_WORKER_CONFIG = flags.DEFINE_string("worker_config", None, "Internal.")


# ---------------------------------------------------------------------------
# FLOP counting from the model definitions.

def layer_flops(model) -> List[dict]:
  """Forward FLOPs per example of every Conv2D/Dense layer, nested models
  flattened: [{name, flops, first}], `first` when the layer reads the model's
  input directly (its backward-input pass is needed only if the caller needs
  the gradient of that input)."""
  import keras  # pylint: disable=g-import-not-at-top
  out = []
  inputs = {id(t) for t in model.inputs}
  for layer in model.layers:
    if isinstance(layer, keras.Model):
      out.extend(layer_flops(layer))
      continue
    if isinstance(layer, keras.layers.Conv2D):
      kh, kw = layer.kernel_size
      cin = layer.input.shape[-1]
      _, h, w, cout = layer.output.shape
      flops = 2 * h * w * cout * kh * kw * cin
    elif isinstance(layer, keras.layers.Dense):
      flops = 2 * layer.input.shape[-1] * layer.units
    else:
      continue
    out.append(dict(name=layer.name, flops=flops,
                    first=id(layer.input) in inputs))
  return out


def _call_flops(layers_, batch, filter_grads, input_grads, input_grad_needed):
  """FLOPs of one network call: forward, `filter_grads` backward-filter
  passes, `input_grads` backward-input passes (of which `input_grad_needed`
  also reach the network's input)."""
  total = 0
  for layer in layers_:
    f = layer["flops"] * batch
    total += f + filter_grads * f
    total += (input_grad_needed if layer["first"] else input_grads) * f
  return total


def step_flops(nets, cfg: config_lib.Config) -> Dict[str, float]:
  """Counted FLOPs of one global step, by network, as the step computes it."""
  b = cfg.train.batch_size
  g = layer_flops(nets.generator)
  d = layer_flops(nets.discriminator)
  t = layer_flops(nets.classifier)
  ts = layer_flops(nets.source_classifier)
  if cfg.train.mode != "pixelda":
    return {"classifier": _call_flops(t, b, 1, 1, 0)}
  gen_trained = (cfg.loss.style or cfg.loss.task_in_g * cfg.loss.task_adapted
                 or cfg.loss.pmse)
  # T(target), when a refinement term is weighted: t_loss only (a forward
  # pass alone when only VAT (as constants) or logs use it).
  w = cfg.loss
  noisy_teacher = w.noisy_teacher
  refine = (_call_flops(t, b, 1, 1, 0)
            if w.target_entropy or w.pseudo_label
            or (w.target_teacher and not noisy_teacher)
            else _call_flops(t, b, 0, 0, 0)
            if w.target_vat or noisy_teacher else 0)
  if w.target_teacher:
    refine += _call_flops(t, b, 0, 0, 0)  # the averaged T's forward pass
    if noisy_teacher:
      refine += _call_flops(t, b, 1, 1, 0)  # T on the student's view: t_loss
  if w.target_vat:
    # VAT's probe: forward and input gradient down to the images, plus the
    # forward-mode tangent (one more forward); its perturbed call: t_loss.
    refine += (_call_flops(t, b, 0, 1, 1) + _call_flops(t, b, 0, 0, 0)
               + _call_flops(t, b, 1, 1, 0))
  return {
      # G's backward, for g_loss: every layer's filter and input gradient
      # (the first conv's input carries the noise channel).
      "generator": _call_flops(g, b, 1 if gen_trained else 0,
                               1 if gen_trained else 0, 0),
      # D(target): d_loss only. D(adapted): d_loss for D's weights, g_loss
      # through D into G.
      "discriminator": (_call_flops(d, b, 1, 1, 0)
                        + _call_flops(d, b, 1, 2 if gen_trained else 1,
                                      1 if gen_trained else 0)),
      # T(source): t_loss. T(adapted): t_loss, and g_loss through T into G.
      "classifier": (_call_flops(ts, b, 1, 1, 0)
                     + _call_flops(t, b, 1, 2 if gen_trained else 1,
                                   1 if gen_trained else 0) + refine),
  }


# ---------------------------------------------------------------------------
# Machine load.

def _busy_seconds() -> Optional[float]:
  """CPU seconds all processes have been busy since boot (/proc/stat)."""
  try:
    with open("/proc/stat") as f:
      fields = f.readline().split()[1:]
  except OSError:
    return None
  ticks = [int(x) for x in fields]
  idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
  return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _own_seconds() -> float:
  r = resource.getrusage(resource.RUSAGE_SELF)
  return r.ru_utime + r.ru_stime


class LoadMonitor:
  """CPU time other processes use during a window, as a machine fraction."""

  def __enter__(self):
    self._wall, self._busy, self._own = (time.perf_counter(), _busy_seconds(),
                                         _own_seconds())
    self.loadavg_before = os.getloadavg()[0]
    return self

  def __exit__(self, *exc):
    wall = time.perf_counter() - self._wall
    busy = _busy_seconds()
    own = _own_seconds() - self._own
    cpus = os.cpu_count() or 1
    self.own_cpu_seconds = own
    self.own_cpu_fraction = own / (wall * cpus)
    if busy is None or self._busy is None:
      self.other_cpu_fraction = float("nan")
    else:
      other = (busy - self._busy) - own
      self.other_cpu_fraction = max(0.0, other / (wall * cpus))
    self.loadavg_after = os.getloadavg()[0]
    return False


def time_calls(fn: Callable[[], object], steps: int, warmup: int,
               monitor=None) -> Tuple[float, List[float]]:
  """(first call's seconds, `steps` timed calls' seconds) of `fn`.

  The first call (trace and compile) is timed on its own, then `warmup`
  untimed calls, then `steps` timed ones; `fn` must wait for its result.
  `monitor` (a context manager such as `LoadMonitor`) spans the timed calls.
  """
  t0 = time.perf_counter()
  fn()
  first = time.perf_counter() - t0
  for _ in range(warmup):
    fn()
  times = []
  with monitor if monitor is not None else contextlib.nullcontext():
    for _ in range(steps):
      t0 = time.perf_counter()
      fn()
      times.append(time.perf_counter() - t0)
  return first, times


# ---------------------------------------------------------------------------
# One mode, in this process.

def matmul_peak(size: int = 2048, repeats: int = 10,
                dtype: str = "float32") -> float:
  """Best GFLOP/s of a size x size `dtype` tf.matmul (all intra-op threads)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  a = tf.cast(tf.random.stateless_normal([size, size], seed=[1, 2]), dtype)
  b = tf.cast(tf.random.stateless_normal([size, size], seed=[3, 4]), dtype)
  mm = tf.function(lambda x, y: tf.linalg.matmul(x, y))
  mm(a, b).numpy()
  best = float("inf")
  for _ in range(repeats):
    t0 = time.perf_counter()
    mm(a, b).numpy()
    best = min(best, time.perf_counter() - t0)
  return 2 * size ** 3 / best / 1e9


def synthetic_batch(cfg: config_lib.Config, seed: int = 0) -> dict:
  """A fixed global batch of random images in [-1, 1] and labels."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(seed)
  n, s = cfg.train.batch_size, cfg.data.image_size
  classes = cfg.classifier.num_classes
  return {
      "source_images": rng.uniform(-1, 1, (n, s, s, 3)).astype("float32"),
      "source_labels": rng.integers(0, classes, n).astype("int32"),
      "target_images": rng.uniform(-1, 1, (n, s, s, 3)).astype("float32"),
      "target_labels": rng.integers(0, classes, n).astype("int32"),
  }


def measure(cfg: config_lib.Config, strategy, steps: int, warmup: int,
            matmul_size: int = 2048) -> dict:
  """Builds PixelDA under `strategy` and times its train step.

  Returns a dict of plain numbers and booleans (see `FIELDS`); the first
  step (trace and compile) is timed on its own, then `warmup` untimed steps,
  then `steps` timed ones, each waited for.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from pixelda_tf import pixelda  # pylint: disable=g-import-not-at-top
  from pixelda_tf import runtime  # pylint: disable=g-import-not-at-top
  t0 = time.perf_counter()
  model = pixelda.PixelDA(cfg, strategy)
  build_s = time.perf_counter() - t0
  data = tf.data.Dataset.from_tensors(synthetic_batch(cfg))
  batch = next(iter(strategy.experimental_distribute_dataset(data)))

  losses = []

  def step():
    losses.append(float(model.train_step(batch)["loss/generator"]))

  load = LoadMonitor()
  first_s, times = time_calls(step, steps, warmup, monitor=load)
  loss = losses[-1]
  rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
  flops = step_flops(model.nets, cfg)
  gflop = sum(flops.values()) / 1e9
  compute_dtype = {"mixed_bfloat16": "bfloat16",
                   "mixed_float16": "float16"}.get(model.precision, "float32")
  peak = matmul_peak(matmul_size, dtype=compute_dtype)
  median = statistics.median(times)
  return dict(
      median_s=median, min_s=min(times), max_s=max(times),
      images_per_s=cfg.train.batch_size / median,
      gflop_per_step=gflop,
      gflop_by_network={k: v / 1e9 for k, v in flops.items()},
      gflops=gflop / median, matmul_peak_gflops=peak,
      matmul_dtype=compute_dtype,
      fraction_of_peak=gflop / median / peak,
      first_step_s=first_s, build_s=build_s, peak_rss_mb=rss_mb,
      steps=steps, warmup=warmup, final_loss=loss,
      other_cpu_fraction=load.other_cpu_fraction,
      own_cpu_fraction=load.own_cpu_fraction,
      # Less sensitive to other load than wall time: compare modes by this
      # when the machine is busy.
      cpu_s_per_step=load.own_cpu_seconds / steps,
      loadavg_before=load.loadavg_before, loadavg_after=load.loadavg_after,
      replicas=strategy.num_replicas_in_sync,
      onednn=runtime.onednn_enabled(), precision=model.precision)


FIELDS = ("median_s", "images_per_s", "gflop_per_step", "gflops",
          "matmul_peak_gflops", "fraction_of_peak", "first_step_s",
          "peak_rss_mb", "other_cpu_fraction", "cpu_s_per_step", "onednn",
          "precision")


def with_mode(cfg: config_lib.Config, mode: str) -> config_lib.Config:
  strategy, jit, devices, fast = MODES[mode]
  runtime = dataclasses.replace(cfg.runtime, strategy=strategy,
                                jit_compile=jit, num_cpu_devices=devices,
                                sync_batch_norm=False, fused_batch_norm=fast,
                                split_conv_grad=fast)
  return config_lib.validate(dataclasses.replace(cfg, runtime=runtime))


def with_precision(cfg: config_lib.Config, precision: str) -> config_lib.Config:
  return config_lib.validate(dataclasses.replace(
      cfg, runtime=dataclasses.replace(cfg.runtime, precision=precision)))


def _worker(mode: str, config_path: str) -> None:
  """Runs one mode in this (fresh) process and prints a JSON line."""
  from pixelda_tf import runtime  # pylint: disable=g-import-not-at-top
  with open(config_path) as f:
    cfg = with_mode(config_lib.Config.from_dict(json.load(f)), mode)
  strategy = runtime.setup(cfg.runtime)
  result = measure(cfg, strategy, _STEPS.value, _WARMUP.value, _MATMUL.value)
  print("BENCH_RESULT " + json.dumps(result), flush=True)


# ---------------------------------------------------------------------------
# The driver: one subprocess per (config, mode).

def run_mode(cfg: config_lib.Config, mode: str, steps: int, warmup: int,
             matmul_size: int) -> dict:
  """Runs `measure` for one mode in a fresh Python process."""
  with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
    f.write(cfg.to_json())
  try:
    cmd = [sys.executable, "-m", "pixelda_tf.bench", f"--worker={mode}",
           f"--worker_config={f.name}", f"--steps={steps}",
           f"--warmup={warmup}", f"--matmul_size={matmul_size}"]
    env = sweeps.child_env()  # the worker runs this process's pixelda_tf
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env,
                          check=False)
  finally:
    os.unlink(f.name)
  for line in proc.stdout.splitlines():
    if line.startswith("BENCH_RESULT "):
      return json.loads(line[len("BENCH_RESULT "):])
  tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
  return {"error": f"mode {mode} exited with {proc.returncode}:\n{tail}"}


def describe(cfg: config_lib.Config) -> str:
  g = cfg.generator
  return (f"batch {cfg.train.batch_size}, {cfg.data.image_size}x"
          f"{cfg.data.image_size}, G {g.filters}x{g.num_blocks}, "
          f"D {cfg.discriminator.filters}..{cfg.discriminator.max_filters}, "
          f"mode {cfg.train.mode}")


# Short names for the table's precision column.
_SHORT = {"float32": "fp32", "mixed_bfloat16": "bf16", "mixed_float16": "fp16"}


def format_table(results: List[dict]) -> str:
  head = (f"{'config':<8} {'mode':<14} {'prec':<5} {'median s':>9} "
          f"{'img/s':>7} "
          f"{'GFLOP':>7} {'GFLOP/s':>8} {'peak':>7} {'%peak':>6} "
          f"{'first s':>8} {'RSS MB':>7} {'other%':>7} {'cpu s':>6} "
          f"{'oneDNN':>6}")
  lines = [head, "-" * len(head)]
  for r in results:
    prec = r.get("precision", "?")
    prec = _SHORT.get(prec, prec)
    if "error" in r:
      lines.append(f"{r['config']:<8} {r['mode']:<14} {prec:<5} "
                   "ERROR (see below)")
      continue
    flag = " !" if r.get("loaded") else ""
    lines.append(
        f"{r['config']:<8} {r['mode']:<14} {prec:<5} {r['median_s']:>9.3f} "
        f"{r['images_per_s']:>7.1f} {r['gflop_per_step']:>7.2f} "
        f"{r['gflops']:>8.1f} {r['matmul_peak_gflops']:>7.1f} "
        f"{100 * r['fraction_of_peak']:>5.1f}% {r['first_step_s']:>8.2f} "
        f"{r['peak_rss_mb']:>7.0f} {100 * r['other_cpu_fraction']:>6.1f}% "
        f"{r['cpu_s_per_step']:>6.2f} {'on' if r['onednn'] else 'off':>6}"
        f"{flag}")
  return "\n".join(lines)


def configs_to_run(argv: List[str],
                   paper: bool) -> Dict[str, config_lib.Config]:
  """The paper-size Config (with the flags' runtime settings) and, if a
  flagfile was given or the CPU preset exists, the flags' Config."""
  given = any(a.startswith("--flagfile") for a in argv)
  if not given and os.path.exists(DEFAULT_CONFIG_FLAGFILE):
    flags.FLAGS(["bench", f"--flagfile={DEFAULT_CONFIG_FLAGFILE}"],
                known_only=True)
    given = True
  if (flags.FLAGS.mnist_m_variant == "released"
      and not flags.FLAGS.mnist_m_dir):
    # The steps run on synthetic batches: a released-MNIST-M preset needs no
    # files here, so its required --mnist_m_dir gets a placeholder.
    flags.FLAGS.mnist_m_dir = "(synthetic data: no files are read)"
  from_flags = pixelda_flags.config_from_flags()
  out = {}
  if paper:
    out["paper"] = dataclasses.replace(config_lib.Config(),
                                       runtime=from_flags.runtime)
  if given:
    out["config"] = from_flags
  return out


def run_all(configs: Dict[str, config_lib.Config], modes: List[str],
            steps: int, warmup: int, matmul_size: int, load_warn: float,
            runner=run_mode,
            precisions: Optional[List[str]] = None) -> List[dict]:
  """Runs every (config, mode, precision) with `runner` (a fresh process by
  default), precisions innermost so that they are compared side by side;
  `precisions` None runs each config's own. Each result gets `config`,
  `mode`, `requested_precision`, `description` and `loaded` fields (and
  `precision`, the resolved policy, from the runner)."""
  results = []
  for name, cfg in configs.items():
    print(f"[{name}] {describe(cfg)}", flush=True)
    for mode in modes:
      for precision in precisions or [cfg.runtime.precision]:
        r = runner(with_precision(cfg, precision), mode, steps, warmup,
                   matmul_size)
        r.update(config=name, mode=mode, description=describe(cfg),
                 requested_precision=precision)
        r.setdefault("precision", precision)
        if "error" not in r:
          r["loaded"] = r["other_cpu_fraction"] > load_warn
          print(f"  {mode} {r['precision']}: {r['median_s']:.3f} s/step, "
                f"first {r['first_step_s']:.1f} s, other load "
                f"{100 * r['other_cpu_fraction']:.0f}%", flush=True)
        results.append(r)
  return results


cpu_info = provenance.cpu_info


def write_json(path: str, results: List[dict]) -> None:
  with open(path, "w") as f:
    code = provenance.code_version()
    json.dump({"results": results, "argv": sys.argv, "cpu": cpu_info(),
               "code": code,
               # The facts every file under benchmarks/results/ carries.
               "code_version": str(code["commit"]) + (
                   " + uncommitted changes" if code["dirty"] else ""),
               "command": shlex.join(["python", "-m", "pixelda_tf.bench"] +
                                     sys.argv[1:]),
               "test_split": "none: a train-step timing on random images",
               "env": {k: os.environ.get(k) for k in
                       ("TF_ENABLE_ONEDNN_OPTS", "XLA_FLAGS",
                        "OMP_NUM_THREADS")}}, f, indent=2)


def main(argv: List[str]) -> None:
  if _WORKER.value:
    _worker(_WORKER.value, _WORKER_CONFIG.value)
    return
  unknown = set(_MODES.value) - set(MODES)
  if unknown:
    raise app.UsageError(f"unknown modes {sorted(unknown)}; use "
                         + ", ".join(MODES))
  bad = set(_PRECISIONS.value or ()) - set(config_lib.PRECISIONS)
  if bad:
    raise app.UsageError(f"unknown precisions {sorted(bad)}; use "
                         + ", ".join(config_lib.PRECISIONS))
  configs = configs_to_run(sys.argv, _PAPER.value)
  if not configs:
    raise app.UsageError("nothing to run: --nopaper needs a --flagfile")
  cpu = cpu_info()
  print(f"CPU: {cpu['model']}; features: {' '.join(cpu['features'])}",
        flush=True)
  print(f"load average before: {os.getloadavg()}; {os.cpu_count()} CPUs; "
        f"TF_ENABLE_ONEDNN_OPTS={os.environ.get('TF_ENABLE_ONEDNN_OPTS')} "
        f"XLA_FLAGS={os.environ.get('XLA_FLAGS')}", flush=True)
  results = run_all(configs, _MODES.value, _STEPS.value, _WARMUP.value,
                    _MATMUL.value, _LOAD_WARN.value,
                    precisions=_PRECISIONS.value)
  print()
  print(format_table(results))
  print("GFLOP counted from the model definitions (conv/dense MACs x 2, per "
        "forward/backward-filter/backward-input pass the step runs); peak = "
        f"best {_MATMUL.value}^2 tf.matmul in the row's compute dtype (fp32 "
        "or 16-bit), in the same process.")
  for r in results:
    if "error" in r:
      print(f"\n{r['config']}/{r['mode']}: {r['error']}")
  loaded = [f"{r['config']}/{r['mode']}" for r in results if r.get("loaded")]
  if loaded:
    print(f"\nWARNING: other processes used > {100 * _LOAD_WARN.value:.0f}% "
          f"of the CPU while timing {', '.join(loaded)} (rows marked !): "
          "re-run when `uptime` shows a low load; meanwhile 'cpu s' (this "
          "process's CPU seconds per step) is the steadier comparison.")
  if _JSON.value:
    write_json(_JSON.value, results)


def run():
  """The console script's entry point (`pixelda-bench`)."""
  runner.run(main, positional=True)


if __name__ == "__main__":
  run()
