"""Flags -> Config: every field reachable, flagfiles, clear errors."""

import dataclasses
import os
import subprocess
import sys

from absl import flags
from absl.testing import flagsaver
import pytest

from pixelda_tf import config as config_lib
from pixelda_tf import flagfiles
from pixelda_tf import flags as pixelda_flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAGS = flags.FLAGS


def _parse(*argv):
  FLAGS.unparse_flags()
  FLAGS(["prog", *argv])
  return pixelda_flags.config_from_flags()


@pytest.fixture(autouse=True)
def _restore_flags():
  with flagsaver.flagsaver():
    yield
  FLAGS.unparse_flags()


def test_every_config_field_has_a_flag():
  covered = {(sec, field) for sec, field, _ in pixelda_flags._FLAGS.values()}
  covered |= {("train", "seed")}
  cfg = config_lib.Config()
  for sec in dataclasses.fields(cfg):
    for f in dataclasses.fields(getattr(cfg, sec.name)):
      assert (sec.name, f.name) in covered, f"{sec.name}.{f.name}"


def test_defaults_are_the_config_defaults():
  assert _parse() == config_lib.Config()


def test_paper_flagfile_gives_the_official_setup():
  os.chdir(ROOT)
  cfg = _parse("--flagfile=configs/mnistm.flags")
  assert cfg.generator == config_lib.GeneratorConfig(filters=64, num_blocks=6,
                                                     noise_dim=10)
  assert cfg.loss.domain == pytest.approx(0.1356, abs=1e-4)
  assert cfg.loss.task_in_g == pytest.approx(0.0101, abs=1e-4)
  assert cfg.loss.style == pytest.approx(0.0113, abs=1e-4)
  assert cfg.loss.pmse == 0.0
  assert (cfg.train.batch_size, cfg.optim.learning_rate, cfg.optim.beta1) == (
      32, 1e-3, 0.5)
  # The official loop counts D and G steps apiece: its 500k steps and lr
  # decay every 20k are 250k and 10k of our fused steps.
  assert (cfg.train.train_steps, cfg.optim.decay_steps,
          cfg.optim.decay_rate) == (250000, 10000, 0.95)
  # The library defaults are the same official setup.
  defaults = config_lib.Config()
  assert (defaults.train.train_steps, defaults.optim.decay_steps) == (
      250000, 10000)
  assert defaults.loss == cfg.loss and defaults.generator == cfg.generator


def test_command_line_overrides_the_flagfile_and_seeds_are_separate():
  os.chdir(ROOT)
  cfg = _parse("--flagfile=configs/mnistm.flags",
               "--flagfile=configs/smoke.flags", "--batch_size=4",
               "--seed=9", "--nojit_compile")
  assert cfg.train.batch_size == 4
  # The training seed leaves the data (and so the test set) unchanged.
  assert (cfg.train.seed, cfg.data.seed) == (9, 0)
  assert _parse("--data_seed=5").data.seed == 5
  assert not cfg.runtime.jit_compile
  assert cfg.generator.filters == 8  # from the smoke file


@pytest.mark.parametrize("argv,message", [
    (["--target=mnist_n"], "--target='mnist_n' is not valid"),
    (["--mode=fast"], "--mode='fast' is not valid"),
    (["--image_size=30"], "--image_size=30"),
    (["--target=usps", "--bsds_dir=/x"], "--bsds_dir is set but"),
    (["--mnist_m_variant=released"], "needs --mnist_m_dir"),
    (["--bsds_dir=/x", "--mnist_m_variant=offline"], "contradicts"),
    (["--source=usps", "--target=usps"], "both 'usps'"),
    (["--strategy=mirrored", "--sync_batch_norm"], "--nojit_compile"),
    (["--num_cpu_devices=2"], "--strategy=mirrored"),
    (["--batch_size=0"], "--batch_size=0"),
    (["--learning_rate=inf"], "--learning_rate=inf: must be finite"),
    (["--learning_rate=0"], "--learning_rate=0.0: must be finite and > 0"),
    (["--lr_late_decay_steps=2000"],
     "--lr_late_decay_steps=2000 and --lr_late_decay_from=0: give both"),
    (["--lr_late_decay_from=5", "--lr_late_decay_steps=-1"],
     "--lr_late_decay_steps=-1 and --lr_late_decay_from=5: give both"),
    (["--lr_late_decay_from=5", "--lr_late_decay_steps=20000"],
     "--lr_late_decay_steps=20000 is longer than --lr_decay_steps=10000"),
    (["--style_weight=nan"], "--style_weight=nan: a loss weight must be "
     "finite"),
    (["--domain_weight=-1"], "--domain_weight=-1.0: a loss weight must be"),
    (["--ema_decay=1"], "--ema_decay=1.0: use 0 \\(off\\)"),
    (["--smaller_images=crop"], "--smaller_images='crop' is not valid"),
    (["--pseudo_label_threshold=0"], "--pseudo_label_threshold=0.0: must be "
     "in \\(0, 1\\]"),
    (["--pseudo_label_threshold=1.5"], "--pseudo_label_threshold=1.5"),
    (["--pseudo_label_weight=-1"], "--pseudo_label_weight=-1.0: a loss "
     "weight"),
    (["--pseudo_label_weight=1", "--mode=source_only"],
     "--mode=source_only trains without"),
    (["--refine_start_step=-2", "--pseudo_label_weight=1"],
     "--refine_start_step=-2: must be >= 0"),
    (["--refine_start_step=100"], "--refine_start_step=100 starts nothing: "
     "set --pseudo_label_weight"),
    (["--target_vat_weight=-0.5"], "--target_vat_weight=-0.5: a loss weight"),
    (["--target_vat_weight=1", "--mode=target_only"],
     "--mode=target_only trains without"),
    (["--target_vat_radius=0"], "--target_vat_radius=0.0: must be a finite "
     "L2 norm > 0, e.g. 3.5"),
    (["--target_vat_radius=inf"], "--target_vat_radius=inf"),
    (["--target_teacher_weight=1"], "--target_teacher_weight=1.0: the "
     "teacher is the weight-averaged classifier, and --ema_decay=0 keeps no "
     "average: set --ema_decay"),
    (["--target_teacher_weight=1", "--ema_decay=0.99", "--mode=source_only"],
     "--mode=source_only trains without"),
    (["--target_teacher_shift=2"], "--target_teacher_shift=2 and "
     "--target_teacher_noise=0.0 perturb the mean teacher's student view, and "
     "--target_teacher_weight=0 turns the teacher off"),
    (["--target_teacher_noise=0.1"], "--target_teacher_weight=0 turns"),
    (["--target_teacher_weight=1", "--ema_decay=0.99",
      "--target_teacher_shift=-1"], "--target_teacher_shift=-1: must be >= 0 "
     "and under half the image side"),
    (["--target_teacher_weight=1", "--ema_decay=0.99",
      "--target_teacher_shift=16"], "--target_teacher_shift=16: must be"),
    (["--target_teacher_weight=1", "--ema_decay=0.99",
      "--target_teacher_noise=nan"], "--target_teacher_noise=nan: must be "
     "finite and >= 0, e.g. 0.1"),
    (["--strategy=mirrored", "--precision=mixed_float16"],
     "--precision=mixed_float16 is not supported with --strategy=mirrored"),
    (["--d_filters=0"], "--d_filters=0 and --d_max_filters=512: both must "
     "be > 0"),
    (["--d_max_filters=-4"], "--d_max_filters=-4: both must be > 0"),
    (["--max_minutes=inf"], "--max_minutes=inf: must be finite"),
    (["--d_noise_stddev=inf"], "--d_noise_stddev=inf: must be finite"),
    (["--data_seed=-1"], "--data_seed=-1: must be >= 0"),
    (["--select_checkpoint=best"], "--select_checkpoint='best' is not valid; "
     "use one of auto, val_accuracy, latest, entropy, im"),
    (["--select_checkpoint=domain_confusion", "--mode=source_only"],
     "--select_checkpoint=domain_confusion scores G and D, which "
     "--mode=source_only does not train: use one of auto, val_accuracy, "
     "latest, entropy, im, bnm, snd$"),
    # --classes: a subset of the built-in data sets' classes.
    (["--classes=0,10"], r"--classes=0,10: [10] not among the built-in "
     r"classes 0-9; use ids in [0, 10\)$"),
    (["--classes=0,x"], "--classes=0,x: 'x' is not a class id; give "
     "comma-separated integers, e.g. 0,1,2,3,4$"),
    (["--classes=,"], "--classes=',' names no class: give comma-separated "
     "ids, e.g. 0,1,2,3,4, or drop the flag"),
    (["--classes=1,2,1"], "--classes=1,2,1 names [1] twice: name each class "
     "once$"),
    (["--classes=3"], "--classes=3: one class leaves nothing to classify; "
     "give at least 2, e.g. 0,1$"),
    (["--classes=0,1,2", "--source=folder", "--source_dir=/x"],
     "--classes restricts the built-in data sets, and --source=folder reads "
     "a folder: folders already express a subset: keep only those class "
     "subfolders and drop --classes$"),
    (["--classes=0,1,2", "--target=folder", "--target_dir=/x"],
     "--target=folder reads a folder: folders already express a subset"),
    (["--classes=0,5", "--num_classes=4"], r"--classes=0,5: class ids must "
     r"be in [0, --num_classes=4\)$"),
])
def test_contradictory_or_bad_values_fail_with_the_fix(argv, message):
  with pytest.raises(config_lib.ConfigError, match=message.replace(
      "[", r"\[")):
    _parse(*argv)


def test_flagfiles_expand_as_absl_does_and_from_any_folder(tmp_path,
                                                            monkeypatch):
  smoke = os.path.join(ROOT, "configs", "mnistm_cpu.flags")
  argv = ["prog", "--seed=4", f"--flagfile={smoke}", "--batch_size=4", "--",
          "--flagfile=after_the_separator"]
  monkeypatch.chdir(ROOT)
  # absl's own expansion, from the root where the nested paths resolve.
  want = FLAGS.read_flags_from_files(argv)
  assert any(a.startswith("--domain_weight=") for a in want)  # nested file
  monkeypatch.chdir(tmp_path)
  assert flagfiles.expand(argv) == want
  FLAGS.unparse_flags()
  flagfiles.parse(argv[:4])
  got = pixelda_flags.config_from_flags()
  monkeypatch.chdir(ROOT)
  assert got == _parse(f"--flagfile={smoke}", "--seed=4", "--batch_size=4")


def test_flagfile_forms_absl_accepts(tmp_path, monkeypatch):
  (tmp_path / "a.flags").write_text("--seed=5\n// note\n--flagfile= ~/b.flags\n")
  (tmp_path / "b.flags").write_text("--batch_size=6\n")
  monkeypatch.setenv("HOME", str(tmp_path))
  monkeypatch.chdir(ROOT)
  for argv in (["--flagfile=~/a.flags"], ["--flagfile", "~/a.flags"],
               ["-flagfile=~/a.flags"], ["-flagfile", str(tmp_path / "a.flags")]):
    want = FLAGS.read_flags_from_files(["prog", *argv, "--seed=7"])
    assert want == ["prog", "--seed=5", "--batch_size=6", "--seed=7"]
    assert flagfiles.expand(["prog", *argv, "--seed=7"]) == want


def test_flagfile_errors_name_the_file_and_who_named_it(tmp_path):
  (tmp_path / "a.flags").write_text("# top\n\n--flagfile=sub/b.flags\n")
  os.makedirs(tmp_path / "sub")
  (tmp_path / "sub" / "b.flags").write_text("--flagfile=missing.flags\n")
  with pytest.raises(flags.CantOpenFlagFileError, match=r"cannot open "
                     r"--flagfile=missing.flags \(named in .*b.flags"):
    flagfiles.expand(["prog", f"--flagfile={tmp_path / 'a.flags'}"])
  (tmp_path / "sub" / "b.flags").write_text("--flagfile=../a.flags\n")
  with pytest.raises(flags.CantOpenFlagFileError, match="includes itself"):
    flagfiles.expand(["prog", f"--flagfile={tmp_path / 'a.flags'}"])


def test_config_round_trips_through_json():
  cfg = _parse("--flagfile=" + os.path.join(ROOT, "configs/mnistm.flags"))
  import json  # pylint: disable=g-import-not-at-top
  assert config_lib.Config.from_dict(json.loads(cfg.to_json())) == cfg
  with pytest.raises(config_lib.ConfigError, match="unknown train"):
    config_lib.Config.from_dict({"train": {"bogus": 1}})
  # A config.json's shift that no flag could give (absl parses an integer).
  for shift in (1.5, True):
    with pytest.raises(config_lib.ConfigError,
                       match="--target_teacher_shift=(1.5|True): must be"):
      config_lib.validate(config_lib.Config.from_dict({
          "loss": {"target_teacher": 1.0, "target_teacher_shift": shift},
          "train": {"ema_decay": 0.9}}))


@pytest.mark.parametrize("argv,message", [
    (["--no_such_flag=1"], "Unknown command line flag 'no_such_flag'"),
    (["--mode=fast"], "--mode='fast' is not valid"),
    (["stray"], "unexpected arguments"),
    # From another folder, a preset (which names its parent by a path from
    # the repository root) still reads: the error is the bad --mode's.
    (["--elsewhere", f"--flagfile={ROOT}/configs/mnistm_cpu.flags",
      "--mode=fast"], "--mode='fast' is not valid"),
    (["--elsewhere", "--flagfile=nope.flags"],
     "cannot open --flagfile=nope.flags: No such file"),
])
@pytest.mark.slow
def test_binary_fails_before_any_work(argv, message, tmp_path):
  elsewhere = argv[:1] == ["--elsewhere"]
  proc = subprocess.run(
      [sys.executable, "-m", "pixelda_tf.train",
       f"--model_dir={tmp_path}/run", *argv[elsewhere:]],
      cwd=str(tmp_path) if elsewhere else ROOT, capture_output=True,
      text=True, timeout=120, env={**os.environ, "PYTHONPATH": ROOT})
  assert proc.returncode != 0
  assert message in proc.stderr
  assert not os.path.exists(tmp_path / "run")


def test_sets_derived_from_the_fields_are_the_old_hand_written_ones():
  from pixelda_tf import rundir  # pylint: disable=g-import-not-at-top
  locations = {("data", f) for f in (
      "data_dir", "mnist_dir", "bsds_dir", "mnist_m_dir", "usps_path",
      "source_dir", "target_dir", "target_val_dir", "download")}
  assert rundir.DATA_LOCATIONS == locations
  assert rundir.RESUMABLE_CHANGES == {("train", f) for f in (
      "train_steps", "max_minutes", "checkpoint_every", "eval_every",
      "summary_every", "image_every", "keep_checkpoints", "quiet",
      "model_dir", "init_from", "select_checkpoint")} | {("runtime", f) for f in (
          "strategy", "num_cpu_devices", "jit_compile", "intra_op_threads",
          "inter_op_threads", "fused_batch_norm", "split_conv_grad",
          "precision")} | locations
  assert rundir.PER_WORKER_SETTINGS == {("train", f) for f in (
      "quiet", "model_dir", "init_from", "max_minutes",
      "keep_checkpoints")} | {("runtime", f) for f in (
          "intra_op_threads", "inter_op_threads")} | locations


def test_flag_names_are_the_ones_users_know():
  # Where a flag's name is not its field's.
  renamed = {name: field for name, (_, field, _) in
             pixelda_flags._FLAGS.items() if name != field}
  assert renamed == {
      "data_seed": "seed", "g_filters": "filters", "g_blocks": "num_blocks",
      "g_residual_output": "residual_output", "d_filters": "filters",
      "d_max_filters": "max_filters",
      "d_dropout_keep_prob": "dropout_keep_prob",
      "d_noise_stddev": "noise_stddev", "d_noise": "noise",
      "d_minibatch_std": "minibatch_std",
      **{f"{w}_weight": w for w in config_lib.LossConfig.weights()},
      "lr_decay_steps": "decay_steps", "lr_decay_rate": "decay_rate",
      "lr_late_decay_steps": "late_decay_steps",
      "lr_late_decay_from": "late_decay_from"}
  assert len(pixelda_flags._FLAGS) == 78


def test_docs_options_md_is_up_to_date():
  with open(os.path.join(ROOT, "docs", "options.md")) as f:
    stored = f.read()
  assert stored == pixelda_flags.options_markdown(), (
      "docs/options.md is out of date: run "
      "`python -m pixelda_tf.flags > docs/options.md`")
