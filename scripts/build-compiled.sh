#!/usr/bin/env bash
# Build the compiled (mypyc) wheel of this checkout and install it, without its dependencies, into
# .cache/compiled/src: put that directory first on PYTHONPATH to run the compiled build with .venv's
# libraries (scripts/test.sh does; so do the benches, which take .cache/compiled as a tree: its bench/ and
# tests/ are links to this checkout's). Rebuilt only when the sources or the build files change.
# Prints the directory. Needs a C compiler and the Python headers (ELYRA_SIDECAR_COMPILE=1: no fallback).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
key=$(cat setup.py pyproject.toml $(git ls-files -co --exclude-standard src | grep '\.py$' | sort) | sha256sum | cut -c1-16)
out=.cache/compiled
if [ ! -f "$out/.built-$key" ]; then
  rm -rf "$out" .cache/wheels
  log=$(mktemp)
  if ! ELYRA_SIDECAR_COMPILE=1 .venv/bin/python -m pip wheel --quiet --no-deps --no-build-isolation \
      -w .cache/wheels . >"$log" 2>&1; then
    cat "$log" >&2
    exit 1
  fi
  rm -f "$log"
  .venv/bin/python -m pip install --quiet --no-deps --no-compile --target "$out/src" .cache/wheels/elyra_sidecar-*.whl
  ln -s ../../bench "$out/bench"
  ln -s ../../tests "$out/tests"
  touch "$out/.built-$key"
fi
echo "$PWD/$out"
