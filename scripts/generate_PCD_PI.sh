#!/usr/bin/env bash
# Stage 2: point clouds of the teacher's FC-input embeddings and their persistence images. The values below
# are the paper's (generate_PCD_PI.py's defaults; a test keeps the two equal), each named after the flag it
# sets, in capitals. Edit them here, or set any of them in the environment, which always wins:
#   bash scripts/generate_PCD_PI.sh                                # the resnet56 teacher of trial 0
#   MODEL_T=wrn_40_2 TRIAL=2 bash scripts/generate_PCD_PI.sh       # the teacher of scripts/train_teacher.sh
#   PATH_T=path/to/resnet56_best.pth bash scripts/generate_PCD_PI.sh --device cuda --num_workers 8
# The output folder is named after the settings; rerunning resumes or checks it.
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi  # run by sh: this script needs bash
set -euo pipefail

MODEL_T="${MODEL_T:-${MODEL:-resnet56}}"
DATASET="${DATASET:-cifar100}"
DATA_ROOT="${DATA_ROOT:-./data}"
TEACHER_TRIAL="${TEACHER_TRIAL:-${TRIAL:-0}}"  # the teacher's trial (scripts/train_teacher.sh's TRIAL)
PATH_T="${PATH_T:-${TEACHER:-}}"             # an exact teacher checkpoint instead of MODEL_T / TEACHER_TRIAL
BATCH_SIZE="${BATCH_SIZE:-64}"               # images per batch = points per cloud
PASSES="${PASSES:-256}"                      # passes over the training set
LAYER="${LAYER:--1}"                         # -1 = FC input
TEACHER_BN="${TEACHER_BN:-batch}"            # the teacher's BatchNorm uses each batch's statistics
DIMS="${DIMS:-0}"                            # homology dims, e.g. "0 1"
SEED="${SEED:-0}"

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_int 0 TEACHER_TRIAL

# Runs in the current folder (outputs and ./data are relative to it, as with the official scripts).
src=(--teacher_trial "$TEACHER_TRIAL")
if [[ -n "$PATH_T" ]]; then src=(--path_t "$PATH_T"); fi
# shellcheck disable=SC2086  # DIMS is a list of words
"$PY" "$root/generate_PCD_PI.py" "${src[@]}" --model_t "$MODEL_T" --dataset "$DATASET" --data_root "$DATA_ROOT" \
  --batch_size "$BATCH_SIZE" --passes "$PASSES" --layer "$LAYER" --teacher_bn "$TEACHER_BN" --dims $DIMS \
  --seed "$SEED" "$@"
