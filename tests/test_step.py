"""The fused train step: which weights move, determinism, XLA, replicas."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from pixelda_tf import losses, pixelda, streams
from tests import tiny


def _run(cfg, steps=2, strategy=None, seed=0):
  strategy = strategy or tf.distribute.get_strategy()
  model = pixelda.PixelDA(cfg, strategy)
  before = tiny.weights(model)
  logs = None
  for i in range(steps):
    batch = tf.data.Dataset.from_tensors(tiny.batch(seed + i))
    dist = next(iter(strategy.experimental_distribute_dataset(batch)))
    logs = model.train_step(dist)
  return model, before, tiny.weights(model), logs


def _changed(before, after, prefix, trainable_only=True):
  keys = [k for k in before if k.startswith(prefix + "/")
          and (not trainable_only or ("moving" not in k and "seed" not in k))]
  assert keys
  return any(not np.array_equal(before[k], after[k]) for k in keys)


@pytest.mark.slow
def test_one_step_moves_every_network_and_logs_finite_scalars():
  model, before, after, logs = _run(tiny.tiny_config(), steps=1)
  for net in ("generator", "discriminator", "classifier", "source_classifier"):
    assert _changed(before, after, net), net
  assert int(model.step) == 1
  assert {"loss/discriminator", "loss/generator", "loss/classifier",
          "learning_rate", "accuracy/d_real"} <= set(logs)
  for k, v in logs.items():
    assert v.shape == () and np.isfinite(float(v)), k


@pytest.mark.slow
def test_generator_moves_only_through_its_own_losses():
  # D's and T's losses both depend on G(x_s, z); with G's own loss weights at
  # zero, G must stay where it was while D and T learn.
  cfg = tiny.tiny_config(loss=dict(style=0.0, task_in_g=0.0, pmse=0.0))
  _, before, after, _ = _run(cfg, steps=1)
  assert not _changed(before, after, "generator")
  assert _changed(before, after, "discriminator")
  assert _changed(before, after, "classifier")


@pytest.mark.slow
def test_discriminator_moves_only_through_the_domain_loss():
  cfg = tiny.tiny_config(loss=dict(domain=0.0))
  _, before, after, _ = _run(cfg, steps=1)
  assert not _changed(before, after, "discriminator")
  assert _changed(before, after, "generator")


@pytest.mark.slow
def test_classifier_moves_only_through_the_task_losses():
  cfg = tiny.tiny_config(loss=dict(task_source=0.0, task_adapted=0.0))
  _, before, after, _ = _run(cfg, steps=1)
  assert not _changed(before, after, "classifier")
  assert not _changed(before, after, "source_classifier")
  assert _changed(before, after, "generator")


@pytest.mark.slow
def test_pmse_term_reaches_the_generator():
  cfg = tiny.tiny_config(loss=dict(style=0.0, task_in_g=0.0, pmse=1.0,
                                   pmse_mask="foreground"))
  _, before, after, logs = _run(cfg, steps=1)
  assert float(logs["loss/pmse"]) > 0
  assert _changed(before, after, "generator")


def _lag_average(model):
  """A fresh average equals the weights (and T has no dropout or batch
  norm), so a mean teacher would agree with T exactly: move the average
  far enough from the weights for the term to be measured."""
  if model.average is not None:
    for a in model.average.averages:
      a.assign(a * 2.0)


def _gradients_at(cfg, step):
  """`_gradients` of a model whose step counter reads `step`."""
  model = pixelda.PixelDA(cfg, tf.distribute.get_strategy())
  model.step.assign(step)
  _lag_average(model)
  logs, grads = model.gradients(next(iter(
      tf.data.Dataset.from_tensors(tiny.batch(0)))))
  return ({k: float(v) for k, v in logs.items()},
          {k: [g.numpy() for g in v] for k, v in grads.items()})


def _refine_config(runtime=None, **loss):
  # threshold 0.05: with 10 classes every top probability is >= 0.1, so every
  # target image is pseudo-labelled once the refinement stage has begun.
  return tiny.tiny_config(
      loss=dict(pseudo_label=1.0, target_entropy=0.5, target_vat=2.0,
                target_teacher=10.0, pseudo_label_threshold=0.05, **loss),
      discriminator=dict(dropout_keep_prob=1.0, noise_stddev=0.0),
      train=dict(ema_decay=0.9), runtime=runtime or {})


@pytest.mark.slow
def test_refinement_terms_count_from_their_start_step():
  plain = _gradients_at(_no_noise(), 1)
  before = _gradients_at(_refine_config(refine_start_step=2), 1)
  at = _gradients_at(_refine_config(refine_start_step=1), 1)
  always = _gradients_at(_refine_config(), 1)
  assert "loss/pseudo_label" not in plain[0]  # off: not even logged
  assert "loss/target_vat" not in plain[0]
  assert "loss/target_teacher" not in plain[0]
  # Before its start step the terms are logged but do not reach T's loss.
  assert before[0]["accuracy/pseudo_labelled"] == 1.0
  assert before[0]["loss/pseudo_label"] > 0
  assert before[0]["loss/target_vat"] > 0
  assert before[0]["loss/target_teacher"] > 1e-5
  assert before[0]["loss/classifier"] == plain[0]["loss/classifier"]
  for a, b in zip(plain[1]["classifier"], before[1]["classifier"]):
    np.testing.assert_array_equal(a, b)
  # From it on they count, at their weights, in T's loss only.
  _assert_same(at, always, rtol=1e-6)
  assert at[0]["loss/classifier"] == pytest.approx(
      plain[0]["loss/classifier"] + at[0]["loss/pseudo_label"]
      + 0.5 * at[0]["loss/target_entropy"]
      + 2.0 * at[0]["loss/target_vat"]
      + 10.0 * at[0]["loss/target_teacher"], rel=1e-5)
  assert any(not np.allclose(a, b) for a, b in
             zip(plain[1]["classifier"], at[1]["classifier"]))
  for net in ("generator", "discriminator"):
    for a, b in zip(plain[1][net], at[1][net]):
      np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
  # A threshold no prediction of this untrained T reaches keeps nothing.
  none = _gradients_at(tiny.tiny_config(loss=dict(
      pseudo_label=1.0, pseudo_label_threshold=1.0)), 0)
  assert none[0]["accuracy/pseudo_labelled"] == 0.0
  assert none[0]["loss/pseudo_label"] == 0.0


@pytest.mark.slow
def test_vat_alone_reaches_only_the_classifier_and_compiles_in_bfloat16():
  plain = _gradients_at(_no_noise(), 0)
  vat = _gradients_at(tiny.tiny_config(
      loss=dict(target_vat=2.0),
      discriminator=dict(dropout_keep_prob=1.0, noise_stddev=0.0)), 0)
  assert vat[0]["loss/target_vat"] > 0
  assert vat[0]["loss/classifier"] == pytest.approx(
      plain[0]["loss/classifier"] + 2.0 * vat[0]["loss/target_vat"], rel=1e-5)
  assert any(not np.allclose(a, b) for a, b in
             zip(plain[1]["classifier"], vat[1]["classifier"]))
  for net in ("generator", "discriminator"):
    for a, b in zip(plain[1][net], vat[1][net]):
      np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
  # Under bfloat16 and XLA the probe runs in a float32 twin of T (XLA has
  # no bfloat16 MaxPoolGradGrad), called with T's weights. (The same
  # compiled step trains the minibatch-std D: one XLA compile for both.)
  model, before, after, logs = _run(tiny.tiny_config(
      loss=dict(target_vat=2.0), discriminator=dict(minibatch_std=True),
      runtime=dict(precision="mixed_bfloat16", jit_compile=True)), steps=1)
  assert 0 < float(logs["loss/target_vat"]) < np.inf
  assert model.nets.discriminator.get_layer("minibatch_std")
  for net in ("generator", "discriminator", "classifier"):
    assert _changed(before, after, net), net
  for k, v in logs.items():
    assert np.isfinite(float(v)), k
  twin, t = model.nets.probe_classifier, model.nets.classifier
  assert twin is not t
  assert twin.get_layer("conv1").compute_dtype == "float32"
  assert t.get_layer("conv1").compute_dtype == "bfloat16"
  assert ([v.shape for v in twin.trainable_variables]
          == [v.shape for v in t.trainable_variables])


@pytest.mark.slow
@pytest.mark.parametrize("runtime", [
    dict(), dict(precision="mixed_bfloat16", fused_batch_norm=True,
                 split_conv_grad=True)])
def test_minibatch_std_discriminator_trains_in_every_step_form(runtime):
  # Under bfloat16 and XLA: the VAT test above.
  model, before, after, logs = _run(tiny.tiny_config(
      discriminator=dict(minibatch_std=True), runtime=runtime), steps=1)
  assert model.nets.discriminator.get_layer("minibatch_std")
  for net in ("generator", "discriminator", "classifier"):
    assert _changed(before, after, net), net
  for k, v in logs.items():
    assert np.isfinite(float(v)), k


@pytest.mark.slow
def test_teacher_is_the_weight_averaged_classifier():
  model, _, _, _ = _run(tiny.tiny_config(loss=dict(target_teacher=1.0),
                                         train=dict(ema_decay=0.5)), steps=2)
  t = model.nets.classifier
  _lag_average(model)
  # Every variable of T but the dropout seeds has its average in the teacher.
  assert sorted(id(v) for v, _ in model.teacher_pairs) == sorted(
      id(v) for v in t.variables if not v.path.endswith("seed_generator_state"))
  xt = tf.constant(tiny.batch(5)["target_images"])
  own = t(xt, training=False).numpy()
  with model.average.applied():
    expected = t(xt, training=False).numpy()
  assert not np.allclose(own, expected, atol=1e-4)
  values = [v.value for v in model.all_variables]
  call = pixelda.StatelessCalls(
      model.all_variables, values, model.seed_index,
      tf.stack([values[i] for i in model.seed_index]),
      {id(v): tf.convert_to_tensor(a) for v, a in model.teacher_pairs})
  np.testing.assert_allclose(call.teacher(t, xt).numpy(), expected,
                             rtol=1e-5, atol=1e-6)
  # The step's term: KL(averaged T || T) on the target batch, its mean.
  batch = tiny.batch(0)
  logs, _ = model.gradients(next(iter(tf.data.Dataset.from_tensors(batch))))
  xt = tf.constant(batch["target_images"])
  p = tf.nn.softmax(t(xt, training=False)).numpy()
  with model.average.applied():
    q = tf.nn.softmax(t(xt, training=False)).numpy()
  kl = (q * (np.log(q) - np.log(p))).sum(axis=1).mean()
  assert kl > 1e-3
  np.testing.assert_allclose(float(logs["loss/target_teacher"]), kl,
                             rtol=1e-4)


@pytest.mark.slow
def test_noisy_teacher_sees_the_clean_image_and_t_a_shifted_noisy_one():
  cfg = tiny.tiny_config(loss=dict(target_teacher=1.0, target_teacher_shift=2,
                                   target_teacher_noise=0.1),
                         train=dict(ema_decay=0.5))
  model = pixelda.PixelDA(cfg, tf.distribute.get_strategy())
  model.step.assign(3)
  # An untrained T is nearly uniform whatever it sees: make it confident,
  # and its average (the teacher) equal to it.
  t = model.nets.classifier
  for v in t.trainable_variables:
    v.assign(v * 3.0)
  for v, a in model.teacher_pairs:
    a.assign(v)
  batch = tiny.batch(0)
  logs, _ = model.gradients(next(iter(tf.data.Dataset.from_tensors(batch))))
  xt = tf.constant(batch["target_images"])
  draws = streams.Streams(cfg, 1).target_draws(tf.constant(3, tf.int64),
                                               tf.shape(xt))
  shift = draws["target_student_shift"].numpy()
  noise = draws["target_student_noise"].numpy()
  assert shift.shape == (tiny.BATCH, 2) and noise.shape == xt.shape
  assert -2 <= shift.min() < 0 < shift.max() <= 2
  assert 0.05 < noise.std() < 0.15
  # A pure function of (seed, step): the same at step 3, others at step 4.
  again = streams.Streams(cfg, 1).target_draws(tf.constant(3, tf.int64),
                                               tf.shape(xt))
  np.testing.assert_array_equal(again["target_student_noise"].numpy(), noise)
  other = streams.Streams(cfg, 1).target_draws(tf.constant(4, tf.int64),
                                               tf.shape(xt))
  assert not np.array_equal(other["target_student_noise"].numpy(), noise)
  # The teacher is T itself (no dropout or batch norm in T), so the whole
  # term comes from the view: KL(T(clean) || T(shifted + noise)).
  q = tf.nn.softmax(t(xt, training=False)).numpy()
  view = losses.shifted_images(xt, shift) + noise
  p = tf.nn.softmax(t(view, training=False)).numpy()
  kl = (q * (np.log(q) - np.log(p))).sum(axis=1).mean()
  assert kl > 1e-3
  np.testing.assert_allclose(float(logs["loss/target_teacher"]), kl,
                             rtol=1e-4)


@pytest.mark.slow
def test_refinement_under_xla_matches_plain():
  # With the noisy teacher's view (the clean teacher: the start-step test).
  noisy = dict(target_teacher_shift=1, target_teacher_noise=0.05)
  _assert_same(_gradients_at(_refine_config(refine_start_step=1, **noisy), 1),
               _gradients_at(_refine_config(dict(jit_compile=True),
                                            refine_start_step=1, **noisy), 1))


@pytest.mark.parametrize("mode,moved", [("source_only", "source_images"),
                                        ("target_only", "target_images")])
def test_baseline_modes_train_only_the_classifier(mode, moved):
  cfg = tiny.tiny_config(train=dict(mode=mode))
  model, before, after, logs = _run(cfg, steps=1)
  assert model.nets.source_classifier is model.nets.classifier
  assert _changed(before, after, "classifier")
  assert not _changed(before, after, "generator")
  assert not _changed(before, after, "discriminator")
  assert set(model.optimizers) == {"classifier"}
  assert "accuracy/train" in logs


@pytest.mark.slow
def test_same_seed_gives_identical_weights():
  cfg = tiny.tiny_config()
  _, _, a, _ = _run(cfg, steps=3)
  _, _, b, _ = _run(cfg, steps=3)
  for k in a:
    np.testing.assert_array_equal(a[k], b[k], err_msg=k)
  _, _, c, _ = _run(tiny.tiny_config(train=dict(seed=4)), steps=1)
  assert any(not np.array_equal(a[k], c[k]) for k in a)


def _gradients(cfg, strategy=None, seed=0):
  """Logs and gradients of the first step, nothing applied.

  Compared instead of weights after a step: Adam's first update is about
  lr * sign(gradient), which turns float rounding in a near-zero gradient into
  a full lr-sized difference.
  """
  strategy = strategy or tf.distribute.get_strategy()
  model = pixelda.PixelDA(cfg, strategy)
  _lag_average(model)
  batch = tf.data.Dataset.from_tensors(tiny.batch(seed))
  logs, grads = model.gradients(
      next(iter(strategy.experimental_distribute_dataset(batch))))
  return ({k: float(v) for k, v in logs.items()},
          {k: [g.numpy() for g in v] for k, v in grads.items()})


def _assert_same(a, b, rtol=1e-4, atol=1e-6):
  (logs_a, grads_a), (logs_b, grads_b) = a, b
  for k in logs_a:
    np.testing.assert_allclose(logs_a[k], logs_b[k], rtol=rtol, atol=atol,
                               err_msg=k)
  for net in grads_a:
    for i, (ga, gb) in enumerate(zip(grads_a[net], grads_b[net])):
      scale = np.abs(ga).max() + 1e-12
      np.testing.assert_allclose(ga / scale, gb / scale, atol=1e-3,
                                 err_msg=f"{net} gradient {i}")


def _no_noise(**runtime):
  # D's dropout masks and noise are drawn per replica, and XLA's stateless RNG
  # gives other numbers than TensorFlow's kernels: switch them off so the
  # compared runs compute the same function.
  return tiny.tiny_config(
      discriminator=dict(dropout_keep_prob=1.0, noise_stddev=0.0),
      runtime=runtime)


@pytest.mark.slow
def test_xla_and_plain_steps_agree():
  plain = _gradients(_no_noise())
  xla = _gradients(_no_noise(jit_compile=True))
  _assert_same(plain, xla)
  # And a different batch gives different gradients: the check can fail.
  with pytest.raises(AssertionError):
    _assert_same(plain, _gradients(_no_noise(), seed=1))


@pytest.fixture(scope="module")
def mirrored():
  # One strategy per process: a second MirroredStrategy over the same devices
  # restarts the collective instance keys and its collectives clash with the
  # first one's.
  devices = [d.name for d in tf.config.list_logical_devices("CPU")][:2]
  assert len(devices) == 2, "conftest should create two logical CPUs"
  return tf.distribute.MirroredStrategy(devices)


@pytest.mark.slow
def test_cpu_speed_layers_give_the_same_step(mirrored):
  plain = _gradients(_no_noise())
  fast = _gradients(_no_noise(fused_batch_norm=True, split_conv_grad=True))
  _assert_same(plain, fast)
  # And a whole step under a mirrored strategy (two replicas, each with its
  # own batch statistics) ends with the stock layers' weights and moving
  # statistics.
  model, _, after, _ = _run(_no_noise(strategy="mirrored",
                                      fused_batch_norm=True,
                                      split_conv_grad=True),
                            steps=1, strategy=mirrored)
  _, _, expected, _ = _run(_no_noise(strategy="mirrored"), steps=1,
                           strategy=mirrored)
  for k in after:
    np.testing.assert_allclose(after[k], expected[k], rtol=1e-4, atol=1e-5,
                               err_msg=k)


@pytest.mark.slow
def test_two_replicas_update_like_one(mirrored):
  # Synchronised batch norm makes each replica normalise with the global
  # batch's statistics, as the single device does (XLA cannot compile the
  # synchronisation, so this runs without it; XLA's step is plain's, above).
  one = _gradients(_no_noise())
  two = _gradients(_no_noise(strategy="mirrored", sync_batch_norm=True,
                             jit_compile=False), strategy=mirrored)
  _assert_same(one, two)


@pytest.mark.slow
@pytest.mark.parametrize("jit", [False, True])
def test_a_step_on_two_replicas_keeps_them_in_sync(jit, mirrored):
  model, _, _, logs = _run(_no_noise(strategy="mirrored", jit_compile=jit),
                           steps=1, strategy=mirrored)
  assert np.isfinite(float(logs["loss/generator"]))
  for v in model.nets.generator.trainable_variables[:3]:
    copies = mirrored.experimental_local_results(v.value)
    np.testing.assert_array_equal(copies[0].numpy(), copies[1].numpy())


@pytest.mark.slow
def test_refinement_terms_on_two_replicas_match_one(mirrored):
  # VAT's start directions and the noisy teacher's shifts and noise are
  # drawn for the global batch and sliced, as z.
  noisy = dict(target_teacher_shift=2, target_teacher_noise=0.1)
  _assert_same(_gradients(_refine_config(**noisy)),
               _gradients(_refine_config(dict(strategy="mirrored",
                                              sync_batch_norm=True), **noisy),
                          strategy=mirrored))


@pytest.mark.slow
def test_mirrored_bf16_step_keeps_replicas_and_averages_in_sync(mirrored):
  # With the mean teacher on: T's averages are read in each replica, under
  # bfloat16.
  cfg = tiny.tiny_config(runtime=dict(strategy="mirrored",
                                      precision="mixed_bfloat16"),
                         train=dict(ema_decay=0.5),
                         loss=dict(target_teacher=1.0))
  model, before, after, logs = _run(cfg, steps=2, strategy=mirrored)
  assert np.isfinite(float(logs["loss/generator"]))
  assert 0 < float(logs["loss/target_teacher"]) < np.inf
  assert _changed(before, after, "generator")
  for v in model.nets.classifier.trainable_variables[:2]:
    copies = mirrored.experimental_local_results(v.value)
    assert len(copies) == 2 and copies[0].dtype == tf.float32
    np.testing.assert_array_equal(copies[0].numpy(), copies[1].numpy())
  # The averages are updated in cross-replica context: every copy (one or
  # one per replica) is float32 and equal.
  for v in model.average.averages[:2]:
    copies = mirrored.experimental_local_results(
        v.value if isinstance(v, keras.Variable) else v)
    assert all(c.dtype == tf.float32 for c in copies)
    for c in copies[1:]:
      np.testing.assert_array_equal(copies[0].numpy(), c.numpy())
  # The average moved from the initial weights towards the trained ones.
  first = model.average.averages[0].numpy()
  assert not np.array_equal(first, before[next(
      k for k in before if k.startswith("classifier/"))])


def test_named_streams_differ_and_each_is_reproducible():
  cfg = tiny.tiny_config(loss=dict(target_teacher=1.0, target_vat=1.0,
                                   target_teacher_noise=1.0),
                         train=dict(ema_decay=0.5, seed=5))
  draws = streams.Streams(cfg, 1)
  step, shape = tf.constant(7, tf.int64), tf.constant([tiny.BATCH, 4, 4, 3])
  # The stream ids are part of every stored run's numbers: pinned.
  assert [int(s) for s in streams.Stream] == [0, 1, 2, 3]
  np.testing.assert_array_equal(
      streams.stream_seed(5, streams.Stream.VAT_DIRECTION, step).numpy(),
      [5 + (1 << 32), 7])
  first = draws.target_draws(step, shape)
  again = streams.Streams(cfg, 1).target_draws(step, shape)
  # Two streams of one shape and distribution (both N(0, 1) here) differ...
  vat, noise = (first[k].numpy()
                for k in ("target_vat_noise", "target_student_noise"))
  assert vat.shape == noise.shape == (tiny.BATCH, 4, 4, 3)
  assert not np.array_equal(vat, noise)
  # ... and each draws the same numbers again at the same (seed, step).
  for k in first:
    np.testing.assert_array_equal(first[k].numpy(), again[k].numpy())
  np.testing.assert_array_equal(draws.noise(step, tiny.BATCH).numpy(),
                                draws.noise(step, tiny.BATCH).numpy())
  assert not np.array_equal(
      draws.noise(step, tiny.BATCH).numpy(),
      draws.noise(step + 1, tiny.BATCH).numpy())
  # The layer seeds: one pair per layer, all different.
  seeds = draws.layer_seeds(step, 3).numpy()
  assert seeds.shape == (3, 2) and len({tuple(s) for s in seeds}) == 3


def test_check_finite_names_the_step_and_values():
  pixelda.check_finite({"a": 1.0}, 3)
  with pytest.raises(pixelda.NonFiniteLossError, match=r"step 7.*loss/g"):
    pixelda.check_finite({"loss/g": float("nan"), "b": 0.0}, 7)


@pytest.mark.slow
def test_learning_rate_decays_in_staircase():
  cfg = tiny.tiny_config(optim=dict(learning_rate=0.01, decay_steps=2,
                                    decay_rate=0.5))
  model = pixelda.PixelDA(cfg, tf.distribute.get_strategy())
  rates = [float(model.train_step(tiny.batch(i))["learning_rate"])
           for i in range(5)]
  np.testing.assert_allclose(rates, [0.01, 0.01, 0.005, 0.005, 0.0025])
  # From step 3 on, every step: 0.5 ** 3, then 0.5 ** 4.
  cfg = tiny.tiny_config(optim=dict(learning_rate=0.01, decay_steps=2,
                                    decay_rate=0.5, late_decay_steps=1,
                                    late_decay_from=3))
  model = pixelda.PixelDA(cfg, tf.distribute.get_strategy())
  rates = [float(model.train_step(tiny.batch(i))["learning_rate"])
           for i in range(5)]
  np.testing.assert_allclose(rates, [0.01, 0.01, 0.005, 0.00125, 0.000625])


def test_late_staircase_matches_numpy():
  # The hour preset's decay (every 10,000 steps) until 23,500, then every
  # 2,000: the rate drops from 0.95^2 to 0.95^11 at the switch.
  schedule = pixelda.LateStaircase(1e-3, 10000, 0.95, 2000, 23500)
  steps = np.array([0, 9999, 10000, 23499, 23500, 24000, 40000, 58579])
  expected = 1e-3 * 0.95 ** np.where(steps < 23500, steps // 10000,
                                     steps // 2000)
  np.testing.assert_allclose([float(schedule(s)) for s in steps], expected,
                             rtol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("clipnorm", [0.0, 1e-9])
def test_gradients_are_clipped_before_adam(clipnorm):
  # Adam's first step moves each weight by about lr * g / (|g| + eps): lr
  # for any sizeable gradient. Clipped to a norm of 1e-9, |g| falls far below
  # eps = 1e-7 and the step shrinks a hundredfold: only clipping does that.
  lr = 0.01
  cfg = tiny.tiny_config(optim=dict(learning_rate=lr, clipnorm=clipnorm))
  model = pixelda.PixelDA(cfg, tf.distribute.get_strategy())
  before = [v.numpy() for v in model.nets.classifier.trainable_variables]
  model.train_step(tiny.batch(0))
  moved = max(float(np.max(np.abs(v.numpy() - b))) for v, b in zip(
      model.nets.classifier.trainable_variables, before))
  if clipnorm:
    assert moved < lr / 50
  else:
    assert moved > lr / 2
