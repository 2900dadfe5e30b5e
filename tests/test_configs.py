"""The presets in configs/: flat, pinned, and each trains with the smoke
overlay (on fake data)."""

import glob
import os
import re

from absl import flags
from absl.testing import flagsaver
import pytest
import tensorflow as tf

from pixelda_tf import flagfiles
from pixelda_tf import flags as pixelda_flags
from pixelda_tf import training

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = os.path.join(ROOT, "configs")
FLAGS = flags.FLAGS

BASE = "mnistm.flags"
SMOKE = "smoke.flags"
# Not a training preset: `python -m pixelda_tf.data`'s loading check.
DATA_SMOKE = "data_smoke.flags"
PRESETS = sorted(os.path.basename(p)
                 for p in glob.glob(os.path.join(CONFIGS, "*.flags"))
                 if os.path.basename(p) not in (SMOKE, DATA_SMOKE))

# The flags each preset sets, and their values. The base's are the official
# TF1 hparams (the paper's setup); every other preset is the base and its own
# lines, which win.
PAPER = {
    "source": "mnist", "target": "mnist_m", "mnist_m_variant": "auto",
    "image_size": 32, "batch_size": 32, "train_steps": 250000,
    "learning_rate": 0.001, "beta1": 0.5, "lr_decay_steps": 10000,
    "lr_decay_rate": 0.95, "clipnorm": 5.0,
    "g_filters": 64, "g_blocks": 6, "noise_dim": 10,
    "d_filters": 64, "d_max_filters": 512, "d_dropout_keep_prob": 0.9,
    "d_noise_stddev": 0.2, "private_source_layer": True,
    "domain_weight": 0.135603587834, "style_weight": 0.0113173311334,
    "task_source_weight": 1.0, "task_adapted_weight": 1.0,
    "task_in_g_weight": 0.0100959947002, "pmse_weight": 0.0,
    "checkpoint_every": 2000, "eval_every": 2000, "summary_every": 100,
    "image_every": 5000, "model_dir": "runs/mnistm",
}
# The CPU presets' generator and speed flags.
_CPU = {"g_filters": 32, "g_blocks": 4, "g_residual_output": True,
        "jit_compile": False, "fused_batch_norm": True,
        "split_conv_grad": True, "precision": "auto", "train_steps": 100000}
_HOUR = {**_CPU, "max_minutes": 60.0, "checkpoint_every": 250,
         "eval_every": 250, "summary_every": 50, "image_every": 1000}
_RELEASED = {**_HOUR, "mnist_m_variant": "released", "smaller_images": "pad",
             "ema_decay": 0.999}
PINNED = {
    "mnistm.flags": PAPER,
    "mnistm_cpu.flags": {**PAPER, **_HOUR, "model_dir": "runs/mnistm_cpu"},
    "mnistm_released_cpu.flags": {
        **PAPER, **_RELEASED, "model_dir": "runs/mnistm_released_cpu"},
    "mnistm_released_cpu_small_d.flags": {
        **PAPER, **_RELEASED, "d_filters": 32, "d_max_filters": 256,
        "d_noise": "uniform", "batch_size": 16, "eval_every": 500,
        "checkpoint_every": 500, "summary_every": 100, "image_every": 2000,
        "model_dir": "runs/mnistm_released_cpu_small_d"},
    "mnistm_released_cpu_late_decay.flags": {
        **PAPER, **_RELEASED, "target_entropy_weight": 0.1,
        "refine_start_step": 17000, "lr_late_decay_steps": 2000,
        "lr_late_decay_from": 23500, "max_minutes": 200.0,
        "model_dir": "runs/mnistm_released_cpu_late_decay"},
    "usps.flags": {**PAPER, "target": "usps", "model_dir": "runs/usps"},
    "usps_cpu.flags": {
        **PAPER, **_CPU, "target": "usps", "image_size": 16,
        "ema_decay": 0.999, "max_minutes": 30.0, "checkpoint_every": 500,
        "eval_every": 500, "summary_every": 100, "image_every": 2000,
        "model_dir": "runs/usps_cpu"},
}
# smoke.flags' settings: sizes, steps and intervals only.
SMOKE_SIZED = {"image_size": 16, "batch_size": 8, "train_steps": 6,
               "max_minutes": 0.0, "g_filters": 8, "g_blocks": 1,
               "d_filters": 8, "d_max_filters": 16, "checkpoint_every": 3,
               "eval_every": 3, "summary_every": 2, "image_every": 3,
               "val_size": 200, "model_dir": "runs/smoke"}
# The late-decay preset's step-gated switches, moved inside the smoke's 6
# steps (smoke.flags cannot: config.validate refuses --refine_start_step
# without a refinement term, and a late decay would change every other
# preset's schedule).
SWITCHES = {"mnistm_released_cpu_late_decay.flags": [
    "--refine_start_step=3", "--lr_decay_steps=3", "--lr_late_decay_steps=1",
    "--lr_late_decay_from=4"],
            # The paper's USPS preset is mnistm.flags' step on other data:
            # mnistm.flags' run covers the XLA-compiled loop (a compile
            # costs 10-20 s on 2 cores).
            "usps.flags": ["--nojit_compile"]}


@pytest.fixture(autouse=True)
def _restore_flags():
  with flagsaver.flagsaver():
    yield
  FLAGS.unparse_flags()


def _set(*argv):
  """Parses argv as a binary does (pixelda_tf.flagfiles expands the
  flagfiles); returns {flag: value} for the flags it sets."""
  FLAGS.unparse_flags()
  FLAGS(flagfiles.expand(["prog", *argv]))
  return {name: FLAGS[name].value for name in FLAGS.flag_values_dict()
          if FLAGS[name].present}


def _preset(*names):
  return [f"--flagfile={os.path.join(CONFIGS, n)}" for n in names]


def _includes(name):
  with open(os.path.join(CONFIGS, name)) as f:
    return [line.strip().split("=", 1)[1] for line in f
            if line.strip().startswith(("--flagfile", "-flagfile"))]


def test_includes_are_at_most_one_level_deep():
  for name in (BASE, SMOKE, DATA_SMOKE):
    assert not _includes(name), name
  for name in PRESETS:
    if name != BASE:
      assert _includes(name) == ["configs/mnistm.flags"], name


def test_every_preset_is_pinned_and_says_what_it_measured():
  assert sorted(PINNED) == PRESETS
  for name in PRESETS:
    with open(os.path.join(CONFIGS, name)) as f:
      header = f.read().split("\n--", 1)[0]
    for says in ("Hardware:", "Budget:", "Measured:"):
      assert says in header, (name, says)


@pytest.mark.parametrize("name", PRESETS)
def test_preset_expands_to_its_pinned_values(name):
  assert _set(*_preset(name)) == PINNED[name]


@pytest.mark.parametrize("name", PRESETS)
def test_smoke_overlay_makes_any_preset_smoke_sized(name):
  preset = _set(*_preset(name))
  data = {} if preset["target"] == "usps" else {"mnist_m_dir": "fake"}
  got = _set(*_preset(name, SMOKE), *(f"--{k}={v}" for k, v in data.items()))
  assert got == {**preset, **SMOKE_SIZED, **data}
  cfg = pixelda_flags.config_from_flags()  # validates
  assert cfg.train.train_steps == 6 and cfg.train.max_minutes == 0


@pytest.mark.parametrize("removed", sorted(flagfiles.REMOVED))
def test_a_removed_preset_fails_with_its_replacement(removed, monkeypatch,
                                                     capsys):
  assert not os.path.exists(os.path.join(CONFIGS, removed))
  monkeypatch.chdir(ROOT)
  with pytest.raises(SystemExit):
    flagfiles.parse(["prog", f"--flagfile=configs/{removed}"])
  err = capsys.readouterr().err
  match = re.fullmatch(f"error: configs/{removed} was removed: use "
                       r"(--flagfile=configs/\S+\.flags.*) \(--helpfull "
                       r"lists every flag\)\n",
                       err)
  assert match, err
  # The replacement parses and validates.
  data = [] if "usps" in removed else ["--mnist_m_dir=fake"]
  _set(*match.group(1).split(), *data)
  pixelda_flags.config_from_flags()


def test_the_long_presets_replacements_keep_their_values(monkeypatch):
  monkeypatch.chdir(ROOT)
  def replaced(removed):
    with pytest.raises(flags.CantOpenFlagFileError) as e:
      flagfiles.expand(["prog", f"--flagfile=configs/{removed}"])
    return _set(*str(e.value).split(": use ")[1].split())
  hour = PINNED["mnistm_released_cpu.flags"]
  assert replaced("mnistm_released_cpu_long.flags") == {
      **hour, "lr_decay_steps": 2000, "max_minutes": 140.0,
      "model_dir": "runs/mnistm_released_cpu_long"}
  assert replaced("mnistm_released_cpu_long_entropy.flags") == {
      **hour, "lr_decay_steps": 2000, "max_minutes": 140.0,
      "target_entropy_weight": 0.1, "refine_start_step": 17000,
      "model_dir": "runs/mnistm_released_cpu_long_entropy"}
  assert replaced("mnistm_released_cpu_late_decay_64k.flags") == {
      **PINNED["mnistm_released_cpu_late_decay.flags"], "train_steps": 64000,
      "max_minutes": 0.0,
      "model_dir": "runs/mnistm_released_cpu_late_decay_64k"}


@pytest.mark.slow  # trains
@pytest.mark.parametrize("name", PRESETS)
def test_preset_with_smoke_overlay_trains(name, fake, tmp_path):
  # The presets' own settings, with data pointed at the fake files.
  target = _set(*_preset(name))["target"]
  data = ([f"--usps_path={fake}/usps.h5"] if target == "usps" else
          ["--mnist_m_variant=released", f"--mnist_m_dir={fake}/mnist_m"])
  _set(*_preset(name, SMOKE), *SWITCHES.get(name, []), *data,
       f"--mnist_dir={fake}/mnist", f"--data_dir={tmp_path}/data",
       "--val_size=8", f"--model_dir={tmp_path}/run", "--quiet")
  cfg = pixelda_flags.config_from_flags()
  FLAGS.unparse_flags()
  results = training.train(cfg, strategy=tf.distribute.get_strategy())
  assert results["steps"] == cfg.train.train_steps == 6
  assert 0.0 <= results["final"]["accuracy"] <= 1.0
