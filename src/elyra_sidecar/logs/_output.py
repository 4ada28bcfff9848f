"""Printing a run's lines: prefixes made safe, whole lines from many threads, the sidecar's records decoded.

The script's bytes are printed as they are; everything this command adds (a node's name, a note on stderr)
comes from the cluster and could be hostile, so control and format characters are shown escaped there.
"""

from __future__ import annotations

import json
import os
import re
import threading
import unicodedata
from collections.abc import Iterable

from elyra_sidecar import contract

__all__ = ["LineSplitter", "LogDecoder", "Printer", "error_line", "sanitize"]

_MAX_LABEL = 80
_MAX_NOTE = 2000  # characters of a note or an `Error:` line
#: Unicode categories that can move the cursor, hide text or start a new line on a terminal.
_UNSAFE = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_LEVELS = frozenset({"debug", "info", "warning", "error", "critical"})
_TIMESTAMP = re.compile(rb"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def sanitize(text: str, *, limit: int = _MAX_LABEL) -> str:
    """`text` with every control, format or line-separator character shown as an escape, cut to `limit`."""
    out = []
    for char in text:
        if unicodedata.category(char) in _UNSAFE:
            code = ord(char)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(char)
    safe = "".join(out)
    return safe if len(safe) <= limit else safe[: limit - 3] + "..."


def error_line(message: str) -> str:
    """The `Error:` line for a message that may quote the cluster: one line, controls escaped."""
    return f"Error: {sanitize(message, limit=_MAX_NOTE)}\n"


class LineSplitter:
    """Chunks in, complete lines out (without their newline); the unfinished rest is kept as `tail`.

    Linear in the bytes fed: each chunk is scanned once, and an unfinished line is kept as its pieces,
    joined once when its newline comes (joining the rest to every new chunk made a long line quadratic).
    """

    def __init__(self) -> None:
        self._pieces: list[bytes] = []

    @property
    def tail(self) -> bytes:
        if len(self._pieces) > 1:
            self._pieces = [b"".join(self._pieces)]
        return self._pieces[0] if self._pieces else b""

    def feed(self, chunk: bytes) -> list[bytes]:
        if b"\n" not in chunk:
            if chunk:
                self._pieces.append(chunk)
            return []
        lines = chunk.split(b"\n")
        if self._pieces:
            lines[0] = b"".join([*self._pieces, lines[0]])
        last = lines.pop()
        self._pieces = [last] if last else []
        return lines


class LogDecoder:
    """One pod-log line to the line to print: kubelet timestamp kept or not, sidecar records dropped,
    `--format json` records unwrapped (a split long line is joined again)."""

    def __init__(self, *, log_format: str, timestamps: bool) -> None:
        self._json = log_format == "json"
        self._timestamps = timestamps
        self._pending: list[str] = []

    def decode(self, raw: bytes) -> bytes | None:
        stamp, content = b"", raw
        if self._timestamps:
            head, sep, rest = raw.partition(b" ")
            if sep and _TIMESTAMP.match(head):
                stamp, content = head + b" ", rest
        record = _json_object(content)
        if record is not None and _is_sidecar_record(record):
            return None
        piece = record.get("line") if record is not None else None
        if self._json and record is not None and isinstance(piece, str):
            self._pending.append(piece)
            if record.get("partial"):
                return None
            line, self._pending = "".join(self._pending), []
            return stamp + line.encode("utf-8")
        return stamp + content


def _json_object(content: bytes) -> dict[str, object] | None:
    if not (content.startswith(b"{") and content.endswith(b"}")):
        return None
    try:
        value = json.loads(content)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _is_sidecar_record(record: dict[str, object]) -> bool:
    stamp = record.get("timestamp")
    return (
        # Only the sidecar's own event names (the contract's list): a user's JSON log lines are never dropped.
        record.get("event") in contract.SIDECAR_EVENTS
        and record.get("level") in _LEVELS
        and isinstance(stamp, str)
        and bool(_TIMESTAMP.match(stamp.encode()))
        and "line" not in record
    )


class Printer:
    """Writes whole prefixed lines to stdout and notes to stderr, from any thread, never interleaving a line.

    Plain `os.write` on the descriptors: a follower thread still writing when Ctrl-C ends the program
    must not hold the lock of a buffered `sys.stdout` at interpreter shutdown.
    """

    def __init__(self, *, prefix: bool, out: int = 1, err: int = 2) -> None:
        self._prefix = prefix
        self._out = out
        self._err = err
        self._lock = threading.Lock()
        self.closed = False

    def lines(self, label: str, lines: Iterable[bytes]) -> None:
        head = f"[{label}] ".encode() if self._prefix else b""
        data = b"".join(head + line + b"\n" for line in lines)
        if data:
            self._write(self._out, data)

    def note(self, text: str) -> None:
        """A line on stderr; whatever in it came from the cluster is shown escaped (as in every note)."""
        safe = sanitize(text.rstrip("\n"), limit=_MAX_NOTE)
        self._write(self._err, (safe + "\n").encode("utf-8", errors="replace"))

    def _write(self, fd: int, data: bytes) -> None:
        with self._lock:
            if self.closed:
                return
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
