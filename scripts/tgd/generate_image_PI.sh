#!/usr/bin/env bash
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi  # run by sh: this script needs bash
# TGD stage 1: persistence images of every image (train and test), cached under $OUT/<name>_<split>/.
#   bash scripts/tgd/generate_image_PI.sh                       # CIFAR-10
#   DATASET=imagefolder NAME=cinic10 DATA_ROOT=./data/cinic10 SPLITS="train valid test" \
#     bash scripts/tgd/generate_image_PI.sh                    # CINIC-10 (ImageFolder layout)
# Rerun the same command to resume; extra arguments go to generate_image_PI.py (e.g. --overwrite).
set -euo pipefail

DATASET="${DATASET:-cifar10}"       # cifar10, cifar100, digits, imagefolder
NAME="${NAME:-$DATASET}"            # cache folder name (cinic10 for the CINIC-10 ImageFolder)
DATA_ROOT="${DATA_ROOT:-./data}"
SPLITS="${SPLITS:-train test}"
OUT="${OUT:-./data/image_pi}"
WORKERS="${WORKERS:-$(nproc)}"
DTYPE="${DTYPE:-uint8}"            # 8-bit levels, the values of the official PNG files

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
if [[ -x .venv/bin/python ]]; then PY=.venv/bin/python; else PY=python3; fi

# official settings: persim layout (Gaussian integrated over each pixel, persistence upward), 50x50,
# std 0.01, range [0, 0.3] x [0, 0.3], lifetimes > 0.02, each channel / its max, 8-bit levels
# shellcheck disable=SC2086
"$PY" generate_image_PI.py --dataset "$DATASET" --name "$NAME" --data_root "$DATA_ROOT" --splits $SPLITS \
  --out "$OUT" --num_workers "$WORKERS" --dtype "$DTYPE" \
  --resolution 50 --bandwidth 0.01 --pi_range 0 0.3 0 0.3 --min_persistence 1e-3 --min_lifetime 0.02 \
  --layout persim --quantize uint8 "$@"
