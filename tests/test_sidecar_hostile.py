"""The sidecar against a hostile script and a hostile pod: real processes, as uid 65532 when we are root.

The script owns the directory the sidecar reads, so it can put symlinks, FIFOs and unreadable files
there; the pod's log collector can stop reading stdout or go away. None of it may leak a secret, block the
sidecar past its deadline, stop the mirror, or exit with anything but 0.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.procs import SidecarProcess, pod_python, shared_dir, wait_for

BUCKET = "elyra-bucket"
CANARY = "ELYRA_TEST_CANARY=not-a-real-secret-4f9c2a"


# A script that swaps its log between a regular file and a FIFO as fast as it can.
SWAPPER = r"""
import os, sys, time
d = sys.argv[1]
end = time.monotonic() + 60
i = 0
while time.monotonic() < end:
    i += 1
    f, p = os.path.join(d, f"f{i}"), os.path.join(d, f"p{i}")
    with open(f, "wb") as fh:
        fh.write(b"x\n")
    os.mkfifo(p)
    os.replace(f, os.path.join(d, "a.log"))
    os.replace(p, os.path.join(d, "a.log"))
"""


@pytest.fixture
def pod_dir():
    with shared_dir() as path:
        yield path


@pytest.fixture(scope="module")
def bucket(s3):
    """The module's own S3 server on free ports (conftest `s3`) with the bucket made."""
    s3.make_bucket(BUCKET)
    return s3


def pod_sidecar(directory, *names, extra=(), env=None, stdout="read"):
    args = ["--dir", str(directory)]
    for name in names:
        args += ["--file", name]
    return SidecarProcess(*args, *extra, env=env, python=pod_python(), stdout=stdout)


def events(err: str, name: str) -> list[dict[str, object]]:
    found = []
    for line in err.splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if record.get("event") == name:
                found.append(record)
    return found


def mirror_args(server, key, interval="0.2"):
    return (
        "--endpoint",
        server.endpoint,
        "--bucket",
        BUCKET,
        "--key",
        key,
        "--upload-interval",
        interval,
    )


class TestOnlyRegularFilesInsideDir:
    def test_symlink_to_proc_self_environ_leaks_nothing(self, bucket, pod_dir):
        """The log swapped for a symlink to /proc/self/environ: no secret on stdout or in the object."""
        key = "hostile/environ/a.log"
        log = pod_dir / "a.log"
        log.write_bytes(b"before\n")
        log.chmod(0o666)
        name, value = CANARY.split("=")
        env = {**bucket.env, name: value}
        sc = pod_sidecar(pod_dir, "a.log", extra=mirror_args(bucket, key), env=env)
        assert wait_for(lambda: bucket.get(BUCKET, key) == b"before\n", timeout=15), sc.err
        link = pod_dir / "link.tmp"
        link.symlink_to("/proc/self/environ")
        link.replace(log)  # atomic swap, as a script would do it
        # The sidecar notices the swap (the old file is gone from that name), then re-checks on a timer.
        assert wait_for(lambda: '"file_replaced"' in sc.err or '"file_deleted"' in sc.err, timeout=10)
        time.sleep(3 * 0.5)
        rc, _ = sc.terminate()
        assert rc == 0
        stored = bucket.get(BUCKET, key) or b""
        for secret in (value, env["AWS_SECRET_ACCESS_KEY"]):
            assert secret.encode() not in sc.out
            assert secret.encode() not in stored
            assert secret not in sc.err
        assert sc.out == b"before\n" == stored
        refused = events(sc.err, "file_refused")
        assert len(refused) == 1 and refused[0]["reason"] == "symbolic link"

    def test_dot_dot_name_escapes_nothing(self, pod_dir):
        """`--file ../x` names a file outside --dir: refused once, never read, exit 0."""
        inside = pod_dir / "in"
        inside.mkdir(mode=0o777)
        (pod_dir / "outside.log").write_bytes(b"outside the directory\n")
        sc = pod_sidecar(inside, "../outside.log", "a.log")
        sc.wait_started()
        (inside / "a.log").write_bytes(b"inside\n")
        assert wait_for(lambda: sc.out == b"inside\n")
        assert sc.terminate()[0] == 0
        assert sc.out == b"inside\n"
        assert [e["file"] for e in events(sc.err, "file_refused")] == ["../outside.log"]

    def test_procfs_file_is_not_re_emitted(self):
        """A procfs file (size 0, content on read) comes out once, not again as "truncated" every turn."""
        marker = "elyra-sidecar-procfs-marker"
        sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", marker])
        try:
            cmdline = Path(f"/proc/{sleeper.pid}/cmdline")
            # Until the child has exec'd, its cmdline is empty or the parent's: wait for the marker.
            assert wait_for(lambda: marker.encode() in cmdline.read_bytes())
            expected = cmdline.read_bytes()
            sc = SidecarProcess("--dir", f"/proc/{sleeper.pid}", "--file", "cmdline", "--poll")
            assert wait_for(lambda: sc.out == expected)
            # Polling every 0.1 s: 20 turns, each of which re-emitted the file before.
            time.sleep(20 * 0.1)
            rc, _ = sc.terminate()
        finally:
            sleeper.kill()
            sleeper.wait()
        assert rc == 0
        assert sc.out == expected
        assert not events(sc.err, "file_truncated")


class TestNeverBlocked:
    def test_fifo_swapped_in_never_blocks_the_open(self, pod_dir):
        """A script swapping the log between a file and a FIFO: SIGTERM still exits 0 within the deadline."""
        swapper = subprocess.Popen(
            [
                *pod_python(),
                "-c",
                SWAPPER,
                str(pod_dir),
            ]
        )
        try:
            sc = pod_sidecar(pod_dir, "a.log", extra=("--shutdown-deadline", "3"))
            sc.wait_started()
            time.sleep(3)  # many swaps: under the old code one of them leaves the sidecar in openat()
            rc, elapsed = sc.terminate(timeout=3 + 10)
        finally:
            swapper.kill()
            swapper.wait()
        assert rc == 0 and elapsed < 3 + 2
        assert len([e for e in events(sc.err, "file_refused") if e["reason"] == "named pipe"]) == 1

    def test_unread_stdout_still_exits_at_the_deadline(self, pod_dir):
        """stdout nobody reads (the sidecar stuck in write): SIGTERM, exit 0 at --shutdown-deadline."""
        deadline = 3.0
        (pod_dir / "a.log").write_bytes(b"y" * 99 + b"\n" + os.urandom(4 << 20).hex().encode() + b"\n")
        sc = pod_sidecar(pod_dir, "a.log", extra=("--shutdown-deadline", str(deadline)), stdout="unread")
        assert wait_for(lambda: events(sc.err, "file_found"), timeout=10), sc.err
        time.sleep(0.5)  # it fills the pipe and blocks in write()
        rc, elapsed = sc.terminate(timeout=deadline + 10)
        assert rc == 0
        assert elapsed < deadline + 1.5
        assert events(sc.err, "shutdown_deadline_reached")
        (summary,) = events(sc.err, "sidecar_stopped")
        assert summary["deadline_reached"] is True and summary["found"] == ["a.log"]

    def test_broken_stdout_keeps_mirroring(self, bucket, pod_dir):
        """stdout closed by the reader (EPIPE): the object still follows the file to its end."""
        key = "hostile/epipe/a.log"
        log = pod_dir / "a.log"
        log.write_bytes(b"first line\n")
        log.chmod(0o666)
        sc = pod_sidecar(pod_dir, "a.log", extra=mirror_args(bucket, key), env=bucket.env, stdout="close")
        assert wait_for(lambda: sc.out == b"first line\n")
        for i in range(30):
            with log.open("ab") as f:
                f.write(b"line %d after stdout went away\n" % i)
            time.sleep(0.02)
        with log.open("ab") as f:  # a backlog large enough for the zero-copy path (sendfile) too
            f.write(b"".join(b"bulk line %06d\n" % i for i in range(200_000)))
        assert wait_for(lambda: bucket.get(BUCKET, key) == log.read_bytes(), timeout=15), sc.err
        with log.open("ab") as f:
            f.write(b"last words")
        rc, _ = sc.terminate()
        assert rc == 0
        assert bucket.get(BUCKET, key) == log.read_bytes()
        assert len(events(sc.err, "stdout_failed")) == 1


class TestUnreadable:
    @pytest.mark.skipif(os.geteuid() != 0, reason="needs root to make a file another uid cannot read")
    def test_unreadable_file_is_reported_then_followed(self, pod_dir):
        """A file the sidecar may not read is reported (not taken for absent) and followed once readable."""
        log = pod_dir / "a.log"
        log.write_bytes(b"secret-ish\n")
        log.chmod(0o600)  # root's, not 65532's
        sc = pod_sidecar(pod_dir, "a.log", extra=("--poll",))
        assert wait_for(lambda: events(sc.err, "file_unreadable"), timeout=10), sc.err
        assert sc.out == b""
        log.chmod(0o644)
        assert wait_for(lambda: sc.out == b"secret-ish\n")
        assert sc.terminate()[0] == 0
        (event,) = events(sc.err, "file_unreadable")
        assert event["file"] == "a.log" and "EACCES" in str(event["error"])

    @pytest.mark.skipif(os.geteuid() != 0, reason="needs root to make a directory another uid cannot read")
    def test_unreadable_directory_is_reported(self, pod_dir):
        """--dir the sidecar cannot search: one `directory_unreadable`, exit 0."""
        work = pod_dir / "work"
        work.mkdir(mode=0o700)
        (work / "a.log").write_bytes(b"x\n")
        sc = pod_sidecar(work, "a.log", extra=("--poll",))
        assert wait_for(lambda: events(sc.err, "directory_unreadable"), timeout=10), sc.err
        assert sc.terminate()[0] == 0
        assert len(events(sc.err, "directory_unreadable")) == 1 and sc.out == b""


class TestMainExitFile:
    def test_exits_by_itself_once_main_exit_code_appears(self, bucket, pod_dir):
        """--main-exit-file: once the file exists the sidecar drains, uploads and exits 0 unasked."""
        key = "exitfile/a.log"
        exitcode = pod_dir / "exitcode"
        log = pod_dir / "a.log"
        log.write_bytes(b"running\n")
        log.chmod(0o666)
        sc = pod_sidecar(
            pod_dir,
            "a.log",
            extra=(
                *mirror_args(bucket, key, interval="60"),
                *("--idle-flush", "60", "--main-exit-file", str(exitcode)),
            ),
            env=bucket.env,
        )
        assert wait_for(lambda: sc.out == b"running\n")
        with log.open("ab") as f:
            f.write(b"done, no newline")
        exitcode.write_text("1")  # main failed: the sidecar still exits 0
        assert sc.proc.wait(timeout=15) == 0
        assert sc.out == log.read_bytes()
        assert bucket.get(BUCKET, key) == log.read_bytes()
        (summary,) = events(sc.err, "sidecar_stopped")
        assert summary["reason"] == "main_exited" and summary["deadline_reached"] is False
