#!/usr/bin/env bash
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi  # run by sh: this script needs bash
# TGD stage 2: the two WRN-16-3 teachers, one on images, one on the cached persistence images
# (6 input channels). Official recipe (engine.config RECIPES["tgd"]): SGD 0.1 (momentum 0.9), wd 1e-4,
# batch 128, 200 epochs, lr x0.2 at 40/80/120/160, no augmentation. Needs scripts/tgd/generate_image_PI.sh first.
#   bash scripts/tgd/train_teachers.sh                 # CIFAR-10
#   DATASET=cinic10 DATA_ROOT=./data/cinic10 bash scripts/tgd/train_teachers.sh
# Extra arguments go to both train_teacher.py calls (e.g. --device cuda --amp).
set -euo pipefail

DATASET="${DATASET:-cifar10}"
DATA_ROOT="${DATA_ROOT:-./data}"
PI_ROOT="${PI_ROOT:-./data/image_pi}"
MODEL="${MODEL:-wrn_16_3}"
EPOCHS="${EPOCHS:-200}"
BATCH_SIZE="${BATCH_SIZE:-128}"
LR="${LR:-0.1}"
DECAY_EPOCHS="${DECAY_EPOCHS:-40,80,120,160}"
DECAY_RATE="${DECAY_RATE:-0.2}"
WD="${WD:-1e-4}"
AUGMENT="${AUGMENT:-none}"         # the official code trains without augmentation
SEED="${SEED:-1234}"
TRIAL="${TRIAL:-0}"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
if [[ -x .venv/bin/python ]]; then PY=.venv/bin/python; else PY=python3; fi

common=(--model "$MODEL" --dataset "$DATASET" --data_root "$DATA_ROOT" --recipe tgd --epochs "$EPOCHS"
        --batch_size "$BATCH_SIZE" --lr "$LR" --lr_decay_epochs "$DECAY_EPOCHS"
        --lr_decay_rate "$DECAY_RATE" --weight_decay "$WD" --augment "$AUGMENT" --seed "$SEED" --trial "$TRIAL" --skip_finished)

# teacher 1: images
"$PY" train_teacher.py "${common[@]}" "$@"
# teacher 2: persistence images [6, 50, 50] of the same data set
"$PY" train_teacher.py "${common[@]}" --input pi --pi_root "$PI_ROOT" "$@"
