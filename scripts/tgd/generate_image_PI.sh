#!/usr/bin/env bash
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi  # run by sh: this script needs bash
# TGD stage 1: persistence images of every image (train and test), cached under $OUT/<name>_<split>/. The
# values below are the TGD paper's (generate_image_PI.py's defaults; a test keeps the two equal), each named
# after the flag it sets, in capitals. Edit them here, or set any of them in the environment, which always wins:
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
# the persistence images: persim layout (Gaussian integrated over each pixel, persistence upward), 50x50,
# std 0.01, range [0, 0.3] x [0, 0.3], lifetimes > 0.02, each channel / its max, 8-bit levels (the official PNGs)
RESOLUTION="${RESOLUTION:-50}"
BANDWIDTH="${BANDWIDTH:-0.01}"
PI_RANGE="${PI_RANGE:-0 0.3 0 0.3}"  # birth min, max, persistence min, max
MIN_PERSISTENCE="${MIN_PERSISTENCE:-1e-3}"
MIN_LIFETIME="${MIN_LIFETIME:-0.02}"
LAYOUT="${LAYOUT:-persim}"
QUANTIZE="${QUANTIZE:-uint8}"
DTYPE="${DTYPE:-}"                  # storage type; unset: uint8 for 8-bit images, else float16

# shellcheck source=../lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
need_int 1 WORKERS
cd "$root"

dtype=()
if [[ -n "$DTYPE" ]]; then dtype=(--dtype "$DTYPE"); fi
# shellcheck disable=SC2086  # SPLITS and PI_RANGE are lists of words
"$PY" generate_image_PI.py --dataset "$DATASET" --name "$NAME" --data_root "$DATA_ROOT" --splits $SPLITS \
  --out "$OUT" --num_workers "$WORKERS" "${dtype[@]}" --resolution "$RESOLUTION" --bandwidth "$BANDWIDTH" \
  --pi_range $PI_RANGE --min_persistence "$MIN_PERSISTENCE" --min_lifetime "$MIN_LIFETIME" --layout "$LAYOUT" \
  --quantize "$QUANTIZE" "$@"
