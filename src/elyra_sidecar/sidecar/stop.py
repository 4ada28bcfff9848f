"""`elyra-sidecar stop [--signal N]`: the command Argo runs to stop an injected `elyra-log` container.

Argo stops a container it did not create itself by running a command inside it (`kubectl exec`):
`/bin/sh -c "kill -%d 1"`, unless the pod annotation `workflows.argoproj.io/kill-cmd-<container>` names
another command (a JSON array, `%d` replaced by the signal number). The sidecar image need not have a shell,
so the webhook's Pod mode names this command instead: it sends the signal to the `elyra-sidecar tail`
process, which is PID 1 of its container (its command is exec'd directly, nothing wraps it). When PID 1 is
something else (a Pod sharing one process namespace, or a wrapper such as tini), the tail processes are
found in /proc instead; PID 1 is then never signalled, because it may be the Pod's pause process.

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


def is_tail_command(argv: Sequence[str]) -> bool:
    """True for the command line of an `elyra-sidecar tail` process, however it was started."""
    for index, arg in enumerate(argv):
        rest = list(argv[index + 1 : index + 3])
        if posixpath.basename(arg) == "elyra-sidecar" and rest[:1] == [contract.TAIL_COMMAND]:
            return True
        if arg == "-m" and (
            rest == ["elyra_sidecar", contract.TAIL_COMMAND] or rest[:1] == ["elyra_sidecar.sidecar"]
        ):
            return True
    return False


def _cmdline(pid: int, proc: Path) -> list[str]:
    try:
        raw = (proc / str(pid) / "cmdline").read_bytes()
    except OSError:  # gone, or not ours to read
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def find_tail_processes(proc: Path = _PROC) -> list[int]:
    """PID 1 when it is the tail (the normal case), else every tail process visible in `proc`."""
    if is_tail_command(_cmdline(1, proc)):
        return [1]
    own = os.getpid()
    pids = (int(entry.name) for entry in proc.iterdir() if entry.name.isdigit())
    return sorted(pid for pid in pids if pid not in (1, own) and is_tail_command(_cmdline(pid, proc)))


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
