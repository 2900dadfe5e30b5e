r"""pixelda-tf's step against a PyTorch peer, in one sitting.

    python benchmarks/peer_step.py --torch_python=PATH/TO/python \
        [--rounds=2] [--steps=20] [--warmup=3] [--tf_mode=fast] \
        [--json=benchmarks/results/step/peer_step_MACHINE.json]

    python benchmarks/peer_step.py --torch_python=PATH/TO/python \
        --tf_flagfile=configs/mnistm_released_cpu_small_d.flags \
        [--tf_precision=float32] [--rounds=2] [--steps=20] [--warmup=3]

`--torch_python` is an interpreter that has `torch` (e.g. a venv made with
`python -m venv /tmp/torchvenv && /tmp/torchvenv/bin/pip install torch`);
this project does not depend on PyTorch. Every run is a fresh process, and
rounds alternate which framework goes first, so a drift in the machine's
speed falls on both.

Without `--tf_flagfile` (the aligned peer): each round times the pixelda-tf
paper step (`python -m pixelda_tf.bench`'s `paper` config in `--tf_mode`) in
float32 and mixed_bfloat16, and the same step in PyTorch
(`benchmarks/torch_step.py`) in float32 (PyTorch's default) and under
bfloat16 autocast. Prints the median step time of each over the rounds and
the speed ratios (PyTorch's time / ours: above 1 means pixelda-tf is
faster), against PyTorch at its default float32 and at the same precision.

With `--tf_flagfile` (the PyTorch-GAN peer): each round times pixelda-tf's
step for that flagfile's config (in `--tf_mode`, at `--tf_precision`) and
PyTorch-GAN's own pixelda iteration (`benchmarks/torch_gan_step.py`, float32,
its networks, not ours) at the config's batch size and image size. Prints
each one's median s/step, images/s and counted GFLOP per step, and PyTorch-GAN's
time / ours.
"""

import functools
import json
import os
import statistics
import subprocess
import sys

# The checkout this script is in, before an installed pixelda_tf: the code it
# runs and records as provenance is then this checkout's.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# pylint: disable=g-import-not-at-top,wrong-import-position
from absl import app
from absl import flags

from pixelda_tf import bench
from pixelda_tf import config as config_lib
from pixelda_tf import provenance

import result_fields  # (this folder)

# What the step benchmarks score on (the test_split every result file names).
NO_TEST_SPLIT = "none: a train-step timing on random images"

TORCH_PYTHON = flags.DEFINE_string(
    "torch_python", None, "A Python interpreter with torch installed.")
ROUNDS = flags.DEFINE_integer("rounds", 2, "Alternating rounds.")
TF_MODE = flags.DEFINE_enum("tf_mode", "fast", list(bench.MODES),
                            "pixelda-tf bench mode.")
TF_FLAGFILE = flags.DEFINE_string(
    "tf_flagfile", None, "Time this config's step against PyTorch-GAN's "
    "pixelda at its batch size (instead of the paper step against "
    "torch_step.py).")
TF_PRECISION = flags.DEFINE_enum(
    "tf_precision", "float32", list(config_lib.PRECISIONS),
    "pixelda-tf's precision with --tf_flagfile (PyTorch-GAN runs float32).")
# --steps, --warmup and --json are the step benchmark's own flags.
STEPS, WARMUP, JSON = bench._STEPS, bench._WARMUP, bench._JSON  # pylint: disable=protected-access

HERE = os.path.dirname(os.path.abspath(__file__))
TORCH_STEP = os.path.join(HERE, "torch_step.py")
TORCH_GAN_STEP = os.path.join(HERE, "torch_gan_step.py")
# pixelda-tf precision -> the PyTorch run at the same precision.
PRECISIONS = {"float32": "float32", "mixed_bfloat16": "bfloat16"}


def _torch(script: str, *args: str) -> dict:
  """Runs a PyTorch step script in a fresh process; its JSON result line."""
  proc = subprocess.run(
      [TORCH_PYTHON.value, script, *args, f"--steps={STEPS.value}",
       f"--warmup={WARMUP.value}",
       # TensorFlow's default: one thread per logical CPU.
       f"--threads={os.cpu_count()}"],
      capture_output=True, text=True, check=False)
  if proc.returncode:
    raise RuntimeError(f"{os.path.basename(script)} {' '.join(args)} exited "
                       f"with {proc.returncode}:\n{proc.stderr[-2000:]}")
  return json.loads(proc.stdout.strip().splitlines()[-1])


def _ours(cfg: config_lib.Config, precision: str) -> dict:
  result = bench.run_mode(bench.with_precision(cfg, precision), TF_MODE.value,
                          STEPS.value, WARMUP.value, 2048)
  if "error" in result:
    raise RuntimeError(result["error"])
  return result


def _flagfile_config(path: str) -> config_lib.Config:
  """The Config `python -m pixelda_tf.bench --flagfile=PATH` times."""
  if not os.path.exists(path):
    raise app.UsageError(f"--tf_flagfile={path}: no such file")
  flags.FLAGS([sys.argv[0], f"--flagfile={path}"], known_only=True)
  return bench.configs_to_run([f"--flagfile={path}"], paper=False)["config"]


def _rounds(runners: dict) -> tuple:
  """Runs every runner once per round, the frameworks' order alternating
  (`runners`: {(framework, precision): fn() -> result}); returns the median
  step time of each over the rounds and every run's result."""
  times = {k: [] for k in runners}
  runs = []
  frameworks = list(dict.fromkeys(fw for fw, _ in runners))
  for r in range(ROUNDS.value):
    for fw in frameworks if r % 2 == 0 else frameworks[::-1]:
      for (name, p), fn in runners.items():
        if name != fw:
          continue
        res = fn()
        times[(fw, p)].append(res["median_s"])
        runs.append({**res, "round": r, "framework": fw, "precision": p})
        print(f"round {r}: {fw:<11} {p:<15} {res['median_s']:.3f} s/step",
              flush=True)
  return {k: statistics.median(v) for k, v in times.items()}, runs


def _paper_peer() -> dict:
  """The paper step against its aligned PyTorch port, per precision."""
  paper = config_lib.Config()
  med, runs = _rounds({
      (fw, p): (functools.partial(_ours, paper, p) if fw == "pixelda-tf" else
                functools.partial(_torch, TORCH_STEP, f"--precision={tp}"))
      for fw in ("pixelda-tf", "pytorch") for p, tp in PRECISIONS.items()})
  torch_fp32 = med[("pytorch", "float32")]
  print(f"\nPaper-size step (batch 32, 32x32, G 64x6, D 64..512), median of "
        f"{ROUNDS.value} rounds x {STEPS.value} steps; pixelda-tf mode "
        f"{TF_MODE.value}:")
  print(f"{'precision':<15} {'pixelda-tf s':>12} {'PyTorch s':>10} "
        f"{'vs PyTorch same':>16} {'vs PyTorch fp32':>16}")
  table = []
  for p in PRECISIONS:
    ours, theirs = med[("pixelda-tf", p)], med[("pytorch", p)]
    row = dict(precision=p, pixelda_tf_s=ours, pytorch_s=theirs,
               speedup_vs_pytorch_same=theirs / ours,
               speedup_vs_pytorch_float32=torch_fp32 / ours)
    table.append(row)
    print(f"{p:<15} {ours:>12.3f} {theirs:>10.3f} "
          f"{row['speedup_vs_pytorch_same']:>15.2f}x "
          f"{row['speedup_vs_pytorch_float32']:>15.2f}x")
  return dict(table=table, runs=runs)


def _pytorch_gan_peer(path: str) -> dict:
  """A flagfile's step against PyTorch-GAN's pixelda at the same batch."""
  cfg = _flagfile_config(path)
  batch, size = cfg.train.batch_size, cfg.data.image_size
  p = TF_PRECISION.value
  med, runs = _rounds({
      ("pixelda-tf", p): functools.partial(_ours, cfg, p),
      ("pytorch-gan", "float32"): functools.partial(
          _torch, TORCH_GAN_STEP, f"--batch_size={batch}",
          f"--img_size={size}")})
  table = []
  for (fw, precision), median in med.items():
    gflop = [r["gflop_per_step"] for r in runs if r["framework"] == fw][0]
    table.append(dict(framework=fw, precision=precision, median_s=median,
                      images_per_s=batch / median, gflop_per_step=gflop,
                      gflops=gflop / median))
  ratio = table[1]["median_s"] / table[0]["median_s"]
  print(f"\npixelda-tf ({path}: {bench.describe(cfg)}; mode {TF_MODE.value})"
        f" against PyTorch-GAN's pixelda (its own networks) at batch {batch},"
        f" {size}x{size}; median of {ROUNDS.value} rounds x {STEPS.value} "
        "steps:")
  print(f"{'step':<12} {'precision':<15} {'s/step':>8} {'images/s':>9} "
        f"{'GFLOP/step':>11} {'GFLOP/s':>8}")
  for row in table:
    print(f"{row['framework']:<12} {row['precision']:<15} "
          f"{row['median_s']:>8.3f} {row['images_per_s']:>9.1f} "
          f"{row['gflop_per_step']:>11.2f} {row['gflops']:>8.1f}")
  print(f"PyTorch-GAN s/step / pixelda-tf s/step: {ratio:.2f}x (above 1: "
        "pixelda-tf's step is faster; the networks differ, see "
        "torch_gan_step.py)")
  return dict(peer="pytorch_gan", tf_flagfile=path, batch_size=batch,
              image_size=size, table=table,
              pytorch_gan_s_over_pixelda_tf_s=ratio, runs=runs)


def main(argv):
  del argv
  if not TORCH_PYTHON.value:
    raise app.UsageError("--torch_python=PATH is required: an interpreter "
                         "with torch installed (pip install torch)")
  check = subprocess.run([TORCH_PYTHON.value, "-c", "import torch"],
                         capture_output=True, text=True, check=False)
  if check.returncode:
    raise app.UsageError(f"--torch_python={TORCH_PYTHON.value} cannot import "
                         f"torch: {check.stderr.strip()[-300:]}; install it "
                         "with PATH -m pip install torch")
  cpu = bench.cpu_info()
  print(f"CPU: {cpu['model']}; features: {' '.join(cpu['features'])}",
        flush=True)
  out = (_pytorch_gan_peer(TF_FLAGFILE.value) if TF_FLAGFILE.value
         else _paper_peer())
  if JSON.value:
    with open(JSON.value, "w") as f:
      json.dump(dict(result_fields.fields(NO_TEST_SPLIT),
                     command_args=sys.argv[1:], code=provenance.code_version(),
                     cpu=cpu, **out), f, indent=1)


if __name__ == "__main__":
  app.run(main)
