"""Command-line flags of the pixelda-tf binaries, parsed once into a Config.

Every `Config` field has one flag (table `_FLAGS`); `--seed` is the training
seed, `--data_seed` the one that makes the data sets themselves. Binaries
import this module, call `app.run`, then `config_from_flags()`; the library
itself never reads flags.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, Tuple

from absl import flags

from pixelda_tf import config as config_lib

FLAGS = flags.FLAGS

# flag name -> (config section, field, help). Types and defaults come from the
# dataclass defaults, so the two can never disagree.
_FLAGS: Dict[str, Tuple[str, str, str]] = {
    # Data.
    "source": ("data", "source", "Labelled source domain: "
               + ", ".join(config_lib.SOURCES)),
    "target": ("data", "target", "Target domain: "
               + ", ".join(config_lib.TARGETS)),
    "mnist_m_variant": ("data", "mnist_m_variant",
                        "How MNIST-M is obtained: "
                        + ", ".join(config_lib.MNIST_M_VARIANTS)),
    "image_size": ("data", "image_size", "Side of the square model inputs."),
    "data_dir": ("data", "data_dir", "Where prepared data and downloads land."),
    "mnist_dir": ("data", "mnist_dir", "Folder with the four MNIST IDX files."),
    "bsds_dir": ("data", "bsds_dir", "BSR_bsds500.tgz or an extracted "
                 "BSR/BSDS500/data/images folder (for MNIST-M)."),
    "mnist_m_dir": ("data", "mnist_m_dir", "Released MNIST-M folder "
                    "(mnist_m_train/, mnist_m_train_labels.txt, ...)."),
    "usps_path": ("data", "usps_path", "usps.h5, or a folder with the libsvm "
                  "usps.bz2 and usps.t.bz2 files."),
    "source_dir": ("data", "source_dir", "Labelled source image folder (one "
                   "subfolder per class), for --source=folder."),
    "target_dir": ("data", "target_dir", "Target image folder, for "
                   "--target=folder."),
    "smaller_images": ("data", "smaller_images", "Built-in images smaller "
                       "than --image_size: resize, or pad (centred on black, "
                       "as the released MNIST-M placed its digits)."),
    "val_size": ("data", "val_size", "Labelled target train examples held "
                 "out for validation (stratified, --data_seed)."),
    "target_val_dir": ("data", "target_val_dir", "Small labelled target "
                       "folder (one subfolder per class, named as the "
                       "source's) to validate on instead of a slice of "
                       "train."),
    "target_labels": ("data", "target_labels", "Target labels the run may "
                      "use: " + ", ".join(config_lib.TARGET_LABELS) + " (test: "
                      "only to score the test split; none: ignore them)."),
    "test_size": ("data", "test_size", "Target train examples held out as the "
                  "test split when the target has none (0 = 10%, at most "
                  "1,000)."),
    "download": ("data", "download", "Try downloads when the network is "
                 "reachable."),
    "data_seed": ("data", "seed", "Seed of MNIST-M generation and of every "
                  "held-out slice (validation, test): keep it fixed across "
                  "training seeds so every run is tested on the same "
                  "images."),
    # Generator.
    "g_filters": ("generator", "filters", "Generator residual-block width."),
    "g_blocks": ("generator", "num_blocks", "Generator residual blocks."),
    "noise_dim": ("generator", "noise_dim", "Size of the noise vector z."),
    "g_residual_output": ("generator", "residual_output",
                          "Generator output = input + residual."),
    # Discriminator.
    "d_filters": ("discriminator", "filters", "Discriminator first-conv width."),
    "d_max_filters": ("discriminator", "max_filters",
                      "Discriminator channel cap."),
    "d_dropout_keep_prob": ("discriminator", "dropout_keep_prob",
                            "Keep probability of the dropout after each conv."),
    "d_noise_stddev": ("discriminator", "noise_stddev",
                       "Stddev of the Gaussian noise after each conv."),
    "d_minibatch_std": ("discriminator", "minibatch_std",
                        "Give D a feature of how varied each batch is "
                        "(minibatch standard deviation, Karras et al. 2018; "
                        "not in the paper): against a generator that drops "
                        "part of the target's looks."),
    # Classifier.
    "num_classes": ("classifier", "num_classes", "Number of classes."),
    "private_source_layer": ("classifier", "private_source_layer",
                             "Give source images their own first conv."),
    # Losses.
    "domain_weight": ("loss", "domain", "alpha: discriminator domain loss."),
    "style_weight": ("loss", "style", "Generator adversarial loss."),
    "task_source_weight": ("loss", "task_source", "Task loss on source."),
    "task_adapted_weight": ("loss", "task_adapted", "Task loss on adapted."),
    "task_in_g_weight": ("loss", "task_in_g", "Task loss in the G step."),
    "pmse_weight": ("loss", "pmse", "gamma: masked PMSE content loss."),
    "pmse_mask": ("loss", "pmse_mask", "PMSE mask: none or foreground."),
    "target_entropy_weight": ("loss", "target_entropy",
                              "Conditional entropy of T on target images, in "
                              "T's loss (beyond the paper; 0 = off)."),
    "pseudo_label_weight": ("loss", "pseudo_label",
                            "Self-training on T's confident target "
                            "predictions, in T's loss (beyond the paper; "
                            "0 = off)."),
    "pseudo_label_threshold": ("loss", "pseudo_label_threshold",
                               "Top probability, in (0, 1], a target "
                               "prediction needs to be a pseudo-label."),
    "target_vat_weight": ("loss", "target_vat",
                          "Virtual adversarial training of T on target "
                          "images, in T's loss (beyond the paper; 0 = off)."),
    "target_vat_radius": ("loss", "target_vat_radius",
                          "L2 norm per image of the virtual adversarial "
                          "perturbation."),
    "target_teacher_weight": ("loss", "target_teacher",
                              "KL(weight-averaged T || T) on target "
                              "images, in T's loss (a mean teacher; needs "
                              "--ema_decay; beyond the paper; 0 = off)."),
    "target_teacher_shift": ("loss", "target_teacher_shift",
                             "Largest shift, in whole pixels each way, of "
                             "the target view T's own prediction is made on "
                             "in the teacher term (a noisy mean teacher; 0 = "
                             "the teacher's clean view)."),
    "target_teacher_noise": ("loss", "target_teacher_noise",
                             "Std of Gaussian noise added to that view "
                             "(images in [-1, 1]; 0 = none)."),
    "refine_start_step": ("loss", "refine_start_step",
                          "Step from which the target entropy, pseudo-label, "
                          "VAT and teacher terms count (0 = from the "
                          "start)."),
    # Optimisation.
    "learning_rate": ("optim", "learning_rate", "Adam learning rate."),
    "beta1": ("optim", "beta1", "Adam beta1."),
    "lr_decay_steps": ("optim", "decay_steps", "Staircase decay interval."),
    "lr_decay_rate": ("optim", "decay_rate", "Staircase decay factor."),
    "clipnorm": ("optim", "clipnorm", "Per-gradient norm clip (0 = off)."),
    "lr_late_decay_steps": ("optim", "late_decay_steps",
                            "From --lr_late_decay_from on, the staircase "
                            "decay interval: the rate is lr_decay_rate ** "
                            "floor(step / this) (0 = off)."),
    "lr_late_decay_from": ("optim", "late_decay_from",
                           "The step --lr_late_decay_steps starts at."),
    # Training.
    "mode": ("train", "mode", "pixelda, source_only or target_only."),
    "model_dir": ("train", "model_dir", "Checkpoints, summaries, results."),
    "batch_size": ("train", "batch_size", "Global batch size."),
    "train_steps": ("train", "train_steps", "Total training steps."),
    "max_minutes": ("train", "max_minutes", "Wall-time budget (0 = none)."),
    "checkpoint_every": ("train", "checkpoint_every", "Steps per checkpoint."),
    "eval_every": ("train", "eval_every", "Steps per validation (0 = off)."),
    "summary_every": ("train", "summary_every", "Steps per scalar summary."),
    "image_every": ("train", "image_every", "Steps per image grid (0 = off)."),
    "keep_checkpoints": ("train", "keep_checkpoints", "Checkpoints kept."),
    "quiet": ("train", "quiet", "No progress bar."),
    "ema_decay": ("train", "ema_decay", "Decay of the moving average of "
                  "G's and T's weights that evaluation and export use, and "
                  "--target_teacher_weight's teacher (0 = off)."),
    "init_from": ("train", "init_from", "Start a run that has no "
                  "checkpoint yet from another run's model_dir (or its "
                  "checkpoints/ or best/ folder, or a checkpoint "
                  "prefix): weights, optimizer state, averages and step, "
                  "with this run's losses, budgets and data."),
    # Runtime.
    "strategy": ("runtime", "strategy", "default, mirrored or multi_worker."),
    "num_cpu_devices": ("runtime", "num_cpu_devices",
                        "Split the CPU into N logical devices (testing)."),
    "jit_compile": ("runtime", "jit_compile", "XLA-compile the step."),
    "sync_batch_norm": ("runtime", "sync_batch_norm",
                        "Synchronise BN statistics across replicas."),
    "intra_op_threads": ("runtime", "intra_op_threads",
                         "TensorFlow intra-op threads (0 = default)."),
    "inter_op_threads": ("runtime", "inter_op_threads",
                         "TensorFlow inter-op threads (0 = default)."),
    "fused_batch_norm": ("runtime", "fused_batch_norm",
                         "Training BN as one fused op (faster on CPU; same "
                         "numbers; ignored with --jit_compile)."),
    "split_conv_grad": ("runtime", "split_conv_grad",
                        "D's stride-2 conv input gradient as four stride-1 "
                        "convs (faster on CPU; same numbers)."),
    "precision": ("runtime", "precision",
                  "Training arithmetic: " + ", ".join(config_lib.PRECISIONS)
                  + " (auto: bfloat16 where the CPU or GPU runs it natively, "
                  "else float32; variables and checkpoints stay float32)."),
}

_DEFAULTS = config_lib.Config()


def _default(section: str, field: str) -> Any:
  return getattr(getattr(_DEFAULTS, section), field)


def _field_type(section: str, field: str) -> str:
  cls = type(getattr(_DEFAULTS, section))
  return {f.name: f.type for f in dataclasses.fields(cls)}[field]


def _define(name: str, section: str, field: str, help_: str) -> flags.FlagHolder:
  default = _default(section, field)
  kind = _field_type(section, field)
  if kind == "bool":
    return flags.DEFINE_bool(name, default, help_)
  if kind == "int":
    return flags.DEFINE_integer(name, default, help_)
  if kind == "float":
    return flags.DEFINE_float(name, default, help_)
  return flags.DEFINE_string(name, default, help_)


HOLDERS: Dict[str, flags.FlagHolder] = {
    name: _define(name, *spec) for name, spec in _FLAGS.items()}
SEED = flags.DEFINE_integer("seed", 0, "Seed of weight initialisation, batch "
                            "order, z and every other random draw in training.")


def config_from_flags() -> config_lib.Config:
  """Builds and validates the Config from the parsed flags."""
  sections: Dict[str, Dict[str, Any]] = {}
  for name, (section, field, _) in _FLAGS.items():
    value = HOLDERS[name].value
    if isinstance(value, str) and value == "" and _default(section, field) is None:
      value = None
    sections.setdefault(section, {})[field] = value
  sections["train"]["seed"] = SEED.value
  return config_lib.validate(config_lib.Config(
      **{name: type(getattr(_DEFAULTS, name))(**values)
         for name, values in sections.items()}))
