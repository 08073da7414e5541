#!/usr/bin/env bash
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi  # run by sh: this script needs bash
# TGD stage 3: WRN-16-1 student from the image teacher (PATH_T) and the PI teacher (PATH_T2), as the
# official README command (main_train.py --alpha 0.99 --seed 1234 --batch-size 128 --epochs 200
# --student_checkpoint ./models/wrn161_Student.pth.tar): a = 0.99, seed 1234, warm start from INIT_S when
# given (any student checkpoint: ours, or TGD's released wrn161_Student.pth.tar).
# Loss: 0.1 CE + 0.9 T^2 [a KL(T1||S) + (1-a) KL(T2||S)] (KL as an element-wise mean, TGD's scale)
#       + 1000 sum over 3 blocks MSE(n(G_s), n(a G_t1 + (1-a) G_t2)), G raw Gram matrices, n row L2 norm.
# The values below are the TGD paper's (the --distill tgd defaults and TGD's recipe, engine/config.py RECIPES;
# a test keeps them equal), each named after the train_student.py flag it sets, in capitals. Edit them here,
# or set any of them in the environment, which always wins. A finished run of the same settings is skipped,
# an unfinished one resumed.
#   PATH_T=save_t_models/<img run>/wrn_16_3_best.pth PATH_T2=save_t_models/<pi run>/wrn_16_3_best.pth \
#     INIT_S=path/to/wrn161_Student.pth.tar bash scripts/tgd/train_student.sh
#   DATASET=cinic10 DATA_ROOT=./data/cinic10 PATH_T=... PATH_T2=... bash scripts/tgd/train_student.sh
set -euo pipefail

DATASET="${DATASET:-cifar10}"
DATA_ROOT="${DATA_ROOT:-./data}"
PI_ROOT="${PI_ROOT:-./data/image_pi}"
PATH_T="${PATH_T:-}"               # the image teacher checkpoint (required)
PATH_T2="${PATH_T2:-}"             # the persistence-image teacher checkpoint (required)
MODEL_S="${MODEL_S:-wrn_16_1}"
INIT_S="${INIT_S:-}"               # warm start (the official --student_checkpoint); empty: random init
SEED="${SEED:-1234}"               # the official command's seed (trial t: SEED + t)
TRIAL="${TRIAL:-0}"                # first trial
TRIALS="${TRIALS:-1}"
# the loss
GAMMA="${GAMMA:-0.1}"
ALPHA="${ALPHA:-0.9}"
BETA="${BETA:-1000}"
KD_T="${KD_T:-4}"
TGD_ALPHA="${TGD_ALPHA:-0.99}"     # weight of the image teacher (1 - a for the PI teacher)
KD_REDUCTION="${KD_REDUCTION:-mean}"  # KL divided by batch x classes, as TGD's code
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
need_int 0 TRIAL SEED
need_int 1 TRIALS
if [[ -z "$PATH_T" || -z "$PATH_T2" ]]; then
  echo "set PATH_T to the image teacher and PATH_T2 to the persistence-image teacher checkpoint" >&2
  exit 2
fi
cd "$root"

opts=()
if [[ -n "$INIT_S" ]]; then opts+=(--init_s "$INIT_S"); fi
# shellcheck disable=SC2086  # LR_DECAY_EPOCHS is a list of words
opts+=(-r "$GAMMA" -a "$ALPHA" -b "$BETA" --kd_T "$KD_T" --tgd_alpha "$TGD_ALPHA" --kd_reduction "$KD_REDUCTION"
       --recipe_check "$RECIPE" --epochs "$EPOCHS" --batch_size "$BATCH_SIZE" --lr "$LR"
       --lr_decay_epochs $LR_DECAY_EPOCHS --lr_decay_rate "$LR_DECAY_RATE" --weight_decay "$WEIGHT_DECAY"
       --momentum "$MOMENTUM" --augment "$AUGMENT" --input_norm "$INPUT_NORM")
for (( trial = TRIAL; trial < TRIAL + TRIALS; trial++ )); do
  "$PY" train_student.py --distill tgd --model_s "$MODEL_S" --path_t "$PATH_T" --path_t2 "$PATH_T2" \
    --dataset "$DATASET" --data_root "$DATA_ROOT" --pi_root "$PI_ROOT" "${opts[@]}" \
    --seed "$((SEED + trial))" --trial "$trial" --skip_finished "$@"
done
