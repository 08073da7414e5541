#!/usr/bin/env bash
# Stage 2: point clouds of the teacher's FC-input embeddings and their persistence images (TopKD values).
#   bash scripts/generate_PCD_PI.sh                                # the resnet56 teacher of trial 0
#   MODEL_T=wrn_40_2 TRIAL=2 bash scripts/generate_PCD_PI.sh       # the teacher of scripts/train_teacher.sh
#   PATH_T=path/to/resnet56_best.pth bash scripts/generate_PCD_PI.sh --device cuda --num_workers 8
# Variables: MODEL_T, DATASET, DATA_ROOT, TRIAL (the teacher's trial; or TEACHER_TRIAL), PATH_T (an exact
# teacher checkpoint instead), BATCH_SIZE (points per cloud, 64), PASSES (256), LAYER (-1 = FC input),
# DIMS ("0" or "0 1"), SEED. The output folder is named after the settings; rerunning resumes or checks it.
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi  # run by sh: this script needs bash
set -euo pipefail

MODEL_T="${MODEL_T:-${MODEL:-resnet56}}"
DATASET="${DATASET:-cifar100}"
DATA_ROOT="${DATA_ROOT:-./data}"
TEACHER_TRIAL="${TEACHER_TRIAL:-${TRIAL:-0}}"
BATCH_SIZE="${BATCH_SIZE:-64}"    # images per batch = points per cloud
PASSES="${PASSES:-256}"           # passes over the training set
LAYER="${LAYER:--1}"              # -1 = FC input
DIMS="${DIMS:-0}"                 # homology dims, e.g. "0 1"

# Runs in the current folder (outputs and ./data are relative to it, as with the official scripts).
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -z "${PY:-}" ]]; then
  if [[ -x "$root/.venv/bin/python" ]]; then PY="$root/.venv/bin/python"; else PY=python3; fi
fi
src=(--teacher_trial "$TEACHER_TRIAL")
if [[ -n "${PATH_T:-${TEACHER:-}}" ]]; then src=(--path_t "${PATH_T:-$TEACHER}"); fi
seed=()
if [[ -n "${SEED:-}" ]]; then seed=(--seed "$SEED"); fi

# shellcheck disable=SC2086  # DIMS is a list of words
"$PY" "$root/generate_PCD_PI.py" "${src[@]}" --model_t "$MODEL_T" --dataset "$DATASET" --data_root "$DATA_ROOT" \
  --batch_size "$BATCH_SIZE" --passes "$PASSES" --layer "$LAYER" --dims $DIMS "${seed[@]}" "$@"
