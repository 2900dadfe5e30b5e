"""Export: the SavedModels and .keras files reload where pixelda_tf is absent.

One module-scoped run: a tiny model_dir (config.json + a checkpoint), the
`python -m pixelda_tf.export` binary on it, then ONE fresh process (no
pixelda_tf on its path) that loads every servable and .keras file, feeds each
signature through a TF Serving `PredictRequest`, and reports its outputs;
`saved_model_cli` runs beside it. Each subprocess pays ~5 s of TF import.
"""

import importlib.util
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from pixelda_tf import config
from pixelda_tf import exporting
from pixelda_tf import pixelda
from pixelda_tf import rundir
from tests import tiny


# Trains, exports or starts processes: not in the quick tier.
pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZE, NOISE, CLASSES = 16, 4, 10
BATCHES = (1, 7)
# Loaded SavedModels run the same kernels as the in-memory tf.functions;
# the tolerance only allows for grappler rewriting the graph.
ATOL = 1e-5


def tiny_config(**generator) -> config.Config:
  """tiny's config with a 4-dim z, trained with the CPU speed layers: the
  export must still write stock-layer .keras files that load without
  pixelda_tf."""
  return tiny.tiny_config(
      generator={"noise_dim": NOISE, **generator},
      runtime=dict(fused_batch_norm=True, split_conv_grad=True))


def make_model_dir(model_dir: str, cfg: config.Config,
                   checkpoint: bool = True) -> pixelda.PixelDA:
  """A run folder in the trainer's layout, without training.

  Batch-norm statistics are set away from their (0, 1) start, so an export
  that ran BN in training mode would not match. Swap this for a two-step
  `pixelda_tf.train` run when the trainer's API settles.
  """
  model = pixelda.PixelDA(cfg, tf.distribute.get_strategy())
  rng = np.random.default_rng(0)
  for v in model.checkpoint.generator.non_trainable_variables:
    if "moving_mean" in v.path:
      v.assign(rng.normal(0, 0.5, v.shape).astype(np.float32))
    elif "moving_variance" in v.path:
      v.assign(rng.uniform(0.2, 3.0, v.shape).astype(np.float32))
  os.makedirs(model_dir, exist_ok=True)
  with open(os.path.join(model_dir, rundir.CONFIG_FILE), "w") as f:
    f.write(cfg.to_json())
  if checkpoint:
    tf.train.CheckpointManager(
        model.checkpoint, os.path.join(model_dir, rundir.CHECKPOINT_DIR),
        max_to_keep=3).save()
  return model


def case_inputs(signature: str, batch: int, rng) -> dict:
  """Inputs for `signature`: batch 1 is grey at the model size, batch 7 is
  RGB at another size (resized), so both preprocessing paths run."""
  shape = (1, SIZE, SIZE, 1) if batch == 1 else (batch, 20, 12, 3)
  if signature.startswith("uint8"):
    image = rng.integers(0, 256, shape).astype(np.uint8)
  else:
    image = rng.uniform(-1, 1, shape).astype(np.float32)
  inputs = {"image": image}
  if signature.endswith("seed"):
    inputs["seed"] = rng.integers(0, 1 << 40, (batch,)).astype(np.int64)
  if signature.endswith("_z") or signature == "z":
    inputs["z"] = rng.uniform(-1, 1, (batch, NOISE)).astype(np.float32)
  return inputs


# The fresh process: imports TF, Keras and tensorflow_serving only.
CHILD = r"""
import json, sys
import numpy as np
import tensorflow as tf
import keras
from tensorflow_serving.apis import predict_pb2

out_dir, cases_path, result_path = sys.argv[1:]
cases = np.load(cases_path, allow_pickle=False)
keys = sorted({k.split("/in/")[0] for k in cases.files
               if not k.startswith("keras/")})
report = {"cases": {}, "leaked": [m for m in sys.modules
                                  if m.startswith("pixelda_tf")]}
outputs = {}
loaded = {}
for key in keys:
  servable, signature, batch = key.split("/")
  if servable not in loaded:
    loaded[servable] = tf.saved_model.load(f"{out_dir}/{servable}/1")
  fn = loaded[servable].signatures[signature]
  wanted = fn.structured_input_signature[1]
  request = predict_pb2.PredictRequest()
  request.model_spec.name = servable
  request.model_spec.signature_name = signature
  prefix = key + "/in/"
  for k in cases.files:
    if k.startswith(prefix):
      request.inputs[k[len(prefix):]].CopyFrom(tf.make_tensor_proto(cases[k]))
  request = predict_pb2.PredictRequest.FromString(request.SerializeToString())
  names_ok = sorted(request.inputs) == sorted(wanted)
  dtypes_ok = all(request.inputs[n].dtype == wanted[n].dtype.as_datatype_enum
                  for n in wanted if n in request.inputs)
  result = fn(**{n: tf.constant(tf.make_ndarray(t))
                 for n, t in request.inputs.items()})
  for name, value in result.items():
    value = value.numpy()
    # Strings (class_name) as fixed-width bytes: npz refuses object arrays.
    outputs[f"{key}/out/{name}"] = (value.astype("S") if value.dtype == object
                                    else value)
  report["cases"][key] = {"names_ok": names_ok, "dtypes_ok": dtypes_ok,
                          "outputs": sorted(result)}

for name in ("generator", "classifier"):
  model = keras.models.load_model(f"{out_dir}/keras/1/{name}.keras")
  inputs = [cases[f"keras/{name}/in/image"]]
  if name == "generator":
    inputs.append(cases["keras/generator/in/z"])
  outputs[f"keras/{name}/out"] = np.asarray(model(inputs if len(inputs) > 1
                                                  else inputs[0],
                                                  training=False))
  report["keras_" + name] = [l.name for l in model.layers]
np.savez(result_path + ".npz", **{k.replace("/", "|"): v
                                  for k, v in outputs.items()})
with open(result_path, "w") as f:
  json.dump(report, f)
"""


def child_env(with_repo: bool) -> dict:
  env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
  env["TF_CPP_MIN_LOG_LEVEL"] = "2"
  if with_repo:
    env["PYTHONPATH"] = ROOT
  return env


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  """Exports a tiny model_dir with the binary, then checks it in a fresh
  process; returns everything the tests compare."""
  tmp = tmp_path_factory.mktemp("export")
  model_dir, out_dir = str(tmp / "run"), str(tmp / "out")
  cfg = tiny_config()
  model = make_model_dir(model_dir, cfg)
  subprocess.run([sys.executable, "-m", "pixelda_tf.export",
                  f"--model_dir={model_dir}", f"--export_dir={out_dir}"],
                 check=True, cwd=str(tmp), env=child_env(True),
                 capture_output=True, timeout=300)

  # The in-memory reference: the same servable code on the same weights.
  servables = exporting.build_servables(model.nets, cfg)
  rng = np.random.default_rng(1)
  cases, expected = {}, {}
  for name, module in servables.items():
    for signature, fn in module.signatures().items():
      for batch in BATCHES:
        key = f"{name}/{signature}/{batch}"
        inputs = case_inputs(signature, batch, rng)
        cases.update({f"{key}/in/{k}": v for k, v in inputs.items()})
        for k, v in fn(**inputs).items():
          v = v.numpy()
          expected[f"{key}/out/{k}"] = v.astype("S") if v.dtype == object else v
  image = rng.uniform(-1, 1, (7, SIZE, SIZE, 3)).astype(np.float32)
  z = rng.uniform(-1, 1, (7, NOISE)).astype(np.float32)
  cases.update({"keras/generator/in/image": image, "keras/generator/in/z": z,
                "keras/classifier/in/image": image})
  expected["keras/generator/out"] = model.nets.generator(
      [image, z], training=False).numpy()
  expected["keras/classifier/out"] = model.nets.classifier(
      image, training=False).numpy()

  cases_path, result_path = str(tmp / "cases.npz"), str(tmp / "result.json")
  np.savez(cases_path, **cases)
  child_path = str(tmp / "child.py")
  with open(child_path, "w") as f:
    f.write(CHILD)
  # The fresh process and saved_model_cli share the two cores.
  procs = {"child": subprocess.Popen(
      [sys.executable, child_path, out_dir, cases_path, result_path],
      cwd=str(tmp), env=child_env(False), stdout=subprocess.PIPE,
      stderr=subprocess.PIPE, text=True)}
  cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
  for name in (exporting.GENERATOR, exporting.CLASSIFIER):
    procs[name] = subprocess.Popen(
        [cli, "show", "--all", "--dir", os.path.join(out_dir, name, "1")],
        env=child_env(False), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
  texts = {}
  for name, proc in procs.items():
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, f"{name} failed:\n{stderr[-3000:]}"
    texts[name] = stdout
  with open(result_path) as f:
    report = json.load(f)
  got = {k.replace("|", "/"): v
         for k, v in np.load(result_path + ".npz").items()}
  return dict(model=model, cfg=cfg, model_dir=model_dir, out_dir=out_dir,
              servables=servables, expected=expected, got=got, report=report,
              cli=texts)


# ----------------------------------------------------------------------------
# The fresh process.

def test_fresh_process_never_imported_pixelda_tf(run):
  assert run["report"]["leaked"] == []


def test_layout(run):
  out = run["out_dir"]
  for name in (exporting.GENERATOR, exporting.CLASSIFIER, exporting.COMBINED):
    assert sorted(os.listdir(os.path.join(out, name))) == ["1"]
    assert os.path.exists(os.path.join(out, name, "1", "saved_model.pb"))
  assert sorted(os.listdir(os.path.join(out, exporting.KERAS_DIR))) == ["1"]
  assert sorted(os.listdir(os.path.join(out, exporting.KERAS_DIR, "1"))) == [
      "classifier.keras", "generator.keras", exporting.CONTRACT_FILE]


def test_every_signature_reproduces_in_memory_outputs(run):
  expected, got = run["expected"], run["got"]
  keys = [k for k in expected if not k.startswith("keras/")]
  # 3 servables: generator and combined have 6 signatures, classifier 2.
  assert len({k.split("/out/")[0] for k in keys}) == (6 + 6 + 2) * 2
  for key in keys:
    want, have = expected[key], got[key]
    assert have.shape == want.shape and have.dtype == want.dtype, key
    if want.dtype == np.float32:
      np.testing.assert_allclose(have, want, atol=ATOL, err_msg=key)
    elif want.dtype == np.uint8:
      # A float difference within ATOL can still cross a .5 rounding edge.
      assert np.abs(have.astype(int) - want).max() <= 1, key
    else:
      np.testing.assert_array_equal(have, want, err_msg=key)


def test_predict_request_names_and_dtypes_match_signatures(run):
  cases = run["report"]["cases"]
  assert len(cases) == (6 + 6 + 2) * 2
  for key, case in cases.items():
    assert case["names_ok"] and case["dtypes_ok"], key
  assert cases["classifier/serving_default/1"]["outputs"] == [
      "class_id", "class_name", "logits", "probabilities"]
  assert cases["generator/z/7"]["outputs"] == ["adapted", "adapted_uint8"]
  assert cases["adapt_classify/uint8_seed/7"]["outputs"] == [
      "adapted", "adapted_uint8", "class_id", "class_name", "logits",
      "probabilities"]


def test_keras_files_round_trip_identically(run):
  for name in ("generator", "classifier"):
    np.testing.assert_array_equal(run["got"][f"keras/{name}/out"],
                                  run["expected"][f"keras/{name}/out"])
  # The classifier's shared head comes back as a nested model.
  assert "classifier_head" in run["report"]["keras_classifier"]


def _signature_blocks(text: str) -> dict:
  """saved_model_cli text -> {signature: {'inputs'|'outputs': {name: (dtype,
  shape)}}}."""
  blocks = {}
  for block in re.split(r"\nsignature_def\['", text)[1:]:
    name = block.split("'", 1)[0]
    sides = {}
    for side in ("inputs", "outputs"):
      sides[side] = {
          m[0]: (m[1], m[2].replace(" ", "")) for m in re.findall(
              side + r"\['(\w+)'\] tensor_info:\s+dtype: (\w+)\s+"
              r"shape: \(([^)]*)\)", block)}
    blocks[name] = sides
  return blocks


def test_saved_model_cli_lists_signatures(run):
  image = "-1,-1,-1,-1"
  adapted = {"adapted": ("DT_FLOAT", f"-1,{SIZE},{SIZE},3"),
             "adapted_uint8": ("DT_UINT8", f"-1,{SIZE},{SIZE},3")}
  gen = _signature_blocks(run["cli"][exporting.GENERATOR])
  for prefix, dtype in (("", "DT_FLOAT"), ("uint8_", "DT_UINT8")):
    default = "serving_default" if not prefix else "uint8"
    assert gen[default]["inputs"] == {"image": (dtype, image)}
    assert gen[prefix + "seed"]["inputs"] == {
        "image": (dtype, image), "seed": ("DT_INT64", "-1")}
    assert gen[prefix + "z"]["inputs"] == {
        "image": (dtype, image), "z": ("DT_FLOAT", f"-1,{NOISE}")}
    for signature in (default, prefix + "seed", prefix + "z"):
      assert gen[signature]["outputs"] == adapted
  cls = _signature_blocks(run["cli"][exporting.CLASSIFIER])
  assert set(cls) == {"serving_default", "uint8", "__saved_model_init_op"}
  assert cls["uint8"]["inputs"] == {"image": ("DT_UINT8", image)}
  assert cls["serving_default"]["outputs"] == {
      "logits": ("DT_FLOAT", f"-1,{CLASSES}"),
      "probabilities": ("DT_FLOAT", f"-1,{CLASSES}"),
      "class_id": ("DT_INT64", "-1"), "class_name": ("DT_STRING", "-1")}


def test_contract(run):
  with open(os.path.join(run["out_dir"], "keras", "1",
                         exporting.CONTRACT_FILE)) as f:
    c = json.load(f)
  assert c["image_size"] == SIZE and c["value_range"] == [-1.0, 1.0]
  assert c["classifier"]["label_names"] == [str(i) for i in range(10)]
  assert c["generator"]["inputs"]["z"] == [None, NOISE]
  assert c["training"]["checkpoint"].endswith("ckpt-1")


# ----------------------------------------------------------------------------
# The servable code, in memory.

def test_serving_matches_the_networks_in_inference_mode(run):
  nets, gen = run["model"].nets, run["servables"][exporting.GENERATOR]
  rng = np.random.default_rng(2)
  image = rng.uniform(-1, 1, (3, SIZE, SIZE, 3)).astype(np.float32)
  seed = np.array([0, 5, 5], np.int64)
  out = gen.seed(image=image, seed=seed)
  z = exporting.noise_from_seeds(tf.constant(seed), NOISE).numpy()
  np.testing.assert_array_equal(z[1], z[2])  # Per-example, batch-independent.
  assert np.abs(z).max() <= 1.0
  want = nets.generator([image, z], training=False).numpy()
  np.testing.assert_allclose(out["adapted"].numpy(), want, atol=1e-6)
  # Stateless: a training-mode call would move the shared model's BN stats.
  g = nets.generator
  train_mode, _ = g.stateless_call(
      [v.value for v in g.trainable_variables],
      [v.value for v in g.non_trainable_variables], [image, z], training=True)
  assert np.abs(train_mode.numpy() - want).max() > 1e-2  # BN mode matters.
  # serving_default is seed 0 for every example.
  np.testing.assert_allclose(gen.serving_default(image=image)["adapted"][0],
                             out["adapted"][0], atol=1e-6)


def test_uint8_grey_and_resize_follow_the_training_preprocessing(run):
  cls = run["servables"][exporting.CLASSIFIER]
  rng = np.random.default_rng(3)
  grey = rng.integers(0, 256, (2, 2 * SIZE, 3 * SIZE, 1)).astype(np.uint8)
  resized = tf.round(tf.clip_by_value(tf.image.resize(
      tf.cast(grey, tf.float32), (SIZE, SIZE), antialias=True), 0, 255))
  x = tf.repeat(resized, 3, axis=-1) / 127.5 - 1.0
  want = run["model"].nets.classifier(x, training=False)
  np.testing.assert_allclose(cls.uint8(image=grey)["logits"], want,
                             atol=1e-5)
  rgb = tf.repeat(grey, 3, axis=-1)
  np.testing.assert_allclose(cls.uint8(image=rgb)["logits"], want, atol=1e-5)
  probs = cls.serving_default(image=x)["probabilities"].numpy()
  np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)


def test_an_empty_batch_gets_empty_outputs_from_every_signature(run):
  """B=0 (a client flushing an empty queue) answers with (0, ...) outputs:
  oneDNN's convolutions alone would reject it."""
  rng = np.random.default_rng(5)
  loaded = {name: tf.saved_model.load(os.path.join(run["out_dir"], name, "1"))
            for name in (exporting.GENERATOR, exporting.CLASSIFIER,
                         exporting.COMBINED)}
  for name, servable in loaded.items():
    for sig_name, fn in servable.signatures.items():
      inputs = case_inputs(sig_name, 1, rng)
      inputs = {k: v[:0] for k, v in inputs.items()}
      out = fn(**{k: tf.constant(v) for k, v in inputs.items()})
      want = {"adapted": (0, SIZE, SIZE, 3), "adapted_uint8": (0, SIZE, SIZE, 3),
              "logits": (0, CLASSES), "probabilities": (0, CLASSES),
              "class_id": (0,), "class_name": (0,)}
      assert out, (name, sig_name)
      for key, value in out.items():
        assert tuple(value.shape) == want[key], (name, sig_name, key)


def test_pad_preprocessing_matches_the_data_pipeline():
  """A run trained with --smaller_images=pad serves small images padded."""
  from pixelda_tf.data import images as images_lib  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(4)
  small = rng.integers(0, 256, (2, 13, 11, 1)).astype(np.uint8)
  want = images_lib.pad(small, SIZE).astype(np.float32) / 127.5 - 1.0
  got = exporting.preprocess(tf.constant(small), SIZE, smaller="pad").numpy()
  np.testing.assert_allclose(got, np.repeat(want, 3, axis=-1), atol=1e-6)
  floats = want * np.ones(3, np.float32)
  got = exporting.preprocess(
      tf.constant(small.astype(np.float32) / 127.5 - 1.0), SIZE,
      smaller="pad").numpy()
  np.testing.assert_allclose(got, floats, atol=1e-6)  # black = -1, not 0
  # Larger images are still resized.
  big = rng.integers(0, 256, (1, 2 * SIZE, 2 * SIZE, 3)).astype(np.uint8)
  np.testing.assert_array_equal(
      exporting.preprocess(tf.constant(big), SIZE, smaller="pad").numpy(),
      exporting.preprocess(tf.constant(big), SIZE).numpy())


# ----------------------------------------------------------------------------
# Errors.

@pytest.mark.parametrize("signature,inputs,message", [
    ("serving_default", {"image": np.zeros((2, 16, 16, 3), np.int32)},
     "expected to be a float tensor but is a int32"),
    ("uint8", {"image": np.zeros((2, 16, 16, 3), np.float32)},
     "expected to be a uint8 tensor but is a float"),
    ("serving_default", {"image": np.zeros((16, 16, 3), np.float32)},
     r"Shape of tensor image \[16,16,3\] is not compatible"),
    ("serving_default", {"image": np.zeros((2, 16, 16, 2), np.float32)},
     r"1 \(grey\) or 3 \(RGB\) channels"),
    ("uint8", {"image": np.zeros((2, 16, 16, 4), np.uint8)},
     r"1 \(grey\) or 3 \(RGB\) channels"),
    ("serving_default", {"image": np.full((1, 16, 16, 3), 255, np.float32)},
     r"must be in \[-1, 1\]; send uint8"),
    ("z", {"image": np.zeros((2, 16, 16, 3), np.float32),
           "z": np.zeros((2, NOISE + 1), np.float32)},
     r"Shape of tensor z \[2,5\] is not compatible with expected shape "
     r"\[\?,4\]"),
    ("seed", {"image": np.zeros((2, 16, 16, 3), np.float32),
              "seed": np.zeros((3,), np.int64)},
     "seed must have one row per image"),
], ids=["float_sig_int32", "uint8_sig_float", "rank3", "two_channels",
        "four_channels_uint8", "float_in_0_255", "z_width", "seed_batch"])
def test_bad_input_gives_a_clear_error(run, signature, inputs, message):
  loaded = _loaded_generator(run["out_dir"])
  with pytest.raises((tf.errors.InvalidArgumentError, TypeError),
                     match=message):
    loaded.signatures[signature](**{k: tf.constant(v)
                                    for k, v in inputs.items()})


_LOADED = {}


def _loaded_generator(out_dir):
  if out_dir not in _LOADED:
    _LOADED[out_dir] = tf.saved_model.load(
        os.path.join(out_dir, exporting.GENERATOR, "1"))
  return _LOADED[out_dir]


def test_no_checkpoint_is_a_clear_error(tmp_path):
  model_dir = str(tmp_path / "run")
  make_model_dir(model_dir, tiny_config(), checkpoint=False)
  with pytest.raises(FileNotFoundError, match="no latest checkpoint in .*"
                     "train first"):
    exporting.export_model_dir(model_dir, str(tmp_path / "out"))
  assert not os.path.exists(tmp_path / "out")


def test_checkpoint_of_other_networks_is_a_clear_error(tmp_path, run):
  model_dir = str(tmp_path / "run")
  make_model_dir(model_dir, tiny_config(filters=16, num_blocks=2))
  # A config that no longer matches the checkpoint's networks.
  with open(os.path.join(model_dir, rundir.CONFIG_FILE), "w") as f:
    f.write(run["cfg"].to_json())
  with pytest.raises(ValueError, match="does not match the networks"):
    exporting.export_model_dir(model_dir, str(tmp_path / "out"))


def test_an_export_dir_that_is_a_file_is_refused(tmp_path, run):
  model_dir = str(tmp_path / "run")
  make_model_dir(model_dir, tiny_config())
  (tmp_path / "out").write_text("not a folder")
  with pytest.raises(exporting.ExportError, match="--export_dir=.*out is a "
                     "file: give a folder"):
    exporting.export_model_dir(model_dir, str(tmp_path / "out"))
  with pytest.raises(exporting.ExportError, match="cannot create .*out/sub/"
                     ".*must be a folder"):
    exporting.export_model_dir(model_dir, str(tmp_path / "out" / "sub"))
  assert (tmp_path / "out").read_text() == "not a folder"


def test_existing_version_is_refused_and_next_version_counts_up(run):
  assert exporting.next_version(run["out_dir"]) == 2
  with pytest.raises(exporting.ExportError, match="already exists"):
    exporting.export_model_dir(run["model_dir"], run["out_dir"], version=1)


# ----------------------------------------------------------------------------
# Optional ONNX (tf2onnx and onnxruntime are not dependencies).

@pytest.mark.skipif(not all(importlib.util.find_spec(m) for m in
                            ("tf2onnx", "onnxruntime")),
                    reason="pip install tf2onnx onnx onnxruntime")
def test_onnx_matches_keras(run, tmp_path):
  import onnxruntime as ort  # pylint: disable=g-import-not-at-top
  nets = run["model"].nets
  paths = exporting.save_onnx(nets, run["cfg"], str(tmp_path))
  rng = np.random.default_rng(4)
  for batch in BATCHES:
    image = rng.uniform(-1, 1, (batch, SIZE, SIZE, 3)).astype(np.float32)
    z = rng.uniform(-1, 1, (batch, NOISE)).astype(np.float32)
    for name, inputs, model in (
        ("generator", {"image": image, "z": z}, nets.generator),
        ("classifier", {"image": image}, nets.classifier)):
      session = ort.InferenceSession(paths[f"{name}.onnx"],
                                     providers=["CPUExecutionProvider"])
      assert sorted(i.name for i in session.get_inputs()) == sorted(inputs)
      got = session.run(None, inputs)[0]
      x = [image, z] if name == "generator" else image
      want = model(x, training=False).numpy()
      np.testing.assert_allclose(got, want, atol=1e-5, err_msg=name)


def test_serving_config_example_parses_and_names_every_servable():
  from google.protobuf import text_format  # pylint: disable=g-import-not-at-top
  from tensorflow_serving.config import model_server_config_pb2  # pylint: disable=g-import-not-at-top
  with open(os.path.join(ROOT, "configs", "serving", "models.config")) as f:
    cfg = text_format.Parse(f.read(), model_server_config_pb2.ModelServerConfig())
  names = {c.name: c.base_path for c in cfg.model_config_list.config}
  assert names == {n: f"/models/{n}" for n in
                   (exporting.GENERATOR, exporting.CLASSIFIER,
                    exporting.COMBINED)}
