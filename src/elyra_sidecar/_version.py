"""The version, single-sourced from the installed distribution's metadata (pyproject.toml)."""

from __future__ import annotations

from functools import cache

__all__ = ["version"]

DISTRIBUTION = "elyra-sidecar"


@cache
def version() -> str:
    from importlib.metadata import PackageNotFoundError  # noqa: PLC0415 - loaded only when asked
    from importlib.metadata import version as dist_version  # noqa: PLC0415

    try:
        return dist_version(DISTRIBUTION)
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"
