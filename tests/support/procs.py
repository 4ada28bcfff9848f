"""Real processes for the sidecar tests: the sidecar itself, and writers standing in for the script."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from tests.support.runner import StreamLog


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


class SidecarProcess:
    """`python -m elyra_sidecar.sidecar ...`, its stdout collected (bytes, arrival times) by a thread."""

    def __init__(
        self, *args: str, env: dict[str, str] | None = None, prefix: list[str] | None = None
    ) -> None:
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
        self._threads = [
            threading.Thread(target=self._pump, daemon=True),
            threading.Thread(target=self._pump_err, daemon=True),
        ]
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
