#!/usr/bin/env bash
# Stage 4: distil with KD + TopKD in the paper's two CIFAR-100 settings (pick one with SETTING).
#   SETTING=resnet56_resnet20 bash scripts/train_student.sh            # lr 0.05, T 4, r 1, a 2, d 5, mean
#   SETTING=wrn_40_2_shufflev1 TRIALS=3 bash scripts/train_student.sh  # lr 0.01, T 4, r 1, a 4, d 5, sum
#   DELTA=10 ALPHA=1 bash scripts/train_student.sh                     # the environment beats SETTING
# Variables: SETTING (its values are defaults only: any variable set in the environment wins), MODEL_T,
# MODEL_S, DATASET, DATA_ROOT, EPOCHS, BATCH_SIZE, LR, KD_T, GAMMA, ALPHA, BETA (unset: not passed; the
# official script's -b 0.8 is a weight no term of KD uses), DELTA, OPERATOR, DISTILL, TRIAL (first student
# trial, 0), TRIALS (how many, 1), TEACHER_TRIAL (default TRIAL), SEED (unset: seed = the trial number).
# The teacher (PATH_T) and the RipsNet (RIPS_PATH) are found when not set: the finished teacher of
# MODEL_T / DATASET / TEACHER_TRIAL under save_t_models, and the RipsNet by the official naming rule or
# train_ripsnet.py's folders (the one trained on that teacher's stage-2 data). Extra arguments go to
# train_student.py (e.g. --device cuda --amp, --method topkd_exact --pi_params <stage-2 folder>).
# A finished run of the same settings is skipped, an unfinished one resumed (train_student.py --skip_finished).
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi  # run by sh: this script needs bash
set -euo pipefail

SETTING="${SETTING:-resnet56_resnet20}"
case "$SETTING" in  # defaults of the setting: a variable already set keeps its value
  resnet56_resnet20)
    : "${MODEL_T:=resnet56}" "${MODEL_S:=resnet20}" "${LR:=0.05}" "${ALPHA:=2}" "${DELTA:=5}" "${OPERATOR:=mean}" ;;
  wrn_40_2_shufflev1)
    : "${MODEL_T:=wrn_40_2}" "${MODEL_S:=shufflev1}" "${LR:=0.01}" "${ALPHA:=4}" "${DELTA:=5}" "${OPERATOR:=sum}" ;;
  *) echo "unknown SETTING $SETTING (resnet56_resnet20 or wrn_40_2_shufflev1)" >&2; exit 2 ;;
esac
: "${KD_T:=4}" "${GAMMA:=1}" "${DISTILL:=kd}"
DATASET="${DATASET:-cifar100}"
DATA_ROOT="${DATA_ROOT:-./data}"
TRIAL="${TRIAL:-0}"
TRIALS="${TRIALS:-1}"
TEACHER_TRIAL="${TEACHER_TRIAL:-$TRIAL}"

# Runs in the current folder (outputs and ./data are relative to it, as with the official scripts).
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -z "${PY:-}" ]]; then
  if [[ -x "$root/.venv/bin/python" ]]; then PY="$root/.venv/bin/python"; else PY=python3; fi
fi

opts=()
add() { if [[ -n "$2" ]]; then opts+=("$1" "$2"); fi; }  # a flag only for a variable that is set
add --path_t "${PATH_T:-}"; add --rips_path "${RIPS_PATH:-}"; add --epochs "${EPOCHS:-}"
add --batch_size "${BATCH_SIZE:-}"; add -b "${BETA:-}"
if [[ -z "${PATH_T:-}" ]]; then opts+=(--teacher_trial "$TEACHER_TRIAL"); fi

for (( trial = TRIAL; trial < TRIAL + TRIALS; trial++ )); do
  seed=()
  if [[ -n "${SEED:-}" ]]; then seed=(--seed "$((SEED + trial))"); fi
  "$PY" "$root/train_student.py" --model_t "$MODEL_T" --model_s "$MODEL_S" --dataset "$DATASET" --data_root "$DATA_ROOT" \
    --distill "$DISTILL" --kd_T "$KD_T" -r "$GAMMA" -a "$ALPHA" -d "$DELTA" --tda_layer_t -1 --tda_layer_s -1 \
    --dim 0 --operator "$OPERATOR" --lr "$LR" "${opts[@]}" --trial "$trial" "${seed[@]}" --skip_finished "$@"
done
