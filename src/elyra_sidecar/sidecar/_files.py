"""What the sidecar may read in `--dir`: the directory is the user script's, so all in it is untrusted.

Only regular files directly inside the directory: names are plain (no `/`, not `.` or `..`), files are
opened relative to a descriptor of the directory with O_NOFOLLOW (a symlink to /proc/self/environ would
print the sidecar's own credentials) and O_NONBLOCK (a FIFO would block the open forever), and the opened
descriptor must be a regular file. Anything else is reported once (`file_refused`) and never read.
"""

from __future__ import annotations

import errno
import os
import stat

__all__ = ["DIR_FLAGS", "OPEN_FLAGS", "error_text", "kind", "name_problem"]

OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
# O_PATH: a handle for openat() that needs no read permission on the directory itself (a 0311 directory
# still lets us open the files we know by name, as plain paths did).
DIR_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def name_problem(name: str) -> str | None:
    """Why `name` is not a plain file name directly inside the directory, or None."""
    if not name or name in (".", ".."):
        return "not a file name"
    if "/" in name or "\0" in name:
        return "not a plain file name (contains '/' or NUL)"
    return None


def kind(mode: int) -> str:
    for test, kind in (
        (stat.S_ISLNK, "symbolic link"),
        (stat.S_ISFIFO, "named pipe"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISDIR, "directory"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
    ):
        if test(mode):
            return kind
    return "not a regular file"


def error_text(exc: OSError) -> str:
    """An OSError as its class and errno name: no file contents, no paths we did not choose."""
    name = errno.errorcode.get(exc.errno or 0, str(exc.errno))
    return f"{type(exc).__name__} {name}"
