"""`elyra-sidecar install-live --dest DIR`: the init container's job in Elyra 4.x live mode.

Writes `DIR/sitecustomize.py` (the module in `live_sitecustomize.py`) and makes DIR writable by any
user, like the emptyDir it lives in, so the main container's user (whatever the image runs as) can
create the live log there. Exit 0 on success; on failure an `Error:` line and exit 0 anyway (the step
then runs without live output: never fail the user's step).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

__all__ = ["install", "main", "parser"]


def install(dest: str | Path) -> Path:
    directory = Path(dest)
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o1777)  # world-writable with the sticky bit, as /tmp
    # This package, whatever it is imported as (`elyra_sidecar.sidecar` when installed): a fixed top-level
    # name only resolves where the source tree happens to be on sys.path.
    package = __name__.rpartition(".")[0]
    source = resources.files(package).joinpath("live_sitecustomize.py").read_bytes()
    target = directory / "sitecustomize.py"
    tmp = directory / ".sitecustomize.py.tmp"
    tmp.write_bytes(source)
    tmp.chmod(0o644)
    tmp.replace(target)
    return target


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="elyra-sidecar install-live", description="Install the live-output sitecustomize.py into DIR."
    )
    p.add_argument("--dest", required=True, help="directory on the shared volume")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        target = install(args.dest)
    except OSError as exc:
        sys.stderr.write(f"Error: cannot install live output into {args.dest}: {exc.strerror or exc}\n")
        return 0
    except Exception as exc:  # a broken package must not fail the user's step either
        sys.stderr.write(f"Error: cannot install live output into {args.dest}: {type(exc).__name__}: {exc}\n")
        return 0
    sys.stderr.write(f"installed {target} (pid {os.getpid()})\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
