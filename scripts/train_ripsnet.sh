#!/usr/bin/env bash
# Stage 3: train a RipsNet on a stage-2 folder. The values below are the paper's (train_ripsnet.py's defaults;
# a test keeps the two equal), each named after the flag it sets, in capitals (RIPS_ before the optimisation
# ones, which the other stages' scripts use for the networks). Edit them here, or set any of them in the
# environment, which always wins:
#   bash scripts/train_ripsnet.sh                                  # the stage-2 folder of the resnet56 teacher
#   MODEL_T=wrn_40_2 OPERATOR=sum bash scripts/train_ripsnet.sh    # the official wrn_40_2 RipsNet pools by sum
#   DATA_DIR=ripsnet/data/<folder> bash scripts/train_ripsnet.sh --device cuda
# A finished run of the same settings is skipped, an unfinished one resumed.
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi  # run by sh: this script needs bash
set -euo pipefail

MODEL_T="${MODEL_T:-${MODEL:-resnet56}}"
DATASET="${DATASET:-cifar100}"               # which stage-2 folder, when DATA_DIR is not set
DATA_DIR="${DATA_DIR:-}"                     # an exact stage-2 folder instead
DIM="${DIM:-0}"                              # homology dimension of the images learnt
OPERATOR="${OPERATOR:-mean}"                 # pooling: mean (the official resnet56 RipsNet) or sum
RIPS_LR="${RIPS_LR:-5e-4}"                   # Adamax
RIPS_BATCH_SIZE="${RIPS_BATCH_SIZE:-64}"
RIPS_VAL_BATCH_SIZE="${RIPS_VAL_BATCH_SIZE:-32}"
RIPS_VAL_FRACTION="${RIPS_VAL_FRACTION:-0.25}"
RIPS_EPOCHS="${RIPS_EPOCHS:-1000}"           # maximum; early stopping usually ends sooner
RIPS_PATIENCE="${RIPS_PATIENCE:-50}"
SEED="${SEED:-0}"

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Runs in the current folder (outputs and ./data are relative to it, as with the official scripts).
src=(--model_t "$MODEL_T" --dataset "$DATASET")
if [[ -n "$DATA_DIR" ]]; then src=(--data_dir "$DATA_DIR"); fi
"$PY" "$root/train_ripsnet.py" "${src[@]}" --dim "$DIM" --operator "$OPERATOR" --lr "$RIPS_LR" \
  --batch_size "$RIPS_BATCH_SIZE" --val_batch_size "$RIPS_VAL_BATCH_SIZE" --val_fraction "$RIPS_VAL_FRACTION" \
  --epochs "$RIPS_EPOCHS" --patience "$RIPS_PATIENCE" --seed "$SEED" --skip_finished "$@"
