r"""Does combining a run's last checkpoints hold a higher accuracy?

  python benchmarks/checkpoint_ensemble.py --model_dir=RUN/pixelda \
      --last=1,2,4,8,16 --from_minutes=160 \
      --json=benchmarks/results/checkpoint_ensemble/NAME_checkpoint_ensemble.json

For a finished run that kept the checkpoint of every evaluation (a
`--checkpoint_every` that divides `--eval_every`, and `--keep_checkpoints`
large enough), with every evaluation at or after `--from_minutes`
(history.json) as an end point, it scores on the target's test split (the
held-out slice) the classifier (averaged weights when the run keeps an
average) combined over the checkpoints of the K newest evaluations up to that
end point:
  predictions  the mean of the K classifiers' softmax outputs (K models to
               serve);
  weights      one classifier whose every variable is the mean over the K
               checkpoints (one model to serve; T has no batch norm).
K=1 is the run's own evaluation, rebuilt in float32 (as evaluate and export
rebuild it), so it can differ from history.json by a few images in a run
trained in bfloat16; the JSON keeps both.

Prints, per mode and K: mean, min and max accuracy over the end points and
how many reach 99%. Read-only on the run's folder.
"""

import os
import sys

# Runnable from a checkout without installing the package.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# At import, not in main: TensorFlow reads TF_ENABLE_ONEDNN_OPTS once, when
# it loads, and the imports below load it.
from pixelda_tf import runner  # pylint: disable=g-import-not-at-top,wrong-import-position
runner.prepare_process()

# pylint: disable=g-import-not-at-top,wrong-import-position
from absl import app
from absl import flags
import numpy as np
import tensorflow as tf

from pixelda_tf import data
from pixelda_tf import evaluation
from pixelda_tf import provenance
from pixelda_tf import rundir

import result_fields  # (this folder)

FLAGS = flags.FLAGS


def _define_flags():
  """Defines the script's flags (once, from __main__)."""
  flags.DEFINE_string("model_dir", None, "A finished run's folder.")
  flags.DEFINE_list("last", ["1", "2", "4", "8", "16"],
                    "Numbers of newest checkpoints to combine.")
  flags.DEFINE_float("from_minutes", 160.0, "End points: every evaluation "
                     "in history.json at or after this training minute.")
  flags.DEFINE_string("json", None, "Where to write the results.")


def checkpoint_at(model_dir: str, step: int) -> str:
  """The kept checkpoint prefix of evaluation step `step`."""
  prefix = os.path.join(model_dir, rundir.CHECKPOINT_DIR, f"ckpt-{step}")
  if not tf.io.gfile.exists(prefix + ".index"):
    raise FileNotFoundError(
        f"no checkpoint of the evaluation at step {step} ({prefix}.index): "
        "this needs a run trained with a --checkpoint_every that divides "
        "--eval_every and a --keep_checkpoints that keeps every one of them "
        "(or a later --from_minutes, a smaller K)")
  return prefix


def plan(history, from_minutes: float, last):
  """The end points and the checkpoint steps they need.

  Args:
    history: history.json's evaluations ({"step", "minutes",
      "test_accuracy"}), in training order.
    from_minutes: the first end point is the first evaluation at or after it.
    last: the K to try, each >= 1.

  Returns:
    (end points: the history entries, steps: every step the windows use,
    ascending).

  Raises:
    ValueError: no end point, a K < 1, or too few evaluations before the
      first end point for the largest K.
  """
  if min(last) < 1:
    raise ValueError(f"--last={min(last)}: each K must be at least 1")
  ends = [h for h in history if h["minutes"] >= from_minutes
          and h.get("test_accuracy") is not None]
  if not ends:
    raise ValueError(f"no evaluation at or after minute {from_minutes:g}")
  all_steps = sorted(h["step"] for h in history)
  first = all_steps.index(ends[0]["step"]) - (max(last) - 1)
  if first < 0:
    raise ValueError(f"K={max(last)} needs {max(last) - 1} evaluations "
                     f"before the first end point (step {ends[0]['step']}); "
                     "choose a later --from_minutes or a smaller K")
  return ends, all_steps[first:]


def combine(end_steps, steps, probabilities, weights_of, score, last):
  """Scores every end point for every K, both modes.

  Args:
    end_steps: the evaluation steps to end at.
    steps: every checkpoint step, ascending.
    probabilities: step -> (N, C) softmax of that checkpoint's classifier.
    weights_of: step -> list of the classifier's variable values.
    score: (list of values or None, (N, C) probabilities) -> accuracy;
      given values, it loads them and scores the classifier.
    last: the K to try.

  Returns:
    {mode: {K: [accuracy per end point]}}.
  """
  out = {"predictions": {}, "weights": {}}
  for k in last:
    for mode in out:
      out[mode][k] = []
    for end in end_steps:
      window = [s for s in steps if s <= end][-k:]
      if len(window) < k:
        raise ValueError(f"K={k} needs {k} checkpoints up to step {end}; "
                         f"the run keeps {len(window)}")
      mean_probs = np.mean([probabilities[s] for s in window], axis=0)
      out["predictions"][k].append(score(None, mean_probs))
      values = [np.mean(vs, axis=0)
                for vs in zip(*(weights_of[s] for s in window))]
      out["weights"][k].append(score(values, None))
  return out


def main(argv):
  del argv
  model_dir = FLAGS.model_dir
  try:
    last = sorted({int(k) for k in FLAGS.last})
  except ValueError as e:
    raise app.UsageError(f"--last={','.join(FLAGS.last)}: give whole "
                         "numbers, e.g. --last=1,2,4") from e
  history = rundir.read_json(os.path.join(model_dir, "history.json"), [])
  try:
    ends, steps = plan(history, FLAGS.from_minutes, last)
    prefixes = {step: checkpoint_at(model_dir, step) for step in steps}
  except (ValueError, FileNotFoundError) as e:
    raise app.UsageError(f"{model_dir}: {e}") from e

  model = rundir.restore(model_dir, prefixes[steps[0]])
  classifier = model.nets.classifier
  dataset = data.eval_dataset(model.cfg.data, "target", "test",
                              evaluation.EVAL_BATCH)
  labels = np.concatenate([y.numpy() for _, y in dataset])
  try:
    evaluation.check_labels(labels, model.cfg.classifier.num_classes)
  except ValueError as e:
    raise app.UsageError(f"{model_dir}, the target's test split: {e} "
                         "(e.g. --test_size)") from e
  softmax = tf.function(
      lambda x: tf.nn.softmax(tf.cast(classifier(x, training=False),
                                      tf.float32)))

  def probabilities_now():
    return np.concatenate([softmax(x).numpy() for x, _ in dataset])

  probabilities, weights_of = {}, {}
  for step in steps:
    rundir.restore_newest_intact(
        model.checkpoint, [prefixes[step]],
        advice="copy it back from a backup, or choose a later --from_minutes")
    if model.average is not None:
      model.average.copy_to_variables()
    probabilities[step] = probabilities_now()
    weights_of[step] = [v.numpy() for v in classifier.variables]
    accuracy = np.mean(probabilities[step].argmax(-1) == labels)
    print(f"step {step}: {accuracy:.4f}", flush=True)

  def score(values, probs):
    if values is not None:
      for variable, value in zip(classifier.variables, values):
        variable.assign(value)
      probs = probabilities_now()
    return float(np.mean(probs.argmax(-1) == labels))

  results = combine([h["step"] for h in ends], steps, probabilities,
                    weights_of, score, last)
  summary = {}
  print(f"{len(ends)} end points, steps {ends[0]['step']}-{ends[-1]['step']}"
        f" (minutes >= {FLAGS.from_minutes:g}), {len(labels)} test images")
  print("mode         K   mean    min     max    >=99%")
  for mode, by_k in results.items():
    for k, accs in by_k.items():
      a = np.asarray(accs)
      summary[f"{mode}_{k}"] = {
          "mean": float(a.mean()), "min": float(a.min()),
          "max": float(a.max()), "at_least_99": int((a >= 0.99).sum()),
          "final": float(a[-1])}
      print(f"{mode:<11} {k:>2}  {a.mean():.4f}  {a.min():.4f}  {a.max():.4f}"
            f"  {(a >= 0.99).sum()}/{len(a)}")
  if FLAGS.json:
    rundir.write_json(FLAGS.json, {
        **result_fields.fields(result_fields.run_test_split(
            model_dir, int(len(labels)))),
        "model_dir": model_dir, "from_minutes": FLAGS.from_minutes,
        "num_examples": int(len(labels)), "last": last,
        "end_steps": [h["step"] for h in ends],
        "history_test_accuracy": [h["test_accuracy"] for h in ends],
        "results": {m: {str(k): v for k, v in r.items()}
                    for m, r in results.items()},
        "summary": summary, "code": provenance.code_version()})
  return 0


if __name__ == "__main__":
  _define_flags()
  flags.mark_flag_as_required("model_dir")
  app.run(main)
