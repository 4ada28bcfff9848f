"""`elyra-sidecar tail` / `python -m sidecar`: the process in the pod.

Exit status is 0 for everything that happens at run time (storage down, file never appears, bad
credentials, SIGTERM): the sidecar never fails the user's step. Only a malformed command line is a
usage error (2), which the transformer never writes.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from types import FrameType

from elyra_sidecar import contract, diagnostics
from elyra_sidecar.sidecar._follow import Follower, FollowerOptions, Output
from elyra_sidecar.sidecar._mirror import Mirror, MirrorTarget, make_client

__all__ = ["main", "parser"]


def _positive(value: str) -> float:
    number = float(value)
    if number <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return number


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="elyra-sidecar tail",
        description="Follow an Elyra step's script log: stream it to stdout byte for byte and mirror it "
        "to object storage. Credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY.",
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
    p.add_argument(contract.ARG_UPLOAD_INTERVAL, type=_positive, default=5.0, dest="upload_interval")
    p.add_argument(contract.ARG_SHUTDOWN_DEADLINE, type=_positive, default=10.0, dest="shutdown_deadline")
    p.add_argument(contract.ARG_FORMAT, choices=("raw", "json"), default="raw", dest="format")
    p.add_argument(contract.ARG_CA_BUNDLE, dest="ca_bundle")
    p.add_argument(contract.ARG_POLL, action="store_true", dest="poll", help="poll instead of inotify")
    p.add_argument(
        "--idle-flush",
        type=_positive,
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
    p.add_argument("--diagnostics", choices=("auto", "json", "console"), default="auto")
    return p


def _mirror(args: argparse.Namespace, log: object) -> tuple[Mirror | None, dict[str, MirrorTarget]]:
    if not args.keys:
        return None, {}
    if not args.endpoint or not args.bucket:
        log.warning("mirror_disabled", reason="--key given without --endpoint and --bucket")  # type: ignore[attr-defined]
        return None, {}
    if len(args.keys) != len(args.files):
        log.warning("mirror_disabled", reason="the number of --key and --file differ")  # type: ignore[attr-defined]
        return None, {}
    if not os.environ.get("AWS_ACCESS_KEY_ID") or not os.environ.get("AWS_SECRET_ACCESS_KEY"):
        log.warning("mirror_disabled", reason="AWS_ACCESS_KEY_ID or AWS_SECRET_ACCESS_KEY not set")  # type: ignore[attr-defined]
        return None, {}
    try:
        client = make_client(args.endpoint, ca_bundle=args.ca_bundle)
    except Exception as exc:
        log.warning("mirror_disabled", reason=f"{type(exc).__name__}: {exc}")  # type: ignore[attr-defined]
        return None, {}
    targets = {name: MirrorTarget(args.bucket, key) for name, key in zip(args.files, args.keys, strict=True)}
    return Mirror(client, interval=args.upload_interval, log=log), targets


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    diagnostics.configure(json_output={"auto": None, "json": True, "console": False}[args.diagnostics])
    log = diagnostics.get_logger()
    started = time.monotonic()
    stop_early: list[int] = []

    def on_early_signal(signum: int, _frame: FrameType | None) -> None:
        stop_early.append(signum)

    # Installed first so a SIGTERM during start-up is not lost (default action would kill us silently).
    signal.signal(signal.SIGTERM, on_early_signal)
    signal.signal(signal.SIGINT, on_early_signal)

    mirror, targets = _mirror(args, log)
    options = FollowerOptions(
        directory=args.dir,
        files=args.files,
        targets=targets,
        poll=args.poll,
        idle_flush=args.idle_flush,
        max_line=max(1, args.max_line),
    )
    follower = Follower(options, Output(sys.stdout.fileno(), fmt=args.format), log=log, mirror=mirror)

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        follower.request_stop()

    signal.set_wakeup_fd(follower.wake_fd)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if stop_early:
        follower.request_stop()
    log.info("sidecar_started", directory=args.dir, files=args.files, mirror=bool(targets), pid=os.getpid())
    follower.start_watching()
    try:
        follower.run()
    except Exception as exc:  # never fail the step: report, then still drain what we can
        log.exception("follow_failed", error=f"{type(exc).__name__}: {exc}")
    deadline = time.monotonic() + args.shutdown_deadline
    # A hard stop in case storage or the filesystem hangs: exit 0 at the deadline whatever happens.
    timer = threading.Timer(max(0.0, args.shutdown_deadline - 0.05), _hard_exit, args=(log,))
    timer.daemon = True
    timer.start()
    try:
        follower.shutdown(deadline)
    except Exception as exc:
        log.exception("shutdown_failed", error=f"{type(exc).__name__}: {exc}")
    timer.cancel()
    log.info(
        "sidecar_stopped",
        lines=follower.output.lines,
        bytes=follower.output.bytes_written,
        uploads=mirror.uploads if mirror else 0,
        upload_failures=mirror.failures if mirror else 0,
        found=[s.name for s in follower.states if s.found],
        seconds=round(time.monotonic() - started, 3),
    )
    return 0


def _hard_exit(log: object) -> None:
    try:
        log.warning("shutdown_deadline_reached")  # type: ignore[attr-defined]
        sys.stdout.flush()
    finally:
        os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
