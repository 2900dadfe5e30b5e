#!/bin/bash
# The runs behind benchmarks/results/label_free/: the label-free scores
# against the truth on four target domains, a settings sweep and runs that
# degrade (benchmarks/README.md, "Label-free validation"): 14 runs, about
# 2 hours on a 2-core CPU.
#
#   benchmarks/label_free_runs.sh ROOT MNIST_DIR MNIST_M_ZIP USPS_H5 BSDS_IMAGES
#
# Each run is 2,000 steps (a step budget: the same weights on any machine),
# evaluated every 200; two run at once. Then:
#   python benchmarks/label_free.py --out=... --run=DOMAIN:NAME=ROOT/runs/NAME ...
# (the exact command is in the result file).
set -euo pipefail
ROOT=$1; MNIST=$2; MNISTM=$3; USPS=$4; BSDS=$5
cd "$(dirname "$0")/.."
mkdir -p "$ROOT/runs"
[ -d "$ROOT/usps_m" ] || python benchmarks/folders_from_builtin.py \
    --out="$ROOT/usps_m" --mnist_dir="$MNIST" --usps_path="$USPS" \
    --val_images=1000 --blend_bsds_dir="$BSDS" --data_dir="$ROOT/data"
REL="--mnist_dir=$MNIST --mnist_m_dir=$MNISTM --test_size=5000 --data_dir=$ROOT/data"
P=configs/mnistm_released_cpu.flags
RUNS=(
  "rel_s0|--flagfile=$P --seed=0 $REL"
  "rel_dw10|--flagfile=$P --seed=0 --domain_weight=1.356 $REL"
  "rel_lr5e3|--flagfile=$P --seed=0 --learning_rate=0.005 --lr_decay_rate=1.0 $REL"
  "rel_s1|--flagfile=$P --seed=1 $REL"
  "rel_small_d|--flagfile=configs/mnistm_released_cpu_small_d.flags --seed=0 $REL"
  "rel_dw03|--flagfile=$P --seed=0 --domain_weight=0.045 $REL"
  "rel_tig|--flagfile=$P --seed=0 --task_in_g_weight=0.1 --style_weight=0.1 $REL"
  "usps|--flagfile=configs/usps_cpu.flags --seed=0 --mnist_dir=$MNIST --usps_path=$USPS --data_dir=$ROOT/data"
  "offline|--flagfile=configs/mnistm_cpu.flags --ema_decay=0.999 --seed=0 --mnist_dir=$MNIST --data_dir=$ROOT/data"
  "rel_ent|--flagfile=$P --seed=0 --target_entropy_weight=1.0 $REL"
  "usps_s1|--flagfile=configs/usps_cpu.flags --seed=1 --mnist_dir=$MNIST --usps_path=$USPS --data_dir=$ROOT/data"
  "rel_pl|--flagfile=$P --seed=0 --pseudo_label_weight=1.0 --pseudo_label_threshold=0.5 $REL"
  "folder_usps_m|--flagfile=configs/mnistm_cpu.flags --ema_decay=0.999 --seed=0 --source=folder --source_dir=$ROOT/usps_m/mnist --target=folder --target_dir=$ROOT/usps_m/usps --target_val_dir=$ROOT/usps_m/usps_val --data_dir=$ROOT/data"
  "folder_usps_m_s1|--flagfile=configs/mnistm_cpu.flags --ema_decay=0.999 --seed=1 --source=folder --source_dir=$ROOT/usps_m/mnist --target=folder --target_dir=$ROOT/usps_m/usps --target_val_dir=$ROOT/usps_m/usps_val --data_dir=$ROOT/data"
)
run() {
  local name=${1%%|*} args=${1#*|}
  local cmd="python -m pixelda_tf.train $args --train_steps=2000 --max_minutes=0 --eval_every=200 --checkpoint_every=200 --model_dir=$ROOT/runs/$name --quiet"
  mkdir -p "$ROOT/runs/$name"
  echo "$cmd" > "$ROOT/runs/$name/command.txt"
  $cmd > "$ROOT/runs/$name.log" 2>&1
}
for ((i = 0; i < ${#RUNS[@]}; i += 2)); do
  run "${RUNS[i]}" &
  if (( i + 1 < ${#RUNS[@]} )); then run "${RUNS[i + 1]}" & fi
  wait
done
