#!/usr/bin/env bash
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi  # run by sh: this script needs bash
# README command 2: installs what is missing (.venv and the project in it, reused while requirements.txt and
# pyproject.toml are unchanged) and runs the CPU test suite on TOPKD_TEST_WORKERS processes (default 2,
# pytest-xdist; 1 = no xdist). Extra arguments go to pytest, e.g. `bash scripts/run_tests.sh -k topology -x`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup_env.sh
workers="${TOPKD_TEST_WORKERS:-2}"
if [ "$workers" -gt 1 ]; then set -- -n "$workers" "$@"; fi
exec .venv/bin/python -m pytest -q "$@"
