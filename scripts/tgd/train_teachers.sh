#!/usr/bin/env bash
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi  # run by sh: this script needs bash
# TGD stage 2: the two WRN-16-3 teachers, one on images, one on the cached persistence images (6 input
# channels). Needs scripts/tgd/generate_image_PI.sh first. The values below are TGD's official recipe
# (engine/config.py RECIPES["tgd"]; a test keeps the two equal), each named after the train_teacher.py flag
# it sets, in capitals. Edit them here, or set any of them in the environment, which always wins:
#   bash scripts/tgd/train_teachers.sh                 # CIFAR-10
#   DATASET=cinic10 DATA_ROOT=./data/cinic10 bash scripts/tgd/train_teachers.sh
# Extra arguments go to both train_teacher.py calls (e.g. --device cuda --amp).
set -euo pipefail

DATASET="${DATASET:-cifar10}"
DATA_ROOT="${DATA_ROOT:-./data}"
PI_ROOT="${PI_ROOT:-./data/image_pi}"
MODEL="${MODEL:-wrn_16_3}"
SEED="${SEED:-1234}"               # the official command's seed
TRIAL="${TRIAL:-0}"
# the recipe
RECIPE="${RECIPE:-tgd}"
EPOCHS="${EPOCHS:-200}"
BATCH_SIZE="${BATCH_SIZE:-128}"
LR="${LR:-0.1}"
LR_DECAY_EPOCHS="${LR_DECAY_EPOCHS:-40 80 120 160}"
LR_DECAY_RATE="${LR_DECAY_RATE:-0.2}"
WEIGHT_DECAY="${WEIGHT_DECAY:-1e-4}"
MOMENTUM="${MOMENTUM:-0.9}"
AUGMENT="${AUGMENT:-none}"         # the official code trains without augmentation
INPUT_NORM="${INPUT_NORM:-tgd}"    # the official loader's constants

# shellcheck source=../lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
need_int 0 TRIAL
cd "$root"

# shellcheck disable=SC2086  # LR_DECAY_EPOCHS is a list of words
common=(--model "$MODEL" --dataset "$DATASET" --data_root "$DATA_ROOT" --recipe "$RECIPE" --epochs "$EPOCHS"
        --batch_size "$BATCH_SIZE" --lr "$LR" --lr_decay_epochs $LR_DECAY_EPOCHS --lr_decay_rate "$LR_DECAY_RATE"
        --weight_decay "$WEIGHT_DECAY" --momentum "$MOMENTUM" --augment "$AUGMENT" --input_norm "$INPUT_NORM"
        --seed "$SEED" --trial "$TRIAL" --skip_finished)

# teacher 1: images
"$PY" train_teacher.py "${common[@]}" "$@"
# teacher 2: persistence images [6, 50, 50] of the same data set
"$PY" train_teacher.py "${common[@]}" --input pi --pi_root "$PI_ROOT" "$@"
