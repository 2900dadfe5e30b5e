r"""Fault injection: kill training at random moments, rerun, compare.

  python benchmarks/faults.py [--runs=20] [--steps=60] [--seed=0] \
      [--in_save=0.5] -- \
      --flagfile=configs/mnistm_cpu.flags --flagfile=configs/smoke.flags \
      [data flags]

First one unbroken run. Then, --runs times: start the same run in a new
folder, send SIGKILL, SIGTERM or SIGINT (chosen at random), rerun the same
command to the end, and compare its final weights (`weights_sha256`) with
the unbroken run's. A share --in_save of the signals is aimed at a
checkpoint write: sent the moment the Nth save's temporary folder
(`ckpt-N_temp`, in checkpoints/ or best/) appears, N at random; the others
at a random moment of the training (checkpoints are written every 3 steps
and validation every 4). Each run records whether its signal landed while
a checkpoint was being written (`during_save`: the temporary folder was
still there once the signal was sent). Prints one line, e.g.

  20/20 resumed; 20/20 bit-identical to the unbroken run; 0 lost steps
  beyond the last checkpoint; 20/20 exit codes as expected; 9/20 signals
  landed during a checkpoint write

"Lost steps" counts steps that finished before the signal and had to be
trained again: SIGTERM and SIGINT must lose none (the step in flight is
finished and saved); SIGKILL may lose up to --checkpoint_every steps, which
is what a periodic checkpoint promises, and only steps beyond that count.
Exit codes: -9 for SIGKILL, 143 (SIGTERM) and 130 (SIGINT) after the save,
or 0 for a run that ended before its signal.
--json writes every run's details, with the machine, commit, command and
(no) test split (stored: benchmarks/results/faults/faults.json). Runs on the
CPU without XLA, where a resumed run is bit-identical to an unbroken one.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

# The checkout this script is in, before an installed pixelda_tf: the code it
# runs and records as provenance is then this checkout's.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# pylint: disable=g-import-not-at-top,wrong-import-position
from absl import app
from absl import flags

from pixelda_tf import provenance
from pixelda_tf import sweeps

import result_fields

RUNS = flags.DEFINE_integer("runs", 20, "Interrupted runs.")
STEPS = flags.DEFINE_integer("steps", 60, "Training steps of each run.")
SEED = flags.DEFINE_integer("seed", 0, "Seed of the signal and moment draws.")
JSON = flags.DEFINE_string(
    "json", None, "Write every run's details here (the stored one: "
    "benchmarks/results/faults/faults.json).")
KEEP = flags.DEFINE_bool("keep", False, "Keep the run folders.")
IN_SAVE = flags.DEFINE_float(
    "in_save", 0.5, "Share of the signals sent the moment a checkpoint "
    "write starts (its ckpt-N_temp folder appears), 0 to 1; the others at a "
    "random moment.", lower_bound=0.0, upper_bound=1.0)

CHECKPOINT_EVERY = 3
SIGNALS = (signal.SIGKILL, signal.SIGTERM, signal.SIGINT)
EXIT_CODES = {signal.SIGKILL: -signal.SIGKILL,
              signal.SIGTERM: 128 + signal.SIGTERM,
              signal.SIGINT: 128 + signal.SIGINT}
_STEP_LINE = re.compile(r"\] step (\d+): ")


def _command(train_args: list, model_dir: str) -> list:
  return [sys.executable, "-m", "pixelda_tf.train", *train_args,
          f"--train_steps={STEPS.value}", "--max_minutes=0",
          f"--checkpoint_every={CHECKPOINT_EVERY}", "--eval_every=4",
          "--summary_every=1", "--image_every=0", "--noquiet",
          "--nojit_compile", f"--model_dir={model_dir}"]


class _Run:
  """A training subprocess whose stderr is read as it comes (by one thread,
  the only reader), so the last step it logged before a signal is known;
  stdout (the final JSON line) goes to a file."""

  def __init__(self, cmd: list, model_dir: str):
    self._stdout_path = model_dir.rstrip("/") + ".stdout"
    with open(self._stdout_path, "w") as out:
      self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.PIPE,
                                   text=True, env=sweeps.child_env())
    self.last_step, self.first_step_at, self.stderr = 0, None, []
    self.stdout = ""
    self._reader = threading.Thread(target=self._read, daemon=True)
    self._reader.start()

  def _read(self):
    for line in self.proc.stderr:
      self.stderr.append(line)
      m = _STEP_LINE.search(line)
      if m:
        self.last_step = int(m.group(1))
        if self.first_step_at is None:
          self.first_step_at = time.time()

  def wait(self, timeout: float = 600) -> int:
    self.proc.wait(timeout=timeout)
    self._reader.join()
    with open(self._stdout_path) as f:
      self.stdout = f.read()
    return self.proc.returncode

  def result(self) -> dict:
    lines = [l for l in self.stdout.splitlines() if l.startswith("{")]
    return json.loads(lines[-1]) if lines else {}


def _saved_step(model_dir: str) -> int:
  """The step of the newest checkpoint the `checkpoint` state file names."""
  state = os.path.join(model_dir, "checkpoints", "checkpoint")
  if not os.path.exists(state):
    return 0
  with open(state) as f:
    m = re.search(r'^model_checkpoint_path: ".*ckpt-(\d+)"', f.read(), re.M)
  return int(m.group(1)) if m else 0


def _temp_folders(model_dir: str) -> set:
  """The checkpoint writes in progress: TensorFlow writes each checkpoint's
  shards into <prefix>_temp/ and merges them into place at the end."""
  found = set()
  for sub in ("checkpoints", "best"):
    try:
      names = os.listdir(os.path.join(model_dir, sub))
    except FileNotFoundError:
      continue
    found |= {os.path.join(model_dir, sub, n) for n in names
              if n.endswith("_temp")}
  return found


def _signal_in_save(run: _Run, model_dir: str, nth: int, sig) -> tuple:
  """Sends `sig` the moment the nth checkpoint write of the run starts
  (polled every 0.5 ms: a write takes tens of milliseconds). Returns (the
  last step logged when it was sent, or None if the run ended first,
  whether the write was still in progress once it was sent)."""
  seen = set()
  while run.proc.poll() is None:
    for temp in sorted(_temp_folders(model_dir) - seen):
      seen.add(temp)
      if len(seen) >= nth:
        done = run.last_step
        run.proc.send_signal(sig)
        return done, os.path.exists(temp)
    time.sleep(0.0005)
  return None, False


def main(argv):
  train_args = argv[1:]
  rng = random.Random(SEED.value)
  root = tempfile.mkdtemp(prefix="pixelda_faults_")
  try:
    started = time.time()
    unbroken_dir = os.path.join(root, "unbroken")
    unbroken = _Run(_command(train_args, unbroken_dir), unbroken_dir)
    if unbroken.wait():
      print("".join(unbroken.stderr[-20:]), file=sys.stderr)
      return 1
    want = unbroken.result()["weights_sha256"]
    training_s = time.time() - (unbroken.first_step_at or started)
    rows = []
    for i in range(RUNS.value):
      sig = rng.choice(SIGNALS)
      model_dir = os.path.join(root, f"run{i}")
      run = _Run(_command(train_args, model_dir), model_dir)
      aimed = rng.random() < IN_SAVE.value
      if aimed:
        # Any save but the last (after it, the run only writes its results).
        nth = rng.randint(1, max(1, STEPS.value // CHECKPOINT_EVERY - 1))
        done_at_signal, during_save = _signal_in_save(run, model_dir, nth,
                                                      sig)
        if done_at_signal is None:  # It ended before that save.
          done_at_signal = run.last_step
      else:
        while run.first_step_at is None and run.proc.poll() is None:
          time.sleep(0.01)
        time.sleep(rng.uniform(0, training_s))
        done_at_signal = run.last_step
        run.proc.send_signal(sig)
        during_save = bool(_temp_folders(model_dir))
      code = run.wait()
      # The log line of a step comes after the step; a step that finished
      # while its line was being written is counted as not done.
      saved = _saved_step(model_dir)
      allowed = CHECKPOINT_EVERY if sig == signal.SIGKILL else 0
      lost = max(0, done_at_signal - saved - allowed)
      rerun = _Run(_command(train_args, model_dir), model_dir)
      rerun_code = rerun.wait()
      got = rerun.result()
      row = {"run": i, "signal": signal.Signals(sig).name, "exit": code,
             "aimed_at_save": aimed, "during_save": during_save,
             "step_done_at_signal": done_at_signal, "saved_step": saved,
             "lost_beyond_checkpoint": lost, "rerun_exit": rerun_code,
             "resumed": rerun_code == 0 and got.get("steps") == STEPS.value,
             "identical": got.get("weights_sha256") == want,
             "ended_before_signal": code == 0,
             # SIGKILL: killed; SIGTERM/SIGINT: 128 + signal, after the save.
             "exit_as_expected": code in (0, EXIT_CODES[sig])}
      rows.append(row)
      print(json.dumps(row), flush=True)
    resumed = sum(r["resumed"] for r in rows)
    identical = sum(r["identical"] for r in rows)
    lost = sum(r["lost_beyond_checkpoint"] for r in rows)
    exits = sum(r["exit_as_expected"] for r in rows)
    line = (f"{resumed}/{len(rows)} resumed; {identical}/{len(rows)} "
            f"bit-identical to the unbroken run; {lost} lost steps beyond the "
            f"last checkpoint; {exits}/{len(rows)} exit codes as expected; "
            f"{sum(r['during_save'] for r in rows)}/{len(rows)} signals "
            "landed during a checkpoint write")
    ended = sum(r["ended_before_signal"] for r in rows)
    if ended:
      line += f" ({ended} runs ended before their signal)"
    print(line)
    if JSON.value:
      with open(JSON.value, "w") as f:
        json.dump({**result_fields.fields(
                       "none: each resumed run's weights are compared with "
                       "an unbroken run's, no test images are scored"),
                   "command_args": train_args, "steps": STEPS.value,
                   "code": provenance.code_version(),
                   "checkpoint_every": CHECKPOINT_EVERY,
                   "in_save": IN_SAVE.value, "runs": rows,
                   "summary": line}, f, indent=2)
    return (0 if resumed == identical == exits == len(rows) and not lost
            else 1)
  finally:
    if not KEEP.value:
      shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
  app.run(main)
