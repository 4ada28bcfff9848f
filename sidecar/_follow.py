"""Follow files in a directory and write their bytes to stdout, losing nothing.

One thread does all reading and writing. Watchdog's inotify observer (or nothing, in polling mode)
only wakes it; a periodic re-check means a lost or coalesced event costs latency, never data. Every
wake-up reads each file from its saved offset to EOF, so the output is the file's bytes in order.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from elyra_sidecar.sidecar._mirror import Mirror, MirrorTarget

__all__ = ["Follower", "FollowerOptions", "Output"]

_CHUNK = 1 << 20


def _grow_pipe(fd: int) -> None:
    """A bigger pipe buffer when stdout is a pipe (as under a container runtime): fewer writes, no loss."""
    try:
        if stat.S_ISFIFO(os.fstat(fd).st_mode):
            import fcntl  # noqa: PLC0415 - Linux only

            fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)
    except OSError:
        pass  # the system limit may be lower: the default size works, only slower


class Output:
    """Writes records to a file descriptor whole (looping over partial writes); one writer thread."""

    def __init__(self, fd: int, *, fmt: str) -> None:
        self._fd = fd
        self._json = fmt == "json"
        self.bytes_written = 0
        self.lines = 0
        _grow_pipe(fd)

    def _write_all(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        while view:
            try:
                n = os.write(self._fd, view)
            except InterruptedError:  # pragma: no cover - PEP 475 retries for us
                continue
            view = view[n:]
        self.bytes_written += len(data)

    def emit(self, name: str, data: bytes | memoryview, *, complete: bool) -> None:
        """`data` is whole lines (complete) or one piece of a line (a split long line, or an idle tail)."""
        if not data:
            return
        if not self._json:
            self.lines += data.count(b"\n") if isinstance(data, bytes) else bytes(data).count(b"\n")
            self._write_all(data)
            return
        records = []
        lines = bytes(data).split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()
        for i, line in enumerate(lines):
            record: dict[str, Any] = {"file": name, "line": line.decode("utf-8", errors="replace")}
            if not complete and i == len(lines) - 1:
                record["partial"] = True
            records.append(json.dumps(record, ensure_ascii=False))
        self.lines += len(records)
        self._write_all(("\n".join(records) + "\n").encode("utf-8"))


@dataclass
class FollowerOptions:
    directory: str
    files: list[str]
    targets: dict[str, MirrorTarget] = field(default_factory=dict)
    poll: bool = False
    recheck_interval: float = 0.5
    poll_interval: float = 0.1
    idle_flush: float = 0.5
    max_line: int = 1 << 20


@dataclass
class _FileState:
    name: str
    path: str
    fd: int | None = None
    ident: tuple[int, int] | None = None
    offset: int = 0
    pending: bytearray = field(default_factory=bytearray)
    last_data: float = 0.0
    found: bool = False


class _UploadWorker:
    """Runs mirror uploads off the reading thread; the newest request per key replaces older ones."""

    def __init__(self, mirror: Mirror) -> None:
        self._mirror = mirror
        self._cond = threading.Condition()
        self._queue: dict[str, tuple[MirrorTarget, int, int]] = {}
        self._busy = False
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="mirror", daemon=True)
        self._thread.start()

    def submit(self, target: MirrorTarget, fd: int, length: int) -> None:
        dup = os.dup(fd)  # the reader may close its fd (deleted/replaced file) while we upload
        with self._cond:
            old = self._queue.pop(target.key, None)
            if old is not None:
                os.close(old[1])
            self._queue[target.key] = (target, dup, length)
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stop:
                    self._cond.wait()
                if not self._queue:
                    return
                key = next(iter(self._queue))
                target, fd, length = self._queue.pop(key)
                self._busy = True
            try:
                self._mirror.upload(target, fd, length, deadline=time.monotonic() + 30)
            finally:
                os.close(fd)
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def drain(self, deadline: float) -> None:
        """Wait for the running upload (queued ones are superseded by the final upload)."""
        with self._cond:
            for _, fd, _ in self._queue.values():
                os.close(fd)
            self._queue.clear()
            self._stop = True
            self._cond.notify_all()
            while self._busy and time.monotonic() < deadline:
                self._cond.wait(timeout=max(0.0, deadline - time.monotonic()))


class Follower:
    def __init__(
        self,
        options: FollowerOptions,
        output: Output,
        *,
        log: Any,
        mirror: Mirror | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.options = options
        self.output = output
        self.log = log
        self.mirror = mirror
        self.clock = clock
        # Self-pipe: watchdog's thread and signal.set_wakeup_fd() write to it, the loop select()s on it.
        self._wake_r, self.wake_fd = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self.wake_fd, False)
        self.stop_requested = False
        self.mode = "polling"
        self._observer: Any = None
        self._watched: str | None = None
        self._worker = _UploadWorker(mirror) if mirror is not None else None
        self._last_upload: dict[str, float] = {}
        self.states = [
            _FileState(name=name, path=os.path.join(options.directory, name)) for name in options.files
        ]

    def wake(self) -> None:
        """Make the loop re-read now (thread-safe; a full pipe already means a pending wake-up)."""
        with contextlib.suppress(OSError):  # BlockingIOError: a wake-up is already pending
            os.write(self.wake_fd, b"\0")

    def request_stop(self) -> None:
        """Async-signal-safe enough: a flag and a pipe write, no locks."""
        self.stop_requested = True
        self.wake()

    # -- watching -----------------------------------------------------------------------------
    def start_watching(self) -> None:
        if self.options.poll:
            self.log.info("watching", directory=self.options.directory, mode="polling", reason="requested")
            return
        try:
            from watchdog.events import FileSystemEventHandler  # noqa: PLC0415
            from watchdog.observers.inotify import InotifyObserver  # noqa: PLC0415

            wake = self.wake

            class _Handler(FileSystemEventHandler):
                def on_any_event(self, event: Any) -> None:  # noqa: ARG002 - any event: re-read
                    wake()

            self._handler = _Handler()
            self._observer = InotifyObserver()
            self._observer.daemon = True
            self._observer.start()
            self._ensure_watch()
            self.mode = "inotify"
            self.log.info("watching", directory=self.options.directory, mode="inotify")
        except Exception as exc:
            self._observer = None
            self.mode = "polling"
            self.log.warning(
                "watch_fallback_polling",
                directory=self.options.directory,
                error=f"{type(exc).__name__}: {exc}",
            )

    def _ensure_watch(self) -> None:
        """Watch the directory, or its nearest existing ancestor until the directory appears."""
        if self._observer is None:
            return
        target = self.options.directory
        while not os.path.isdir(target) and target not in ("/", ""):
            target = os.path.dirname(target)
        if target == self._watched:
            return
        try:
            self._observer.unschedule_all()
            self._observer.schedule(self._handler, target, recursive=False)
            self._watched = target
        except Exception as exc:
            self.log.warning("watch_fallback_polling", directory=target, error=f"{type(exc).__name__}: {exc}")
            self._stop_observer()
            self.mode = "polling"

    def _stop_observer(self) -> None:
        if self._observer is not None:
            with contextlib.suppress(Exception):  # stopping a broken observer: nothing more to do
                self._observer.stop()
            self._observer = None

    # -- reading ------------------------------------------------------------------------------
    def _open(self, state: _FileState, st: os.stat_result) -> None:
        try:
            fd = os.open(state.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            return
        state.fd = fd
        real = os.fstat(fd)
        state.ident = (real.st_dev, real.st_ino)
        state.offset = 0
        if not state.found:
            state.found = True
            self.log.info("file_found", file=state.name, size=st.st_size)

    def _close(self, state: _FileState) -> None:
        if state.fd is not None:
            os.close(state.fd)
        state.fd = None
        state.ident = None

    def _read_to_eof(self, state: _FileState, now: float) -> bool:
        if state.fd is None:
            return False
        got = False
        while True:
            data = os.pread(state.fd, _CHUNK, state.offset)
            if not data:
                return got
            got = True
            state.offset += len(data)
            state.last_data = now
            self._consume(state, data)

    def _consume(self, state: _FileState, data: bytes) -> None:
        pending = state.pending
        if not pending:
            # Fast path (catch-up): write whole lines straight from the chunk, keep only the tail.
            cut = data.rfind(b"\n") + 1
            if cut:
                self.output.emit(
                    state.name, data if cut == len(data) else memoryview(data)[:cut], complete=True
                )
                data = data[cut:]
            if not data:
                return
        pending += data
        cut = pending.rfind(b"\n") + 1
        if cut:
            self.output.emit(state.name, bytes(pending[:cut]), complete=True)
            del pending[:cut]
        limit = self.options.max_line
        while len(pending) >= limit:  # a line longer than the bound: split, never drop
            self.output.emit(state.name, bytes(pending[:limit]), complete=False)
            del pending[:limit]

    def _flush_pending(self, state: _FileState) -> None:
        if state.pending:
            self.output.emit(state.name, bytes(state.pending), complete=False)
            state.pending.clear()

    def check(self, state: _FileState, now: float, *, final: bool = False) -> None:
        """Bring one file up to date: open, detect truncation/replacement/deletion, read to EOF."""
        try:
            st: os.stat_result | None = os.stat(state.path)
        except OSError:  # absent (FileNotFoundError) or unreadable: treated alike
            st = None
        if st is not None and not stat.S_ISREG(st.st_mode):
            st = None
        if state.fd is not None:
            current = (st.st_dev, st.st_ino) if st is not None else None
            if current != state.ident:
                # Deleted or replaced: what was written to the old file still comes out first.
                self._read_to_eof(state, now)
                self._flush_pending(state)
                self._upload(state, force=True)
                self.log.info("file_replaced" if current else "file_deleted", file=state.name)
                self._close(state)
            else:
                size = os.fstat(state.fd).st_size
                if size < state.offset:
                    self._flush_pending(state)
                    self.log.info("file_truncated", file=state.name, offset=state.offset, size=size)
                    state.offset = 0
        if state.fd is None and st is not None:
            self._open(state, st)
        if state.fd is not None:
            self._read_to_eof(state, now)
        if state.pending and (final or now - state.last_data >= self.options.idle_flush):
            self._flush_pending(state)
        if state.fd is not None:
            self._upload(state, force=final)

    def _upload(self, state: _FileState, *, force: bool) -> None:
        target = self.options.targets.get(state.name)
        if self.mirror is None or target is None or state.fd is None or self._worker is None:
            return
        if not self.mirror.needs_upload(target, state.offset):
            return
        now = self.clock()
        if force or now - self._last_upload.get(state.name, -1e9) >= self.mirror.interval:
            self._last_upload[state.name] = now
            if force and self.stop_requested:
                return  # the final upload runs synchronously in shutdown()
            self._worker.submit(target, state.fd, state.offset)

    # -- the loop -----------------------------------------------------------------------------
    def run(self) -> None:
        while not self.stop_requested:
            now = self.clock()
            for state in self.states:
                self.check(state, now)
            self._ensure_watch()
            # The mode can fall back to polling mid-run, so the interval is chosen on every turn.
            timeout = self.options.poll_interval if self.mode == "polling" else self.options.recheck_interval
            if any(s.pending for s in self.states):
                timeout = min(timeout, self.options.idle_flush / 2)
            readable, _, _ = select.select([self._wake_r], [], [], timeout)
            if readable:
                try:
                    while os.read(self._wake_r, 4096):
                        pass
                except BlockingIOError:
                    pass

    def shutdown(self, deadline: float) -> None:
        """Read every file to its end, flush, run the final upload; all before `deadline`."""
        self._stop_observer()
        now = self.clock()
        for state in self.states:
            try:
                self.check(state, now, final=True)
            except OSError as exc:
                self.log.warning("final_read_failed", file=state.name, error=f"{type(exc).__name__}: {exc}")
        if self._worker is not None:
            self._worker.drain(deadline)
        if self.mirror is not None:
            for state in self.states:
                target = self.options.targets.get(state.name)
                if target is not None and state.fd is not None and time.monotonic() < deadline:
                    self.mirror.upload(target, state.fd, state.offset, deadline=deadline)
        for state in self.states:
            self._close(state)
