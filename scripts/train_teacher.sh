#!/usr/bin/env bash
# Stage 1: train teachers with the papers' recipe (CIFAR-100: SGD 0.05, wd 5e-4, batch 64, 240 epochs,
# x0.1 at 150/180/210; 0.01 for MobileNetV2 / ShuffleNet; ImageNet and TGD recipes by data set / input).
#   bash scripts/train_teacher.sh                                  # resnet56 on CIFAR-100, trial 0
#   MODEL_T=wrn_40_2 TRIALS=3 bash scripts/train_teacher.sh        # trials 0, 1, 2
#   bash scripts/train_teacher.sh --device cuda --amp              # extra arguments go to train_teacher.py
# Variables (the environment always wins; unset ones take the recipe's value): MODEL_T (or MODEL),
# DATASET, DATA_ROOT, EPOCHS, BATCH_SIZE, LR, DECAY_EPOCHS, DECAY_RATE, WD, TRIAL (first trial, 0),
# TRIALS (how many, 1), SEED (unset: each trial's seed is its trial number). The same MODEL_T / DATASET /
# TRIAL let scripts/generate_PCD_PI.sh, train_ripsnet.sh and train_student.sh find this teacher.
# A finished run of the same settings is skipped, an unfinished one resumed (train_teacher.py --skip_finished).
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi  # run by sh: this script needs bash
set -euo pipefail

MODEL_T="${MODEL_T:-${MODEL:-resnet56}}"
DATASET="${DATASET:-cifar100}"
DATA_ROOT="${DATA_ROOT:-./data}"
TRIAL="${TRIAL:-0}"
TRIALS="${TRIALS:-1}"

# Runs in the current folder (outputs and ./data are relative to it, as with the official scripts).
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -z "${PY:-}" ]]; then
  if [[ -x "$root/.venv/bin/python" ]]; then PY="$root/.venv/bin/python"; else PY=python3; fi
fi

opts=()
add() { if [[ -n "$2" ]]; then opts+=("$1" "$2"); fi; }  # a flag only for a variable that is set
add --epochs "${EPOCHS:-}"; add --batch_size "${BATCH_SIZE:-}"; add --lr "${LR:-}"
add --lr_decay_epochs "${DECAY_EPOCHS:-}"; add --lr_decay_rate "${DECAY_RATE:-}"; add --weight_decay "${WD:-}"

for (( trial = TRIAL; trial < TRIAL + TRIALS; trial++ )); do
  seed=()
  if [[ -n "${SEED:-}" ]]; then seed=(--seed "$((SEED + trial))"); fi
  "$PY" "$root/train_teacher.py" --model "$MODEL_T" --dataset "$DATASET" --data_root "$DATA_ROOT" "${opts[@]}" \
    --trial "$trial" "${seed[@]}" --skip_finished "$@"
done
