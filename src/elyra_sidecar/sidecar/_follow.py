"""Follow files in a directory and write their bytes to stdout, losing nothing.

One thread does all reading and writing. An inotify descriptor on the directory (`_inotify.py`; none in
polling mode) only wakes it; a periodic re-check means a lost or coalesced event costs latency, never
data. Every wake-up reads each file from its saved offset to EOF, so the output is the file's bytes in
order. What may be read is decided in `_files.py` (the directory is untrusted), the writing to stdout in
`_output.py`, and mirror uploads run on the worker of `_uploads.py`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import stat
import time

from elyra_sidecar.contract import SidecarEvent
from elyra_sidecar.sidecar._files import DIR_FLAGS, OPEN_FLAGS, error_text, kind, name_problem
from elyra_sidecar.sidecar._inotify import Inotify, drain
from elyra_sidecar.sidecar._output import Output
from elyra_sidecar.sidecar._uploads import UploadWorker

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing and dataclasses stay out of the pod's start-up (see tail.py)
    from collections.abc import Callable
    from typing import Any

    from elyra_sidecar.sidecar._mirror import Mirror, MirrorTarget

__all__ = ["Follower", "FollowerOptions", "Output", "name_problem"]

_CHUNK = 1 << 20
# Backlogs of at least _SEND_MIN bytes go out with sendfile(2), at most _SEND_MAX per call.
_SEND_MIN = 1 << 16
_SEND_MAX = 1 << 23


class FollowerOptions:
    """What to follow and how (plain class, not a dataclass: `dataclasses` costs the pod ~10 ms)."""

    def __init__(  # noqa: PLR0913 - an options record: one keyword-only argument per field
        self,
        directory: str,
        files: list[str],
        *,
        targets: dict[str, MirrorTarget] | None = None,
        poll: bool = False,
        recheck_interval: float = 0.5,
        poll_interval: float = 0.1,
        idle_flush: float = 0.5,
        max_line: int = 1 << 20,
        main_exit_file: str | None = None,
    ) -> None:
        # No trailing slash: with one, lstat() and O_NOFOLLOW would resolve a symlink at --dir itself.
        self.directory = directory.rstrip("/") or "/"
        self.files = files
        self.targets = targets if targets is not None else {}
        self.poll = poll
        self.recheck_interval = recheck_interval
        self.poll_interval = poll_interval
        self.idle_flush = idle_flush
        self.max_line = max_line
        #: Stop by ourselves once this file exists (Argo's emissary writes main's exit code there).
        self.main_exit_file = main_exit_file


class _FileState:
    __slots__ = ("fd", "found", "generation", "ident", "last_data", "name", "offset", "pending", "problem")

    def __init__(self, name: str) -> None:
        self.name = name
        self.problem = name_problem(name)  # a name we will never open
        self.fd: int | None = None
        self.ident: tuple[int, int] | None = None
        self.generation = 0  # bumped on every open and truncation: the mirror's "same file" test
        self.offset = 0
        self.pending = bytearray()
        self.last_data = 0.0
        self.found = False


class Follower:
    def __init__(
        self,
        options: FollowerOptions,
        output: Output,
        *,
        log: Any,
        mirror: Mirror | None = None,
        clock: Callable[[], float] = time.monotonic,
        opener: Callable[..., int] = os.open,
        reader: Callable[[int, int, int], bytes] = os.pread,
    ) -> None:
        self.options = options
        self.output = output
        self.log = log
        self.mirror = mirror
        self.clock = clock
        # The two system calls that touch a followed file's contents, injectable to inject faults
        # (EACCES, EIO) that root cannot provoke on a real file.
        self._opener = opener
        self._reader = reader
        # Self-pipe: request_stop() (from the deadline thread) writes to it, the loop select()s on it.
        self._wake_r, self.wake_fd = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self.wake_fd, False)
        self.stop_requested = False
        self.stop_reason: str | None = None
        self.mode = "polling"
        self._inotify: Inotify | None = None
        self._watched: tuple[str, int, int] | None = None
        self._worker = UploadWorker(mirror) if mirror is not None else None
        self._dir_fd: int | None = None
        self._dir_ident: tuple[int, int] | None = None
        self._dir_gone = True
        self._reported: set[tuple[str, ...]] = set()
        self.states = [_FileState(name) for name in options.files]
        for state in self.states:
            if state.problem is not None:
                self._report(
                    ("refused", state.name),
                    SidecarEvent.FILE_REFUSED,
                    file=state.name,
                    directory=options.directory,
                    reason=state.problem,
                )

    def wake(self) -> None:
        """Make the loop re-read now (thread-safe; a full pipe already means a pending wake-up)."""
        with contextlib.suppress(OSError):  # BlockingIOError: a wake-up is already pending
            os.write(self.wake_fd, b"\0")

    def request_stop(self, reason: str = "signal") -> None:
        """Thread-safe: a flag and a pipe write, no locks."""
        if self.stop_reason is None:
            self.stop_reason = reason
        self.stop_requested = True
        self.wake()

    def _report(self, key: tuple[str, ...], event: str, **fields: Any) -> None:
        """A problem that can recur on every turn is reported once."""
        if key not in self._reported:
            self._reported.add(key)
            self.log.warning(event, **fields)

    # -- watching -----------------------------------------------------------------------------
    def start_watching(self) -> None:
        if self.options.poll:
            self.log.info(
                SidecarEvent.WATCHING, directory=self.options.directory, mode="polling", reason="requested"
            )
            return
        try:
            self._inotify = Inotify()
            self._ensure_watch()
            self.mode = "inotify"
            self.log.info(SidecarEvent.WATCHING, directory=self.options.directory, mode="inotify")
        except OSError as exc:
            self._stop_watching()
            self.mode = "polling"
            self.log.warning(
                SidecarEvent.WATCH_FALLBACK_POLLING, directory=self.options.directory, error=error_text(exc)
            )

    def _ensure_watch(self) -> None:
        """Watch the directory, or its nearest existing ancestor until the directory appears (again)."""
        if self._inotify is None:
            return
        target = self.options.directory
        while True:
            try:
                st = os.stat(target)
            except OSError:
                st = None
            if (st is not None and stat.S_ISDIR(st.st_mode)) or target in ("/", ""):
                break
            target = os.path.dirname(target)
        ident = (target, st.st_dev, st.st_ino) if st is not None else (target, 0, 0)
        if ident == self._watched:
            return
        try:
            self._inotify.watch(target)
            self._watched = ident
        except OSError as exc:
            self.log.warning(SidecarEvent.WATCH_FALLBACK_POLLING, directory=target, error=error_text(exc))
            self._stop_watching()
            self.mode = "polling"

    def _stop_watching(self) -> None:
        if self._inotify is not None:
            self._inotify.close()
            self._inotify = None

    # -- the directory ------------------------------------------------------------------------
    def _close_dir(self) -> None:
        if self._dir_fd is not None:
            os.close(self._dir_fd)
        self._dir_fd = None
        self._dir_ident = None

    def _directory(self) -> int | None:
        """A descriptor of --dir as it is now (re-opened when the path names another directory)."""
        directory = self.options.directory
        self._dir_gone = True  # absent or refused: a followed file counts as deleted
        try:
            st = os.stat(directory, follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            self._close_dir()
            return None
        except OSError as exc:
            self._dir_gone = False  # cannot tell: keep following what we have open
            self._report(
                ("dir", error_text(exc)),
                SidecarEvent.DIRECTORY_UNREADABLE,
                directory=directory,
                error=error_text(exc),
            )
            return None
        if self._dir_fd is not None and (st.st_dev, st.st_ino) == self._dir_ident:
            return self._dir_fd
        self._close_dir()
        if not stat.S_ISDIR(st.st_mode):
            self._report(
                ("dir", "refused"),
                SidecarEvent.DIRECTORY_REFUSED,
                directory=directory,
                reason=kind(st.st_mode),
            )
            return None
        try:
            fd = os.open(directory, DIR_FLAGS)
        except FileNotFoundError:
            return None
        except OSError as exc:  # ELOOP/ENOTDIR: swapped for a symlink between the stat and the open
            self._report(
                ("dir", "refused"),
                SidecarEvent.DIRECTORY_REFUSED,
                directory=directory,
                reason=error_text(exc),
            )
            return None
        real = os.fstat(fd)
        self._dir_fd, self._dir_ident = fd, (real.st_dev, real.st_ino)
        return fd

    # -- reading ------------------------------------------------------------------------------
    def _lstat(self, state: _FileState, dir_fd: int | None) -> tuple[os.stat_result | None, bool]:
        """(the name's own stat if it is a regular file, whether we know): unknown keeps what we have."""
        if dir_fd is None:
            return None, self._dir_gone
        try:
            st = os.stat(state.name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return None, True
        except PermissionError as exc:  # no search permission on the directory
            self._report(
                ("dir", error_text(exc)),
                SidecarEvent.DIRECTORY_UNREADABLE,
                directory=self.options.directory,
                error=error_text(exc),
            )
            return None, False
        except OSError as exc:
            self._unreadable(state, exc)
            return None, False
        if not stat.S_ISREG(st.st_mode):
            self._refuse(state, kind(st.st_mode))
            return None, True
        return st, True

    def _refuse(self, state: _FileState, reason: str) -> None:
        self._report(
            ("refused", state.name, reason),
            SidecarEvent.FILE_REFUSED,
            file=state.name,
            directory=self.options.directory,
            reason=reason,
        )

    def _unreadable(self, state: _FileState, exc: OSError, **fields: Any) -> None:
        self._report(
            ("unreadable", state.name, error_text(exc)),
            SidecarEvent.FILE_UNREADABLE,
            file=state.name,
            error=error_text(exc),
            **fields,
        )

    def _open(self, state: _FileState, dir_fd: int) -> None:
        try:
            fd = self._opener(state.name, OPEN_FLAGS, dir_fd=dir_fd)
        except FileNotFoundError:
            return  # gone between the stat and the open
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENXIO):  # swapped for a symlink or a socket meanwhile
                self._refuse(state, "symbolic link" if exc.errno == errno.ELOOP else "socket")
            else:  # EACCES and the like: reported, and tried again on every turn
                self._unreadable(state, exc)
            return
        try:
            real = os.fstat(fd)
        except OSError as exc:
            os.close(fd)
            self._unreadable(state, exc)
            return
        if not stat.S_ISREG(real.st_mode):  # swapped for a FIFO or a device between the stat and the open
            os.close(fd)
            self._refuse(state, kind(real.st_mode))
            return
        state.fd = fd
        state.ident = (real.st_dev, real.st_ino)
        state.offset = 0
        state.generation += 1
        if not state.found:
            state.found = True
            self.log.info(SidecarEvent.FILE_FOUND, file=state.name, size=real.st_size)

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
            if not state.pending and self.output.zero_copy:
                try:
                    sent = self._send_lines(state)
                except OSError as exc:
                    self._unreadable(state, exc, offset=state.offset)
                    return got
                if sent > 0:
                    got = True
                    state.last_data = now
                    continue
            try:
                data = self._reader(state.fd, _CHUNK, state.offset)
            except OSError as exc:  # EIO and the like: reported; the next turn reads from the same offset
                self._unreadable(state, exc, offset=state.offset)
                return got
            if not data:
                return got
            got = True
            state.offset += len(data)
            state.last_data = now
            self._consume(state, data)

    def _send_lines(self, state: _FileState) -> int:
        """Catch-up without copies: the whole lines of a large backlog go from the page cache to stdout
        with sendfile(2), found by looking only at the backlog's last 64 KiB for its last newline.
        Returns the bytes sent; 0 means "read it instead" (a small backlog, a line longer than the
        window, a pseudo-file whose size reads 0, or a stdout sendfile cannot write to)."""
        assert state.fd is not None  # noqa: S101 - only called with an open file
        backlog = min(os.fstat(state.fd).st_size - state.offset, _SEND_MAX)
        if backlog < _SEND_MIN:
            return 0
        window = self._reader(state.fd, _SEND_MIN, state.offset + backlog - _SEND_MIN)
        cut = window.rfind(b"\n") + 1
        if not cut or len(window) < _SEND_MIN:
            return 0
        length = backlog - (len(window) - cut)
        sent = self.output.send(state.fd, state.offset, length)
        state.offset += sent
        return sent

    def _consume(self, state: _FileState, data: bytes) -> None:
        """Whole lines go out straight from the chunk (no copies); only a line's unfinished end is kept."""
        pending = state.pending
        start = 0
        if pending:
            nl = data.find(b"\n")
            if nl < 0:
                pending += data
                self._split_long(state)
                return
            pending += memoryview(data)[: nl + 1]  # the kept line's end: it goes out whole
            self.output.emit(state.name, pending, complete=True)
            pending.clear()
            start = nl + 1
        cut = data.rfind(b"\n", start) + 1
        if cut > start:
            self.output.emit(state.name, data, start, cut, complete=True)
            start = cut
        if start < len(data):
            pending += memoryview(data)[start:]
            self._split_long(state)

    def _split_long(self, state: _FileState) -> None:
        pending = state.pending
        limit = self.options.max_line
        while len(pending) >= limit:  # a line longer than the bound: split, never drop
            self.output.emit(state.name, pending, 0, limit, complete=False)
            del pending[:limit]

    def _flush_pending(self, state: _FileState) -> None:
        if state.pending:
            self.output.emit(state.name, state.pending, complete=False)
            state.pending.clear()

    def _truncated(self, state: _FileState) -> bool:
        """Shorter than what we read, for real: a pseudo-file (procfs, size 0) still has the byte before."""
        assert state.fd is not None  # noqa: S101 - only called with an open file
        size = os.fstat(state.fd).st_size
        if size >= state.offset:
            return False
        try:
            return not os.pread(state.fd, 1, state.offset - 1)
        except OSError:
            return False

    def check(self, state: _FileState, now: float, *, final: bool = False) -> None:
        """Bring one file up to date: open, detect truncation/replacement/deletion, read to EOF."""
        dir_fd = self._directory() if state.problem is None else None
        st, known = self._lstat(state, dir_fd)
        if state.fd is not None and known:
            current = (st.st_dev, st.st_ino) if st is not None else None
            if current != state.ident:
                # Deleted or replaced: what was written to the old file still comes out first.
                self._read_to_eof(state, now)
                self._flush_pending(state)
                self._upload(state, force=True)
                self.log.info(
                    SidecarEvent.FILE_REPLACED if current else SidecarEvent.FILE_DELETED, file=state.name
                )
                self._close(state)
            elif self._truncated(state):
                self._flush_pending(state)
                self.log.info(SidecarEvent.FILE_TRUNCATED, file=state.name, offset=state.offset)
                state.offset = 0
                state.generation += 1
        if state.fd is None and st is not None and dir_fd is not None:
            self._open(state, dir_fd)
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
        if force:
            if self.stop_requested or not self.mirror.needs_upload(target, state.offset, state.generation):
                return  # the final upload runs synchronously in shutdown()
        elif not self.mirror.claim(
            target, generation=state.generation, length=state.offset, now=self.clock()
        ):
            return
        self._worker.submit(target, state.fd, state.offset, state.generation)

    # -- the loop -----------------------------------------------------------------------------
    def main_exited(self) -> bool:
        path = self.options.main_exit_file
        return bool(path) and os.path.lexists(path)  # type: ignore[arg-type]

    def turn(self, now: float | None = None) -> None:
        """One pass over every file (what the loop does on each wake-up)."""
        now = self.clock() if now is None else now
        for state in self.states:
            try:
                self.check(state, now)
            except OSError as exc:  # never end live streaming for one failed system call
                self._unreadable(state, exc)
        if not self.stop_requested and self.main_exited():
            self.log.info(SidecarEvent.MAIN_EXITED, path=self.options.main_exit_file)
            self.request_stop("main_exited")

    def run(self) -> None:
        while not self.stop_requested:
            self.turn()
            if self.stop_requested:
                break
            self._ensure_watch()
            # The mode can fall back to polling mid-run, so the interval is chosen on every turn.
            timeout = self.options.poll_interval if self.mode == "polling" else self.options.recheck_interval
            if any(s.pending for s in self.states):
                timeout = min(timeout, self.options.idle_flush / 2)
            waits = [self._wake_r] if self._inotify is None else [self._wake_r, self._inotify.fd]
            readable, _, _ = select.select(waits, [], [], timeout)
            for fd in readable:  # what woke us does not matter: every turn re-reads every file
                drain(fd)

    def shutdown(self, deadline: float) -> None:
        """Read every file to its end, flush, run the final upload; all before `deadline`."""
        self._stop_watching()
        now = self.clock()
        for state in self.states:
            try:
                self.check(state, now, final=True)
            except OSError as exc:
                self.log.warning(SidecarEvent.FINAL_READ_FAILED, file=state.name, error=error_text(exc))
        if self._worker is not None:
            self._worker.drain(deadline)
        if self.mirror is not None:
            for state in self.states:
                target = self.options.targets.get(state.name)
                if target is not None and state.fd is not None and time.monotonic() < deadline:
                    self.mirror.upload(
                        target, state.fd, state.offset, generation=state.generation, deadline=deadline
                    )
        for state in self.states:
            self._close(state)
        self._close_dir()
