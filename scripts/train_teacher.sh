#!/usr/bin/env bash
# Stage 1: train teachers. The values below are the paper's CIFAR recipe (engine/config.py RECIPES, what
# train_teacher.py takes when not told otherwise; a test keeps the two equal). Edit them here, or set any of
# them in the environment, which always wins:
#   bash scripts/train_teacher.sh                                  # resnet56 on CIFAR-100, trial 0
#   MODEL_T=wrn_40_2 TRIALS=3 bash scripts/train_teacher.sh        # trials 0, 1, 2
#   EPOCHS=10 bash scripts/train_teacher.sh --device cuda --amp    # extra arguments go to train_teacher.py
# Each variable is named after the train_teacher.py flag it sets, in capitals (LR -> --lr). A data set or
# input whose runs take another recipe (ImageNet; TGD's for --input pi) is refused with the line to set
# (RECIPE=imagenet EPOCHS=100 LR=0.1 ...). The same MODEL_T / DATASET / TRIAL let scripts/generate_PCD_PI.sh,
# train_ripsnet.sh and train_student.sh find this teacher. A finished run of the same settings is skipped, an
# unfinished one resumed (train_teacher.py --skip_finished).
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi  # run by sh: this script needs bash
set -euo pipefail

MODEL_T="${MODEL_T:-${MODEL:-resnet56}}"
DATASET="${DATASET:-cifar100}"
DATA_ROOT="${DATA_ROOT:-./data}"
TRIAL="${TRIAL:-0}"                          # first trial
TRIALS="${TRIALS:-1}"                        # how many trials
SEED="${SEED:-}"                             # unset: each trial's seed is its trial number (else SEED + trial)
# the recipe
RECIPE="${RECIPE:-cifar}"                    # the recipe these values are (engine/config.py RECIPES)
EPOCHS="${EPOCHS:-240}"
BATCH_SIZE="${BATCH_SIZE:-64}"
LR="${LR:-0.05}"
SMALL_ARCH_LR="${SMALL_ARCH_LR:-0.01}"       # the lr of networks declaring small_lr (MobileNetV2, ShuffleNet)
LR_DECAY_EPOCHS="${LR_DECAY_EPOCHS:-150 180 210}"
LR_DECAY_RATE="${LR_DECAY_RATE:-0.1}"
WEIGHT_DECAY="${WEIGHT_DECAY:-5e-4}"
MOMENTUM="${MOMENTUM:-0.9}"
AUGMENT="${AUGMENT:-standard}"               # crop and flip
INPUT_NORM="${INPUT_NORM:-dataset}"          # the data set's own mean and std

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_int 0 TRIAL SEED
need_int 1 TRIALS

# Runs in the current folder (outputs and ./data are relative to it, as with the official scripts).
# shellcheck disable=SC2086  # LR_DECAY_EPOCHS is a list of words
recipe=(--recipe_check "$RECIPE" --epochs "$EPOCHS" --batch_size "$BATCH_SIZE" --lr "$LR"
        --small_arch_lr "$SMALL_ARCH_LR" --lr_decay_epochs $LR_DECAY_EPOCHS --lr_decay_rate "$LR_DECAY_RATE" --weight_decay "$WEIGHT_DECAY"
        --momentum "$MOMENTUM" --augment "$AUGMENT" --input_norm "$INPUT_NORM")
for (( trial = TRIAL; trial < TRIAL + TRIALS; trial++ )); do
  seed=()
  if [[ -n "$SEED" ]]; then seed=(--seed "$((SEED + trial))"); fi
  "$PY" "$root/train_teacher.py" --model "$MODEL_T" --dataset "$DATASET" \
    --data_root "$DATA_ROOT" "${recipe[@]}" --trial "$trial" "${seed[@]}" --skip_finished "$@"
done
