#!/usr/bin/env bash
# The main job: set everything up, transform the bundled Elyra pipeline and run its first step live.
# `--pods`: the same with real containers (podman, as root; see docs/end-to-end.md).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec .venv/bin/python -m examples.demo "$@"
