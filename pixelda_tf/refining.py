"""What the refine binary does: a DIRT-T phase for a trained run's classifier.

DIRT-T (Shu et al., ICLR 2018: decision-boundary iterative refinement with a
teacher) follows domain adaptation with a phase on unlabelled target images
alone: T minimises its conditional entropy there (its boundaries move out of
dense target regions), while KL(teacher || T) keeps each stretch of that
move short. The teacher is T at the start, and at every reset (each
`teacher_reset_steps`) T's weight average, as in DIRT-T's code (with the
defaults, 3,000 steps and a reset every 5,000, it stays the trained T: one
stretch). Source labels no
longer count. DIRT-T's target VAT term is left out: at weight 1 beside the
entropy it cost 1.1 points on the released MNIST-M (benchmarks/README.md).
Not part of PixelDA; nothing runs it unless asked.

Only T trains: G and D are copied as they are, so a step is a few T passes
(T is ~3% of G's FLOPs) and thousands of steps take minutes on a CPU. T
starts from the weights the run's evaluations scored (the weight average of
a run trained with `ema_decay`), and a new average (`RefineConfig.
ema_decay`) is what the refined run's evaluations score and its export
serves.

The result is a new run folder, read by evaluate, export and adapt like any
run: config.json (the run's, with the data flags given), `checkpoints/`
(one checkpoint, `latest`; T and its average refined; G, D, their averages,
the optimizers' state and the step as in the checkpoint read) and
refine.json (the settings, the data overrides and the accuracy history).
With `private_source_layer` (the official T), the source twin shares T's
refined head, so a GAN run continued from the folder (`--init_from`) starts
with its source path changed too. The folder is written into
`<out>.partial-<pid>`, made before training so an unwritable place fails
at once, and renamed to `<out>` when complete: a killed or failed
refinement leaves nothing that looks finished, and the trained run is only
read.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from typing import Any, Dict, List, Optional

import keras
import tensorflow as tf

from pixelda_tf import averaging
from pixelda_tf import config as config_lib
from pixelda_tf import data
from pixelda_tf import evaluation
from pixelda_tf import losses
from pixelda_tf import pixelda
from pixelda_tf import provenance
from pixelda_tf import rundir

RESULTS_FILE = rundir.REFINE_FILE


@dataclasses.dataclass(frozen=True)
class RefineConfig:
  """Settings of a DIRT-T phase (`pixelda_tf.refine` flags of these names).

  Attributes:
    steps: T updates on target batches.
    learning_rate: Adam's (beta_1 = `beta1`, as the GAN's optimizers).
    beta1: Adam's first-moment decay.
    batch_size: target images per step.
    entropy_weight: weight of T's conditional entropy on target images.
    teacher_weight: weight of KL(teacher || T) on the same images.
    teacher_reset_steps: the teacher becomes the weight average of T
      (`ema_decay`) every this many steps.
    ema_decay: decay of the weight average of T that is evaluated and
      saved as the run's averaged T.
    eval_every: score the average on the target's labelled val and test
      splits every this many steps (and at steps 0 and `steps`; 0 = only
      there).
    seed: the order of the target images.
  """
  steps: int = 3000
  learning_rate: float = 1e-4
  beta1: float = 0.5
  batch_size: int = 64
  entropy_weight: float = 1.0
  teacher_weight: float = 1.0
  teacher_reset_steps: int = 5000
  ema_decay: float = 0.998
  eval_every: int = 500
  seed: int = 0

  def validate(self) -> None:
    """Raises ConfigError naming the first bad setting and its fix."""
    require = config_lib.require
    require(self.steps >= 1, f"--steps={self.steps}: must be >= 1")
    require(0 < self.learning_rate < math.inf,
            f"--learning_rate={self.learning_rate}: must be finite and > 0, "
            "e.g. 0.0001")
    require(0 <= self.beta1 < 1, f"--beta1={self.beta1}: must be in [0, 1)")
    require(self.batch_size >= 1,
            f"--batch_size={self.batch_size}: must be >= 1")
    for name in ("entropy_weight", "teacher_weight"):
      value = getattr(self, name)
      require(0 <= value < math.inf,
              f"--{name}={value}: must be finite and >= 0")
    require(self.entropy_weight > 0 or self.teacher_weight > 0,
            "--entropy_weight=0 and --teacher_weight=0 leave nothing to "
            "train: set one of them > 0")
    require(self.teacher_reset_steps >= 1,
            f"--teacher_reset_steps={self.teacher_reset_steps}: must be >= 1")
    require(0 < self.ema_decay < 1,
            f"--ema_decay={self.ema_decay}: must be in (0, 1), e.g. 0.998")
    require(self.eval_every >= 0,
            f"--eval_every={self.eval_every}: must be >= 0 (0 = at the start "
            "and the end only)")


def _labelled_split(cfg: config_lib.Config, split: str):
  """(eval dataset, None) for a labelled target split, else (None, why)."""
  try:
    domain = data.load_domain(cfg.data, "target", split)
  except data.DataError as e:
    return None, str(e)
  if domain.labels is None:
    return None, domain.origin
  return data.eval_dataset(cfg.data, "target", split,
                           evaluation.EVAL_BATCH), None


def _use_averaged_classifier(model: pixelda.PixelDA) -> None:
  """T's variables take their averages (what the run's evaluations scored);
  G keeps its raw weights, so `adapt --raw_weights` still can use them."""
  if model.average is None:
    return
  mine = {id(v) for v in model.nets.classifier.variables}
  for average, variable in zip(model.average.averages, model.average.sources):
    if id(variable) in mine:
      variable.assign(average)


def _check_folders(model_dir: str, out: str, overwrite: bool) -> None:
  """Refuses an `out` that is, holds or sits inside the trained run (an
  `--overwrite` would delete it), or that names a file."""
  run, new = os.path.realpath(model_dir), os.path.realpath(out)
  config_lib.require(
      os.path.commonpath([run, new]) not in (run, new),
      f"--out={out} is, holds or sits inside the trained run {model_dir}: "
      "give the refined run a folder of its own beside it")
  if tf.io.gfile.exists(out):
    if not overwrite:
      raise FileExistsError(
          f"--out={out} exists; remove it or pass --overwrite")
    config_lib.require(tf.io.gfile.isdir(out),
                       f"--out={out} is a file: give a folder path")


def refine_run(model_dir: str, out: str, overrides: Dict[str, Any],
               rc: RefineConfig = RefineConfig(), which: str = "latest",
               overwrite: bool = False) -> Dict:
  """Runs the DIRT-T phase on `model_dir`'s T; writes the refined run to `out`.

  Args:
    model_dir: a trained run (read only).
    out: the refined run's folder; must not exist unless `overwrite`.
    overrides: data settings over the run's (e.g. another target folder).
    rc: the phase's settings.
    which: the checkpoint to start from: `latest`, `best` or a prefix.

  Returns:
    refine.json's contents: the settings, `data_overrides`, `history`
    (step, seconds, entropy, teacher_kl, val_accuracy, test_accuracy,
    test_accuracy_raw; None for a split with no labels), `accuracy` (the
    final averaged T on the target test split) and `accuracy_before`.

  Raises:
    FileExistsError: `out` exists and not `overwrite`.
    ConfigError: bad settings, or `out` is, holds or sits in the run, or
      its place cannot be written (before training).
    FileNotFoundError / CheckpointError / DataError: no run, checkpoint or
      target images.
    NonFiniteLossError: a non-finite loss or weight (nothing is written).
  """
  rc.validate()
  _check_folders(model_dir, out, overwrite)
  cfg = config_lib.override_data(rundir.load_config(model_dir), overrides)
  rundir.checkpoint_candidates(model_dir, which)  # Fail before loading data.
  target = data.load_domain(cfg.data, "target", "train")
  if len(target) < rc.batch_size:
    raise data.DataError(
        f"{target.origin}: {len(target)} target train images, fewer than "
        f"--batch_size={rc.batch_size}: lower --batch_size or add images")
  scored = {split: _labelled_split(cfg, split) for split in ("val", "test")}
  model = rundir.restore(model_dir, which, averaged=False)
  tmp = out.rstrip("/") + f".partial-{os.getpid()}"
  try:
    if tf.io.gfile.exists(tmp):
      tf.io.gfile.rmtree(tmp)
    tf.io.gfile.makedirs(tmp)
  except (tf.errors.OpError, OSError) as e:
    raise config_lib.ConfigError(
        f"--out={out}: cannot write {tmp} ({type(e).__name__}: {e}); give a "
        "folder in a place you can write") from e
  try:
    results = _refine(model, cfg, rc, target, scored)
    results.update(model_dir=model_dir, out=out, data_overrides=overrides)
    _write_run(model, cfg, tmp, out, results)
  except BaseException:
    tf.io.gfile.rmtree(tmp)
    raise
  return results


def _refine(model: pixelda.PixelDA, cfg: config_lib.Config,
            rc: RefineConfig, target: data.Domain, scored: Dict) -> Dict:
  """The phase itself: trains `model`'s T and leaves the refined weights in
  T and its average slots; returns refine.json's contents but the paths."""
  _use_averaged_classifier(model)
  student = model.nets.classifier
  teacher = keras.models.clone_model(student)
  teacher.set_weights(student.get_weights())
  average = averaging.WeightAverage(student.trainable_variables, rc.ema_decay,
                                    name="refined_average")
  optimizer = keras.optimizers.Adam(rc.learning_rate, beta_1=rc.beta1)
  optimizer.build(student.trainable_variables)
  size = cfg.data.image_size
  images = (tf.data.Dataset.from_tensor_slices(target.images)
            .shuffle(len(target), seed=rc.seed, reshuffle_each_iteration=True)
            .repeat().batch(rc.batch_size, drop_remainder=True)
            .map(lambda x: data.to_model_range(x, size))
            .prefetch(tf.data.AUTOTUNE))

  @tf.function(jit_compile=cfg.runtime.jit_compile)
  def step(x, updates):
    teacher_logits = teacher(x, training=False)
    with tf.GradientTape() as tape:
      logits = student(x, training=True)
      entropy = tf.reduce_mean(losses.conditional_entropy(logits))
      kl = tf.reduce_mean(losses.teacher_divergence(logits, teacher_logits))
      loss = rc.entropy_weight * entropy + rc.teacher_weight * kl
    grads = tape.gradient(loss, student.trainable_variables)
    optimizer.apply(grads, student.trainable_variables)
    average.update(updates)
    return {"loss": loss, "entropy": entropy, "teacher_kl": kl}

  def score(step_done: int, seconds: float, logs: Dict) -> Dict:
    entry = {"step": step_done, "seconds": seconds,
             "entropy": logs.get("entropy"),
             "teacher_kl": logs.get("teacher_kl")}
    with average.applied():
      for split, (dataset, _) in scored.items():
        entry[f"{split}_accuracy"] = (None if dataset is None else
                                      _accuracy(student, dataset, cfg))
    test = scored["test"][0]
    entry["test_accuracy_raw"] = (None if test is None else
                                  _accuracy(student, test, cfg))
    return entry

  started = time.time()
  history = [score(0, 0.0, {})]
  batches = iter(images)
  for i in range(1, rc.steps + 1):
    logs = step(next(batches), tf.constant(i, tf.int64))
    if not math.isfinite(float(logs["loss"])):
      raise pixelda.NonFiniteLossError(
          f"non-finite loss at step {i} of the refinement "
          f"({ {k: float(v) for k, v in logs.items()} }): nothing is written "
          "and the trained run is unchanged; lower --learning_rate")
    if i % rc.teacher_reset_steps == 0:
      for t, a in zip(teacher.trainable_variables, average.averages):
        t.assign(a)
    if (rc.eval_every and i % rc.eval_every == 0) or i == rc.steps:
      logs = {k: float(v) for k, v in logs.items()}
      history.append(score(i, time.time() - started, logs))
  seconds = time.time() - started

  # The refined run: T's raw weights are the student's; its average (what
  # evaluate, export and adapt load) is the refined average, or for a run
  # without one, T's own variables hold it.
  if model.average is None:
    average.copy_to_variables()
  else:
    refined = dict(zip((id(v) for v in average.sources), average.averages))
    for slot, variable in zip(model.average.averages, model.average.sources):
      if id(variable) in refined:
        slot.assign(refined[id(variable)])
  bad = model.nonfinite_variables()
  if bad:
    raise pixelda.NonFiniteLossError(
        f"non-finite weights after the refinement: {', '.join(bad[:5])}: "
        "nothing is written and the trained run is unchanged; lower "
        "--learning_rate")
  return {
      "checkpoint": model.restored_from, "step": int(model.step),
      "settings": dataclasses.asdict(rc), "target_origin": target.origin,
      "num_target_images": len(target),
      "unscored": {split: why for split, (_, why) in scored.items() if why},
      "history": history,
      "accuracy_before": history[0]["test_accuracy"],
      "accuracy": history[-1]["test_accuracy"],
      "val_accuracy": history[-1]["val_accuracy"],
      "wall_time_s": seconds, "code": provenance.code_version(),
  }


def _accuracy(classifier: keras.Model, dataset, cfg: config_lib.Config
              ) -> float:
  return evaluation.evaluate(classifier, dataset,
                             cfg.classifier.num_classes)["accuracy"]


def _write_run(model: pixelda.PixelDA, cfg: config_lib.Config, tmp: str,
               out: str, results: Dict) -> None:
  """config.json, the checkpoint and refine.json into `tmp`, then renamed to
  `out`."""
  cfg = dataclasses.replace(cfg, train=dataclasses.replace(
      cfg.train, model_dir=out, init_from=None))
  rundir.write_json(os.path.join(tmp, rundir.CONFIG_FILE), cfg.to_dict())
  # The manager's `checkpoint` file names paths relative to its folder, so
  # the folder reads after the rename below.
  rundir.save_checkpoint(tf.train.CheckpointManager(
      model.checkpoint, os.path.join(tmp, rundir.CHECKPOINT_DIR),
      max_to_keep=1), int(model.step))
  rundir.write_json(os.path.join(tmp, RESULTS_FILE), results)
  if tf.io.gfile.exists(out):
    tf.io.gfile.rmtree(out)
  tf.io.gfile.rename(tmp, out)


def history_rows(results: Dict) -> List[Dict[str, Optional[float]]]:
  """refine.json's history as printed rows (step, seconds, accuracies)."""
  return [{k: row[k] for k in ("step", "seconds", "val_accuracy",
                               "test_accuracy", "test_accuracy_raw")}
          for row in results["history"]]
