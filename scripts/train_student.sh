#!/usr/bin/env bash
# Stage 4: distil with KD + TopKD in the paper's two CIFAR-100 settings (pick one with SETTING).
#   SETTING=resnet56_resnet20 bash scripts/train_student.sh            # lr 0.05, T 4, r 1, a 2, b 0.8, d 5, mean
#   SETTING=wrn_40_2_shufflev1 TRIALS=3 bash scripts/train_student.sh  # lr 0.01, T 4, r 1, a 4, d 5, sum
# PATH_T / RIPS_PATH point at the stage-1 teacher and stage-3 RipsNet; extra arguments go to
# train_student.py (e.g. --device cuda --amp, --method topkd_exact --pi_params <pi_params.yaml>).
set -euo pipefail

SETTING="${SETTING:-resnet56_resnet20}"
DATASET="${DATASET:-cifar100}"
DATA_ROOT="${DATA_ROOT:-./data}"
EPOCHS="${EPOCHS:-240}"
BATCH_SIZE="${BATCH_SIZE:-64}"
TRIALS="${TRIALS:-1}"
DISTILL="${DISTILL:-kd}"

case "$SETTING" in
  resnet56_resnet20)
    MODEL_T=resnet56; MODEL_S=resnet20; LR=0.05; KD_T=4; GAMMA=1; ALPHA=2; BETA=0.8; DELTA=5; OPERATOR=mean ;;
  wrn_40_2_shufflev1)
    MODEL_T=wrn_40_2; MODEL_S=shufflev1; LR=0.01; KD_T=4; GAMMA=1; ALPHA=4; BETA=0.8; DELTA=5; OPERATOR=sum ;;
  *) echo "unknown SETTING $SETTING (resnet56_resnet20 or wrn_40_2_shufflev1)" >&2; exit 2 ;;
esac
PATH_T="${PATH_T:-./save_t_models/${MODEL_T}_${DATASET}_lr_0.05_decay_0.0005_trial_0/${MODEL_T}_best.pth}"
RIPS_PATH="${RIPS_PATH:-./ripsnet/${DATASET}_${MODEL_T}_batch${BATCH_SIZE}_-1_dim0/${OPERATOR}_best.pth}"  # train_ripsnet.py default folder

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
if [[ -x .venv/bin/python ]]; then PY=.venv/bin/python; else PY=python3; fi

for (( trial = 0; trial < TRIALS; trial++ )); do
  "$PY" train_student.py --path_t "$PATH_T" --model_t "$MODEL_T" --model_s "$MODEL_S" \
    --dataset "$DATASET" --data_root "$DATA_ROOT" --distill "$DISTILL" --kd_T "$KD_T" \
    -r "$GAMMA" -a "$ALPHA" -b "$BETA" -d "$DELTA" --tda_layer_t -1 --tda_layer_s -1 --dim 0 \
    --operator "$OPERATOR" --rips_path "$RIPS_PATH" --epochs "$EPOCHS" --batch_size "$BATCH_SIZE" \
    --lr "$LR" --trial "$trial" "$@"
done
