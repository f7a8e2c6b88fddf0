# Environment for every egs/*/run.sh (sourced by its path.sh): the repository's virtualenv (made by
# `make install`) when present.
_holdtts_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ -x "$_holdtts_root/.venv/bin/holdtts" ]; then
  export PATH="$_holdtts_root/.venv/bin:$PATH"
fi
if ! command -v holdtts >/dev/null 2>&1; then
  echo "holdtts is not installed: run 'make install' in $_holdtts_root (or pip install -e it)" >&2
  exit 1
fi
export PYTHONUNBUFFERED=1
unset _holdtts_root
