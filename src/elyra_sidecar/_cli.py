"""`elyra-sidecar COMMAND ...`: a thin dispatcher that imports only the room of the chosen command.

The step pod runs `elyra-sidecar tail` in every Elyra step: that start must not pay for the transformer,
PyYAML or the webhook (a test checks `sys.modules`). Each command's module has `main(argv) -> int`.
Exit codes: those of the command; 2 for an unknown command; 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from elyra_sidecar import contract

__all__ = ["COMMANDS", "main"]


#: Every command as (module, help), in the order `--help` lists them. Adding a command touches this table
#: only. Plain tuples: a NamedTuple would load `typing` into every step pod's start.
COMMANDS: dict[str, tuple[str, str]] = {
    "transform": (
        "elyra_sidecar.transformer.cli",
        "rewrite an Elyra-compiled Workflow (YAML or KFP package)",
    ),
    "webhook": ("elyra_sidecar.webhook.cli", "run the admission webhook (in-cluster mode)"),
    "logs": ("elyra_sidecar.logs.cli", "print a run's script logs, in order, live (-f)"),
    contract.TAIL_COMMAND: (
        "elyra_sidecar.sidecar.tail",
        "(in the pod) follow the script log; see `elyra-sidecar tail --help`",
    ),
    contract.INSTALL_LIVE_COMMAND: (
        "elyra_sidecar.sidecar.live",
        "(init container) install the live-output hook",
    ),
    contract.LINK_OUTPUTS_COMMAND: (
        "elyra_sidecar.sidecar.links",
        "(init container, KFP v2) link the step's files where KFP's launcher uploads outputs",
    ),
    contract.STOP_COMMAND: (
        "elyra_sidecar.sidecar.stop",
        "(Argo's kill command) signal this container's `tail` process",
    ),
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="elyra-sidecar",
        description="Make Elyra pipeline logs and outputs visible in Kubeflow Pipelines.",
        epilog="commands:\n" + "\n".join(f"  {name:<14}{c}" for name, (_, c) in COMMANDS.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    from elyra_sidecar import __version__  # noqa: PLC0415 - the parser is built only off the command path

    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "command", metavar="COMMAND", choices=list(COMMANDS), help="one of the commands below"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in COMMANDS:
        command, rest = argv[0], argv[1:]
    else:  # --help, --version, a misspelt or missing command: argparse answers (and exits 0 or 2)
        args = _parser().parse_args(argv)
        command, rest = args.command, []  # only `elyra-sidecar -- COMMAND` gets here
    try:
        module = importlib.import_module(COMMANDS[command][0])
        code: int = module.main(rest)
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
