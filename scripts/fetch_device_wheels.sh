#!/usr/bin/env bash
# The wheels scripts/device_check.sh installs on a GPU machine that has torch, transformers, peft and
# accelerate preinstalled but cannot download: the runner's pins of what such a machine lacks or holds
# in another version. Run here (online); .whl/ is git-ignored and travels with the working tree.
#
#   bash scripts/fetch_device_wheels.sh              # -> .whl/*.whl, about 15 MiB, for CPython 3.12 x86-64
#   PYVER=3.11 bash scripts/fetch_device_wheels.sh   # another Python on the GPU machine
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
PYVER=${PYVER:-3.12}
DEST=.whl
# versions from pyproject.toml (one place for pins); all of these are pure-Python wheels
PINNED=(hydra-core omegaconf transformers peft accelerate)
# omegaconf needs antlr4-python3-runtime 4.9.*, published only as an sdist: build its (pure-Python)
# wheel here, at the version the test suite runs with
TRANSITIVE=(antlr4-python3-runtime)

pins=$("$PY" - "${PINNED[@]}" <<'PYEOF'
import sys, tomllib
deps = {d.split("==")[0].lower(): d for d in tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]}
missing = [n for n in sys.argv[1:] if n not in deps or "==" not in deps[n]]
if missing:
    sys.exit(f"error: pyproject.toml pins no exact version of {', '.join(missing)}")
print(" ".join(deps[n] for n in sys.argv[1:]))
PYEOF
)
built=$("$PY" -c 'import sys; from importlib.metadata import version; print(" ".join(f"{n}=={version(n)}" for n in sys.argv[1:]))' "${TRANSITIVE[@]}")

rm -rf "$DEST" && mkdir -p "$DEST"
# shellcheck disable=SC2086
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version "$PYVER" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d "$DEST" $pins
# shellcheck disable=SC2086
"$PY" -m pip wheel -q --no-deps --no-binary=:all: -w "$DEST" $built
ls "$DEST"
du -sh "$DEST"
