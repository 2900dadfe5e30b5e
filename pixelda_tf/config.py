"""Typed configuration for pixelda-tf.

The whole experiment is one frozen tree of dataclasses, built once (by
`pixelda_tf.flags.config_from_flags` for the command-line tools, or by hand in
Python). The library takes a `Config` and never reads absl flags.

Defaults are the official TF1 MNIST->MNIST-M setup (tensorflow/models,
research/domain_adaptation/pixel_domain_adaptation) at the paper's 32x32 size.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Any, Dict, Optional, Tuple

SOURCES = ("mnist", "usps", "folder")
TARGETS = ("mnist_m", "usps", "mnist", "folder")
MNIST_M_VARIANTS = ("auto", "bsds500", "offline", "released")
MODES = ("pixelda", "source_only", "target_only")
TARGET_LABELS = ("auto", "test", "none")
STRATEGIES = ("default", "mirrored", "multi_worker")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16", "auto")


class ConfigError(ValueError):
  """A configuration value is invalid; the message names the flag and the fix."""


@dataclasses.dataclass(frozen=True)
class DataConfig:
  """Where the images come from and how they are prepared.

  Attributes:
    source: labelled source domain, one of `SOURCES`.
    target: target domain, one of `TARGETS`; its labels are used only for
      evaluation (and for training in `target_only` mode).
    mnist_m_variant: how MNIST-M is obtained: `bsds500` (generated from MNIST
      and BSDS500 train photos), `offline` (generated from natural photos a
      registry package ships), `released` (the published folder layout), or
      `auto` (released if `mnist_m_dir` is set, else BSDS500 if `bsds_dir` is
      set or the archive can be downloaded, else offline).
    image_size: side of the square images the models see (32 in the paper).
    data_dir: where prepared data and downloads land.
    mnist_dir: optional folder with the four MNIST IDX files (.gz or not).
    bsds_dir: optional BSDS500 `BSR_bsds500.tgz` or extracted
      `BSR/BSDS500/data/images` folder.
    mnist_m_dir: optional folder with the released MNIST-M layout.
    usps_path: optional `usps.h5` file or folder with the libsvm `usps.bz2` and
      `usps.t.bz2` files.
    source_dir: labelled image folder (one subfolder per class) for
      `source=folder`.
    target_dir: image folder for `target=folder` (subfolders per class if
      labelled, else flat).
    smaller_images: how built-in datasets' images smaller than `image_size`
      reach it: `resize` (bilinear, as the official code fed MNIST at 32x32)
      or `pad` (centred on black at their own scale, as the released MNIST-M
      placed its 28x28 digits). Larger images are always resized; folder
      images are resized when read.
    val_size: examples held out from the target train split for validation
      (the official code kept 1,000): a stratified draw with `seed`.
    target_val_dir: optional small labelled folder (one subfolder per class,
      named as the source's classes) used as the target validation split
      instead of a slice of train.
    target_labels: which target labels the run may use: `auto` (whatever
      the target has), `test` (only to score the test split: no validation
      slice is carved from train, the latest checkpoint is kept), or `none`
      (ignore every target label; `target_val_dir` still counts).
    test_size: examples held out of a labelled target train split as its
      test split when the target has none of its own (stratified, `seed`);
      0 = 10%, at most 1,000.
    download: try network downloads when the network is reachable.
    seed: seed for data order and for generating MNIST-M.
  """
  source: str = "mnist"
  target: str = "mnist_m"
  mnist_m_variant: str = "auto"
  image_size: int = 32
  data_dir: str = "data"
  mnist_dir: Optional[str] = None
  bsds_dir: Optional[str] = None
  mnist_m_dir: Optional[str] = None
  usps_path: Optional[str] = None
  source_dir: Optional[str] = None
  target_dir: Optional[str] = None
  val_size: int = 1000
  smaller_images: str = "resize"
  target_val_dir: Optional[str] = None
  target_labels: str = "auto"
  test_size: int = 0
  download: bool = True
  seed: int = 0


@dataclasses.dataclass(frozen=True)
class GeneratorConfig:
  """ResNet generator G(x_s, z) -> x_f.

  Attributes:
    filters: channels of every residual-block convolution.
    num_blocks: number of residual blocks.
    noise_dim: size of z, drawn uniform in [-1, 1].
    residual_output: output = clip(input + 2 * tanh(residual)) (the
      official `residual_interpretation` form, with a change wide enough to
      reach every output value), instead of a plain image-to-image map.
  """
  filters: int = 64
  num_blocks: int = 6
  noise_dim: int = 10
  residual_output: bool = False


@dataclasses.dataclass(frozen=True)
class DiscriminatorConfig:
  """Convolutional discriminator D(x) -> logit.

  Attributes:
    filters: channels of the first conv; doubled at each stride-2 conv.
    max_filters: cap on the channel count (512 in the paper).
    dropout_keep_prob: keep probability of the dropout after each conv.
    noise_stddev: stddev of the Gaussian noise after each conv.
    minibatch_std: append, before the logit, one channel holding how much
      the batch's last features vary across its images (Karras et al.
      2018); not in the paper, off by default.
  """
  filters: int = 64
  max_filters: int = 512
  dropout_keep_prob: float = 0.9
  noise_stddev: float = 0.2
  minibatch_std: bool = False


@dataclasses.dataclass(frozen=True)
class ClassifierConfig:
  """Task classifier T (the official `mnist` tower).

  Attributes:
    num_classes: number of labels.
    private_source_layer: give source images their own first conv (official
      official `mnist` tower's layout); adapted and target images share the
      other. Only used in `pixelda` mode.
  """
  num_classes: int = 10
  private_source_layer: bool = True


@dataclasses.dataclass(frozen=True)
class LossConfig:
  """Loss weights. Official MNIST->MNIST-M values by default.

  Attributes:
    domain: alpha, weight of the discriminator's domain loss (D step).
    style: weight of the generator's adversarial loss (G step).
    task_source: weight of the task loss on source images (T step).
    task_adapted: weight of the task loss on adapted images (T step).
    task_in_g: weight, in the G step, of the task loss on adapted images
      (times `task_adapted`, as in the official code).
    pmse: gamma, weight of the masked pairwise MSE content loss (G step).
    pmse_mask: `none` (all pixels) or `foreground` (source pixels that are
      not background black).
    target_entropy: weight, in the T step, of the conditional entropy of T's
      predictions on target images (a refinement beyond the paper; 0 = off).
    pseudo_label: weight, in the T step, of the cross-entropy of T's
      predictions on target images against their own argmax, counted only
      where T's top probability is at least `pseudo_label_threshold`
      (self-training, a refinement beyond the paper; 0 = off).
    pseudo_label_threshold: the confidence a target prediction needs to
      count as a pseudo-label, in (0, 1].
    target_vat: weight, in the T step, of virtual adversarial training on
      target images: the KL divergence between T's prediction and its
      prediction under the perturbation of norm `target_vat_radius` that
      changes it most (VADA's target term; a refinement beyond the paper;
      0 = off).
    target_vat_radius: that perturbation's L2 norm per image (VADA: 3.5).
    target_teacher: weight, in the T step, of KL(averaged T || T) on target
      images: the weight-averaged T's prediction (inference mode, a
      constant) is the target of T's own, as in a mean teacher (Tarvainen &
      Valpola 2017; French et al., ICLR 2018, for domain adaptation). Both
      see the same clean image and T has no dropout, so this is temporal
      consistency only (T pulled towards its own average), without the
      papers' input noise (see `target_teacher_shift`). Needs
      `TrainConfig.ema_decay` > 0; a refinement beyond the paper; 0 = off.
    target_teacher_shift: with `target_teacher` weighted, T's own prediction
      is made on a view of the target image moved by up to this many whole
      pixels each way (edges repeated), while the teacher sees the clean
      image: a one-sided noisy mean teacher (French et al. perturb the
      teacher's view too, independently; 0 = the clean image).
    target_teacher_noise: the std of Gaussian noise added to that view, in
      pixel units of [-1, 1] (French et al.'s digits: shifts of 2 and
      noise 0.1; 0 = none).
    refine_start_step: the step from which `target_entropy`,
      `pseudo_label`, `target_vat` and `target_teacher` count (0 = from the
      start): a late
      refinement stage, once T is good enough on target images for its own
      predictions to teach it.
  """
  domain: float = 0.135603587834
  style: float = 0.0113173311334
  task_source: float = 1.0
  task_adapted: float = 1.0
  task_in_g: float = 0.0100959947002
  pmse: float = 0.0
  pmse_mask: str = "none"
  target_entropy: float = 0.0
  pseudo_label: float = 0.0
  pseudo_label_threshold: float = 0.95
  target_vat: float = 0.0
  target_vat_radius: float = 3.5
  target_teacher: float = 0.0
  target_teacher_shift: int = 0
  target_teacher_noise: float = 0.0
  refine_start_step: int = 0

  @property
  def noisy_teacher(self) -> bool:
    """Whether the teacher term's student sees a perturbed view."""
    return bool(self.target_teacher
                and (self.target_teacher_shift or self.target_teacher_noise))


# LossConfig fields that are not loss weights.
_LOSS_SETTINGS = ("pmse_mask", "pseudo_label_threshold", "target_vat_radius",
                  "target_teacher_shift", "target_teacher_noise",
                  "refine_start_step")


@dataclasses.dataclass(frozen=True)
class OptimConfig:
  """Adam with a staircase exponential decay, one optimizer per network.

  Attributes:
    learning_rate: initial learning rate.
    beta1: Adam's first-moment decay.
    decay_steps: the learning rate is multiplied by `decay_rate` every
      `decay_steps` steps (staircase).
    decay_rate: see `decay_steps`.
    clipnorm: each gradient tensor is clipped to this norm (0 disables).
    late_decay_steps: from step `late_decay_from` on, the staircase counts
      in these intervals instead: the rate is `decay_rate` **
      floor(step / late_decay_steps), a faster anneal for a long budget's
      second part (0 = off).
    late_decay_from: see `late_decay_steps`.
  """
  learning_rate: float = 1e-3
  beta1: float = 0.5
  decay_steps: int = 10000
  decay_rate: float = 0.95
  clipnorm: float = 5.0
  late_decay_steps: int = 0
  late_decay_from: int = 0


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """The training run.

  Attributes:
    mode: `pixelda`, or a baseline: `source_only`, `target_only`.
    model_dir: checkpoints, summaries and results.json.
    batch_size: global batch size (split over replicas).
    train_steps: total number of steps.
    max_minutes: stop (with a checkpoint) after this wall time; 0 = no limit.
    checkpoint_every: steps between checkpoints.
    eval_every: steps between target-validation evaluations (0 disables).
    summary_every: steps between scalar summaries.
    image_every: steps between image-grid summaries (0 disables).
    keep_checkpoints: how many recent checkpoints to keep.
    seed: seed of every random draw in training (z, dropout, noise, init).
    quiet: no progress bar.
    ema_decay: keep an exponential moving average of the classifier's and
      generator's weights with this decay (0 = off); validation, the best
      checkpoint, test results and export then use the averaged weights,
      and `LossConfig.target_teacher` uses T's average as the teacher.
    init_from: another run's model_dir (its newest intact checkpoint), its
      checkpoints/ or best/ folder, or a checkpoint prefix. A run with no
      checkpoint of its own starts from it: weights, optimizer state,
      weight averages and step counter, as if resumed, but with this run's
      losses, budgets and data (a second stage, e.g. a refinement stage).
      The networks must match.
  """
  mode: str = "pixelda"
  model_dir: str = "runs/mnistm"
  batch_size: int = 32
  train_steps: int = 250000
  max_minutes: float = 0.0
  checkpoint_every: int = 1000
  eval_every: int = 2000
  summary_every: int = 100
  image_every: int = 5000
  keep_checkpoints: int = 3
  seed: int = 0
  quiet: bool = False
  ema_decay: float = 0.0
  init_from: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class RuntimeConfig:
  """How the step runs: strategy and compilation are settings, not forks.

  Attributes:
    strategy: `default`, `mirrored` (one machine, many devices) or
      `multi_worker` (TF_CONFIG names the cluster).
    num_cpu_devices: split the CPU into this many logical devices (to test
      MirroredStrategy without GPUs); 0 leaves the devices alone.
    jit_compile: compile the per-replica step with XLA.
    sync_batch_norm: synchronise batch-norm statistics across replicas.
    intra_op_threads: TensorFlow intra-op threads (0 = TensorFlow's choice).
    inter_op_threads: TensorFlow inter-op threads (0 = TensorFlow's choice).
    fused_batch_norm: run 4-D batch norm in training as one fused op
      (`cpu_layers.FusedBatchNormalization`); same numbers, fewer ops. Ignored
      with jit_compile (XLA's lowering of the fused op is ~4x slower) and
      with sync_batch_norm. Training only: restored runs (export, evaluate,
      adapt) use the stock layers, which hold the same variables.
    split_conv_grad: compute the input gradient of D's stride-2 convs as
      four stride-1 convs (`cpu_layers.Stride2Conv2D`); same numbers, faster.
      Training only, as fused_batch_norm.
    precision: `float32`, `mixed_bfloat16` or `mixed_float16` (Keras mixed
      precision: layers compute in 16 bits, variables, batch-norm statistics,
      logits, losses and optimizer state stay float32; float16 adds dynamic
      loss scaling), or `auto`: bfloat16 on CPUs with native BF16
      (AVX512_BF16 or AMX) and GPUs of compute capability >= 8.0, else
      float32 (`runtime.resolve_precision`). Training only: checkpoints hold
      float32 variables whatever the setting, and restored runs (export,
      evaluate, adapt) build float32 networks.
  """
  strategy: str = "default"
  num_cpu_devices: int = 0
  jit_compile: bool = True
  sync_batch_norm: bool = False
  intra_op_threads: int = 0
  inter_op_threads: int = 0
  fused_batch_norm: bool = False
  split_conv_grad: bool = False
  precision: str = "float32"


@dataclasses.dataclass(frozen=True)
class Config:
  data: DataConfig = DataConfig()
  generator: GeneratorConfig = GeneratorConfig()
  discriminator: DiscriminatorConfig = DiscriminatorConfig()
  classifier: ClassifierConfig = ClassifierConfig()
  loss: LossConfig = LossConfig()
  optim: OptimConfig = OptimConfig()
  train: TrainConfig = TrainConfig()
  runtime: RuntimeConfig = RuntimeConfig()

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)

  def to_json(self) -> str:
    return json.dumps(self.to_dict(), indent=2, sort_keys=True)

  @classmethod
  def from_dict(cls, d: dict) -> "Config":
    """Rebuilds a Config from `to_dict()` output (e.g. a run's config.json)."""
    kwargs = {}
    for field in dataclasses.fields(cls):
      sub = d.get(field.name, {})
      sub_cls = type(field.default)
      names = {f.name for f in dataclasses.fields(sub_cls)}
      unknown = set(sub) - names
      if unknown:
        raise ConfigError(f"unknown {field.name} settings {sorted(unknown)}; "
                          f"known: {sorted(names)}")
      kwargs[field.name] = sub_cls(**sub)
    return validate(cls(**kwargs))


def require(ok: bool, message: str) -> None:
  """Raises ConfigError(message) unless ok."""
  if not ok:
    raise ConfigError(message)


def _one_of(value: str, choices: Tuple[str, ...], flag: str) -> None:
  require(value in choices,
          f"--{flag}={value!r} is not valid; use one of {', '.join(choices)}")


def image_size_ok(image_size: int) -> bool:
  """The one rule for image sizes: the classifier pools twice by 2."""
  return image_size >= 8 and image_size % 4 == 0


def image_size_error(image_size: int) -> str:
  return (f"--image_size={image_size}: use a multiple of 4, at least 8 "
          "(the classifier pools twice by 2), e.g. 28 or 32")


def paths_read(d: DataConfig) -> Dict[str, bool]:
  """Path setting -> whether the (source, target) pair reads it: the one rule
  behind `validate` (a path nothing reads is refused) and `override_data`
  (a path the new pair no longer reads is dropped)."""
  return {
      "mnist_dir": "mnist" in (d.source, d.target) or d.target == "mnist_m",
      "bsds_dir": d.target == "mnist_m",
      "mnist_m_dir": d.target == "mnist_m",
      "usps_path": "usps" in (d.source, d.target),
      "source_dir": d.source == "folder",
      "target_dir": d.target == "folder",
  }


# Overrides that name another target: the run's --target_val_dir belonged to
# the old one, so it is dropped unless given again.
_TARGET_FIELDS = {"target", "target_dir", "mnist_m_dir", "mnist_m_variant",
                  "bsds_dir", "usps_path"}


def override_data(cfg: Config, overrides: Dict[str, Any]) -> Config:
  """`cfg` with the data settings in `overrides` (DataConfig field -> value).

  What evaluate, adapt and classify do to a trained run's config: settings
  the user did not give but that the new source/target no longer reads (e.g.
  the run's --mnist_m_dir once --target=folder, or its --target_val_dir once
  any target flag is given) are dropped, and giving --mnist_m_dir alone means
  the released variant: the user meant the folder to be read.

  Raises:
    ConfigError: an unknown field, a different image size from the one the
      model was trained at, or an invalid combination.
  """
  names = {f.name for f in dataclasses.fields(DataConfig)}
  unknown = set(overrides) - names
  if unknown:
    raise ConfigError(f"not data settings: {sorted(unknown)}")
  size = overrides.get("image_size", cfg.data.image_size)
  require(size == cfg.data.image_size,
          f"--image_size={size}: the model was trained at "
          f"{cfg.data.image_size}; drop the flag (images are resized to it)")
  d = dataclasses.replace(cfg.data, **overrides)
  if "mnist_m_dir" in overrides and "mnist_m_variant" not in overrides:
    d = dataclasses.replace(d, mnist_m_variant="released")
  if "bsds_dir" in overrides and "mnist_m_variant" not in overrides:
    d = dataclasses.replace(d, mnist_m_variant="bsds500")
  if d.target != "mnist_m" and "mnist_m_variant" not in overrides:
    # validate() asks a released variant for its folder whatever the target.
    d = dataclasses.replace(d, mnist_m_variant="auto")
  for name, used in paths_read(d).items():
    if name not in overrides and getattr(d, name) and not used:
      d = dataclasses.replace(d, **{name: None})
  if "target_val_dir" not in overrides and _TARGET_FIELDS & set(overrides):
    d = dataclasses.replace(d, target_val_dir=None)
  if (d.mnist_m_variant in ("offline", "released") and d.bsds_dir
      and "bsds_dir" not in overrides):
    d = dataclasses.replace(d, bsds_dir=None)
  return validate(dataclasses.replace(cfg, data=d))


def validate(cfg: Config) -> Config:
  """Checks values and combinations; raises ConfigError naming the fix."""
  d, t, r = cfg.data, cfg.train, cfg.runtime
  _one_of(d.source, SOURCES, "source")
  _one_of(d.target, TARGETS, "target")
  _one_of(d.mnist_m_variant, MNIST_M_VARIANTS, "mnist_m_variant")
  _one_of(d.smaller_images, ("resize", "pad"), "smaller_images")
  _one_of(t.mode, MODES, "mode")
  _one_of(r.strategy, STRATEGIES, "strategy")
  _one_of(r.precision, PRECISIONS, "precision")
  # Keras' LossScaleOptimizer applies only in replica context; the step
  # applies updates once, in cross-replica context, after the all-reduce.
  require(not (r.precision == "mixed_float16" and r.strategy != "default"),
          f"--precision=mixed_float16 is not supported with "
          f"--strategy={r.strategy} yet: use --precision=mixed_bfloat16 (no "
          "loss scaling needed) or float32")
  _one_of(cfg.loss.pmse_mask, ("none", "foreground"), "pmse_mask")
  require(image_size_ok(d.image_size), image_size_error(d.image_size))
  require(d.source != "folder" or d.source_dir,
          "--source=folder needs --source_dir=PATH (one subfolder per class)")
  require(d.target != "folder" or d.target_dir,
          "--target=folder needs --target_dir=PATH (a folder of images)")
  require(d.mnist_m_variant != "released" or d.mnist_m_dir,
          "--mnist_m_variant=released needs --mnist_m_dir=PATH "
          "(folder with mnist_m_train/ and mnist_m_train_labels.txt)")
  for flag, used in paths_read(d).items():
    require(not getattr(d, flag) or used,
            f"--{flag} is set but --source={d.source} --target={d.target} "
            "never read it: drop the flag or change --source/--target")
  require(not (d.bsds_dir and d.mnist_m_variant in ("offline", "released")),
          f"--bsds_dir contradicts --mnist_m_variant={d.mnist_m_variant}: "
          "drop one (BSDS500 photos are used by --mnist_m_variant=bsds500)")
  require(d.seed >= 0, f"--data_seed={d.seed}: must be >= 0")
  require(d.val_size >= 0, f"--val_size={d.val_size}: must be >= 0")
  require(d.test_size >= 0, f"--test_size={d.test_size}: must be >= 0 "
          "(0 = 10% of the target train split, at most 1,000)")
  _one_of(d.target_labels, TARGET_LABELS, "target_labels")
  require(t.mode != "target_only" or d.target_labels == "auto",
          f"--mode=target_only trains on target labels, which "
          f"--target_labels={d.target_labels} ignores: drop one of the two")
  require(d.source != d.target or d.source == "folder",
          f"--source and --target are both {d.source!r}: adaptation needs two "
          "domains")
  require(t.batch_size > 0, f"--batch_size={t.batch_size}: must be > 0")
  require(t.train_steps >= 0, f"--train_steps={t.train_steps}: must be >= 0")
  require(0 <= t.max_minutes < math.inf,
          f"--max_minutes={t.max_minutes}: must be finite and >= 0 (0 = no "
          "time budget)")
  require(t.checkpoint_every > 0,
          f"--checkpoint_every={t.checkpoint_every}: must be > 0")
  require(t.ema_decay == 0.0 or 0.0 < t.ema_decay < 1.0,
          f"--ema_decay={t.ema_decay}: use 0 (off) or a value in (0, 1), "
          "e.g. 0.999")
  require(not t.init_from or os.path.normpath(t.init_from) != os.path.normpath(
      t.model_dir), f"--init_from={t.init_from} is this run's own "
          "--model_dir: rerunning the same command resumes it; to start a "
          "second stage from it, give the new stage another --model_dir")
  require(t.keep_checkpoints > 0,
          f"--keep_checkpoints={t.keep_checkpoints}: must be > 0")
  for name in ("eval_every", "summary_every", "image_every"):
    require(getattr(t, name) >= 0, f"--{name}: must be >= 0")
  require(cfg.generator.filters > 0 and cfg.generator.num_blocks >= 0,
          "--g_filters must be > 0 and --g_blocks >= 0")
  require(cfg.generator.noise_dim >= 1, "--noise_dim must be >= 1")
  require(0.0 < cfg.discriminator.dropout_keep_prob <= 1.0,
          "--d_dropout_keep_prob must be in (0, 1]")
  require(cfg.discriminator.filters > 0 and cfg.discriminator.max_filters > 0,
          f"--d_filters={cfg.discriminator.filters} and --d_max_filters="
          f"{cfg.discriminator.max_filters}: both must be > 0 (64 and 512 in "
          "the paper)")
  require(0 <= cfg.discriminator.noise_stddev < math.inf,
          f"--d_noise_stddev={cfg.discriminator.noise_stddev}: must be finite "
          "and >= 0")
  require(cfg.classifier.num_classes >= 2, "--num_classes must be >= 2")
  o = cfg.optim
  require(0 < o.learning_rate < math.inf,
          f"--learning_rate={o.learning_rate}: must be finite and > 0, e.g. "
          "0.001")
  require(0 <= o.beta1 < 1, "--beta1 must be in [0, 1)")
  require(o.decay_steps > 0 and 0 < o.decay_rate <= 1,
          "--lr_decay_steps must be > 0 and --lr_decay_rate in (0, 1]")
  require(0 <= o.clipnorm < math.inf,
          f"--clipnorm={o.clipnorm}: must be finite and >= 0 (0 = off)")
  require(o.late_decay_steps >= 0 and o.late_decay_from >= 0
          and (o.late_decay_steps > 0) == (o.late_decay_from > 0),
          f"--lr_late_decay_steps={o.late_decay_steps} and "
          f"--lr_late_decay_from={o.late_decay_from}: give both > 0 (e.g. "
          "2000 and 23500) or leave both at 0 (off)")
  require(o.late_decay_steps <= o.decay_steps,
          f"--lr_late_decay_steps={o.late_decay_steps} is longer than "
          f"--lr_decay_steps={o.decay_steps}: the rate would rise at "
          "--lr_late_decay_from; give a shorter late interval")
  for name, value in dataclasses.asdict(cfg.loss).items():
    if name not in _LOSS_SETTINGS:
      # `not (x >= 0)` also catches NaN, which compares false to everything.
      # Every weight's flag is its field's name + "_weight".
      require(0 <= value < math.inf,
              f"--{name}_weight={value}: a loss weight must be finite and "
              ">= 0")
  w = cfg.loss
  require(0 < w.pseudo_label_threshold <= 1,
          f"--pseudo_label_threshold={w.pseudo_label_threshold}: must be in "
          "(0, 1], e.g. 0.95")
  require(0 < w.target_vat_radius < math.inf,
          f"--target_vat_radius={w.target_vat_radius}: must be a finite L2 "
          "norm > 0, e.g. 3.5 (VADA's, for 32x32x3 images in [-1, 1])")
  require(w.refine_start_step >= 0,
          f"--refine_start_step={w.refine_start_step}: must be >= 0")
  refines = (w.target_entropy or w.pseudo_label or w.target_vat
             or w.target_teacher)
  require(t.mode == "pixelda" or not refines,
          f"--target_entropy_weight, --pseudo_label_weight, "
          f"--target_vat_weight and --target_teacher_weight refine PixelDA's "
          f"classifier; --mode={t.mode} trains without target images' "
          "predictions: drop them or use --mode=pixelda")
  require(not w.refine_start_step or refines,
          f"--refine_start_step={w.refine_start_step} starts nothing: set "
          "--pseudo_label_weight, --target_entropy_weight, "
          "--target_vat_weight and/or --target_teacher_weight, or drop it")
  require(not w.target_teacher or t.ema_decay,
          f"--target_teacher_weight={w.target_teacher}: the teacher is the "
          "weight-averaged classifier, and --ema_decay=0 keeps no average: "
          "set --ema_decay (e.g. 0.999) or drop --target_teacher_weight")
  size = cfg.data.image_size
  require(isinstance(w.target_teacher_shift, int)
          and not isinstance(w.target_teacher_shift, bool)
          and 0 <= w.target_teacher_shift < size // 2,
          f"--target_teacher_shift={w.target_teacher_shift}: must be >= 0 "
          f"and under half the image side ({size}), e.g. 2")
  require(0 <= w.target_teacher_noise < math.inf,
          f"--target_teacher_noise={w.target_teacher_noise}: must be finite "
          "and >= 0, e.g. 0.1")
  require(w.target_teacher
          or not (w.target_teacher_shift or w.target_teacher_noise),
          f"--target_teacher_shift={w.target_teacher_shift} and "
          f"--target_teacher_noise={w.target_teacher_noise} perturb the mean "
          "teacher's student view, and --target_teacher_weight=0 turns the "
          "teacher off: set --target_teacher_weight (e.g. 1) or drop them")
  require(r.num_cpu_devices >= 0, "--num_cpu_devices must be >= 0")
  require(not (r.strategy == "default" and r.num_cpu_devices > 1),
          "--num_cpu_devices > 1 only makes sense with --strategy=mirrored")
  require(not (r.sync_batch_norm and r.strategy == "default"),
          "--sync_batch_norm needs --strategy=mirrored or multi_worker")
  require(not (r.sync_batch_norm and r.jit_compile),
          "--sync_batch_norm synchronises replicas inside the step, which XLA "
          "cannot compile: add --nojit_compile")
  return cfg
