from __future__ import annotations

import pytest

from tests.helpers import FIXTURES


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite tests/golden/ from the current transformer (review the diff!)",
    )


def pytest_sessionstart(session: pytest.Session) -> None:
    if not FIXTURES.is_dir():
        raise pytest.UsageError(f"shared fixtures not found at {FIXTURES} (set ELYRA_SIDECAR_SHARED)")


@pytest.fixture(scope="session")
def s3_server():
    """A real SeaweedFS S3 server on 127.0.0.1 for the whole session."""
    from tests.support.s3 import start_s3

    server = start_s3()
    try:
        yield server
    finally:
        server.stop()
