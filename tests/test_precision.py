"""Mixed precision (--precision): float32 unchanged, bfloat16 and float16
train with float32 variables, checkpoints and exports stay float32, and
`auto` picks bfloat16 only on hardware that runs it natively."""

import dataclasses
import json
import os

from absl import flags
from absl.testing import flagsaver
import keras
import numpy as np
import pytest
import tensorflow as tf

from pixelda_tf import config as config_lib
from pixelda_tf import cpu_layers
from pixelda_tf import exporting
from pixelda_tf import flags as pixelda_flags
from pixelda_tf import models
from pixelda_tf import pixelda
from pixelda_tf import rundir
from pixelda_tf import runtime
from tests import tiny


# Trains, exports or starts processes: not in the quick tier.
pytestmark = pytest.mark.slow

STEPS = 2


def _train(precision=None, steps=STEPS, **runtime_fields):
  """A tiny PixelDA after `steps` steps; precision None leaves the setting
  at its default."""
  if precision is not None:
    runtime_fields["precision"] = precision
  cfg = tiny.tiny_config(runtime=runtime_fields)
  model = pixelda.PixelDA(cfg, tf.distribute.get_strategy())
  logs = {}
  for i in range(steps):
    logs = model.train_step(tiny.batch(i))
  return model, {k: float(v) for k, v in logs.items()}


def _compute_dtypes(net):
  out = {}
  for layer in net.layers:
    if isinstance(layer, keras.Model):
      out.update(_compute_dtypes(layer))
    elif not isinstance(layer, keras.layers.InputLayer):
      out[layer.name] = layer.compute_dtype
  return out


def _max_diff(a, b):
  return max(float(np.max(np.abs(a[k] - b[k]))) for k in a)


@pytest.fixture(scope="module")
def float32_run():
  return _train()


@pytest.fixture(scope="module")
def bf16_run():
  return _train("mixed_bfloat16")


def test_float32_is_the_default_and_trains_as_without_the_setting(
    float32_run):
  assert config_lib.Config().runtime.precision == "float32"
  explicit, logs = _train("float32")
  default, default_logs = float32_run
  assert explicit.precision == default.precision == "float32"
  assert logs == default_logs
  a, b = tiny.weights(explicit), tiny.weights(default)
  assert a.keys() == b.keys()
  for k in a:
    np.testing.assert_array_equal(a[k], b[k], err_msg=k)
  # No layer computes in anything but float32.
  for net in ("generator", "discriminator", "classifier"):
    assert set(_compute_dtypes(getattr(explicit.nets, net)).values()) == {
        "float32"}, net


def test_bf16_computes_in_bf16_and_keeps_float32_state(bf16_run, float32_run,
                                                       caplog):
  model, logs = bf16_run
  assert model.precision == "mixed_bfloat16"
  assert all(np.isfinite(v) for v in logs.values()), logs
  d = _compute_dtypes(model.nets.discriminator)
  assert d["conv0"] == d["conv1"] == d["conv1_bn"] == "bfloat16"
  # Outputs (D's logit, T's logits, G's image) leave the networks in float32.
  assert d["logit"] == "float32"
  assert _compute_dtypes(model.nets.classifier)["logits"] == "float32"
  assert _compute_dtypes(model.nets.generator)["conv_out"] == "float32"
  x = tf.constant(tiny.batch()["source_images"])
  assert model.nets.discriminator(x).dtype == tf.float32
  assert model.nets.generator([x, tf.zeros([tiny.BATCH, 10])]).dtype == (
      tf.float32)
  # Variables, batch-norm statistics and optimizer state stay float32, and
  # the statistics were updated.
  assert {v.dtype for v in model.checkpoint_variables()} == {"float32"}
  for opt in model.optimizers.values():
    assert {v.dtype for v in opt.variables} <= {"float32", "int64"}
  bn = model.nets.discriminator.get_layer("conv1_bn")
  assert bn.moving_mean.dtype == "float32"
  assert np.abs(bn.moving_mean.numpy()).max() > 0
  _, grads = model.gradients(tiny.batch(5))
  assert {g.dtype for gs in grads.values() for g in gs} == {tf.float32}
  # Really a different arithmetic: close to float32's weights, not equal.
  diff = _max_diff(tiny.weights(model), tiny.weights(float32_run[0]))
  assert 0 < diff < 0.05
  # The run says what it chose, in one line.
  # absl's logger has its own level (other tests may set --verbosity).
  with caplog.at_level("INFO", logger="absl"):
    pixelda.PixelDA(tiny.tiny_config(runtime=dict(precision="mixed_bfloat16")),
                    tf.distribute.get_strategy())
  lines = [r.getMessage() for r in caplog.records
           if r.getMessage().startswith("precision:")]
  assert lines == ["precision: mixed_bfloat16 (set by "
                   "--precision=mixed_bfloat16)"]


def test_bf16_speed_layers_match_the_stock_layers(bf16_run):
  # --fused_batch_norm and --split_conv_grad under bfloat16: the fused op
  # takes 16-bit inputs with float32 statistics; same numbers up to rounding.
  fast, logs = _train("mixed_bfloat16", fused_batch_norm=True,
                      split_conv_grad=True)
  bn = fast.nets.discriminator.get_layer("conv1_bn")
  assert isinstance(bn, cpu_layers.FusedBatchNormalization)
  assert bn.compute_dtype == "bfloat16" and bn.moving_mean.dtype == "float32"
  assert isinstance(fast.nets.discriminator.get_layer("conv1"),
                    cpu_layers.Stride2Conv2D)
  assert all(np.isfinite(v) for v in logs.values()), logs
  assert _max_diff(tiny.weights(fast), tiny.weights(bf16_run[0])) < 0.02


def _model_dir(path, model):
  with open(os.path.join(path, rundir.CONFIG_FILE), "w") as f:
    f.write(model.cfg.to_json())
  tf.train.CheckpointManager(
      model.checkpoint, os.path.join(path, rundir.CHECKPOINT_DIR),
      max_to_keep=1).save()
  return str(path)


def test_bf16_checkpoint_restores_into_float32_networks(bf16_run, tmp_path):
  model, _ = bf16_run
  restored = rundir.restore(_model_dir(tmp_path, model))
  assert restored.precision == "float32"
  assert set(_compute_dtypes(restored.nets.classifier).values()) == {
      "float32"}
  want, got = tiny.weights(model), tiny.weights(restored)
  for k in want:
    np.testing.assert_array_equal(got[k], want[k], err_msg=k)
  # And a float32 checkpoint resumes under bfloat16 (nothing else changes).
  cfg = tiny.tiny_config(runtime=dict(precision="mixed_bfloat16"))
  again = pixelda.PixelDA(cfg, tf.distribute.get_strategy())
  again.checkpoint.restore(tf.train.latest_checkpoint(
      os.path.join(tmp_path, rundir.CHECKPOINT_DIR))
                          ).assert_existing_objects_matched()
  assert int(again.step.numpy()) == STEPS


def test_precision_may_change_on_resume(tmp_path):
  cfg = tiny.tiny_config(train=dict(model_dir=str(tmp_path)))
  with open(os.path.join(tmp_path, rundir.CONFIG_FILE), "w") as f:
    f.write(cfg.to_json())

  def check(new):
    rundir.RunDir(new, chief=True).check_settings()

  check(dataclasses.replace(cfg, runtime=dataclasses.replace(
      cfg.runtime, precision="auto")))
  with pytest.raises(config_lib.ConfigError, match="batch_size"):
    check(tiny.tiny_config(train=dict(model_dir=str(tmp_path), batch_size=4)))


def test_export_of_a_bf16_run_serves_float32(bf16_run, tmp_path):
  model, _ = bf16_run
  os.makedirs(tmp_path / "run")
  model_dir = _model_dir(tmp_path / "run", model)
  paths = exporting.export_model_dir(model_dir, str(tmp_path / "out"))
  x = tiny.batch(7)["target_images"]
  # The float32 reference: float32 networks holding the trained weights.
  ref = pixelda.PixelDA(tiny.tiny_config(), tf.distribute.get_strategy())
  ref.checkpoint.restore(tf.train.latest_checkpoint(
      os.path.join(model_dir, rundir.CHECKPOINT_DIR))).expect_partial()
  want = ref.nets.classifier(x, training=False).numpy()
  # Freshly trained logits are small: tolerances relative to their size.
  # bfloat16 inference would be off by ~1e-3 of it, float32 by ~1e-7.
  atol = 3e-5 * np.abs(want).max()
  bf16_logits = model.nets.classifier(x, training=False).numpy()
  assert np.abs(bf16_logits - want).max() > 10 * atol

  keras_model = keras.models.load_model(paths["classifier.keras"])
  assert set(_compute_dtypes(keras_model).values()) == {"float32"}
  assert {w.dtype for w in keras_model.weights} == {"float32"}
  np.testing.assert_allclose(keras_model(x, training=False).numpy(), want,
                             rtol=0, atol=atol)
  served = tf.saved_model.load(paths["classifier"]).signatures[
      "serving_default"](image=tf.constant(x))
  assert served["logits"].dtype == tf.float32
  np.testing.assert_allclose(served["logits"].numpy(), want, rtol=0,
                             atol=atol)


def test_fp16_scales_the_loss_and_unscales_the_gradients(float32_run,
                                                         tmp_path):
  model, logs = _train("mixed_float16")
  assert all(np.isfinite(v) for v in logs.values()), logs
  assert set(model.loss_scalers) == set(model.optimizers)
  assert {v.dtype for v in model.checkpoint_variables()} == {"float32"}
  scale = float(model.loss_scalers["generator"].dynamic_scale.numpy())
  assert scale == 2.0 ** 15
  # Every step applied: the inner Adams counted them.
  assert all(int(o.iterations.numpy()) == STEPS
             for o in model.optimizers.values())
  # The raw gradients are the true ones times the scale. D's dropout and
  # noise are off: layers draw them in their compute dtype, so float16 and
  # float32 runs draw different masks.
  def deterministic(precision):
    return pixelda.PixelDA(tiny.tiny_config(
        discriminator=dict(dropout_keep_prob=1.0, noise_stddev=0.0),
        runtime=dict(precision=precision)), tf.distribute.get_strategy())
  f32, f16 = deterministic("float32"), deterministic("mixed_float16")
  for a, b in zip(f32.checkpoint_variables(), f16.checkpoint_variables()):
    b.assign(a)

  def flat(grads):
    return {name: np.concatenate([t.numpy().ravel() for t in grads[name]])
            .astype(np.float64) for name in pixelda.UPDATE_ORDER}

  want = flat(f32.gradients(tiny.batch(9))[1])
  got = flat(f16.gradients(tiny.batch(9))[1])
  for scaler in f16.loss_scalers.values():
    scaler.dynamic_scale.assign(scale / 2)
  halved = flat(f16.gradients(tiny.batch(9))[1])
  # Scaling by a power of two commutes with float16 rounding (short of
  # overflow and subnormals), so the scaled gradients must follow the scale
  # exactly: twice the scale, twice the raw gradients. A missed or doubled
  # unscale is off by a factor of two or more. The bound is 16 float16 units
  # of roundoff (2**-11 each); CPUs with and without oneDNN and AVX-512 give
  # 0 to 1.4 units.
  fp16_unit = 2.0 ** -11
  for name in pixelda.UPDATE_ORDER:
    g, s, h = want[name], got[name], halved[name]
    off = np.linalg.norm(s - 2 * h) / np.linalg.norm(s)
    assert off < 16 * fp16_unit, (name, off)
    # Against float32 only the direction and the size can be held: float16
    # rounds every activation, and where a network's gradient is a sum of
    # terms that nearly cancel (G's: through D and through T) the relative
    # error of the sum is many units (2-6% measured on AVX2 and AVX-512).
    # Direction within 8 degrees (cosine 0.99) and size within 10% still tell
    # a wrong or unscaled gradient (size off by 2**15) from rounding.
    unscaled = s / scale
    cosine = unscaled @ g / (np.linalg.norm(unscaled) * np.linalg.norm(g))
    size = np.linalg.norm(unscaled) / np.linalg.norm(g)
    assert cosine > 0.99, (name, cosine)
    assert 0.9 < size < 1.1, (name, size)
  # The loss scale is not checkpointed: the checkpoint holds what a float32
  # run's does.
  def keys(m):
    return {k for k, _ in tf.train.list_variables(
        m.checkpoint.write(str(tmp_path / m.precision)))}
  assert keys(model) == keys(float32_run[0])


def test_fp16_skips_a_step_with_overflowing_gradients():
  model, _ = _train("mixed_float16", steps=1)
  before = tiny.weights(model)
  for scaler in model.loss_scalers.values():
    scaler.dynamic_scale.assign(2.0 ** 40)  # float16 overflows: inf grads.
  model.train_step(tiny.batch(3))
  after = tiny.weights(model)
  trained = [k for k in before if "kernel" in k]
  for k in trained:
    np.testing.assert_array_equal(after[k], before[k], err_msg=k)
  assert all(float(s.dynamic_scale.numpy()) == 2.0 ** 39
             for s in model.loss_scalers.values())


# `auto`.

BF16_CPU = frozenset({"avx2", "avx512f", "avx512_bf16", "amx_bf16"})
AVX2_CPU = frozenset({"avx2", "fma"})


@pytest.mark.parametrize("cpu_flags,on_x86,onednn,gpus,want,because", [
    (BF16_CPU, True, True, (), "mixed_bfloat16", "avx512_bf16, amx_bf16"),
    (frozenset({"amx_bf16"}), True, True, (), "mixed_bfloat16", "amx_bf16"),
    (frozenset({"avx512_bf16"}), True, True, (), "mixed_bfloat16",
     "avx512_bf16"),
    (AVX2_CPU, True, True, (), "float32", "no native BF16"),
    (BF16_CPU, True, False, (), "float32", "oneDNN kernels are off"),
    (BF16_CPU, False, True, (), "float32", "only detected on x86"),
    (AVX2_CPU, True, True, [("A100", (8, 0))], "mixed_bfloat16", ">= 8.0"),
    (AVX2_CPU, True, True, [("H100", (9, 0)), ("L4", (8, 9))],
     "mixed_bfloat16", ">= 8.0"),
    # The GPU decides, whatever the CPU has.
    (BF16_CPU, True, True, [("T4", (7, 5))], "float32", "T4 (7.5)"),
    (AVX2_CPU, True, True, [("A100", (8, 0)), ("V100", (7, 0))], "float32",
     "V100 (7.0)"),
    (AVX2_CPU, True, True, [("GPU:0", None)], "float32", "GPU:0 (unknown)"),
])
def test_auto_rule(cpu_flags, on_x86, onednn, gpus, want, because):
  got, reason = runtime.choose_auto_precision(cpu_flags, on_x86, onednn, gpus)
  assert got == want
  assert reason.startswith("auto: ") and because in reason
  assert "\n" not in reason
  kind = "gpu" if gpus else f"cpu {want}"
  assert reason.endswith(
      f"; the preset for this machine: {runtime.SUITED_PRESETS[kind]}")


def test_the_presets_auto_names_exist_and_agree_with_the_readme():
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  with open(os.path.join(root, "README.md")) as f:
    cells = [line.split("|") for line in f]
  rows = {c[1].strip(" `"): c[5] for c in cells
          if len(c) > 5 and c[1].strip(" `").endswith(".flags")}
  hardware = {"gpu": "GPU", "cpu mixed_bfloat16": "**with** native bfloat16",
              "cpu float32": "**without** native bfloat16"}
  for kind, preset in runtime.SUITED_PRESETS.items():
    assert os.path.exists(os.path.join(root, preset)), preset
    assert hardware[kind] in rows[os.path.basename(preset)], (kind, preset)


def test_resolve_precision_reads_the_cpu_flags(monkeypatch, tmp_path):
  cpuinfo = tmp_path / "cpuinfo"
  cpuinfo.write_text("processor\t: 0\nmodel name\t: Fake\n"
                     "flags\t\t: fpu avx2 avx512_bf16 amx_tile\n\n"
                     "processor\t: 1\nflags\t\t: fpu\n")
  assert runtime.read_cpu_flags(str(cpuinfo)) == {"fpu", "avx2",
                                                  "avx512_bf16", "amx_tile"}
  assert runtime.read_cpu_flags(str(tmp_path / "missing")) == frozenset()
  auto = config_lib.RuntimeConfig(precision="auto")
  for flags_, want in ((BF16_CPU, "mixed_bfloat16"), (AVX2_CPU, "float32")):
    monkeypatch.setattr(runtime, "read_cpu_flags", lambda f=flags_: f)
    monkeypatch.setattr(runtime.pixelda_tf, "ON_X86", True)
    monkeypatch.setattr(runtime, "onednn_enabled", lambda: True)
    assert runtime.resolve_precision(auto)[0] == want
  for name in ("float32", "mixed_bfloat16", "mixed_float16"):
    assert runtime.resolve_precision(
        config_lib.RuntimeConfig(precision=name)) == (
            name, f"set by --precision={name}")


def test_bad_precisions_are_refused():
  with pytest.raises(config_lib.ConfigError,
                     match=r"--precision='bf16' is not valid; use one of "
                     r"float32, mixed_bfloat16, mixed_float16, auto"):
    tiny.tiny_config(runtime=dict(precision="bf16"))
  with flagsaver.flagsaver():
    flags.FLAGS.unparse_flags()
    flags.FLAGS(["prog", "--precision=float64"])
    with pytest.raises(config_lib.ConfigError, match="--precision='float64'"):
      pixelda_flags.config_from_flags()
    flags.FLAGS.unparse_flags()
    flags.FLAGS(["prog", "--precision=auto"])
    assert pixelda_flags.config_from_flags().runtime.precision == "auto"
  flags.FLAGS.unparse_flags()
  # The library's networks take only a resolved policy.
  with pytest.raises(ValueError, match="resolve_precision"):
    models.Networks(tiny.tiny_config(), "auto")
  # config.json round trip, and old ones without the field read as float32.
  d = json.loads(tiny.tiny_config(
      runtime=dict(precision="auto")).to_json())
  assert config_lib.Config.from_dict(d).runtime.precision == "auto"
  del d["runtime"]["precision"]
  assert config_lib.Config.from_dict(d).runtime.precision == "float32"
