#!/usr/bin/env bash
# Stage 1: train teachers with the papers' hyper-parameters (CIFAR-100 recipe of TopKD / RepDistiller).
# Edit the variables below; extra arguments go to train_teacher.py, e.g.
#   bash scripts/train_teacher.sh --device cuda --amp
#   MODEL=wrn_40_2 TRIALS=3 bash scripts/train_teacher.sh
set -euo pipefail

MODEL="${MODEL:-resnet56}"
DATASET="${DATASET:-cifar100}"
DATA_ROOT="${DATA_ROOT:-./data}"
EPOCHS="${EPOCHS:-240}"
BATCH_SIZE="${BATCH_SIZE:-64}"
LR="${LR:-0.05}"                 # the official code uses 0.01 for MobileNetV2 / ShuffleNet
DECAY_EPOCHS="${DECAY_EPOCHS:-150,180,210}"
DECAY_RATE="${DECAY_RATE:-0.1}"
WD="${WD:-5e-4}"
TRIALS="${TRIALS:-1}"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
if [[ -x .venv/bin/python ]]; then PY=.venv/bin/python; else PY=python3; fi

for (( trial = 0; trial < TRIALS; trial++ )); do
  "$PY" train_teacher.py --model "$MODEL" --dataset "$DATASET" --data_root "$DATA_ROOT" \
    --epochs "$EPOCHS" --batch_size "$BATCH_SIZE" --lr "$LR" --lr_decay_epochs "$DECAY_EPOCHS" \
    --lr_decay_rate "$DECAY_RATE" --weight_decay "$WD" --trial "$trial" "$@"
done
