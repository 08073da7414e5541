#!/usr/bin/env bash
# Stage 3: train a RipsNet on a stage-2 folder (TopKD values: Adamax 5e-4, MSE, 75/25 split, batch 64,
# early stopping patience 50). Edit the variables below; extra arguments go to train_ripsnet.py, e.g.
#   DATA_DIR=ripsnet/data/cifar100_wrn_40_2_batch64_layer-1 OPERATOR=sum bash scripts/train_ripsnet.sh
#   bash scripts/train_ripsnet.sh --resume
set -euo pipefail

DATA_DIR="${DATA_DIR:-ripsnet/data/cifar100_resnet56_batch64_layer-1}"
DIM="${DIM:-0}"
OPERATOR="${OPERATOR:-mean}"      # mean for resnet56, sum for wrn_40_2 (the official RipsNets)
EPOCHS="${EPOCHS:-1000}"          # maximum; early stopping usually ends sooner
PATIENCE="${PATIENCE:-50}"
LR="${LR:-5e-4}"
SEED="${SEED:-0}"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
if [[ -x .venv/bin/python ]]; then PY=.venv/bin/python; else PY=python3; fi

"$PY" train_ripsnet.py --data_dir "$DATA_DIR" --dim "$DIM" --operator "$OPERATOR" --epochs "$EPOCHS" \
  --patience "$PATIENCE" --lr "$LR" --seed "$SEED" "$@"
