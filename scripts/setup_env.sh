#!/usr/bin/env bash
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi  # run by sh: this script needs bash
# Creates (or reuses) the project's virtual environment in .venv, installs requirements.txt, then the project
# itself in editable mode (pyproject.toml), so its packages and stage modules import from any folder.
# Idempotent: reinstalls only when requirements.txt or pyproject.toml changed since the last successful install.
# Override the interpreter with PYTHON=/path/to/python3.11; the folder with TOPKD_VENV=path.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${TOPKD_VENV:-$root/.venv}"
python="${PYTHON:-python3}"
stamp="$venv/.requirements.sha256"
want="$(cat "$root/requirements.txt" "$root/pyproject.toml" | sha256sum | cut -d' ' -f1)"
if [ ! -x "$venv/bin/python" ]; then
  echo "[setup] creating virtual environment in $venv"
  "$python" -m venv "$venv"
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "[setup] installing requirements.txt and the project into $venv (first time: a few minutes)"
  # pip prints one harmless warning per package about local index folders absent on some machines.
  # setuptools builds the editable install (--no-build-isolation: nothing is fetched for the build).
  "$venv/bin/python" -m pip install -q -r "$root/requirements.txt" "setuptools>=77" 2>&1 \
    | grep -v '^WARNING: Location' || true
  "$venv/bin/python" -m pip install -q --no-deps --no-build-isolation -e "$root" 2>&1 \
    | grep -v '^WARNING: Location' || true
  (cd / && "$venv/bin/python" -c "import torch, torchvision, gudhi, sklearn, yaml, tqdm, tensorboard, matplotlib, \
pytest, xdist, train_student, tools.plan") \
    || { echo "[setup] installation incomplete: see the pip messages above" >&2; exit 1; }
  echo "$want" > "$stamp"
else
  echo "[setup] environment up to date ($venv)"
fi
