"""`elyra-sidecar stop`: Argo's kill command for elyra-log, run in real PID namespaces like `kubectl exec`."""

from __future__ import annotations

import contextlib
import os
import posixpath
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from elyra_sidecar.sidecar.stop import is_tail_command
from tests.support.pod import pid_namespaces_available
from tests.support.procs import wait_for

SIDECAR = str(Path(sys.executable).parent / "elyra-sidecar")
DEADLINE = 3.0  # the tail's --shutdown-deadline below; the exit bound is derived from it


class TestIsTailCommand:
    @pytest.mark.parametrize(
        "argv",
        [
            ["/usr/local/bin/python3.12", "/usr/local/bin/elyra-sidecar", "tail", "--dir", "/w"],
            ["elyra-sidecar", "tail"],
            ["python3", "-m", "elyra_sidecar", "tail", "--dir", "/w"],
            ["python3", "-m", "elyra_sidecar.sidecar", "--dir", "/w"],
            ["/usr/bin/python3.12", "-u", "-X", "dev", "/opt/venv/bin/elyra-sidecar", "tail", "--dir", "/w"],
            ["python3", "-I", "-m", "elyra_sidecar", "tail"],
        ],
    )
    def test_tail_processes(self, argv):
        """Every way our image or the config starts the tail is recognised."""
        assert is_tail_command(argv)

    @pytest.mark.parametrize(
        "argv",
        [
            [],
            ["/pause"],
            ["elyra-sidecar", "stop", "--signal", "15"],
            ["elyra-sidecar", "install-live", "--dest", "/w"],
            ["tail", "-F", "x.log"],
            ["python3", "-m", "elyra_sidecar", "webhook"],
        ],
    )
    def test_other_processes(self, argv):
        """The Pod's pause process, other commands of ours and GNU tail are never signalled."""
        assert not is_tail_command(argv)

    @pytest.mark.parametrize(
        "argv",
        [
            ["sleep", "1000", "elyra-sidecar", "tail"],
            ["python3", "-c", "import time; time.sleep(9)", "elyra-sidecar", "tail", "--dir", "/w"],
            ["sh", "-c", "sleep 9", "/usr/local/bin/elyra-sidecar", "tail"],
            ["python3", "job.py", "-m", "elyra_sidecar", "tail"],
            ["python3", "-m", "job", "elyra-sidecar", "tail"],
            ["/usr/bin/env", "elyra-sidecar", "tail"],
            ["my-python-tool", "elyra-sidecar", "tail"],
        ],
    )
    def test_our_words_elsewhere_in_the_arguments(self, argv):
        """A decoy whose arguments contain `elyra-sidecar tail` (a shared process namespace shows every
        container's processes): only the exact shapes, read from the first word, count."""
        assert not is_tail_command(argv)


@pytest.fixture
def namespaces():
    why_not = pid_namespaces_available()
    if why_not:
        pytest.skip(why_not)


def _in_namespace(argv: list[str], tmp_path: Path) -> tuple[subprocess.Popen[bytes], int]:
    """Start `argv` as PID 1 of a new PID namespace; returns the process and PID 1's host PID."""
    proc = subprocess.Popen(
        ["unshare", "--pid", "--fork", "--mount-proc", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
    )
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
    deadline = time.monotonic() + 10
    while not children.read_text().split() and time.monotonic() < deadline:
        time.sleep(0.01)
    return proc, int(children.read_text().split()[0])


def _end(proc: subprocess.Popen[bytes], pid: int) -> None:
    """Whatever happened: SIGKILL the namespace's PID 1 (which takes every process in it), then unshare."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        proc.kill()
        proc.wait(timeout=30)


def _exec_stop(pid: int, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["nsenter", "--target", str(pid), "--pid", "--mount", SIDECAR, "stop", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def _handles_sigterm(pid: int) -> bool:
    """A SIGTERM handler is installed (SigCgt in /proc): PID 1 ignores the signals it does not catch."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    caught = next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(int(caught, 16) & (1 << (signal.SIGTERM - 1)))


def _tail_pid(pid: int) -> int:
    """`pid` when it runs the tail, else its child (the wrapper case)."""
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return int(children[0]) if not is_tail_command(argv) and children else pid


def _wait_catching(proc: subprocess.Popen[bytes], pid: int) -> None:
    assert wait_for(lambda: _handles_sigterm(_tail_pid(pid)), timeout=30)
    assert proc.poll() is None


def _argv(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def _alive(pid: int) -> bool:
    """Running, not a zombie (a signalled decoy would be one until its parent reaps it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _descendants(pid: int, keep: Callable[[list[str]], bool]) -> Callable[[], list[int]]:
    """A function listing the live host PIDs below `pid` whose command line `keep` accepts."""

    def below() -> list[int]:
        found, todo = [], [pid]
        while todo:
            current = todo.pop()
            with contextlib.suppress(OSError):
                for child in Path(f"/proc/{current}/task/{current}/children").read_text().split():
                    todo.append(int(child))
                    if _alive(int(child)) and keep(_argv(int(child))):
                        found.append(int(child))
        return sorted(found)

    return below


def _peek(proc: subprocess.Popen[bytes]) -> bytes:
    """What the namespace's PID 1 printed so far (non-blocking)."""
    assert proc.stdout is not None
    os.set_blocking(proc.stdout.fileno(), False)
    with contextlib.suppress(BlockingIOError, TypeError):
        _PEEKED.setdefault(proc.pid, bytearray()).extend(proc.stdout.read() or b"")
    return bytes(_PEEKED.get(proc.pid, b""))


_PEEKED: dict[int, bytearray] = {}


TAIL = [SIDECAR, "tail", "--dir", ".", "--file", "x.log", "--shutdown-deadline", str(DEADLINE)]


@pytest.mark.usefixtures("namespaces")
class TestStopInANamespace:
    def test_signals_pid_1(self, tmp_path):
        """The tail is PID 1 of its container: `stop --signal 15` ends it, exit 0 within its deadline."""
        proc, pid = _in_namespace(TAIL, tmp_path)
        try:
            _wait_catching(proc, pid)
            done = _exec_stop(pid, "--signal", "15")
            assert done.returncode == 0, done.stderr
            assert "sent signal 15 to pid 1" in done.stderr
            assert proc.wait(timeout=DEADLINE + 5) == 0
        finally:
            _end(proc, pid)

    def test_finds_the_tail_behind_another_pid_1(self, tmp_path):
        """PID 1 is a wrapper (a shared namespace's pause, tini): the tail is found, only it is signalled."""
        script = " ".join(TAIL) + "; echo wrapper-still-here"
        proc, pid = _in_namespace(["sh", "-c", script], tmp_path)
        try:
            _wait_catching(proc, pid)
            done = _exec_stop(pid)
            assert done.returncode == 0, done.stderr
            assert "to pid 1" not in done.stderr
            assert proc.wait(timeout=DEADLINE + 5) == 0
            assert b"wrapper-still-here" in proc.stdout.read()
        finally:
            _end(proc, pid)

    def test_decoys_in_a_shared_process_namespace_are_left_alone(self, tmp_path):
        """A Pod sharing one process namespace: beside the tail run a process whose arguments hold
        `elyra-sidecar tail`, and our very tail command in another mount namespace (another container).
        `stop` signals the tail of its own container only; both decoys live on."""
        words = f"{sys.executable} -c 'import time; time.sleep(120)' {SIDECAR} tail --dir ."
        other_container = f"unshare --mount {SIDECAR} tail --dir . --file y.log --shutdown-deadline 60"
        script = f"{words} & {other_container} & {' '.join(TAIL)}; echo tail-done; wait"
        proc, pid = _in_namespace(["sh", "-c", script], tmp_path)
        try:
            decoys = _descendants(
                pid, lambda argv: SIDECAR in argv and posixpath.basename(argv[0]) not in ("sh", "unshare")
            )
            assert wait_for(lambda: len(decoys()) == 3, timeout=30), decoys()
            assert wait_for(lambda: all(_handles_sigterm(p) for p in decoys() if "-c" not in _argv(p)), 30)
            tail = next(p for p in decoys() if "x.log" in _argv(p))
            done = _exec_stop(pid, "--signal", "15")
            assert done.returncode == 0, done.stderr
            assert wait_for(lambda: b"tail-done" in _peek(proc), timeout=DEADLINE + 5)
            left = decoys()
            assert tail not in left
            assert len(left) == 2 and all(_alive(p) for p in left), left
            assert done.stderr.count("sent signal 15 to pid ") == 1 and "," not in done.stderr, done.stderr
        finally:
            _end(proc, pid)

    def test_no_tail_is_an_error(self, tmp_path):
        """Nothing to stop: one `Error:` line, exit 1 (Argo logs it)."""
        done = subprocess.run(
            ["unshare", "--pid", "--fork", "--mount-proc", SIDECAR, "stop"],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
            cwd=tmp_path,
        )
        assert done.returncode == 1
        assert done.stderr.startswith("Error: no `elyra-sidecar tail` process")
