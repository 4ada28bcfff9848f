"""The follower in-process, turn by turn, with its injectable clock and injected faults (EACCES, EIO, races).

Under the process-level tests (test_sidecar_*.py): here a failure names the turn it happened in, and
faults that root cannot provoke on a real file are injected at the two system calls that touch a
followed file (open, pread). Diagnostics are captured with structlog's `capture_logs`.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from elyra_sidecar.sidecar._follow import Follower, FollowerOptions, Output
from elyra_sidecar.sidecar._mirror import MIN_PART, Mirror, MirrorTarget, make_client


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Harness:
    """A Follower over `directory`, its stdout a file the test reads back."""

    def __init__(self, directory: Path | str, files: list[str], stdout: Path, **kwargs: Any) -> None:
        self._stdout = stdout
        self._fd = os.open(stdout, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        self.clock = Clock()
        log = structlog.get_logger()
        options = FollowerOptions(
            directory=str(directory),
            files=files,
            poll=True,
            main_exit_file=kwargs.pop("main_exit_file", None),
        )
        self.follower = Follower(
            options, Output(self._fd, fmt="raw", log=log), log=log, clock=self.clock, **kwargs
        )

    def turn(self, n: int = 1) -> None:
        for _ in range(n):
            self.clock.now += 0.1
            self.follower.turn()

    @property
    def out(self) -> bytes:
        return self._stdout.read_bytes()

    def close(self) -> None:
        self.follower.shutdown(time.monotonic() + 5)
        os.close(self._fd)


@pytest.fixture
def work(tmp_path: Path) -> Path:
    path = tmp_path / "work"
    path.mkdir()
    return path


@pytest.fixture
def logs() -> Iterator[list[dict[str, Any]]]:
    with capture_logs() as captured:
        yield captured


def named(logs: list[dict[str, Any]], event: str) -> list[dict[str, Any]]:
    return [e for e in logs if e["event"] == event]


def harness(work: Path | str, tmp_path: Path, *files: str, **kwargs: Any) -> Iterator[Harness]:
    h = Harness(work, list(files), tmp_path / "stdout", **kwargs)
    try:
        yield h
    finally:
        h.close()


class TestFaults:
    def test_eacces_on_open_is_reported_once_and_retried(self, work, tmp_path, logs):
        """A file we may not open is reported as `file_unreadable` (not taken for absent), then followed."""
        (work / "a.log").write_bytes(b"hello\n")
        denied = [3]

        def opener(*args: Any, **kwargs: Any) -> int:
            if denied[0]:
                denied[0] -= 1
                raise PermissionError(errno.EACCES, "Permission denied")
            return os.open(*args, **kwargs)

        for h in harness(work, tmp_path, "a.log", opener=opener):
            h.turn(3)
            assert h.out == b""
            (event,) = named(logs, "file_unreadable")
            assert event["file"] == "a.log" and event["error"] == "PermissionError EACCES"
            h.turn()
            assert h.out == b"hello\n"
            assert len(named(logs, "file_found")) == 1

    def test_eio_mid_run_is_reported_and_following_goes_on(self, work, tmp_path, logs):
        """One EIO while reading does not end live streaming: reported, then read from the same offset."""
        path = work / "a.log"
        path.write_bytes(b"one\n")
        failures = [0]

        def reader(fd: int, size: int, offset: int) -> bytes:
            if offset < os.fstat(fd).st_size and offset > 0 and failures[0] == 0:
                failures[0] += 1
                raise OSError(errno.EIO, "Input/output error")
            return os.pread(fd, size, offset)

        for h in harness(work, tmp_path, "a.log", reader=reader):
            h.turn()
            assert h.out == b"one\n"
            with path.open("ab") as f:
                f.write(b"two\n")
            h.turn()  # the EIO
            assert h.out == b"one\n"
            (event,) = named(logs, "file_unreadable")
            assert event["error"] == "OSError EIO" and event["offset"] == 4
            h.turn()
            assert h.out == b"one\ntwo\n"
            with path.open("ab") as f:
                f.write(b"three\n")
            h.turn()
            assert h.out == b"one\ntwo\nthree\n"


class TestRefused:
    def test_symlink_out_of_the_directory_is_refused_once(self, work, tmp_path, logs):
        """A symlink at the log's name is never followed, and reported once however many turns pass."""
        secret = tmp_path / "secret"
        secret.write_bytes(b"AWS_SECRET_ACCESS_KEY=x\n")
        (work / "a.log").symlink_to(secret)
        for h in harness(work, tmp_path, "a.log"):
            h.turn(5)
            assert h.out == b""
            (event,) = named(logs, "file_refused")
            assert event["reason"] == "symbolic link"

    def test_fifo_swapped_in_between_stat_and_open_does_not_block(self, work, tmp_path, logs):
        """The race the stat cannot close: a FIFO at the name when open() runs is opened without blocking
        (O_NONBLOCK), found not regular on the descriptor, and refused."""
        path = work / "a.log"
        path.write_bytes(b"regular\n")

        def opener(name: str, flags: int, *, dir_fd: int) -> int:
            os.unlink(name, dir_fd=dir_fd)
            os.mkfifo(name, dir_fd=dir_fd)
            return os.open(name, flags, dir_fd=dir_fd)

        for h in harness(work, tmp_path, "a.log", opener=opener):
            h.turn(3)
            assert h.out == b""
            (event,) = named(logs, "file_refused")
            assert event["reason"] == "named pipe"

    def test_names_that_leave_the_directory_are_refused(self, work, tmp_path, logs):
        """Empty, `.`, `..` and names with `/` are refused at start; the plain name is followed."""
        (work / "ok.log").write_bytes(b"ok\n")
        (tmp_path / "outside.log").write_bytes(b"outside\n")
        for h in harness(work, tmp_path, "", ".", "..", "../outside.log", "ok.log"):
            h.turn(2)
            assert h.out == b"ok\n"
            assert [e["file"] for e in named(logs, "file_refused")] == ["", ".", "..", "../outside.log"]

    def test_procfs_file_is_read_once(self, tmp_path, logs):
        """A procfs file (st_size 0) is not mistaken for a truncated log and re-emitted on every turn."""
        expected = Path(f"/proc/{os.getpid()}/cmdline").read_bytes()
        for h in harness(Path(f"/proc/{os.getpid()}"), tmp_path, "cmdline"):
            h.turn(10)  # NUL-separated, no newline: out after the idle flush (0.5 s of the clock)
            assert h.out == expected
            assert not named(logs, "file_truncated")

    def test_real_truncation_is_still_detected(self, work, tmp_path, logs):
        """A log reopened with "w" and shorter than before starts over from byte 0 (new generation)."""
        path = work / "a.log"
        path.write_bytes(b"x" * 99 + b"\n")
        for h in harness(work, tmp_path, "a.log"):
            h.turn()
            (state,) = h.follower.states
            generation = state.generation
            path.write_bytes(b"new\n")
            h.turn()
            assert h.out == b"x" * 99 + b"\nnew\n"
            assert len(named(logs, "file_truncated")) == 1 and state.generation == generation + 1

    def test_directory_that_is_a_symlink_is_refused(self, tmp_path, logs):
        """--dir swapped for a symlink (with or without a trailing slash) is not followed into."""
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        (elsewhere / "a.log").write_bytes(b"not ours\n")
        link = tmp_path / "link"
        link.symlink_to(elsewhere)
        for h in harness(f"{link}/", tmp_path, "a.log"):  # a str: Path() would drop the slash
            h.turn(3)
            assert h.out == b""
            (event,) = named(logs, "directory_refused")
            assert event["reason"] == "symbolic link"


class TestMainExitFile:
    def test_exit_file_requests_a_stop(self, work, tmp_path, logs):
        """Once main's exit-code file exists, the turn asks to stop (the caller drains and uploads)."""
        exitcode = tmp_path / "exitcode"
        for h in harness(work, tmp_path, "a.log", main_exit_file=str(exitcode)):
            h.turn(2)
            assert not h.follower.stop_requested
            exitcode.write_text("0")
            h.turn()
            assert h.follower.stop_requested and h.follower.stop_reason == "main_exited"
            assert len(named(logs, "main_exited")) == 1


@pytest.fixture(scope="module")
def server(s3):
    """The module's own S3 server on free ports (conftest `s3`) with the bucket made."""
    s3.make_bucket("unit-bucket")
    return s3


class TestMirrorPolicy:
    @pytest.fixture
    def mirror(self, server, monkeypatch):
        for name, value in server.env.items():
            monkeypatch.setenv(name, value)
        return Mirror(make_client(server.endpoint), interval=1.0, log=structlog.get_logger())

    def test_whole_uploads_of_a_slowly_growing_small_log_are_spaced_out(self, mirror, tmp_path, logs):
        """Below 5 MiB every upload sends the whole log: they wait until they cost at most 4x what was
        appended, or 12 intervals, instead of going up every interval."""
        path = tmp_path / "a.log"
        path.write_bytes(b"x" * 99 + b"\n")
        target = MirrorTarget("unit-bucket", "policy/a.log")
        fd = os.open(path, os.O_RDONLY)
        appended = 0
        try:
            now = 0.0
            for _ in range(240):  # 240 intervals, 1 KiB appended in each
                with path.open("ab") as f:
                    f.write(b"y" * 1023 + b"\n")
                appended += 1024
                size = path.stat().st_size
                now += 1.0
                if mirror.claim(target, generation=1, length=size, now=now):
                    assert mirror.upload(target, fd, size, generation=1, deadline=time.monotonic() + 30)
        finally:
            os.close(fd)
        assert 240 / 12 <= mirror.uploads < 240 / 4
        assert not named(logs, "upload_failed")

    def test_a_log_past_5_mib_appends_every_interval(self, mirror, tmp_path):
        """Past 5 MiB an upload costs only the appended bytes, so it goes up every interval."""
        path = tmp_path / "a.log"
        path.write_bytes(os.urandom(MIN_PART // 2).hex().encode())
        target = MirrorTarget("unit-bucket", "policy/big.log")
        fd = os.open(path, os.O_RDONLY)
        try:
            now = 0.0
            for _ in range(5):
                with path.open("ab") as f:
                    f.write(b"z" * 1023 + b"\n")
                now += 1.0
                size = path.stat().st_size
                assert mirror.claim(target, generation=1, length=size, now=now)
                assert mirror.upload(target, fd, size, generation=1, deadline=time.monotonic() + 30)
        finally:
            os.close(fd)
        assert mirror.appends == 4
        assert mirror.bytes_sent == MIN_PART + 5 * 1024
