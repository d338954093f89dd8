#!/usr/bin/env bash
# GPU check in one command (scripts/device_check.py says what it runs and writes).
#
#   bash scripts/fetch_device_wheels.sh          # here, online: the wheels a bare GPU machine lacks -> .whl/
#   bash scripts/device_check.sh OUTDIR          # on the GPU machine (torch preinstalled, no network): ~6 min
#   bash scripts/device_check.sh --cpu OUTDIR    # the same steps on small CPU shapes (CI runs it)
#
# When .whl/ holds wheels they are installed first into a private folder put ahead on PYTHONPATH,
# so the machine's own packages stay as they are. Python: $PYTHON, else .venv/bin/python, else python3.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-}
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
if compgen -G ".whl/*.whl" >/dev/null; then
  site=$(mktemp -d "${TMPDIR:-/tmp}/loft-wheels.XXXXXX")
  trap 'rm -rf "$site"' EXIT
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" .whl/*.whl \
    || { echo "error: installing .whl/*.whl failed; rerun scripts/fetch_device_wheels.sh for this Python" >&2; exit 2; }
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}" LOFT_WHEEL_SITE="$site"
fi
"$PY" scripts/device_check.py "$@"
