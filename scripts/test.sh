#!/usr/bin/env bash
# The whole test suite: lint (ruff), types (mypy --strict), then every test (pytest), end to end included,
# on pure Python with coverage and its floor, then every test of the compiled modules on the compiled build
# (mypyc, setup.py: the build the wheel and the image ship). ELYRA_SIDECAR_TEST_BUILD=pure skips the
# compiled run (no C compiler needed); extra arguments narrow the pytest run (and skip the compiled run).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
# Seen on these machines: /dev/null replaced by a regular file (culprit not yet found; apt and tests then
# misbehave). Say so, and as root put the device back.
if [ ! -c /dev/null ]; then
  echo "warning: /dev/null is not a character device ($(ls -l /dev/null 2>&1))" >&2
  if [ "$(id -u)" = 0 ]; then rm -f /dev/null && mknod -m 666 /dev/null c 1 3; fi
fi
# The end-to-end tests run R nodes when an R runtime is there; Debian ships one (r-base-core).
if ! command -v Rscript >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "== installing R (r-base-core) for the R end-to-end tests"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends r-base-core; } \
    >/tmp/elyra-sidecar-apt.log 2>&1 || echo "R could not be installed (see /tmp/elyra-sidecar-apt.log); R tests will skip"
fi
# The podman tests (tests/test_pods.py) run the image and the steps as real containers: Debian's podman with
# runc (crun refuses these machines' cgroup layout), catatonit (podman's pause process) and debootstrap
# (the stand-in base images: no image registry is reachable). Without them, or without root, they skip.
pods_missing=""
for tool in podman runc debootstrap catatonit; do
  command -v "$tool" >/dev/null 2>&1 || pods_missing="$pods_missing $tool"
done
if [ -n "$pods_missing" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "== installing$pods_missing for the podman tests"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends podman runc debootstrap catatonit; } \
    >/tmp/elyra-sidecar-apt-podman.log 2>&1 || echo "podman could not be installed (see /tmp/elyra-sidecar-apt-podman.log); podman tests will skip"
fi
echo "== ruff" && .venv/bin/ruff check . && .venv/bin/ruff format --check .
echo "== mypy" && .venv/bin/mypy
echo "== import-linter" && .venv/bin/lint-imports --no-cache
build="${ELYRA_SIDECAR_TEST_BUILD:-}"
if [ -z "$build" ]; then
  build=compiled
  # A developer's machine without a C compiler runs pure Python (said loudly); CI must test the compiled build.
  if ! command -v "${CC:-cc}" >/dev/null 2>&1 && [ "${CI:-}" != true ]; then
    echo "warning: no C compiler (${CC:-cc}): testing pure Python only (the wheel and image ship compiled)" >&2
    build=pure
  fi
fi
# The whole suite runs on pure Python with coverage of elyra_sidecar (in-process only, pyproject
# [tool.coverage]; coverage cannot see inside compiled modules). Its floor holds for the whole suite, so a
# run narrowed by arguments (-k, -m "not slow", a file) reports it without failing under it.
cov=(--cov --cov-report=term:skip-covered)
[ $# -eq 0 ] || cov+=(--cov-fail-under=0)
echo "== pytest (pure Python, coverage)"
ELYRA_SIDECAR_EXPECT_COMPILED=0 .venv/bin/python -m pytest "${cov[@]}" "$@"
[ "$build" = pure ] && exit 0
# Then every test of the compiled modules (the admission hot paths) on the mypyc build the wheel and the
# image ship (tests/test_pods.py builds the image, compiled, in the run above). Narrowed runs skip this.
[ $# -eq 0 ] || exit 0
echo "== compiled build (mypyc; cached in .cache/compiled)"
compiled=$(./scripts/build-compiled.sh)
# The compiled package first on the path (subprocesses the tests start inherit it); .venv has the rest.
echo "== pytest (compiled)"
PYTHONPATH="$compiled/src${PYTHONPATH:+:$PYTHONPATH}" ELYRA_SIDECAR_EXPECT_COMPILED=1 .venv/bin/python -m pytest \
  -p no:cacheprovider tests/test_build.py tests/test_shell.py tests/test_elyra.py tests/test_transform.py \
  tests/test_admission.py tests/test_pod_mode.py tests/test_pod_kfp_outputs.py tests/test_fuzz.py \
  tests/test_properties.py tests/test_cli.py tests/test_cli_hardening.py tests/test_webhook_app.py \
  tests/test_webhook_server.py tests/test_bootstrapper_oracle.py tests/test_config.py
