#!/usr/bin/env bash
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi  # run by sh: this script needs bash
# TGD stage 3: WRN-16-1 student from the image teacher (PATH_T) and the PI teacher (PATH_T2), as the
# official README command (main_train.py --alpha 0.99 --seed 1234 --batch-size 128 --epochs 200
# --student_checkpoint ./models/wrn161_Student.pth.tar): a = 0.99, seed 1234, warm start from INIT_S when
# given (any student checkpoint: ours, or TGD's released wrn161_Student.pth.tar).
# Loss: 0.1 CE + 0.9 T^2 [a KL(T1||S) + (1-a) KL(T2||S)] (KL as an element-wise mean, TGD's scale)
#       + 1000 sum over 3 blocks MSE(n(G_s), n(a G_t1 + (1-a) G_t2)), G raw Gram matrices, n row L2 norm.
# Recipe: TGD's (picked by --distill tgd): SGD 0.1 momentum 0.9, wd 1e-4, batch 128, 200 epochs,
# lr x0.2 at 40/80/120/160, no augmentation; set the variables below to override (EPOCHS, TRIAL, TRIALS, ...).
# A finished run of the same settings is skipped, an unfinished one resumed.
#   PATH_T=save_t_models/<img run>/wrn_16_3_best.pth PATH_T2=save_t_models/<pi run>/wrn_16_3_best.pth \
#     INIT_S=path/to/wrn161_Student.pth.tar bash scripts/tgd/train_student.sh
#   DATASET=cinic10 DATA_ROOT=./data/cinic10 PATH_T=... PATH_T2=... bash scripts/tgd/train_student.sh
set -euo pipefail

DATASET="${DATASET:-cifar10}"
DATA_ROOT="${DATA_ROOT:-./data}"
PI_ROOT="${PI_ROOT:-./data/image_pi}"
PATH_T="${PATH_T:?set PATH_T to the image teacher checkpoint}"
PATH_T2="${PATH_T2:?set PATH_T2 to the persistence-image teacher checkpoint}"
MODEL_S="${MODEL_S:-wrn_16_1}"
INIT_S="${INIT_S:-}"               # warm start (the official --student_checkpoint); empty: random init
KD_T="${KD_T:-4}"
TGD_ALPHA="${TGD_ALPHA:-0.99}"     # weight of the image teacher (1 - a for the PI teacher)
SEED="${SEED:-1234}"               # the official command's seed (trial t: SEED + t)
EPOCHS="${EPOCHS:-}"               # unset: TGD's recipe (200)
TRIAL="${TRIAL:-0}"                # first trial
TRIALS="${TRIALS:-1}"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
if [[ -x .venv/bin/python ]]; then PY=.venv/bin/python; else PY=python3; fi

opts=()
if [[ -n "$INIT_S" ]]; then opts+=(--init_s "$INIT_S"); fi
if [[ -n "$EPOCHS" ]]; then opts+=(--epochs "$EPOCHS"); fi

for (( trial = TRIAL; trial < TRIAL + TRIALS; trial++ )); do
  "$PY" train_student.py --distill tgd --model_s "$MODEL_S" --path_t "$PATH_T" --path_t2 "$PATH_T2" \
    --dataset "$DATASET" --data_root "$DATA_ROOT" --pi_root "$PI_ROOT" --kd_T "$KD_T" \
    --tgd_alpha "$TGD_ALPHA" --seed "$((SEED + trial))" --trial "$trial" "${opts[@]}" --skip_finished "$@"
done
