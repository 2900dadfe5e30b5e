"""MultiWorkerMirroredStrategy: two worker processes on 127.0.0.1 train the
same model and finish with identical weights."""

import json
import os
import shutil
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


def _command(fake, tmp_path, *extra_flags):
  """A tiny training run's command line (one process unless TF_CONFIG and
  --strategy=multi_worker say otherwise)."""
  return [sys.executable, "-m", "pixelda_tf.train",
          f"--mnist_dir={fake}/mnist", "--mnist_m_variant=released",
          f"--mnist_m_dir={fake}/mnist_m", f"--data_dir={tmp_path}/data",
          "--val_size=8", "--image_size=16", "--batch_size=8",
          "--g_filters=8", "--g_blocks=1", "--d_filters=8",
          "--d_max_filters=16", "--nojit_compile", "--quiet",
          "--train_steps=5", "--checkpoint_every=3", "--eval_every=0",
          "--image_every=0", f"--model_dir={tmp_path}/run", *extra_flags]


def _env(**more):
  return {**os.environ, "PYTHONPATH": ROOT, "PIXELDA_OFFLINE": "1",
          "TF_CPP_MIN_LOG_LEVEL": "2", **more}


def _start_workers(fake, tmp_path, extra_flags=((), ())):
  """Starts two workers (worker i gets extra_flags[i]); returns the Popens."""
  workers = [f"127.0.0.1:{p}" for p in _free_ports(2)]
  procs = []
  for index in range(2):
    tf_config = {"cluster": {"worker": workers},
                 "task": {"type": "worker", "index": index}}
    # Each worker's own temporary folder, where worker 1 keeps its scratch
    # checkpoints (see _scratch_left).
    temp = tmp_path / f"temp{index}"
    temp.mkdir(exist_ok=True)
    procs.append(subprocess.Popen(
        _command(fake, tmp_path, "--strategy=multi_worker",
                 *extra_flags[index]),
        cwd=ROOT, env=_env(TF_CONFIG=json.dumps(tf_config), TMPDIR=str(temp)),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
  return procs


def _finish(procs, timeout=300):
  """(returncode, stdout, stderr) of each worker; kills every worker left
  when one hangs (a worker waiting alone in a collective never ends)."""
  results = []
  try:
    for p in procs:
      out, err = p.communicate(timeout=timeout)
      results.append((p.returncode, out, err))
  finally:
    _kill_left(procs)
  return results


def _scratch_left(tmp_path):
  """The non-chief worker's scratch checkpoint folders still on disk."""
  return list((tmp_path / "temp1").glob("pixelda_worker*"))


def _kill_left(procs):
  for p in procs:
    if p.poll() is None:
      p.kill()
      p.communicate()


def _run_workers(fake, tmp_path, extra_flags=((), ())):
  """Runs two workers to the end; returns their last stdout lines as JSON."""
  outputs = []
  for code, out, err in _finish(_start_workers(fake, tmp_path, extra_flags)):
    assert code == 0, err[-3000:]
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
  try:
    while not marker.exists():
      assert time.time() < deadline and all(p.poll() is None for p in procs)
      time.sleep(0.05)
    procs[1].send_signal(signal.SIGTERM)
  except BaseException:
    _kill_left(procs)  # Workers of 100,000 steps would outlive the test.
    raise
  for code, _, err in _finish(procs, timeout=120):
    assert code == 128 + signal.SIGTERM, err[-3000:]
    assert "interrupted: SIGTERM at step" in err
    # Both name the checkpoint the run keeps (not worker 1's scratch copy).
    assert f"saved {tmp_path}/run/checkpoints/ckpt-" in err, err[-3000:]
  with open(tmp_path / "run" / "results.json") as f:
    results = json.load(f)
  assert results["interrupted"] and results["stopped_by"] == "SIGTERM"
  assert os.path.exists(tmp_path / "run" / "checkpoints" /
                        f"ckpt-{results['steps']}.index")


def _expect_different_restores(fake, tmp_path, init0, init1, details):
  """Workers told --init_from=init0 and init1 both stop before their first
  step, saying they restored different checkpoints (and each of
  `details`)."""
  stage = [f"--model_dir={tmp_path}/stage", "--train_steps=8"]
  procs = _start_workers(fake, tmp_path, ([*stage, f"--init_from={init0}"],
                                          [*stage, f"--init_from={init1}"]))
  for code, _, err in _finish(procs):
    assert code != 0
    assert "the workers restored different checkpoints" in err, err[-3000:]
    for detail in details:
      assert detail in err, err[-3000:]
  assert not list((tmp_path / "stage").glob("checkpoints/ckpt-*"))


def test_workers_stop_together_when_one_fails_or_they_disagree(
    fake, tmp_path):
  # Each worker resolves --init_from itself. Told different checkpoints (as
  # when that run saves a new one while they restore, or their copies
  # differ), every worker must see the disagreement and stop before the
  # first step; told
  # the same run, they start together from its newest checkpoint. Workers
  # that fail alone, or were given other settings or data, stop them all.
  # A pair of workers trains run/ while one process trains seed1/ beside
  # them with another seed: each keeps ckpt-3 and ckpt-5, and the last stage
  # below starts from the workers' run.
  procs = _start_workers(fake, tmp_path)
  procs.append(subprocess.Popen(
      _command(fake, tmp_path, f"--model_dir={tmp_path}/seed1", "--seed=1"),
      cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
      text=True))
  for code, _, err in _finish(procs):
    assert code == 0, err[-3000:]
  first = tmp_path / "run" / "checkpoints"
  # Told checkpoints of the same step but other weights (another seed's
  # run), they stop (checkpoints of other steps differ in both). The
  # advice names the --init_from fix.
  _expect_different_restores(
      fake, tmp_path, first / "ckpt-5",
      tmp_path / "seed1" / "checkpoints" / "ckpt-5",
      ("step 5, weights sha256 ", "name one checkpoint"))
  # One worker's restore fails (its copy of ckpt-5 is cut short): it names
  # its problem, and the other stops too instead of waiting for it.
  damaged = tmp_path / "damaged"
  damaged.mkdir()
  for f in first.glob("ckpt-5.*"):
    shutil.copy(f, damaged / f.name)
  with open(next(damaged.glob("ckpt-5.data-*")), "r+b") as f:
    f.truncate(10)
  stage = [f"--model_dir={tmp_path}/stage3", "--train_steps=8"]
  procs = _start_workers(fake, tmp_path, (
      [*stage, f"--init_from={first}/ckpt-5"],
      [*stage, f"--init_from={damaged}/ckpt-5"]))
  (code0, _, err0), (code1, _, err1) = _finish(procs)
  assert code0 != 0 and "another worker could not restore" in err0, err0[-3000:]
  assert code1 != 0 and "no checkpoint can be read" in err1, err1[-3000:]
  # A worker that cannot load its data (before any restore) stops the other.
  procs = _start_workers(fake, tmp_path, (
      [f"--model_dir={tmp_path}/stage4"],
      [f"--model_dir={tmp_path}/stage4", f"--mnist_dir={tmp_path}/nowhere"]))
  (code0, _, err0), (code1, _, err1) = _finish(procs)
  assert code0 != 0, err0[-3000:]
  assert ("another worker could not check its settings or load its data"
          in err0), err0[-3000:]
  assert code1 != 0 and "nowhere" in err1, err1[-3000:]
  # Workers given different settings and different data under the same
  # flags all stop before the chief writes anything, naming each difference.
  other = tmp_path / "mnist_m_other"
  shutil.copytree(fake / "mnist_m", other)
  labels = other / "mnist_m_test_labels.txt"
  labels.write_text(labels.read_text().replace(" 1\n", " 2\n", 1))
  procs = _start_workers(fake, tmp_path, (
      [f"--model_dir={tmp_path}/stage5"],
      [f"--model_dir={tmp_path}/stage5", "--lr_decay_rate=0.9",
       f"--mnist_m_dir={other}"]))
  for code, _, err in _finish(procs):
    assert code != 0 and "the workers disagree on " in err, err[-3000:]
    named = err.split("the workers disagree on ", 1)[1]
    named = named.split(" (this worker: ", 1)[0].split(", ")
    assert sorted(named) == ["optim.decay_rate",
                             "target/test data (sha256)"], named
    assert "start every worker with the same flags" in err
  assert not (tmp_path / "stage5" / "config.json").exists()
  stage = [f"--model_dir={tmp_path}/stage2", "--train_steps=8",
           f"--init_from={tmp_path}/run"]
  outputs = _run_workers(fake, tmp_path, (stage, stage))
  assert outputs[0]["steps"] == outputs[1]["steps"] == 8
  assert outputs[0]["weights_sha256"] == outputs[1]["weights_sha256"]
  with open(tmp_path / "stage2" / "results.json") as f:
    assert json.load(f)["initialised_from"].endswith("ckpt-5")
  # However each run ended, the non-chief worker removed its scratch folder
  # (it has one from the restores above: both failed ones and this run).
  assert not _scratch_left(tmp_path)
