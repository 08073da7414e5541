# Sourced by the scripts of scripts/ (not run): the python that runs the stages, and the check of the shell
# variables that are used as numbers.

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"  # the repository
# PY: the environment's, else the project's .venv (made by scripts/setup_env.sh), else python3 on the PATH.
if [[ -z "${PY:-}" ]]; then
  if [[ -x "$root/.venv/bin/python" ]]; then PY="$root/.venv/bin/python"; else PY=python3; fi
fi

# need_int MIN NAME...: each named variable must hold a whole number >= MIN (an empty one counts as unset).
# Checked before any stage starts: bash arithmetic would read any other text as an expression.
need_int() {
  local min="$1" name value
  shift
  for name in "$@"; do
    value="${!name:-}"
    if [[ -n "$value" ]] && ! [[ "$value" =~ ^(0|[1-9][0-9]{0,17})$ && "$value" -ge "$min" ]]; then
      echo "$name must be a whole number >= $min (e.g. $name=$((min + 2))), got '$value'" >&2
      exit 2
    fi
  done
}
