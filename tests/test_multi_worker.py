"""MultiWorkerMirroredStrategy: two worker processes on 127.0.0.1 train the
same model and finish with identical weights."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest


# Trains, exports or starts processes: not in the quick tier.
pytestmark = pytest.mark.slow


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _free_ports(n):
  socks = [socket.socket() for _ in range(n)]
  for s in socks:
    s.bind(("127.0.0.1", 0))
  ports = [s.getsockname()[1] for s in socks]
  for s in socks:
    s.close()
  return ports


def _start_workers(fake, tmp_path, extra_flags=((), ())):
  """Starts two workers (worker i gets extra_flags[i]); returns the Popens."""
  workers = [f"127.0.0.1:{p}" for p in _free_ports(2)]
  procs = []
  for index in range(2):
    tf_config = {"cluster": {"worker": workers},
                 "task": {"type": "worker", "index": index}}
    env = {**os.environ, "PYTHONPATH": ROOT, "PIXELDA_OFFLINE": "1",
           "TF_CONFIG": json.dumps(tf_config), "TF_CPP_MIN_LOG_LEVEL": "2"}
    procs.append(subprocess.Popen(
        [sys.executable, "-m", "pixelda_tf.train", "--strategy=multi_worker",
         f"--mnist_dir={fake}/mnist", "--mnist_m_variant=released",
         f"--mnist_m_dir={fake}/mnist_m", f"--data_dir={tmp_path}/data",
         "--val_size=8", "--image_size=16", "--batch_size=8", "--g_filters=8",
         "--g_blocks=1", "--d_filters=8", "--d_max_filters=16",
         "--nojit_compile", "--quiet", "--train_steps=5",
         "--checkpoint_every=3", "--eval_every=0", "--image_every=0",
         f"--model_dir={tmp_path}/run", *extra_flags[index]],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True))
  return procs


def _run_workers(fake, tmp_path, extra_flags=((), ())):
  """Runs two workers to the end; returns their last stdout lines as JSON."""
  procs = _start_workers(fake, tmp_path, extra_flags)
  outputs = []
  for proc in procs:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    outputs.append(json.loads(out.strip().splitlines()[-1]))
  return outputs


def test_two_workers_on_loopback_end_with_identical_weights(fake, tmp_path):
  outputs = _run_workers(fake, tmp_path)
  assert outputs[0]["steps"] == outputs[1]["steps"] == 5
  assert outputs[0]["weights_sha256"] == outputs[1]["weights_sha256"]
  # Only the chief (worker 0) writes into model_dir.
  assert os.path.exists(tmp_path / "run" / "results.json")
  assert os.path.exists(tmp_path / "run" / "checkpoints" / "ckpt-5.index")


def test_a_worker_out_of_time_stops_every_worker(fake, tmp_path):
  # Worker 0's budget is over before the first step, worker 1 has none: they
  # must agree to stop (a worker stopping alone would leave the other waiting
  # in a collective until the timeout).
  outputs = _run_workers(fake, tmp_path, (["--max_minutes=0.0001"], []))
  assert outputs[0]["steps"] == outputs[1]["steps"] == 0
  assert outputs[0]["stopped_by"] == outputs[1]["stopped_by"] == "max_minutes"


def test_a_signal_to_one_worker_stops_every_worker_with_a_checkpoint(
    fake, tmp_path):
  # SIGTERM reaches worker 1 only (a preempted machine): both workers take
  # the interrupted path at the same step, the chief saves it and marks
  # results.json, and both exit 128 + SIGTERM.
  procs = _start_workers(fake, tmp_path, (["--train_steps=100000"],
                                          ["--train_steps=100000"]))
  marker = tmp_path / "run" / "checkpoints" / "ckpt-3.index"
  deadline = time.time() + 240
  while not marker.exists():
    assert time.time() < deadline and all(p.poll() is None for p in procs)
    time.sleep(0.05)
  procs[1].send_signal(signal.SIGTERM)
  for proc in procs:
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err[-3000:]
    assert "interrupted: SIGTERM at step" in err
  with open(tmp_path / "run" / "results.json") as f:
    results = json.load(f)
  assert results["interrupted"] and results["stopped_by"] == "SIGTERM"
  assert os.path.exists(tmp_path / "run" / "checkpoints" /
                        f"ckpt-{results['steps']}.index")
