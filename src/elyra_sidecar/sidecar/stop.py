"""`elyra-sidecar stop [--signal N]`: the command Argo runs to stop an injected `elyra-log` container.

Argo stops a container it did not create itself by running a command inside it (`kubectl exec`):
`/bin/sh -c "kill -%d 1"`, unless the pod annotation `workflows.argoproj.io/kill-cmd-<container>` names
another command (a JSON array, `%d` replaced by the signal number). The sidecar image need not have a shell,
so the webhook's Pod mode names this command instead: it sends the signal to the `elyra-sidecar tail`
process, which is PID 1 of its container (its command is exec'd directly, nothing wraps it). When PID 1 is
something else (a Pod sharing one process namespace, or a wrapper such as tini), the tail processes are
found in /proc instead; PID 1 is then never signalled, because it may be the Pod's pause process.

In a shared process namespace every container's processes are visible, and any of them may carry the
words `elyra-sidecar tail` in its arguments (`sleep 1 elyra-sidecar tail`), or even run our tail itself.
A process is only signalled when both hold:

- its command line has the exact shape of our tail: `elyra-sidecar tail ...`, `PYTHON [flags]
  .../elyra-sidecar tail ...` (a console script run through its `#!` line), `PYTHON [flags] -m
  elyra_sidecar tail ...` or `PYTHON [flags] -m elyra_sidecar.sidecar ...`, from the first word on;
- it lives in this command's own mount namespace (`/proc/PID/ns/mnt`), that is in this container:
  Argo runs the kill command inside `elyra-log`, and another container of the Pod (the user's main) always
  has a mount namespace of its own. A process whose namespace we may not read (another user's) is not
  ours either.

Exit 0 once a tail process was signalled; 1 with an `Error:` line when none was found or the signal could
not be sent (Argo only logs the output; the sidecar still stops on its own when main's exit-code file
appears).
"""

from __future__ import annotations

import argparse
import os
import posixpath
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from elyra_sidecar import contract

__all__ = ["find_tail_processes", "is_tail_command", "main", "parser"]

_PROC = Path("/proc")


#: Python options that take the next word as their value (`-W error`, `-X dev`); others stand alone.
_PYTHON_VALUE_OPTIONS = frozenset({"-W", "-X", "--check-hash-based-pycs"})


def _is_python(word: str) -> bool:
    name = posixpath.basename(word)
    return name.startswith("python") and all(c.isdigit() or c == "." for c in name[len("python") :])


def is_tail_command(argv: Sequence[str]) -> bool:
    """True for the command line of an `elyra-sidecar tail` process, however it was started; only the
    exact shapes (see the module's docstring), read from the first word: our words anywhere else in the
    arguments (`sleep 1 elyra-sidecar tail`, `python -c CODE elyra-sidecar tail`) do not count."""
    if not argv:
        return False
    if posixpath.basename(argv[0]) == "elyra-sidecar":
        return list(argv[1:2]) == [contract.TAIL_COMMAND]
    if not _is_python(argv[0]):
        return False
    index = 1
    while index < len(argv) and argv[index].startswith("-") and argv[index] not in ("-", "-m", "-c"):
        index += 2 if argv[index] in _PYTHON_VALUE_OPTIONS else 1
    rest = list(argv[index : index + 3])
    if rest[:1] == ["-m"]:
        return rest[1:] == ["elyra_sidecar", contract.TAIL_COMMAND] or rest[1:2] == ["elyra_sidecar.sidecar"]
    return (
        len(rest) >= 2 and posixpath.basename(rest[0]) == "elyra-sidecar" and rest[1] == contract.TAIL_COMMAND
    )


def _cmdline(pid: int | str, proc: Path) -> list[str]:
    try:
        raw = (proc / str(pid) / "cmdline").read_bytes()
    except OSError:  # gone, or not ours to read
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _mount_namespace(pid: int | str, proc: Path) -> str | None:
    """`mnt:[4026532301]`, or None when the process is gone or not ours to inspect (another user's)."""
    try:
        return str((proc / str(pid) / "ns" / "mnt").readlink())
    except OSError:
        return None


def _is_our_tail(pid: int, proc: Path, namespace: str | None) -> bool:
    return (
        namespace is not None
        and is_tail_command(_cmdline(pid, proc))
        and _mount_namespace(pid, proc) == namespace
    )


def find_tail_processes(proc: Path = _PROC) -> list[int]:
    """PID 1 when it is the tail (the normal case), else every tail process of this container (this
    mount namespace) visible in `proc`."""
    namespace = _mount_namespace("self", proc)
    if _is_our_tail(1, proc, namespace):
        return [1]
    own = os.getpid()
    pids = (int(entry.name) for entry in proc.iterdir() if entry.name.isdigit())
    return sorted(pid for pid in pids if pid not in (1, own) and _is_our_tail(pid, proc, namespace))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="elyra-sidecar stop",
        description="Send a signal to this container's `elyra-sidecar tail` process (Argo's kill command).",
    )
    p.add_argument(
        contract.ARG_STOP_SIGNAL,
        type=int,
        default=int(signal.SIGTERM),
        help="signal number (Argo passes 15, then 9)",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    pids = find_tail_processes()
    if not pids:
        sys.stderr.write("Error: no `elyra-sidecar tail` process in this container\n")
        return 1
    failed = []
    for pid in pids:
        try:
            os.kill(pid, args.signal)
        except OSError as exc:
            failed.append(f"pid {pid}: {exc.strerror or exc}")
    if failed:
        sys.stderr.write(f"Error: cannot send signal {args.signal}: {'; '.join(failed)}\n")
        return 1
    sys.stderr.write(f"sent signal {args.signal} to pid {', '.join(map(str, pids))}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
