#!/usr/bin/env bash
# Stage 3: train a RipsNet on a stage-2 folder (TopKD values: Adamax 5e-4, MSE, 75/25 split, batch 64,
# early stopping patience 50).
#   bash scripts/train_ripsnet.sh                                  # the stage-2 folder of the resnet56 teacher
#   MODEL_T=wrn_40_2 OPERATOR=sum bash scripts/train_ripsnet.sh
#   DATA_DIR=ripsnet/data/<folder> bash scripts/train_ripsnet.sh --device cuda
# Variables: MODEL_T, DATASET (which stage-2 folder, when DATA_DIR is not set), DATA_DIR, DIM, OPERATOR
# (mean for resnet56, sum for wrn_40_2: the official RipsNets), RIPS_EPOCHS (maximum, 1000), PATIENCE, LR,
# SEED. A finished run of the same settings is skipped, an unfinished one resumed.
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi  # run by sh: this script needs bash
set -euo pipefail

MODEL_T="${MODEL_T:-${MODEL:-resnet56}}"
DATASET="${DATASET:-cifar100}"
DIM="${DIM:-0}"
OPERATOR="${OPERATOR:-mean}"
RIPS_EPOCHS="${RIPS_EPOCHS:-1000}"  # maximum; early stopping usually ends sooner
PATIENCE="${PATIENCE:-50}"
LR="${LR:-5e-4}"

# Runs in the current folder (outputs and ./data are relative to it, as with the official scripts).
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -z "${PY:-}" ]]; then
  if [[ -x "$root/.venv/bin/python" ]]; then PY="$root/.venv/bin/python"; else PY=python3; fi
fi
src=(--model_t "$MODEL_T" --dataset "$DATASET")
if [[ -n "${DATA_DIR:-}" ]]; then src=(--data_dir "$DATA_DIR"); fi
seed=()
if [[ -n "${SEED:-}" ]]; then seed=(--seed "$SEED"); fi

"$PY" "$root/train_ripsnet.py" "${src[@]}" --dim "$DIM" --operator "$OPERATOR" --epochs "$RIPS_EPOCHS" \
  --patience "$PATIENCE" --lr "$LR" "${seed[@]}" --skip_finished "$@"
