#!/usr/bin/env bash
# Creates (or reuses) the project's virtual environment in .venv and installs requirements.txt.
# Idempotent: reinstalls only when requirements.txt changed since the last successful install.
# Override the interpreter with PYTHON=/path/to/python3.11; the folder with TOPKD_VENV=path.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${TOPKD_VENV:-$root/.venv}"
python="${PYTHON:-python3}"
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$root/requirements.txt" | cut -d' ' -f1)"
if [ ! -x "$venv/bin/python" ]; then
  echo "[setup] creating virtual environment in $venv"
  "$python" -m venv "$venv"
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "[setup] installing requirements.txt into $venv (first time: a few minutes)"
  # pip prints one harmless warning per package about local index folders absent on some machines.
  "$venv/bin/python" -m pip install -q -r "$root/requirements.txt" 2>&1 | grep -v '^WARNING: Location' || true
  "$venv/bin/python" -c "import torch, torchvision, gudhi, sklearn, yaml, tqdm, tensorboard, matplotlib, pytest, xdist" \
    || { echo "[setup] installation incomplete: see the pip messages above" >&2; exit 1; }
  echo "$want" > "$stamp"
else
  echo "[setup] environment up to date ($venv)"
fi
