"""`elyra-sidecar link-outputs --link=PATH --to=TARGET ...`: the init container's job for KFP v2 artifacts.

KFP v2's launcher uploads each output artifact named in its `--executor_input` from a fixed local path
(`/minio/...`, `/s3/...`, `/gcs/...` in the step's scratch volume) after the user command succeeded. Pod mode
(config `artifacts.kfp_v2`) names the script log and the declared outputs there; this command places, at
each such PATH, a symlink to the file the bootstrapper writes in the work dir (TARGET, which need not exist
yet: the launcher follows the link when it uploads). Design and citations: docs/pod-mode.md.

Parent directories it creates get mode 1777 (as /tmp): `main` runs as a user this container does not know,
and the launcher writes its own `executor-logs` file next to our links. An existing entry at PATH is left
alone (a link to TARGET already is what we want). Exit 0 always, with an `Error:` line per link that could
not be made: a missing link costs one artifact, never the user's step.
"""

from __future__ import annotations

import argparse
import posixpath
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["link", "main"]

#: Mode of the directories we create: world-writable with the sticky bit, as /tmp.
DIR_MODE = 0o1777


def _plain_absolute(path: str) -> bool:
    return path.startswith("/") and "\0" not in path and posixpath.normpath(path) == path and path != "/"


def _make_parents(directory: Path) -> None:
    """Create `directory` and its missing ancestors, each with DIR_MODE (existing ones are not touched)."""
    missing = []
    current = directory
    while not current.is_dir() and current != current.parent:
        missing.append(current)
        current = current.parent
    for path in reversed(missing):
        try:
            path.mkdir(DIR_MODE)
        except FileExistsError:
            if not path.is_dir():
                raise
            continue
        path.chmod(DIR_MODE)  # mkdir's mode is cut by the umask


def link(path: str, target: str) -> str:
    """Place a symlink at `path` pointing to `target`; returns what was done. Raises OSError or ValueError."""
    for name, value in (("link", path), ("target", target)):
        if not _plain_absolute(value):
            raise ValueError(f"the {name} {value!r} is not a plain absolute path")
    where = Path(path)
    _make_parents(where.parent)
    if where.is_symlink() or where.exists():
        if where.is_symlink() and str(where.readlink()) == target:
            return f"{path} -> {target} (already there)"
        raise FileExistsError(f"{path} exists already and is not a link to {target}")
    where.symlink_to(target)
    return f"{path} -> {target}"


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="elyra-sidecar link-outputs",
        description="Symlink files of the work dir to where KFP v2's launcher uploads output artifacts.",
        allow_abbrev=False,
    )
    parser.add_argument("--link", action="append", default=[], help="where the launcher reads (repeatable)")
    parser.add_argument(
        "--to", action="append", default=[], help="the file it should read, paired by position"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if len(args.link) != len(args.to):
        sys.stderr.write(f"Error: {len(args.link)} --link but {len(args.to)} --to; nothing linked\n")
        return 0
    for path, target in zip(args.link, args.to, strict=True):
        try:
            done = link(path, target)
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            sys.stderr.write(f"Error: cannot link {path} to {target}: {reason}\n")
            continue
        sys.stderr.write(f"linked {done}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
