#!/usr/bin/env bash
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi  # run by sh: this script needs bash
# README command 1: installs what is missing (.venv) and runs every stage on scikit-learn's digits:
# teacher, point clouds + exact persistence images, RipsNet, students (CE, KD, KD+TopKD, KD+TopKD-exact),
# then TGD (from scratch, and warm-started from the CE-only student beside KD warm-started the same way).
# Ends with a results table, the paired differences against KD (runs/quickstart/results.md) and figures.
#   bash scripts/quickstart.sh          # about 10 minutes on a 2-core CPU
#   bash scripts/quickstart.sh --fast   # one-minute smoke version
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup_env.sh
exec .venv/bin/python tools/quickstart.py "$@"
