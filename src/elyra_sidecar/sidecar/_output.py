"""The sidecar's stdout: the followed bytes as they are (raw, sendfile where it can) or as JSON records."""

from __future__ import annotations

import errno
import json
import os
import select
import stat

from elyra_sidecar.contract import SidecarEvent
from elyra_sidecar.sidecar._files import error_text

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing stays out of the pod's start-up (see tail.py)
    from typing import Any

__all__ = ["Output"]


def _grow_pipe(fd: int) -> None:
    """A bigger pipe buffer when stdout is a pipe (as under a container runtime): fewer writes, no loss."""
    try:
        if stat.S_ISFIFO(os.fstat(fd).st_mode):
            import fcntl  # noqa: PLC0415 - Linux only

            fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)
    except OSError:
        pass  # the system limit may be lower: the default size works, only slower


class Output:
    """Writes records to a file descriptor whole (looping over partial writes); one writer thread.

    A broken stdout (EPIPE, EIO, a closed descriptor) is reported once; what follows is counted and
    dropped, so the follower keeps reading and the mirror keeps the object in step with the file.
    """

    def __init__(self, fd: int, *, fmt: str, log: Any = None) -> None:
        self._fd = fd
        self._json = fmt == "json"
        self._log = log
        self.bytes_written = 0
        # Lines are counted in json mode only: counting newlines in raw mode was a quarter of the CPU
        # time of a catch-up (bytes.count runs at ~1 GB/s), for a number in the summary.
        self.lines: int | None = 0 if self._json else None
        self.broken = False
        self.dropped = 0
        #: sendfile(2) from a followed file to this descriptor (raw format only; off once it fails).
        self.zero_copy = not self._json
        _grow_pipe(fd)

    def send(self, in_fd: int, offset: int, count: int) -> int:
        """`count` bytes of `in_fd` from `offset`, file to stdout in the kernel. Returns the bytes
        accounted for (sent, or dropped on a broken stdout); 0 when sendfile cannot write here."""
        if self.broken:
            self.dropped += count
            return count
        done = 0
        while done < count:
            try:
                n = os.sendfile(self._fd, in_fd, offset + done, count - done)
            except BlockingIOError:
                select.select([], [self._fd], [], 1.0)
                continue
            except OSError as exc:
                if done == 0 and exc.errno in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                    self.zero_copy = False  # e.g. a terminal on an older kernel: write() from now on
                    return 0
                self._broke(exc)
                self.dropped += count - done
                return count
            if n == 0:  # the file shrank under us: what was sent is what there is
                break
            done += n
            self.bytes_written += n
        return done

    def _broke(self, exc: OSError) -> None:
        self.broken = True
        if self._log is not None:
            self._log.warning(SidecarEvent.STDOUT_FAILED, error=error_text(exc), written=self.bytes_written)

    def _write_all(self, data: bytes | memoryview) -> None:
        if self.broken:
            self.dropped += len(data)
            return
        view = memoryview(data)
        while view:
            try:
                n = os.write(self._fd, view)
            except BlockingIOError:  # an inherited non-blocking stdout: wait until it takes more
                select.select([], [self._fd], [], 1.0)
                continue
            except OSError as exc:
                self._broke(exc)
                self.dropped += len(view)
                return
            view = view[n:]
            self.bytes_written += n

    def emit(
        self, name: str, data: bytes | bytearray, start: int = 0, end: int | None = None, *, complete: bool
    ) -> None:
        """`data[start:end]` is whole lines (complete) or one piece of a line (a split long line, or an
        idle tail). Given as a range so a 1 MiB chunk is never copied on its way to stdout."""
        end = len(data) if end is None else end
        if end <= start:
            return
        if not self._json:
            self._write_all(memoryview(data)[start:end])
            return
        records = []
        lines = bytes(data[start:end]).split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()
        for i, line in enumerate(lines):
            record: dict[str, Any] = {"file": name, "line": line.decode("utf-8", errors="replace")}
            if not complete and i == len(lines) - 1:
                record["partial"] = True
            records.append(json.dumps(record, ensure_ascii=False))
        self.lines = (self.lines or 0) + len(records)
        self._write_all(("\n".join(records) + "\n").encode("utf-8"))
