"""Typed configuration for pixelda-tf.

The whole experiment is one frozen tree of dataclasses, built once (by
`pixelda_tf.flags.config_from_flags` for the command-line tools, or by hand in
Python). The library takes a `Config` and never reads absl flags.

Each field carries its own facts (`opt`): its flag's name and help, and
whether a resumed run or one worker of many may change it. `pixelda_tf.flags`,
rundir's setting sets and docs/options.md are derived from them, and each
section validates itself, naming flags through `flag_of`.

Defaults are the official TF1 MNIST->MNIST-M setup (tensorflow/models,
research/domain_adaptation/pixel_domain_adaptation) at the paper's 32x32 size.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Any, Dict, FrozenSet, Optional, Tuple

from pixelda_tf import validators
from pixelda_tf.errors import ConfigError

SOURCES = ("mnist", "usps", "folder")
TARGETS = ("mnist_m", "usps", "mnist", "folder")
MNIST_M_VARIANTS = ("auto", "bsds500", "offline", "released")
MODES = ("pixelda", "source_only", "target_only")
NOISES = ("gaussian", "uniform")
TARGET_LABELS = ("auto", "test", "none")
STRATEGIES = ("default", "mirrored", "multi_worker")
# Classes of the built-in data sets (the digits 0-9), what --classes picks from.
BUILTIN_CLASSES = 10
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16", "auto")
SELECTIONS = ("auto", "val_accuracy", "latest") + validators.SCORES


def opt(default: Any, help: str, *,  # pylint: disable=redefined-builtin
        flag: Optional[str] = None, resumable: bool = False,
        per_worker: bool = False, location: bool = False) -> Any:
  """A config field with its command-line facts beside it.

  Args:
    default: the field's default.
    help: the flag's help text.
    flag: the flag's name (default: the field's name).
    resumable: a resumed run may change it (budgets, intervals, how, not
      what, the step computes).
    per_worker: each worker of a multi-worker run may give its own.
    location: where data lives (files may move; runs compare their
      content): implies `resumable` and `per_worker`.

  Returns:
    A `dataclasses.field` whose metadata holds these facts.
  """
  return dataclasses.field(default=default, metadata={
      "flag": flag, "help": help, "resumable": resumable or location,
      "per_worker": per_worker or location, "location": location})


class _Section:
  """Base of the config sections: each validates itself."""

  @classmethod
  def flag(cls, name: str) -> str:
    """`--flag` of the field `name`, as a user types it."""
    return "--" + flag_name(cls, name)

  def validate(self) -> None:
    """Raises ConfigError naming the flag and the fix (checks of this
    section alone; `Config.validate` checks combinations across sections)."""

  def _one_of(self, name: str, choices: Tuple[str, ...]) -> None:
    value = getattr(self, name)
    require(value in choices, f"{self.flag(name)}={value!r} is not valid; use "
            f"one of {', '.join(choices)}")


def flag_name(section: type, name: str) -> str:
  """The flag name of field `name` of a section class (no dashes)."""
  field = {f.name: f for f in dataclasses.fields(section)}[name]
  return field.metadata.get("flag") or name


def flag_of(section: type, name: str) -> str:
  """`--flag` of field `name` of a section class."""
  return "--" + flag_name(section, name)


def require(ok: bool, message: str) -> None:
  """Raises ConfigError(message) unless ok."""
  if not ok:
    raise ConfigError(message)


def image_size_ok(image_size: int) -> bool:
  """The one rule for image sizes: the classifier pools twice by 2."""
  return image_size >= 8 and image_size % 4 == 0


def image_size_error(image_size: int) -> str:
  return (f"{flag_of(DataConfig, 'image_size')}={image_size}: use a multiple "
          "of 4, at least 8 (the classifier pools twice by 2), e.g. 28 or 32")


@dataclasses.dataclass(frozen=True)
class DataConfig(_Section):
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
    classes: comma-separated class ids ("0,1,2,3,4"; empty = all) that the
      built-in source and target keep, in every split (the target's train
      pool too); labels keep their ids and `num_classes` its value, so the
      networks still have an output per class. `class_ids` parses it.
  """
  source: str = opt("mnist", "Labelled source domain: " + ", ".join(SOURCES))
  target: str = opt("mnist_m", "Target domain: " + ", ".join(TARGETS))
  mnist_m_variant: str = opt("auto", "How MNIST-M is obtained: "
                             + ", ".join(MNIST_M_VARIANTS))
  image_size: int = opt(32, "Side of the square model inputs.")
  data_dir: str = opt("data", "Where prepared data and downloads land.",
                      location=True)
  mnist_dir: Optional[str] = opt(None, "Folder with the four MNIST IDX files.",
                                 location=True)
  bsds_dir: Optional[str] = opt(None, "BSR_bsds500.tgz or an extracted "
                                "BSR/BSDS500/data/images folder (for "
                                "MNIST-M).", location=True)
  mnist_m_dir: Optional[str] = opt(None, "Released MNIST-M folder "
                                   "(mnist_m_train/, "
                                   "mnist_m_train_labels.txt, ...).",
                                   location=True)
  usps_path: Optional[str] = opt(None, "usps.h5, or a folder with the libsvm "
                                 "usps.bz2 and usps.t.bz2 files.",
                                 location=True)
  source_dir: Optional[str] = opt(None, "Labelled source image folder (one "
                                  "subfolder per class), for "
                                  "--source=folder.", location=True)
  target_dir: Optional[str] = opt(None, "Target image folder, for "
                                  "--target=folder.", location=True)
  val_size: int = opt(1000, "Labelled target train examples held out for "
                      "validation (stratified, --data_seed).")
  smaller_images: str = opt("resize", "Built-in images smaller than "
                            "--image_size: resize, or pad (centred on black, "
                            "as the released MNIST-M placed its digits).")
  target_val_dir: Optional[str] = opt(None, "Small labelled target folder "
                                      "(one subfolder per class, named as "
                                      "the source's) to validate on instead "
                                      "of a slice of train.", location=True)
  target_labels: str = opt("auto", "Target labels the run may use: "
                           + ", ".join(TARGET_LABELS) + " (test: only to "
                           "score the test split; none: ignore them).")
  test_size: int = opt(0, "Target train examples held out as the test split "
                       "when the target has none (0 = 10%, at most 1,000).")
  download: bool = opt(True, "Try downloads when the network is reachable.",
                       location=True)
  seed: int = opt(0, "Seed of MNIST-M generation and of every held-out slice "
                  "(validation, test): keep it fixed across training seeds so "
                  "every run is tested on the same images.", flag="data_seed")
  classes: str = opt("", "Keep only these class ids of the built-in source "
                     "and target, in every split (target train pool, "
                     "validation and test too), e.g. 0,1,2,3,4; labels keep "
                     "their ids and --num_classes stays. Empty = all. Not "
                     "with folders: keep only those class subfolders (an "
                     "unlabelled target pool cannot be restricted).")

  def validate(self) -> None:
    f = self.flag
    self._one_of("source", SOURCES)
    self._one_of("target", TARGETS)
    self._one_of("mnist_m_variant", MNIST_M_VARIANTS)
    self._one_of("smaller_images", ("resize", "pad"))
    require(image_size_ok(self.image_size), image_size_error(self.image_size))
    require(self.source != "folder" or self.source_dir,
            f"{f('source')}=folder needs {f('source_dir')}=PATH (one "
            "subfolder per class)")
    require(self.target != "folder" or self.target_dir,
            f"{f('target')}=folder needs {f('target_dir')}=PATH (a folder "
            "of images)")
    require(self.mnist_m_variant != "released" or self.mnist_m_dir,
            f"{f('mnist_m_variant')}=released needs {f('mnist_m_dir')}=PATH "
            "(folder with mnist_m_train/ and mnist_m_train_labels.txt)")
    for name, used in paths_read(self).items():
      require(not getattr(self, name) or used,
              f"{f(name)} is set but {f('source')}={self.source} "
              f"{f('target')}={self.target} never read it: drop the flag or "
              f"change {f('source')}/{f('target')}")
    require(not (self.bsds_dir
                 and self.mnist_m_variant in ("offline", "released")),
            f"{f('bsds_dir')} contradicts {f('mnist_m_variant')}="
            f"{self.mnist_m_variant}: drop one (BSDS500 photos are used by "
            f"{f('mnist_m_variant')}=bsds500)")
    require(self.seed >= 0, f"{f('seed')}={self.seed}: must be >= 0")
    require(self.val_size >= 0,
            f"{f('val_size')}={self.val_size}: must be >= 0")
    require(self.test_size >= 0, f"{f('test_size')}={self.test_size}: must "
            "be >= 0 (0 = 10% of the target train split, at most 1,000)")
    self._one_of("target_labels", TARGET_LABELS)
    require(self.source != self.target or self.source == "folder",
            f"{f('source')} and {f('target')} are both {self.source!r}: "
            "adaptation needs two domains")
    self._validate_classes()

  def class_ids(self) -> Optional[Tuple[int, ...]]:
    """The sorted class ids `classes` keeps, or None for all classes.

    Raises:
      ConfigError: `classes` is not a list of distinct integer ids.
    """
    if not self.classes:  # "" from flags; None from an older manifest.
      return None
    f = self.flag("classes")
    items = [item.strip() for item in self.classes.split(",")]
    require(any(items), f"{f}={self.classes!r} names no class: give "
            "comma-separated ids, e.g. 0,1,2,3,4, or drop the flag (all "
            "classes)")
    bad = [item for item in items if not item.isdigit()]
    require(not bad, f"{f}={self.classes}: {', '.join(map(repr, bad))} is "
            "not a class id; give comma-separated integers, e.g. 0,1,2,3,4")
    ids = [int(item) for item in items]
    twice = sorted({i for i in ids if ids.count(i) > 1})
    require(not twice, f"{f}={self.classes} names {twice} twice: name each "
            "class once")
    return tuple(sorted(ids))

  def _validate_classes(self) -> None:
    f = self.flag
    ids = self.class_ids()
    if ids is None:
      return
    folders = [f(role) + "=folder" for role in ("source", "target")
               if getattr(self, role) == "folder"]
    require(not folders, f"{f('classes')} restricts the built-in data sets, "
            f"and {' '.join(folders)} reads a folder: folders already express "
            "a subset: keep only those class subfolders and drop "
            f"{f('classes')}")
    outside = [i for i in ids if i >= BUILTIN_CLASSES]
    require(not outside, f"{f('classes')}={self.classes}: {outside} not "
            f"among the built-in classes 0-{BUILTIN_CLASSES - 1}; use ids in "
            f"[0, {BUILTIN_CLASSES})")
    require(len(ids) >= 2, f"{f('classes')}={self.classes}: one class leaves "
            "nothing to classify; give at least 2, e.g. 0,1")


@dataclasses.dataclass(frozen=True)
class GeneratorConfig(_Section):
  """ResNet generator G(x_s, z) -> x_f.

  Attributes:
    filters: channels of every residual-block convolution.
    num_blocks: number of residual blocks.
    noise_dim: size of z, drawn uniform in [-1, 1].
    residual_output: output = clip(input + 2 * tanh(residual)) (the
      official `residual_interpretation` form, with a change wide enough to
      reach every output value), instead of a plain image-to-image map.
  """
  filters: int = opt(64, "Generator residual-block width.", flag="g_filters")
  num_blocks: int = opt(6, "Generator residual blocks.", flag="g_blocks")
  noise_dim: int = opt(10, "Size of the noise vector z.")
  residual_output: bool = opt(False, "Generator output = input + residual.",
                              flag="g_residual_output")

  def validate(self) -> None:
    f = self.flag
    require(self.filters > 0 and self.num_blocks >= 0,
            f"{f('filters')} must be > 0 and {f('num_blocks')} >= 0")
    require(self.noise_dim >= 1, f"{f('noise_dim')} must be >= 1")


@dataclasses.dataclass(frozen=True)
class DiscriminatorConfig(_Section):
  """Convolutional discriminator D(x) -> logit.

  Attributes:
    filters: channels of the first conv; doubled at each stride-2 conv.
    max_filters: cap on the channel count (512 in the paper).
    dropout_keep_prob: keep probability of the dropout after each conv.
    noise_stddev: stddev of the noise after each conv.
    noise: "gaussian" (the paper's Dropout then GaussianNoise) or "uniform"
      (`models.UniformDropoutNoise`: mask and noise from one uniform draw).
    minibatch_std: append, before the logit, one channel holding how much
      the batch's last features vary across its images (Karras et al.
      2018); not in the paper, off by default.
  """
  filters: int = opt(64, "Discriminator first-conv width.", flag="d_filters")
  max_filters: int = opt(512, "Discriminator channel cap.",
                         flag="d_max_filters")
  dropout_keep_prob: float = opt(0.9, "Keep probability of the dropout after "
                                 "each conv.", flag="d_dropout_keep_prob")
  noise_stddev: float = opt(0.2, "Stddev of the noise after each conv.",
                            flag="d_noise_stddev")
  noise: str = opt("gaussian", "D's noise after each conv: gaussian (the "
                   "paper: Dropout, then GaussianNoise), or uniform (the "
                   "same mean and std, drawn with the dropout mask from one "
                   "uniform per unit: a cheaper step on CPUs).",
                   flag="d_noise")
  minibatch_std: bool = opt(False, "Give D a feature of how varied each batch "
                            "is (minibatch standard deviation, Karras et al. "
                            "2018; not in the paper): against a generator "
                            "that drops part of the target's looks.",
                            flag="d_minibatch_std")

  def validate(self) -> None:
    f = self.flag
    require(0.0 < self.dropout_keep_prob <= 1.0,
            f"{f('dropout_keep_prob')} must be in (0, 1]")
    require(self.filters > 0 and self.max_filters > 0,
            f"{f('filters')}={self.filters} and {f('max_filters')}="
            f"{self.max_filters}: both must be > 0 (64 and 512 in the paper)")
    self._one_of("noise", NOISES)
    require(0 <= self.noise_stddev < math.inf,
            f"{f('noise_stddev')}={self.noise_stddev}: must be finite and "
            ">= 0")


@dataclasses.dataclass(frozen=True)
class ClassifierConfig(_Section):
  """Task classifier T (the official `mnist` tower).

  Attributes:
    num_classes: number of labels.
    private_source_layer: give source images their own first conv (official
      official `mnist` tower's layout); adapted and target images share the
      other. Only used in `pixelda` mode.
  """
  num_classes: int = opt(10, "Number of classes.")
  private_source_layer: bool = opt(True, "Give source images their own "
                                   "first conv.")

  def validate(self) -> None:
    require(self.num_classes >= 2,
            f"{self.flag('num_classes')} must be >= 2")


@dataclasses.dataclass(frozen=True)
class LossConfig(_Section):
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
  # A loss weight's flag is its name + "_weight" (`weights()`).
  domain: float = opt(0.135603587834, "alpha: discriminator domain loss.",
                      flag="domain_weight")
  style: float = opt(0.0113173311334, "Generator adversarial loss.",
                     flag="style_weight")
  task_source: float = opt(1.0, "Task loss on source.",
                           flag="task_source_weight")
  task_adapted: float = opt(1.0, "Task loss on adapted.",
                            flag="task_adapted_weight")
  task_in_g: float = opt(0.0100959947002, "Task loss in the G step.",
                         flag="task_in_g_weight")
  pmse: float = opt(0.0, "gamma: masked PMSE content loss.",
                    flag="pmse_weight")
  pmse_mask: str = opt("none", "PMSE mask: none or foreground.")
  target_entropy: float = opt(0.0, "Conditional entropy of T on target "
                              "images, in T's loss (beyond the paper; 0 = "
                              "off).", flag="target_entropy_weight")
  pseudo_label: float = opt(0.0, "Self-training on T's confident target "
                            "predictions, in T's loss (beyond the paper; 0 = "
                            "off).", flag="pseudo_label_weight")
  pseudo_label_threshold: float = opt(0.95, "Top probability, in (0, 1], a "
                                      "target prediction needs to be a "
                                      "pseudo-label.")
  target_vat: float = opt(0.0, "Virtual adversarial training of T on target "
                          "images, in T's loss (beyond the paper; 0 = off).",
                          flag="target_vat_weight")
  target_vat_radius: float = opt(3.5, "L2 norm per image of the virtual "
                                 "adversarial perturbation.")
  target_teacher: float = opt(0.0, "KL(weight-averaged T || T) on target "
                              "images, in T's loss (a mean teacher; needs "
                              "--ema_decay; beyond the paper; 0 = off).",
                              flag="target_teacher_weight")
  target_teacher_shift: int = opt(0, "Largest shift, in whole pixels each "
                                  "way, of the target view T's own "
                                  "prediction is made on in the teacher term "
                                  "(a noisy mean teacher; 0 = the teacher's "
                                  "clean view).")
  target_teacher_noise: float = opt(0.0, "Std of Gaussian noise added to that "
                                    "view (images in [-1, 1]; 0 = none).")
  refine_start_step: int = opt(0, "Step from which the target entropy, "
                               "pseudo-label, VAT and teacher terms count (0 "
                               "= from the start).")

  @property
  def noisy_teacher(self) -> bool:
    """Whether the teacher term's student sees a perturbed view."""
    return bool(self.target_teacher
                and (self.target_teacher_shift or self.target_teacher_noise))

  @classmethod
  def weights(cls) -> Tuple[str, ...]:
    """The fields that are loss weights (flag `<field>_weight`)."""
    return tuple(f.name for f in dataclasses.fields(cls)
                 if flag_name(cls, f.name) == f.name + "_weight")

  @property
  def refines(self) -> bool:
    """Whether a term that learns from T's own target predictions is on."""
    return bool(self.target_entropy or self.pseudo_label or self.target_vat
                or self.target_teacher)

  def refining_flags(self) -> str:
    return (f"{self.flag('target_entropy')}, {self.flag('pseudo_label')}, "
            f"{self.flag('target_vat')} and {self.flag('target_teacher')}")

  def validate(self) -> None:
    f = self.flag
    self._one_of("pmse_mask", ("none", "foreground"))
    for name in self.weights():
      value = getattr(self, name)
      # `not (x >= 0)` also catches NaN, which compares false to everything.
      require(0 <= value < math.inf,
              f"{f(name)}={value}: a loss weight must be finite and >= 0")
    require(0 < self.pseudo_label_threshold <= 1,
            f"{f('pseudo_label_threshold')}={self.pseudo_label_threshold}: "
            "must be in (0, 1], e.g. 0.95")
    require(0 < self.target_vat_radius < math.inf,
            f"{f('target_vat_radius')}={self.target_vat_radius}: must be a "
            "finite L2 norm > 0, e.g. 3.5 (VADA's, for 32x32x3 images in "
            "[-1, 1])")
    require(self.refine_start_step >= 0,
            f"{f('refine_start_step')}={self.refine_start_step}: must be >= 0")
    require(not self.refine_start_step or self.refines,
            f"{f('refine_start_step')}={self.refine_start_step} starts "
            f"nothing: set {f('pseudo_label')}, {f('target_entropy')}, "
            f"{f('target_vat')} and/or {f('target_teacher')}, or drop it")
    require(0 <= self.target_teacher_noise < math.inf,
            f"{f('target_teacher_noise')}={self.target_teacher_noise}: must "
            "be finite and >= 0, e.g. 0.1")
    require(self.target_teacher
            or not (self.target_teacher_shift or self.target_teacher_noise),
            f"{f('target_teacher_shift')}={self.target_teacher_shift} and "
            f"{f('target_teacher_noise')}={self.target_teacher_noise} perturb "
            "the mean teacher's student view, and "
            f"{f('target_teacher')}=0 turns the teacher off: set "
            f"{f('target_teacher')} (e.g. 1) or drop them")


@dataclasses.dataclass(frozen=True)
class OptimConfig(_Section):
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
  learning_rate: float = opt(1e-3, "Adam learning rate.")
  beta1: float = opt(0.5, "Adam beta1.")
  decay_steps: int = opt(10000, "Staircase decay interval.",
                         flag="lr_decay_steps")
  decay_rate: float = opt(0.95, "Staircase decay factor.",
                          flag="lr_decay_rate")
  clipnorm: float = opt(5.0, "Per-gradient norm clip (0 = off).")
  late_decay_steps: int = opt(0, "From --lr_late_decay_from on, the staircase "
                              "decay interval: the rate is lr_decay_rate ** "
                              "floor(step / this) (0 = off).",
                              flag="lr_late_decay_steps")
  late_decay_from: int = opt(0, "The step --lr_late_decay_steps starts at.",
                             flag="lr_late_decay_from")

  def validate(self) -> None:
    f = self.flag
    require(0 < self.learning_rate < math.inf,
            f"{f('learning_rate')}={self.learning_rate}: must be finite and "
            "> 0, e.g. 0.001")
    require(0 <= self.beta1 < 1, f"{f('beta1')} must be in [0, 1)")
    require(self.decay_steps > 0 and 0 < self.decay_rate <= 1,
            f"{f('decay_steps')} must be > 0 and {f('decay_rate')} in (0, 1]")
    require(0 <= self.clipnorm < math.inf,
            f"{f('clipnorm')}={self.clipnorm}: must be finite and >= 0 (0 = "
            "off)")
    steps, start = self.late_decay_steps, self.late_decay_from
    require(steps >= 0 and start >= 0 and (steps > 0) == (start > 0),
            f"{f('late_decay_steps')}={steps} and {f('late_decay_from')}="
            f"{start}: give both > 0 (e.g. 2000 and 23500) or leave both at 0 "
            "(off)")
    require(steps <= self.decay_steps,
            f"{f('late_decay_steps')}={steps} is longer than "
            f"{f('decay_steps')}={self.decay_steps}: the rate would rise at "
            f"{f('late_decay_from')}; give a shorter late interval")


@dataclasses.dataclass(frozen=True)
class TrainConfig(_Section):
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
    select_checkpoint: what picks the checkpoint kept in best/ at each
      evaluation: "val_accuracy", "latest" (none kept), a label-free score
      (`validators.SCORES`, the highest kept), or "auto" (val_accuracy when
      the target has labelled validation images, else
      `validators.LABEL_FREE_DEFAULT`). A resume may change it; best/ then
      starts again from the next evaluation.
    init_from: another run's model_dir (its newest intact checkpoint), its
      checkpoints/ or best/ folder, or a checkpoint prefix. A run with no
      checkpoint of its own starts from it: weights, optimizer state,
      weight averages and step counter, as if resumed, but with this run's
      losses, budgets and data (a second stage, e.g. a refinement stage).
      The networks must match.
  """
  mode: str = opt("pixelda", "pixelda, source_only or target_only.")
  model_dir: str = opt("runs/mnistm", "The run's folder: config.json, "
                       "checkpoints, summaries, results (the tools read a "
                       "trained run from it).", resumable=True,
                       per_worker=True)
  batch_size: int = opt(32, "Global batch size.")
  train_steps: int = opt(250000, "Total training steps.", resumable=True)
  max_minutes: float = opt(0.0, "Wall-time budget (0 = none).",
                           resumable=True, per_worker=True)
  checkpoint_every: int = opt(1000, "Steps per checkpoint.", resumable=True)
  eval_every: int = opt(2000, "Steps per validation (0 = off).",
                        resumable=True)
  summary_every: int = opt(100, "Steps per scalar summary.", resumable=True)
  image_every: int = opt(5000, "Steps per image grid (0 = off).",
                         resumable=True)
  keep_checkpoints: int = opt(3, "Checkpoints kept.", resumable=True,
                              per_worker=True)
  seed: int = opt(0, "Seed of weight initialisation, batch order, z and "
                  "every other random draw in training.")
  quiet: bool = opt(False, "No progress bar.", resumable=True,
                    per_worker=True)
  ema_decay: float = opt(0.0, "Decay of the moving average of G's and T's "
                         "weights that evaluation and export use, and "
                         "--target_teacher_weight's teacher (0 = off).")
  select_checkpoint: str = opt(
      "auto", "What picks the checkpoint best/ keeps (results.json's "
      "\"best\", the tools' --checkpoint=best): val_accuracy (labelled "
      "target validation), latest (none kept), a label-free score ("
      + ", ".join(validators.SCORES) + "), or auto: val_accuracy with a "
      "labelled target validation split, else "
      f"{validators.LABEL_FREE_DEFAULT}.", resumable=True)
  init_from: Optional[str] = opt(None, "Start a run that has no checkpoint "
                                 "yet from another run's model_dir (or its "
                                 "checkpoints/ or best/ folder, or a "
                                 "checkpoint prefix): weights, optimizer "
                                 "state, averages and step, with this run's "
                                 "losses, budgets and data.", resumable=True,
                                 per_worker=True)

  def validate(self) -> None:
    f = self.flag
    self._one_of("mode", MODES)
    require(self.batch_size > 0,
            f"{f('batch_size')}={self.batch_size}: must be > 0")
    require(self.train_steps >= 0,
            f"{f('train_steps')}={self.train_steps}: must be >= 0")
    require(0 <= self.max_minutes < math.inf,
            f"{f('max_minutes')}={self.max_minutes}: must be finite and >= 0 "
            "(0 = no time budget)")
    require(self.checkpoint_every > 0,
            f"{f('checkpoint_every')}={self.checkpoint_every}: must be > 0")
    require(self.ema_decay == 0.0 or 0.0 < self.ema_decay < 1.0,
            f"{f('ema_decay')}={self.ema_decay}: use 0 (off) or a value in "
            "(0, 1), e.g. 0.999")
    require(not self.init_from or os.path.normpath(self.init_from)
            != os.path.normpath(self.model_dir),
            f"{f('init_from')}={self.init_from} is this run's own "
            f"{f('model_dir')}: rerunning the same command resumes it; to "
            f"start a second stage from it, give the new stage another "
            f"{f('model_dir')}")
    self._one_of("select_checkpoint", SELECTIONS)
    require(self.mode == "pixelda" or self.select_checkpoint
            not in validators.GENERATOR_SCORES,
            f"{f('select_checkpoint')}={self.select_checkpoint} scores G and "
            f"D, which --mode={self.mode} does not train: use one of "
            + ", ".join(s for s in SELECTIONS
                        if s not in validators.GENERATOR_SCORES))
    require(self.keep_checkpoints > 0,
            f"{f('keep_checkpoints')}={self.keep_checkpoints}: must be > 0")
    for name in ("eval_every", "summary_every", "image_every"):
      require(getattr(self, name) >= 0, f"{f(name)}: must be >= 0")


@dataclasses.dataclass(frozen=True)
class RuntimeConfig(_Section):
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
  strategy: str = opt("default", "default, mirrored or multi_worker.",
                      resumable=True)
  num_cpu_devices: int = opt(0, "Split the CPU into N logical devices "
                             "(testing).", resumable=True)
  jit_compile: bool = opt(True, "XLA-compile the step.", resumable=True)
  sync_batch_norm: bool = opt(False, "Synchronise BN statistics across "
                              "replicas.")
  intra_op_threads: int = opt(0, "TensorFlow intra-op threads (0 = default).",
                              resumable=True, per_worker=True)
  inter_op_threads: int = opt(0, "TensorFlow inter-op threads (0 = default).",
                              resumable=True, per_worker=True)
  fused_batch_norm: bool = opt(False, "Training BN as one fused op (faster on "
                               "CPU; same numbers; ignored with "
                               "--jit_compile).", resumable=True)
  split_conv_grad: bool = opt(False, "D's stride-2 conv input gradient as "
                              "four stride-1 convs (faster on CPU; same "
                              "numbers).", resumable=True)
  precision: str = opt("float32", "Training arithmetic: "
                       + ", ".join(PRECISIONS) + " (auto: bfloat16 where the "
                       "CPU or GPU runs it natively, else float32; variables "
                       "and checkpoints stay float32).", resumable=True)

  def validate(self) -> None:
    f = self.flag
    self._one_of("strategy", STRATEGIES)
    self._one_of("precision", PRECISIONS)
    # Keras' LossScaleOptimizer applies only in replica context; the step
    # applies updates once, in cross-replica context, after the all-reduce.
    require(not (self.precision == "mixed_float16"
                 and self.strategy != "default"),
            f"{f('precision')}=mixed_float16 is not supported with "
            f"{f('strategy')}={self.strategy} yet: use {f('precision')}="
            "mixed_bfloat16 (no loss scaling needed) or float32")
    require(self.num_cpu_devices >= 0, f"{f('num_cpu_devices')} must be >= 0")
    require(not (self.strategy == "default" and self.num_cpu_devices > 1),
            f"{f('num_cpu_devices')} > 1 only makes sense with "
            f"{f('strategy')}=mirrored")
    require(not (self.sync_batch_norm and self.strategy == "default"),
            f"{f('sync_batch_norm')} needs {f('strategy')}=mirrored or "
            "multi_worker")
    require(not (self.sync_batch_norm and self.jit_compile),
            f"{f('sync_batch_norm')} synchronises replicas inside the step, "
            "which XLA cannot compile: add "
            f"--no{flag_name(type(self), 'jit_compile')}")


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

  def validate(self) -> None:
    """Raises ConfigError naming the flag and the fix: each section's own
    checks, then the combinations across sections."""
    for field in dataclasses.fields(self):
      getattr(self, field.name).validate()
    d, t, w = self.data, self.train, self.loss
    f = flag_of
    require(t.mode != "target_only" or d.target_labels == "auto",
            f"{f(TrainConfig, 'mode')}=target_only trains on target labels, "
            f"which {f(DataConfig, 'target_labels')}={d.target_labels} "
            "ignores: drop one of the two")
    require(t.mode == "pixelda" or not w.refines,
            f"{w.refining_flags()} refine PixelDA's classifier; "
            f"{f(TrainConfig, 'mode')}={t.mode} trains without target "
            "images' predictions: drop them or use "
            f"{f(TrainConfig, 'mode')}=pixelda")
    require(not w.target_teacher or t.ema_decay,
            f"{f(LossConfig, 'target_teacher')}={w.target_teacher}: the "
            "teacher is the weight-averaged classifier, and "
            f"{f(TrainConfig, 'ema_decay')}=0 keeps no average: set "
            f"{f(TrainConfig, 'ema_decay')} (e.g. 0.999) or drop "
            f"{f(LossConfig, 'target_teacher')}")
    ids = d.class_ids()
    n = self.classifier.num_classes
    require(ids is None or ids[-1] < n,
            f"{f(DataConfig, 'classes')}={d.classes}: class ids must be in "
            f"[0, {f(ClassifierConfig, 'num_classes')}={n})")
    size = d.image_size
    shift = w.target_teacher_shift
    require(isinstance(shift, int) and not isinstance(shift, bool)
            and 0 <= shift < size // 2,
            f"{f(LossConfig, 'target_teacher_shift')}={shift}: must be >= 0 "
            f"and under half the image side ({size}), e.g. 2")


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
          f"{flag_of(DataConfig, 'image_size')}={size}: the model was trained "
          f"at {cfg.data.image_size}; drop the flag (images are resized to "
          "it)")
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
  """Checks values and combinations (`Config.validate`); returns `cfg`."""
  cfg.validate()
  return cfg


def fields_where(fact: str) -> FrozenSet[Tuple[str, str]]:
  """(section, field) of every field whose `opt` fact is true: e.g.
  `fields_where("resumable")`."""
  return frozenset(
      (section.name, f.name) for section in dataclasses.fields(Config)
      for f in dataclasses.fields(type(section.default))
      if f.metadata.get(fact))
