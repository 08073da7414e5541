#!/usr/bin/env bash
# Stage 2: point clouds of the teacher's FC-input embeddings and their persistence images (TopKD values).
# Edit the variables below; extra arguments go to generate_PCD_PI.py, e.g.
#   TEACHER=save_t_models/resnet56_cifar100_lr_0.05_decay_0.0005_trial_0/resnet56_best.pth bash scripts/generate_PCD_PI.sh
#   bash scripts/generate_PCD_PI.sh --device cuda --num_workers 8
# Rerunning the same command resumes an interrupted run.
set -euo pipefail

TEACHER="${TEACHER:-save_t_models/resnet56_cifar100_lr_0.05_decay_0.0005_trial_0/resnet56_best.pth}"
MODEL_T="${MODEL_T:-}"            # only for official checkpoints whose path does not name the arch
DATASET="${DATASET:-cifar100}"
DATA_ROOT="${DATA_ROOT:-./data}"
BATCH_SIZE="${BATCH_SIZE:-64}"    # images per batch = points per cloud
PASSES="${PASSES:-256}"           # passes over the training set
LAYER="${LAYER:--1}"              # -1 = FC input
DIMS="${DIMS:-0}"                 # homology dims, e.g. "0 1"
SEED="${SEED:-0}"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
if [[ -x .venv/bin/python ]]; then PY=.venv/bin/python; else PY=python3; fi
extra=()
if [[ -n "$MODEL_T" ]]; then extra+=(--model_t "$MODEL_T"); fi

# shellcheck disable=SC2086  # DIMS is a list of words
"$PY" generate_PCD_PI.py --path_t "$TEACHER" --dataset "$DATASET" --data_root "$DATA_ROOT" \
  --batch_size "$BATCH_SIZE" --passes "$PASSES" --layer "$LAYER" --dims $DIMS --seed "$SEED" \
  "${extra[@]}" "$@"
