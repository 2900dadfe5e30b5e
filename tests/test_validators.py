"""Label-free scores (pixelda_tf.validators) against plain-loop references
on small arrays, and the orderings they exist for."""

import math

import numpy as np
import pytest

from pixelda_tf import validators


def _softmax(logits):
  e = np.exp(logits - logits.max(axis=-1, keepdims=True))
  return e / e.sum(axis=-1, keepdims=True)


@pytest.fixture
def probs():
  return _softmax(np.random.default_rng(0).normal(size=(7, 4)) * 2.0)


def _h(row):
  return -sum(p * math.log(p) for p in row if p > 0)


def test_entropy_and_im_against_loops(probs):
  rows = [list(r) for r in probs]
  mean_h = sum(_h(r) for r in rows) / len(rows)
  marginal = [sum(r[c] for r in rows) / len(rows) for c in range(4)]
  assert validators.entropy(probs) == pytest.approx(-mean_h, rel=1e-9)
  assert validators.information_maximization(probs) == pytest.approx(
      _h(marginal) - mean_h, rel=1e-9)


def test_entropy_and_im_limits():
  one_hot = np.eye(4)
  uniform = np.full((4, 4), 0.25)
  assert validators.entropy(one_hot) == pytest.approx(0.0, abs=1e-9)
  assert validators.entropy(uniform) == pytest.approx(-math.log(4))
  # Confident and spread over the classes: IM's maximum, log C.
  assert validators.information_maximization(one_hot) == pytest.approx(
      math.log(4))
  # Confident but all one class (a collapse): IM 0.
  collapsed = np.tile(np.eye(4)[:1], (4, 1))
  assert validators.information_maximization(collapsed) == pytest.approx(
      0.0, abs=1e-9)


def test_batch_nuclear_norm_against_singular_values(probs):
  # Singular values by the eigenvalues of P^T P, not np.linalg.norm.
  eig = np.linalg.eigvalsh(probs.T @ probs)
  want = sum(math.sqrt(max(e, 0.0)) for e in eig) / len(probs)
  assert validators.batch_nuclear_norm(probs) == pytest.approx(want,
                                                               rel=1e-9)


def test_soft_neighborhood_density_against_loops(probs):
  n, tau = len(probs), 0.05
  unit = [r / math.sqrt(sum(v * v for v in r)) for r in probs]
  total = 0.0
  for i in range(n):
    sims = [sum(a * b for a, b in zip(unit[i], unit[j])) / tau
            for j in range(n) if j != i]
    top = max(sims)
    weights = [math.exp(s - top) for s in sims]
    z = sum(weights)
    total += _h([w / z for w in weights])
  assert validators.soft_neighborhood_density(probs) == pytest.approx(
      total / n, rel=1e-9)


def test_z_agreement_against_loops():
  # 3 noise vectors, 2 images, 3 classes: image 0 gets classes 1, 1, 2;
  # image 1 gets class 0 three times.
  probs = np.zeros((3, 2, 3))
  for z, (a, b) in enumerate([(1, 0), (1, 0), (2, 0)]):
    probs[z, 0, a] = probs[z, 1, b] = 1.0
  assert validators.z_agreement(probs) == pytest.approx((2 / 3 + 1) / 2)


def test_adapted_source_accuracy_and_domain_confusion():
  probs = np.eye(3)[[0, 1, 2, 2]]
  assert validators.adapted_source_accuracy(probs, [0, 1, 2, 0]) == 0.75
  # D right on 3 of 4: accuracy 0.75, confusion 0.5; at chance, 1.
  assert validators.domain_confusion([1.0, -1.0], [-2.0, -3.0]) == 0.5
  assert validators.domain_confusion([1.0, -1.0], [1.0, -3.0]) == 1.0


@pytest.mark.parametrize("fn,args", [
    (validators.entropy, (np.ones(3),)),
    (validators.information_maximization, (np.ones((1, 3)),)),
    (validators.z_agreement, (np.ones((1, 2, 3)),)),
    (validators.adapted_source_accuracy, (np.eye(3), [0, 1])),
    (validators.domain_confusion, ([], [1.0])),
])
def test_bad_shapes_name_the_argument(fn, args):
  with pytest.raises(ValueError, match="must be|needs"):
    fn(*args)


def test_selection_names_the_history_key_and_refuses_val_without_labels():
  from pixelda_tf import errors  # pylint: disable=g-import-not-at-top
  from pixelda_tf import training  # pylint: disable=g-import-not-at-top
  assert training.selection("auto", unlabelled_val=False) == "val_accuracy"
  assert training.selection("auto", unlabelled_val=True) == (
      "latest" if validators.LABEL_FREE_DEFAULT == "latest"
      else f"score/{validators.LABEL_FREE_DEFAULT}")
  assert training.selection("snd", unlabelled_val=True) == "score/snd"
  assert training.selection("latest", unlabelled_val=False) == "latest"
  with pytest.raises(errors.ConfigError, match="^--select_checkpoint="
                     "val_accuracy needs labelled target validation images, "
                     "and the target has none: give --target_val_dir="):
    training.selection("val_accuracy", unlabelled_val=True)


SCORES = ("score/entropy", "score/im", "score/bnm", "score/snd",
          "score/z_agreement", "score/adapted_source_accuracy",
          "score/domain_confusion")


@pytest.mark.slow
@pytest.mark.usefixtures("offline_data")
def test_a_run_on_a_flat_unlabelled_folder_logs_every_score(tmp_path, fake):
  # Imported here: the rest of this file needs no TensorFlow.
  import json  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from pixelda_tf import training  # pylint: disable=g-import-not-at-top
  from tests import tiny  # pylint: disable=g-import-not-at-top
  cfg = tiny.tiny_config(
      data=dict(source="folder", source_dir=str(fake / "source_folder"),
                target="folder", target_dir=str(fake / "target_flat"),
                data_dir=str(tmp_path / "data"), download=False),
      classifier=dict(num_classes=2),
      train=dict(model_dir=str(tmp_path / "run"), train_steps=2,
                 checkpoint_every=2, eval_every=1, image_every=0,
                 summary_every=1, quiet=True))
  training.train(cfg, strategy=tf.distribute.get_strategy())
  with open(tmp_path / "run" / "history.json") as f:
    history = json.load(f)
  assert [h["step"] for h in history] == [1, 2]
  for entry in history:
    assert entry["val_accuracy"] is None  # no labels: nothing else to go by
    assert set(SCORES) <= set(entry), entry
    assert all(np.isfinite(entry[name]) for name in SCORES), entry
  # A flat folder of 6 images: every one is scored; 2 classes: IM <= log 2.
  assert 0 <= history[-1]["score/im"] <= math.log(2) + 1e-9
  assert 0 <= history[-1]["score/domain_confusion"] <= 1


def test_rank_orders_runs_by_the_kept_checkpoints_score(tmp_path):
  import json  # pylint: disable=g-import-not-at-top
  from pixelda_tf import errors  # pylint: disable=g-import-not-at-top
  from pixelda_tf import rank  # pylint: disable=g-import-not-at-top

  def run(name, history, results=None):
    folder = tmp_path / name
    folder.mkdir()
    (folder / "history.json").write_text(json.dumps(history))
    if results is not None:
      (folder / "results.json").write_text(json.dumps(results))
    return str(folder)

  kept_best = run("a", [{"step": 2, "score/im": 0.9}, {"step": 4,
                                                       "score/im": 0.1}],
                  {"final": {"step": 4, "accuracy": None},
                   "best": {"step": 2, "selection": "score/im",
                            "accuracy": 0.8}})
  latest = run("b", [{"step": 2, "score/im": 0.5}],
               {"final": {"step": 2, "accuracy": 0.7}})
  training = run("c", [{"step": 2, "score/im": 0.3, "test_accuracy": 0.6}])
  rows = rank.rank([training, latest, kept_best], "im")
  assert [r["run"] for r in rows] == [kept_best, latest, training]
  assert [r["kept"] for r in rows] == ["score/im", "latest",
                                       "latest (still training)"]
  assert [r["test_accuracy"] for r in rows] == [0.8, 0.7, 0.6]
  with pytest.raises(errors.UserError, match="has no score/snd"):
    rank.rank([latest], "snd")
  with pytest.raises(errors.UserError, match="is not a folder"):
    rank.rank([str(tmp_path / "missing")], "im")
  with pytest.raises(errors.UserError, match="has no evaluation yet"):
    rank.rank([str(tmp_path)], "im")
