r"""The paper-size step, pixelda-tf against PyTorch, per precision, in one sitting.

    python benchmarks/peer_step.py --torch_python=PATH/TO/python \
        [--rounds=2] [--steps=20] [--warmup=3] [--tf_mode=fast] \
        [--json=benchmarks/results/step/peer_step_MACHINE.json]

`--torch_python` is an interpreter that has `torch` (e.g. a venv made with
`python -m venv /tmp/torchvenv && /tmp/torchvenv/bin/pip install torch`);
this project does not depend on PyTorch. Each round times, every one in a
fresh process, the pixelda-tf paper step (`python -m pixelda_tf.bench`'s
`paper` config in `--tf_mode`) in float32 and mixed_bfloat16, and the same step
in PyTorch (`benchmarks/torch_step.py`) in float32 (PyTorch's default) and
under bfloat16 autocast. Rounds alternate which framework goes first, so a
drift in the machine's speed falls on both. Prints the median step time of
each over the rounds and the speed ratios (PyTorch's time / ours: above 1
means pixelda-tf is faster), against PyTorch at its default float32 and at
the same precision.
"""

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
# --steps, --warmup and --json are the step benchmark's own flags.
STEPS, WARMUP, JSON = bench._STEPS, bench._WARMUP, bench._JSON  # pylint: disable=protected-access

TORCH_STEP = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                          "torch_step.py")
# pixelda-tf precision -> the PyTorch run at the same precision.
PRECISIONS = {"float32": "float32", "mixed_bfloat16": "bfloat16"}


def _torch(precision: str) -> dict:
  proc = subprocess.run(
      [TORCH_PYTHON.value, TORCH_STEP, f"--precision={precision}",
       f"--steps={STEPS.value}", f"--warmup={WARMUP.value}",
       # TensorFlow's default: one thread per logical CPU.
       f"--threads={os.cpu_count()}"],
      capture_output=True, text=True, check=False)
  if proc.returncode:
    raise RuntimeError(f"torch_step.py ({precision}) exited with "
                       f"{proc.returncode}:\n{proc.stderr[-2000:]}")
  return json.loads(proc.stdout.strip().splitlines()[-1])


def _ours(precision: str) -> dict:
  cfg = bench.with_precision(config_lib.Config(), precision)
  result = bench.run_mode(cfg, TF_MODE.value, STEPS.value, WARMUP.value, 2048)
  if "error" in result:
    raise RuntimeError(result["error"])
  return result


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
  times = {(fw, p): [] for fw in ("pixelda-tf", "pytorch") for p in PRECISIONS}
  runs = []
  for r in range(ROUNDS.value):
    order = ["pixelda-tf", "pytorch"] if r % 2 == 0 else ["pytorch",
                                                          "pixelda-tf"]
    for fw in order:
      for p, torch_p in PRECISIONS.items():
        res = _ours(p) if fw == "pixelda-tf" else _torch(torch_p)
        times[(fw, p)].append(res["median_s"])
        runs.append({**res, "round": r, "framework": fw, "precision": p})
        print(f"round {r}: {fw:<10} {p:<15} {res['median_s']:.3f} s/step",
              flush=True)
  med = {k: statistics.median(v) for k, v in times.items()}
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
  if JSON.value:
    with open(JSON.value, "w") as f:
      json.dump(dict(result_fields.fields(NO_TEST_SPLIT),
                     command_args=sys.argv[1:], code=provenance.code_version(),
                     cpu=cpu, table=table, runs=runs), f, indent=1)


if __name__ == "__main__":
  app.run(main)
