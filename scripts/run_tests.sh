#!/usr/bin/env bash
# README command 2: installs what is missing (.venv, reused while requirements.txt is unchanged) and runs
# the CPU test suite on TOPKD_TEST_WORKERS processes (default 2, pytest-xdist; 1 = no xdist). Extra arguments
# go to pytest, e.g. `bash scripts/run_tests.sh -k topology -x`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup_env.sh
workers="${TOPKD_TEST_WORKERS:-2}"
if [ "$workers" -gt 1 ]; then set -- -n "$workers" "$@"; fi
exec .venv/bin/python -m pytest -q "$@"
