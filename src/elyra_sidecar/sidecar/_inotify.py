"""inotify on the followed directory: a descriptor the follow loop's select() waits on, nothing more."""

from __future__ import annotations

import contextlib
import os

__all__ = ["Inotify", "drain"]


def drain(fd: int) -> None:
    """Read the pending events away (they only wake the loop: every turn re-reads every file)."""
    with contextlib.suppress(BlockingIOError):
        while os.read(fd, 65536):
            pass


class Inotify:
    """A non-blocking inotify descriptor on one directory, read by the follow loop's select().

    Our own few lines instead of watchdog: no observer and emitter threads, no event queue that drops
    overflow silently (an overflow is one more wake-up here: every turn re-reads every file), and no
    ~5 MiB of imports in every step pod. Events only wake the loop; the periodic re-check stays.
    """

    _IN_CLOEXEC = os.O_CLOEXEC
    _IN_NONBLOCK = os.O_NONBLOCK
    # IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE |
    # IN_DELETE_SELF | IN_MOVE_SELF, and IN_ONLYDIR | IN_DONT_FOLLOW: a directory, never through a link.
    _MASK = 0x2 | 0x4 | 0x8 | 0x40 | 0x80 | 0x100 | 0x200 | 0x400 | 0x800 | 0x01000000 | 0x02000000

    def __init__(self) -> None:
        import ctypes  # noqa: PLC0415 - only in inotify mode

        libc = ctypes.CDLL(None, use_errno=True)
        self._ctypes = ctypes
        self._add = libc.inotify_add_watch
        self._add.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32)
        self._rm = libc.inotify_rm_watch
        self._rm.argtypes = (ctypes.c_int, ctypes.c_int)
        fd = libc.inotify_init1(self._IN_NONBLOCK | self._IN_CLOEXEC)
        if fd < 0:
            raise self._oserror()
        self.fd: int = fd
        self._wd = -1

    def _oserror(self) -> OSError:
        code = self._ctypes.get_errno()
        return OSError(code, os.strerror(code))

    def watch(self, path: str) -> None:
        """Watch `path` instead of what was watched before."""
        wd = self._add(self.fd, os.fsencode(path), self._MASK)
        if wd < 0:
            raise self._oserror()
        if self._wd >= 0 and self._wd != wd:
            self._rm(self.fd, self._wd)  # gone already if the directory was deleted: harmless
        self._wd = wd

    def close(self) -> None:
        os.close(self.fd)
