from __future__ import annotations

import sys
from pathlib import Path

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


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every end-to-end test runs real scripts in real time (their sleeps, the sidecar's intervals): slow."""
    for item in items:
        if item.get_closest_marker("e2e") and not item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.slow)


# The Elyra fixtures were compiled against http://127.0.0.1:9123; the end-to-end runner executes their
# commands unchanged, so the S3 server listens exactly there.
FIXTURE_S3_PORT = 9123


@pytest.fixture(scope="module")
def s3():
    """A real SeaweedFS S3 server on free ports of 127.0.0.1, one per test module (a Pod reaches it over
    the host network; the tests point the step's --cos-endpoint at it). `s3_server` is the fixed one."""
    from tests.support.s3 import start_s3

    server = start_s3()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def s3_server():
    """A real SeaweedFS S3 server on 127.0.0.1:9123 (the fixtures' --cos-endpoint) for the whole session."""
    import socket

    from tests.support.s3 import start_s3

    probe = socket.socket()
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as weed's listener does: TIME_WAIT is fine
    try:
        probe.bind(("127.0.0.1", FIXTURE_S3_PORT))
    except OSError as exc:
        pytest.fail(
            f"127.0.0.1:{FIXTURE_S3_PORT} is taken ({exc}); the e2e tests need it for the fixtures' S3"
        )
    finally:
        probe.close()
    server = start_s3(port=FIXTURE_S3_PORT)
    try:
        yield server
    finally:
        server.stop()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Say loudly if /dev/null stopped being a device during the run (seen once on these machines)."""
    import stat as _stat

    try:
        mode = Path("/dev/null").stat().st_mode
    except OSError:
        mode = 0
    if not _stat.S_ISCHR(mode):
        sys.stderr.write("\nWARNING: /dev/null is no longer a character device after this test run\n")
