#!/usr/bin/env bash
# Stand-in base images for the podman tests: Debian, built with debootstrap, since no image registry is
# reachable here. Prints the tag when the image is in podman's storage.
#
#   scripts/base_image.sh [SUITE [TAG]]
#     bookworm docker.io/library/python:3.12-slim   (default) the sidecar image's FROM: Debian's Python 3.11
#     bullseye localhost/elyra-sidecar-standin/debian-python:bullseye  Python 3.9, for Elyra <= 3.13 steps
#
# The root filesystem is built once and cached as a tar under $ELYRA_SIDECAR_CACHE (default .cache/)/pods/,
# keyed by this script's content and the suite, so a changed recipe rebuilds it; each run imports the tar
# unless podman already holds an image carrying the same key in its label. Needs root, debootstrap, podman.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SUITE="${1:-bookworm}"
TAG="${2:-docker.io/library/python:3.12-slim}"
CACHE="${ELYRA_SIDECAR_CACHE:-$ROOT/.cache}/pods"
MIRROR="${ELYRA_SIDECAR_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# python-is-python3: the official python images answer to `python` too.
PACKAGES="python3,python3-pip,ca-certificates,python-is-python3"
KEY="$( { cat "$0"; echo "$SUITE"; } | sha256sum | cut -c1-16)"
TAR="$CACHE/base-$SUITE-$KEY.tar"
LABEL="elyra-sidecar.standin-key"
mkdir -p "$CACHE"
exec 9>"$CACHE/base-$SUITE.lock"
flock 9

have="$(podman image inspect --format "{{index .Labels \"$LABEL\"}}" "$TAG" 2>/dev/null || true)"
if [ "$have" = "$KEY" ]; then
  echo "$TAG"
  exit 0
fi
if [ ! -f "$TAR" ]; then
  command -v debootstrap >/dev/null || { echo "Error: debootstrap is not installed (apt-get install debootstrap)" >&2; exit 1; }
  dir="$(mktemp -d "$CACHE/rootfs-$SUITE.XXXXXX")"
  trap 'rm -rf "$dir"' EXIT
  echo "building the stand-in $SUITE root filesystem with debootstrap (once; cached in $TAR)" >&2
  if ! debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$dir" "$MIRROR" >"$CACHE/debootstrap-$SUITE.log" 2>&1; then
    tail -20 "$CACHE/debootstrap-$SUITE.log" >&2
    echo "Error: debootstrap $SUITE failed (log: $CACHE/debootstrap-$SUITE.log)" >&2
    exit 1
  fi
  # Like the official python images: pip may install into the system Python (no PEP 668 marker), and
  # no package caches or indexes are kept in the image.
  rm -f "$dir"/usr/lib/python3*/EXTERNALLY-MANAGED
  rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/* "$dir"/var/log/* "$dir"/usr/share/doc/* \
    "$dir"/usr/share/man/* "$dir"/usr/share/locale/*
  tar --numeric-owner -C "$dir" -cf "$TAR.tmp" .
  mv "$TAR.tmp" "$TAR"
  # Tars of older recipes are dead weight (about 150 MB each).
  find "$CACHE" -maxdepth 1 -name "base-$SUITE-*.tar" ! -name "$(basename "$TAR")" -delete
fi
podman import --quiet \
  --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
  --change "ENV LANG=C.UTF-8" \
  --change "LABEL $LABEL=$KEY" \
  --change 'CMD ["python3"]' \
  "$TAR" "$TAG" >/dev/null
echo "$TAG"
