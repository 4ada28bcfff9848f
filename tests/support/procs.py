"""Real processes for the sidecar tests: the sidecar itself, and writers standing in for the script."""

from __future__ import annotations

import atexit
import contextlib
import functools
import importlib.metadata
import os
import re
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

import elyra_sidecar
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
    """A command prefix that runs the rest as POD_UID when we are root (as in the pod), else nothing.

    For Python, use `pod_python()`: POD_UID may not be able to read this checkout or its .venv."""
    if os.geteuid() != 0:
        return []
    return ["setpriv", f"--reuid={POD_UID}", f"--regid={POD_UID}", "--clear-groups"]


#: What the sidecar imports at run time beyond the standard library (the image's `[sidecar]` extra).
_POD_DISTRIBUTIONS = ("minio",)


def pod_python() -> list[str]:
    """The command that starts Python as POD_UID (when we are root; else `sys.executable`), with
    `elyra_sidecar` and the sidecar's dependencies importable whatever the checkout's permissions.

    A clone in a 0700 directory (root's home) is unreadable to POD_UID, and so are its .venv and the
    interpreter it links to: the package and its dependencies are copied once into a world-readable
    directory under the system's temp dir, put on PYTHONPATH, and run by the first interpreter of our
    version that POD_UID can start. The test is skipped, with the reason, when none can."""
    if os.geteuid() != 0:
        return [sys.executable]
    command, why_not = _pod_python()
    if not command:
        import pytest  # the support module is also used outside tests (bench)

        pytest.skip(why_not)
    return command


@functools.cache
def _pod_python() -> tuple[list[str], str]:
    stage = _stage_for_pod_user()
    env = ["env", f"PYTHONPATH={stage}", "PYTHONNOUSERSITE=1", "PYTHONDONTWRITEBYTECODE=1"]
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [sys.executable, getattr(sys, "_base_executable", ""), shutil.which(f"python{version}")]
    candidates += [f"/usr/bin/python{version}", f"/usr/local/bin/python{version}"]
    probe = (
        "import sys, elyra_sidecar.sidecar.tail, elyra_sidecar.sidecar._mirror, minio; "
        "print('%d.%d' % sys.version_info[:2], elyra_sidecar.__file__)"
    )
    tried = []
    for python in dict.fromkeys(c for c in candidates if c):
        proc = subprocess.run(
            [*as_pod_user(), *env, python, "-c", probe],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
            cwd="/",
        )
        words = proc.stdout.split()
        if proc.returncode == 0 and words[:1] == [version] and words[1].startswith(stage):
            return [*as_pod_user(), *env, python], ""
        tried.append(f"{python}: {(proc.stderr.strip().splitlines() or [proc.stdout.strip()])[-1:]}")
    return [], f"no Python {version} that uid {POD_UID} can run with the staged package ({'; '.join(tried)})"


def _stage_for_pod_user() -> str:
    """A world-readable copy of `elyra_sidecar` and of `_POD_DISTRIBUTIONS` with their requirements."""
    stage = Path(tempfile.mkdtemp(prefix="elyra-sidecar-pod-python-"))
    atexit.register(shutil.rmtree, stage, ignore_errors=True)
    shutil.copytree(
        Path(elyra_sidecar.__file__).parent,
        stage / "elyra_sidecar",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    todo, seen = list(_POD_DISTRIBUTIONS), set()
    while todo:
        name = re.sub(r"[-_.]+", "-", todo.pop()).lower()
        if name in seen:
            continue
        seen.add(name)
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue  # a requirement for another Python or platform
        todo.extend(
            re.split(r"[\s;<>=!~\[(]", requirement, maxsplit=1)[0]
            for requirement in dist.requires or []
            if "extra ==" not in requirement.replace('extra=="', 'extra == "')
        )
        for file in dist.files or []:
            if ".." in file.parts:  # console scripts and the like, outside site-packages
                continue
            target = stage / file
            target.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileNotFoundError):  # RECORD lists .pyc files that were never written
                shutil.copyfile(Path(str(dist.locate_file(file))), target)
    for directory, _, files in os.walk(stage):
        Path(directory).chmod(0o755)
        for name in files:
            (Path(directory) / name).chmod(0o644)
    return str(stage)


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
        python: list[str] | None = None,
    ) -> None:
        """`prefix`: a command that runs the rest (`unshare ...`). `python`: the Python command (default
        `sys.executable`; `pod_python()` for the pod's user). `stdout`: "read" (collected), "unread" (a
        pipe nobody reads) or "close" (closed after the first bytes arrive, as a log collector that went
        away)."""
        self._stdout_mode = stdout
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        full_env.update(env or {})
        command = [*(prefix or []), *(python or [sys.executable]), "-m", "elyra_sidecar.sidecar"]
        self.proc = subprocess.Popen(
            [*command, "--diagnostics", "json", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=full_env,
            cwd="/" if python else None,  # a pod user may not be able to enter the checkout
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
