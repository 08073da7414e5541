#!/usr/bin/env bash
# TGD stage 3: WRN-16-1 student from the image teacher (PATH_T) and the PI teacher (PATH_T2).
# Loss: 0.1 CE + 0.9 T^2 [a KL(S||T1) + (1-a) KL(S||T2)] + 1000 sum_3 stages MSE(n(G_s), n(a G_t1 + (1-a) G_t2)),
# G raw Gram
# matrices; T = 4, a = 0.99 (the TGD README also mentions 0.95). Same SGD recipe as the teachers.
#   PATH_T=save_t_models/<img run>/wrn_16_3_best.pth PATH_T2=save_t_models/<pi run>/wrn_16_3_best.pth \
#     bash scripts/tgd/train_student.sh
#   DATASET=cinic10 DATA_ROOT=./data/cinic10 PATH_T=... PATH_T2=... bash scripts/tgd/train_student.sh
set -euo pipefail

DATASET="${DATASET:-cifar10}"
DATA_ROOT="${DATA_ROOT:-./data}"
PI_ROOT="${PI_ROOT:-./data/image_pi}"
PATH_T="${PATH_T:?set PATH_T to the image teacher checkpoint}"
PATH_T2="${PATH_T2:?set PATH_T2 to the persistence-image teacher checkpoint}"
MODEL_S="${MODEL_S:-wrn_16_1}"
EPOCHS="${EPOCHS:-200}"
BATCH_SIZE="${BATCH_SIZE:-128}"
LR="${LR:-0.1}"
DECAY_EPOCHS="${DECAY_EPOCHS:-40,80,120,160}"
DECAY_RATE="${DECAY_RATE:-0.2}"
WD="${WD:-1e-4}"
KD_T="${KD_T:-4}"
TGD_ALPHA="${TGD_ALPHA:-0.99}"     # weight of the image teacher (1 - a for the PI teacher)
TRIALS="${TRIALS:-1}"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
if [[ -x .venv/bin/python ]]; then PY=.venv/bin/python; else PY=python3; fi

for (( trial = 0; trial < TRIALS; trial++ )); do
  "$PY" train_student.py --distill tgd --model_s "$MODEL_S" --path_t "$PATH_T" --path_t2 "$PATH_T2" \
    --dataset "$DATASET" --data_root "$DATA_ROOT" --pi_root "$PI_ROOT" \
    --epochs "$EPOCHS" --batch_size "$BATCH_SIZE" --lr "$LR" --lr_decay_epochs "$DECAY_EPOCHS" \
    --lr_decay_rate "$DECAY_RATE" --weight_decay "$WD" --kd_T "$KD_T" --tgd_alpha "$TGD_ALPHA" \
    --trial "$trial" "$@"
done
