from __future__ import annotations

import pytest

from tests.helpers import FIXTURES


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true", default=False,
                     help="rewrite tests/golden/ from the current transformer (review the diff!)")


def pytest_sessionstart(session: pytest.Session) -> None:
    if not FIXTURES.is_dir():
        raise pytest.UsageError(f"shared fixtures not found at {FIXTURES} (set ELYRA_SIDECAR_SHARED)")
