"""`elyra-sidecar tail` / `python -m elyra_sidecar.sidecar`: the process in the pod.

Exit status is 0 for everything that happens at run time (storage down, file never appears, bad
credentials, SIGTERM, the shutdown deadline): the sidecar never fails the step. Only a malformed
command line is a usage error (2), which the transformer never writes. See docs/sidecar.md.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import select
import signal
import sys
import threading
import time

from elyra_sidecar import contract, diagnostics
from elyra_sidecar._argtypes import positive_number
from elyra_sidecar.contract import SidecarEvent
from elyra_sidecar.sidecar._follow import Follower, FollowerOptions, Output

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs every step pod's start-up time and memory: annotations only
    from collections.abc import Callable, Sequence
    from types import FrameType
    from typing import Any

    from elyra_sidecar.sidecar._mirror import Mirror, MirrorTarget

__all__ = ["main", "parser"]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="elyra-sidecar tail",
        # A fixed width: argparse would import shutil (and with it bz2 and lzma) to ask the terminal,
        # on every start of every step pod, although only --help prints anything.
        formatter_class=lambda prog: argparse.HelpFormatter(
            prog, width=int(os.environ.get("COLUMNS", "100"))
        ),
        description="Follow an Elyra step's script log: stream it to stdout byte for byte and mirror it "
        "to object storage. Credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, else from "
        "AWS_ROLE_ARN / AWS_WEB_IDENTITY_TOKEN_FILE (IRSA: AssumeRoleWithWebIdentity).",
    )
    p.add_argument(contract.ARG_DIR, required=True, help="directory holding the files")
    p.add_argument(
        contract.ARG_FILE,
        action="append",
        required=True,
        dest="files",
        help="file name to follow (repeatable)",
    )
    p.add_argument(contract.ARG_ENDPOINT, help="object storage endpoint URL")
    p.add_argument(contract.ARG_BUCKET, help="bucket")
    p.add_argument(
        contract.ARG_KEY,
        action="append",
        default=[],
        dest="keys",
        help="object key for the n-th --file (repeatable)",
    )
    p.add_argument(contract.ARG_UPLOAD_INTERVAL, type=positive_number, default=5.0, dest="upload_interval")
    p.add_argument(
        contract.ARG_SHUTDOWN_DEADLINE, type=positive_number, default=10.0, dest="shutdown_deadline"
    )
    p.add_argument(contract.ARG_FORMAT, choices=("raw", "json"), default="raw", dest="format")
    p.add_argument(contract.ARG_CA_BUNDLE, dest="ca_bundle")
    p.add_argument(contract.ARG_POLL, action="store_true", dest="poll", help="poll instead of inotify")
    p.add_argument(
        "--idle-flush",
        type=positive_number,
        default=0.5,
        dest="idle_flush",
        help="emit a final line without newline after this many idle seconds",
    )
    p.add_argument(
        "--max-line",
        type=int,
        default=1 << 20,
        dest="max_line",
        help="split lines longer than this many bytes",
    )
    p.add_argument(
        contract.ARG_MAIN_EXIT_FILE,
        dest="main_exit_file",
        metavar="PATH",
        help="stop by ourselves (drain, final upload, exit 0) once this file exists, e.g. "
        "/var/run/argo/ctr/main/exitcode (written by Argo's emissary when main exits)",
    )
    p.add_argument("--diagnostics", choices=("auto", "json", "console"), default="auto")
    return p


def _mirror(
    args: argparse.Namespace, log: diagnostics.PodLogger
) -> tuple[Mirror | None, dict[str, MirrorTarget]]:
    if not args.keys:
        return None, {}
    # minio, urllib3 and ssl only when mirroring; stdlib loggers (minio, urllib3) then use our renderer.
    from elyra_sidecar.sidecar._mirror import Mirror, MirrorTarget, make_client  # noqa: PLC0415

    diagnostics.route_stdlib_logging(log, SidecarEvent.LIBRARY_MESSAGE)
    if not args.endpoint or not args.bucket:
        log.warning(SidecarEvent.MIRROR_DISABLED, reason="--key given without --endpoint and --bucket")
        return None, {}
    if len(args.keys) != len(args.files):
        log.warning(SidecarEvent.MIRROR_DISABLED, reason="the number of --key and --file differ")
        return None, {}
    # As Elyra's bootstrapper: the keys when both are set, else IRSA / web identity.
    keys = bool(os.environ.get("AWS_ACCESS_KEY_ID") and os.environ.get("AWS_SECRET_ACCESS_KEY"))
    web_identity = all(os.environ.get(name) for name in contract.WEB_IDENTITY_ENV)
    if not keys and not web_identity:
        log.warning(
            SidecarEvent.MIRROR_DISABLED,
            reason="neither AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY nor AWS_ROLE_ARN and "
            "AWS_WEB_IDENTITY_TOKEN_FILE are set",
        )
        return None, {}
    try:
        client = make_client(args.endpoint, ca_bundle=args.ca_bundle, web_identity=not keys)
    except Exception as exc:
        log.warning(SidecarEvent.MIRROR_DISABLED, reason=f"{type(exc).__name__}: {exc}")
        return None, {}
    targets = {name: MirrorTarget(args.bucket, key) for name, key in zip(args.files, args.keys, strict=True)}
    return Mirror(client, interval=args.upload_interval, log=log), targets


class _Stopper:
    """Turns a stop request into a hard deadline that holds whatever the main thread is blocked in.

    Python runs signal handlers in the main thread only, between bytecodes: a main thread stuck in
    `write` to a stdout nobody reads (or in any other system call) would never run one. So the handlers
    do nothing themselves; the C-level handler writes the signal number to a pipe (signal.set_wakeup_fd,
    whichever thread the kernel picked), and a thread of ours reads it, asks the follower to stop and, at
    the deadline, logs the summary and ends the process with 0.
    """

    def __init__(self, seconds: float, log: Any) -> None:
        self._seconds = seconds
        self._log = log
        self._r, self._w = os.pipe()
        os.set_blocking(self._w, False)
        self.reason: str | None = None
        self.deadline: float | None = None  # monotonic; set once, when the first stop request arrives
        self.follower: Follower | None = None
        self.summary: Callable[..., None] = lambda **_: None

    def install(self) -> None:
        signal.set_wakeup_fd(self._w, warn_on_full_buffer=False)
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, _ignore)
        threading.Thread(target=self._watch, name="deadline", daemon=True).start()

    def attach(self, follower: Follower) -> None:
        self.follower = follower
        if self.reason is not None:
            follower.request_stop(self.reason)

    def request(self, reason: str) -> None:
        """Start the deadline now (from the main thread: main exited, or the loop ended)."""
        if self.reason is None:
            self.reason = reason
        self.arm()
        with contextlib.suppress(OSError):  # a full pipe: a stop is already on its way
            os.write(self._w, b"\0")

    def arm(self) -> float:
        if self.deadline is None:
            self.deadline = time.monotonic() + self._seconds
        return self.deadline

    @property
    def margin(self) -> float:
        """Time kept at the end of the deadline for the summary line."""
        return min(0.5, self._seconds / 10)

    def _watch(self) -> None:
        data = os.read(self._r, 64)
        signum = next((b for b in data if b), 0)
        if self.reason is None:
            self.reason = signal.Signals(signum).name if signum else "stopped"
        deadline = self.arm()
        follower = self.follower
        if follower is not None:
            follower.request_stop(self.reason)
        # Leave the last moments to the summary line, so the exit itself is on time.
        while (left := deadline - self.margin - time.monotonic()) > 0:
            select.select([self._r], [], [], left)
            with contextlib.suppress(BlockingIOError):
                os.set_blocking(self._r, False)
                os.read(self._r, 64)  # a second SIGTERM changes nothing: the deadline stands
        done = threading.Thread(target=self._last_words, daemon=True)
        done.start()
        done.join(timeout=max(0.0, deadline - time.monotonic()))
        os._exit(0)

    def _last_words(self) -> None:
        self._log.warning(SidecarEvent.SHUTDOWN_DEADLINE_REACHED, seconds=self._seconds)
        self.summary(deadline_reached=True)


def _ignore(_signum: int, _frame: FrameType | None) -> None:
    """Installed so the C-level handler (and the wake-up pipe) sees SIGTERM/SIGINT; _Stopper acts."""


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    log = diagnostics.pod_logger(json_output={"auto": None, "json": True, "console": False}[args.diagnostics])
    try:
        _run(args, log)
    except Exception as exc:  # whatever breaks at run time, the step is not failed by its sidecar
        log.exception(SidecarEvent.SIDECAR_FAILED, error=type(exc).__name__)
    return 0


def _run(args: argparse.Namespace, log: diagnostics.PodLogger) -> None:
    started = time.monotonic()
    # First, so a SIGTERM during start-up is not lost (the default action would kill us silently).
    stopper = _Stopper(args.shutdown_deadline, log)
    stopper.install()

    mirror, targets = _mirror(args, log)
    options = FollowerOptions(
        directory=args.dir,
        files=args.files,
        targets=targets,
        poll=args.poll,
        idle_flush=args.idle_flush,
        max_line=max(1, args.max_line),
        main_exit_file=args.main_exit_file,
    )
    follower = Follower(
        options, Output(sys.stdout.fileno(), fmt=args.format, log=log), log=log, mirror=mirror
    )
    summarised = threading.Lock()

    def summary(*, deadline_reached: bool = False) -> None:
        if not summarised.acquire(blocking=False):
            return  # once: from the main thread, or from the deadline if that comes first
        log.info(
            SidecarEvent.SIDECAR_STOPPED,
            reason=follower.stop_reason or stopper.reason,
            lines=follower.output.lines,
            bytes=follower.output.bytes_written,
            stdout_dropped=follower.output.dropped,
            uploads=mirror.uploads if mirror else 0,
            upload_failures=mirror.failures if mirror else 0,
            uploaded_bytes=mirror.bytes_sent if mirror else 0,
            found=[s.name for s in follower.states if s.found],
            deadline_reached=deadline_reached,
            seconds=round(time.monotonic() - started, 3),
        )

    stopper.summary = summary
    stopper.attach(follower)
    log.info(
        SidecarEvent.SIDECAR_STARTED,
        directory=args.dir,
        files=args.files,
        mirror=bool(targets),
        pid=os.getpid(),
    )
    follower.start_watching()
    try:
        follower.run()
    except Exception as exc:  # never fail the step: report, then still drain what we can
        log.exception(SidecarEvent.FOLLOW_FAILED, error=f"{type(exc).__name__}: {exc}")
    stopper.request(follower.stop_reason or "stopped")  # the deadline runs from here at the latest
    deadline = stopper.arm() - stopper.margin  # set by the signal, or just now
    try:
        follower.shutdown(deadline)
    except Exception as exc:
        log.exception(SidecarEvent.SHUTDOWN_FAILED, error=f"{type(exc).__name__}: {exc}")
    summary()
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.flush()  # here, while the deadline still runs, not in the interpreter's exit


if __name__ == "__main__":
    sys.exit(main())
