"""Real processes for the sidecar tests: the sidecar itself, and writers standing in for the script."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from tests.support.runner import StreamLog


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


#: The uid the sidecar runs as in the pod (restricted securityContext; distroless "nonroot").
POD_UID = 65532


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (closed again: for "unreachable" endpoints)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def as_pod_user() -> list[str]:
    """A command prefix that runs the rest as POD_UID when we are root (as in the pod), else nothing."""
    if os.geteuid() != 0:
        return []
    return ["setpriv", f"--reuid={POD_UID}", f"--regid={POD_UID}", "--clear-groups"]


@contextlib.contextmanager
def shared_dir() -> Iterator[Path]:
    """A directory like the pod's emptyDir (mode 0777) that POD_UID can reach (pytest's tmp is 0700)."""
    path = Path(tempfile.mkdtemp(prefix="elyra-sidecar-pod-"))
    path.chmod(0o777)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


class CountingProxy:
    """A TCP proxy on 127.0.0.1 to `port` that counts the bytes clients send (what an upload costs)."""

    def __init__(self, port: int) -> None:
        self._target = port
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._server.getsockname()[1])
        self.sent = 0
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self._target))
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, count: bool) -> None:
        try:
            while data := src.recv(1 << 16):
                if count:
                    with self._lock:
                        self.sent += len(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._server.close()


class SidecarProcess:
    """`python -m elyra_sidecar.sidecar ...`, its stdout collected (bytes, arrival times) by a thread."""

    def __init__(
        self,
        *args: str,
        env: dict[str, str] | None = None,
        prefix: list[str] | None = None,
        stdout: str = "read",
    ) -> None:
        """`stdout`: "read" (collected), "unread" (a pipe nobody reads) or "close" (closed after the
        first bytes arrive, as a log collector that went away)."""
        self._stdout_mode = stdout
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        full_env.update(env or {})
        self.proc = subprocess.Popen(
            [*(prefix or []), sys.executable, "-m", "elyra_sidecar.sidecar", "--diagnostics", "json", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=full_env,
        )
        self._chunks: list[tuple[float, bytes]] = []
        self._lock = threading.Lock()
        self._err: list[bytes] = []
        self._threads = [threading.Thread(target=self._pump_err, daemon=True)]
        if stdout != "unread":
            self._threads.append(threading.Thread(target=self._pump, daemon=True))
        for t in self._threads:
            t.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while True:
            data = os.read(fd, 1 << 20)
            if not data:
                return
            with self._lock:
                self._chunks.append((time.monotonic(), data))
            if self._stdout_mode == "close":
                self.proc.stdout.close()
                return

    def _pump_err(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._err.append(line)

    @property
    def out(self) -> bytes:
        with self._lock:
            return b"".join(c for _, c in self._chunks)

    @property
    def err(self) -> str:
        return b"".join(self._err).decode(errors="replace")

    def first_arrival(self, needle: bytes) -> float | None:
        """Monotonic time at which `needle` had fully arrived on stdout."""
        with self._lock:
            return StreamLog(list(self._chunks)).arrival(needle)

    def wait_started(self, timeout: float = 10.0) -> None:
        assert wait_for(
            lambda: '"watching"' in self.err or '"watch_fallback_polling"' in self.err, timeout
        ), self.err

    def terminate(self, timeout: float = 15.0) -> tuple[int, float]:
        """SIGTERM, as Argo sends it; returns (exit code, seconds to exit)."""
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=timeout)
        elapsed = time.monotonic() - t0
        for t in self._threads:
            t.join(timeout=5)
        return rc, elapsed


WRITER = r"""
import os, sys, time
path, mode = sys.argv[1], sys.argv[2]
if mode == "slow":
    n, delay = int(sys.argv[3]), float(sys.argv[4])
    with open(path, "ab", buffering=0) as f:
        for i in range(n):
            f.write(b"slow line %d\n" % i)
            time.sleep(delay)
elif mode == "burst":
    n = int(sys.argv[3])
    with open(path, "ab", buffering=1 << 16) as f:
        for i in range(n):
            f.write(b"burst line %06d with some padding to look like a log\n" % i)
elif mode == "forever":
    with open(path, "ab", buffering=0) as f:
        i = 0
        while True:
            f.write(b"forever line %08d\n" % i)
            i += 1
            if i % 100 == 0:
                time.sleep(0.001)
"""


def start_writer(path: Path, mode: str, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", WRITER, str(path), mode, *args])
