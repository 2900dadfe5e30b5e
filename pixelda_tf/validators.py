"""Label-free scores of a checkpoint: how well it seems to do on the target
without the target's labels.

Every score is higher-is-better and is a pure function of arrays the
evaluation already has: the classifier's softmax outputs on unlabelled target
images, the discriminator's logits, and the classifier's outputs on adapted
source validation images, whose labels are the source's. Shapes: `probs` is
(N, C), rows summing to 1; entropies are in nats.

The standard validators follow Musgrave et al., "Three New Validators and a
Large-Scale Benchmark Ranking for Unsupervised Domain Adaptation" (2022):
  - `entropy`: -mean_i H(p_i) (confident predictions);
  - `information_maximization` (IM): H(mean_i p_i) - mean_i H(p_i)
    (confident and spread over the classes);
  - `batch_nuclear_norm` (BNM, Cui et al. 2020): ||P||_* / N;
  - `soft_neighborhood_density` (SND, Saito et al. 2021): the mean entropy of
    each row's softmax over its similarities to the other rows.
PixelDA's own signals:
  - `z_agreement`: how often T gives one source image the same class for
    several noise vectors z (G's adaptation keeps the label);
  - `adapted_source_accuracy`: T's accuracy on G(x_s, z) for held-out
    labelled source images (what the source labels can still say);
  - `domain_confusion`: 1 - |2 a - 1|, where a is D's accuracy at telling
    held-out target images from adapted ones (1 when D is at chance).
"""

from __future__ import annotations

from typing import Dict, Optional

import numpy as np

_TINY = 1e-12

# What a training run scores at each evaluation: at most this many target
# images (the target's validation split, its labels unused; for an unlabelled
# target, a seeded sample of its train pool), this many source images, each
# adapted with this many z. Sized to cost a few percent of the presets'
# evaluation cadence.
TARGET_IMAGES = 1000
SOURCE_IMAGES = 256
SAMPLES = 2

# The scores' names: each evaluation logs "score/<name>" (history.json,
# TensorBoard), and --select_checkpoint takes the name. The last three need
# G (and D), so a baseline run has only the first four.
SCORES = ("entropy", "im", "bnm", "snd", "z_agreement",
          "adapted_source_accuracy", "domain_confusion")
GENERATOR_SCORES = SCORES[4:]
# What --select_checkpoint=auto keeps when the target has no labelled
# validation images: the choice that stayed closest to the truth on every
# domain measured (benchmarks/README.md, "Label-free validation").
LABEL_FREE_DEFAULT = "im"
# What `python -m pixelda_tf.rank` ranks runs by unless told: the score that
# ranked settings closest to their accuracy where measured (same section).
RANK_DEFAULT = "adapted_source_accuracy"


def _as_probs(probs) -> np.ndarray:
  probs = np.asarray(probs, dtype=np.float64)
  if probs.ndim != 2 or probs.shape[0] < 2:
    raise ValueError(f"probs must be (N >= 2, C), got shape {probs.shape}")
  return probs


def _row_entropy(probs: np.ndarray) -> np.ndarray:
  return -np.sum(probs * np.log(probs + _TINY), axis=-1)


def entropy(probs) -> float:
  """-mean_i H(p_i); 0 for one-hot rows, -log C for uniform ones."""
  return float(-np.mean(_row_entropy(_as_probs(probs))))


def information_maximization(probs) -> float:
  """H(mean_i p_i) - mean_i H(p_i), in [0, log C]."""
  probs = _as_probs(probs)
  marginal = probs.mean(axis=0)
  return float(_row_entropy(marginal[None])[0] -
               np.mean(_row_entropy(probs)))


def batch_nuclear_norm(probs) -> float:
  """The sum of P's singular values over N (P: N x C)."""
  probs = _as_probs(probs)
  return float(np.linalg.norm(probs, ord="nuc") / probs.shape[0])


def soft_neighborhood_density(probs, temperature: float = 0.05) -> float:
  """SND: rows L2-normalised, cosine similarities to the other rows (self
  excluded) turned into a distribution by softmax(s / temperature); the mean
  entropy of those distributions."""
  probs = _as_probs(probs)
  unit = probs / (np.linalg.norm(probs, axis=1, keepdims=True) + _TINY)
  logits = unit @ unit.T / temperature
  np.fill_diagonal(logits, -np.inf)
  logits -= logits.max(axis=1, keepdims=True)
  weights = np.exp(logits)
  weights /= weights.sum(axis=1, keepdims=True)
  return float(np.mean(_row_entropy(weights)))


def z_agreement(probs_by_z) -> float:
  """(Z, N, C) predictions for N images under Z noise vectors: the mean over
  images of the share of z that give the image's most frequent class."""
  probs_by_z = np.asarray(probs_by_z)
  if probs_by_z.ndim != 3 or probs_by_z.shape[0] < 2:
    raise ValueError("probs_by_z must be (Z >= 2, N, C), got shape "
                     f"{probs_by_z.shape}")
  classes = probs_by_z.argmax(axis=-1)                         # (Z, N)
  counts = np.apply_along_axis(np.bincount, 0, classes,
                               minlength=probs_by_z.shape[-1])  # (C, N)
  return float(np.mean(counts.max(axis=0) / probs_by_z.shape[0]))


def adapted_source_accuracy(probs, labels) -> float:
  """T's accuracy on adapted source images, against the source labels."""
  probs, labels = _as_probs(probs), np.asarray(labels)
  if labels.shape != probs.shape[:1]:
    raise ValueError(f"labels must be ({probs.shape[0]},), got shape "
                     f"{labels.shape}")
  return float(np.mean(probs.argmax(axis=1) == labels))


def domain_confusion(target_logits, adapted_logits) -> float:
  """1 - |2a - 1| for D's accuracy a (D's logit > 0 means "target")."""
  target_logits = np.asarray(target_logits).ravel()
  adapted_logits = np.asarray(adapted_logits).ravel()
  if not target_logits.size or not adapted_logits.size:
    raise ValueError("domain_confusion needs target and adapted logits")
  right = np.sum(target_logits > 0) + np.sum(adapted_logits <= 0)
  accuracy = right / (target_logits.size + adapted_logits.size)
  return float(1.0 - abs(2.0 * accuracy - 1.0))


def _softmax(logits: np.ndarray) -> np.ndarray:
  logits = np.asarray(logits, np.float64)
  logits = logits - logits.max(axis=-1, keepdims=True)
  e = np.exp(logits)
  return e / e.sum(axis=-1, keepdims=True)


def checkpoint_scores(classifier, target_images: np.ndarray,
                      generator=None, discriminator=None,
                      source_images: Optional[np.ndarray] = None,
                      source_labels: Optional[np.ndarray] = None,
                      samples: int = SAMPLES, seed: int = 0,
                      batch: int = 500) -> Dict[str, float]:
  """Every score of one checkpoint, as `score/<name>` entries.

  Args:
    classifier: T, a Keras model (images -> logits), run in inference mode.
    target_images: float32 (N, S, S, 3) in [-1, 1], unlabelled.
    generator, discriminator: G and D, or None for a baseline (only T's
      scores then).
    source_images: float32 (M, S, S, 3) in [-1, 1], with `source_labels`
      int (M,): each is adapted with `samples` z (image i's z as
      `evaluation.noise(seed, i, ...)`: the same at every evaluation).
  """
  from pixelda_tf import evaluation  # pylint: disable=g-import-not-at-top

  def run(model, inputs):
    fn = evaluation.inference(model)
    n = len(inputs[0]) if isinstance(inputs, list) else len(inputs)
    out = [np.asarray(fn([x[i:i + batch] for x in inputs]
                         if isinstance(inputs, list) else inputs[i:i + batch]),
                      np.float32) for i in range(0, n, batch)]
    return np.concatenate(out)

  target_probs = _softmax(run(classifier, target_images))
  scores = {"score/entropy": entropy(target_probs),
            "score/im": information_maximization(target_probs),
            "score/bnm": batch_nuclear_norm(target_probs),
            "score/snd": soft_neighborhood_density(target_probs)}
  if generator is None or source_images is None:
    return scores
  noise_dim = generator.inputs[1].shape[-1]
  z = np.stack([evaluation.noise(seed, i, samples, noise_dim)
                for i in range(len(source_images))])
  adapted = [run(generator, [source_images, z[:, k]]) for k in range(samples)]
  adapted_probs = np.stack([_softmax(run(classifier, a)) for a in adapted])
  scores["score/z_agreement"] = z_agreement(adapted_probs)
  scores["score/adapted_source_accuracy"] = adapted_source_accuracy(
      adapted_probs[0], source_labels)
  if discriminator is not None:
    scores["score/domain_confusion"] = domain_confusion(
        run(discriminator, target_images), run(discriminator, adapted[0]))
  return scores
