"""`elyra-sidecar transform`: the command line of the rewrite. `main(argv) -> int`; errors are one `Error:`
line on stderr.

Exit codes: 0 done, 1 a problem with the input (or `--check` found changes), 2 usage, 130 Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, replace
from dataclasses import fields as dataclass_fields
from typing import Any, TextIO

from elyra_sidecar.transformer._config import ConfigError, load_config
from elyra_sidecar.transformer._elyra import NodeParseError
from elyra_sidecar.transformer._io import (
    InputError,
    StdoutError,
    check_output_path,
    load_input,
    render_output,
    write_output,
)
from elyra_sidecar.transformer._steps import Change, ChangeKind
from elyra_sidecar.transformer._transform import NodeReport, TransformResult, WorkflowError, transform

__all__ = ["main"]


def parser() -> argparse.ArgumentParser:
    t = argparse.ArgumentParser(
        prog="elyra-sidecar transform",
        allow_abbrev=False,
        description="Rewrite an Elyra-compiled Argo Workflow: shared work dir, log sidecar, "
        "output artifacts. Reads YAML or a KFP package and writes the same format.",
    )
    t.add_argument(
        "input", nargs="?", default="-", help="Workflow YAML, .tar.gz/.tgz/.zip package, or - (stdin)"
    )
    t.add_argument("-o", "--output", default="-", help="where to write the result (default: stdout)")
    t.add_argument("--config", help="YAML config file (see docs/configuration.md)")
    t.add_argument("--check", action="store_true", help="write nothing; exit 1 if the input would change")
    t.add_argument(
        "--report", choices=("text", "json"), default="text", help="format of the report on stderr"
    )
    t.add_argument(
        "--only-annotated",
        action="store_true",
        help='transform only nodes (or workflows) annotated elyra-sidecar/inject: "true"',
    )
    t.add_argument("--strict", action="store_true", help="exit 1 on an Elyra node that cannot be read")
    t.add_argument(
        "--promote-env",
        metavar="NAME,...|all",
        help="turn these node env variables (or all) into KFP run parameters",
    )
    t.add_argument("--quiet", "-q", action="store_true", help="no report on stderr")
    return t


#: The ADDED column: (change kind, label, counted?) in column order; other kinds are not shown.
_SUMMARY: tuple[tuple[ChangeKind, str, bool], ...] = (
    ("sidecar", "log sidecar", False),
    ("output_artifact", "output artifact", True),
    ("input_artifact", "input artifact", True),
    ("live_output", "live output", False),
    ("main_log", "Logs tab", False),
    ("run_parameter", "run parameter", True),
    ("unbuffered", "unbuffered", False),
)


def _summary(added: Sequence[Change]) -> str:
    counts = Counter(change.kind for change in added)
    parts = [
        (f"{counts[kind]} {label}{'s' if counts[kind] > 1 else ''}" if counted else label)
        for kind, label, counted in _SUMMARY
        if counts[kind]
    ]
    return ", ".join(parts) or "-"


def _report_text(result: TransformResult, out: TextIO) -> None:
    if not result.nodes:
        out.write("no Elyra nodes found; nothing changed\n")
        return
    rows = [("TEMPLATE", "NODE", "ELYRA", "KIND", "STATUS", "RUN DIR", "ADDED")]
    rows += [
        (n.template, n.display_name, n.elyra_version, n.kind, n.status, n.run_dir or "-", _summary(n.added))
        for n in result.nodes
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out.writelines(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() + "\n"
        for row in rows
    )
    for node in result.nodes:
        out.writelines(f"warning: {node.template}: {warning}\n" for warning in node.warnings)
    out.writelines(f"warning: {warning}\n" for warning in result.warnings)


def printable(text: str) -> str:
    """`text` with control characters escaped (`\\x1b`), so input cannot drive the terminal it is shown on."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def _printable_item(value: str) -> str:
    """`printable()` that keeps a `Change`'s kind (the table counts by kind)."""
    text = printable(value)
    if isinstance(value, Change) and text is not value:
        return Change(value.kind, text)
    return text


def _printable_node(node: NodeReport) -> NodeReport:
    fields: dict[str, Any] = {}
    for field in dataclass_fields(node):  # not vars(): compiled (setup.py), a NodeReport has no __dict__
        value = getattr(node, field.name)
        if isinstance(value, str):
            fields[field.name] = printable(value)
        elif isinstance(value, tuple):
            fields[field.name] = tuple(_printable_item(v) for v in value)
    return replace(node, **fields)


def _printable_report(result: TransformResult) -> TransformResult:
    return replace(
        result,
        nodes=tuple(_printable_node(n) for n in result.nodes),
        warnings=tuple(printable(w) for w in result.warnings),
    )


def _transform_command(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    if args.promote_env:
        names = [n.strip() for n in args.promote_env.split(",") if n.strip()]
        config = replace(config, parameters=replace(config.parameters, promote_env=names))
    if args.only_annotated or args.strict:
        config = replace(
            config,
            selection=replace(
                config.selection, only_annotated=config.selection.only_annotated or args.only_annotated
            ),
            strict=config.strict or args.strict,
        )
    loaded = load_input(args.input, sys.stdin.buffer if sys.stdin is not None else None)
    if not args.check:
        check_output_path(args.output, loaded)
    result = transform(loaded.workflow, config)  # shape check, rewrite, untouched templates as they were
    if not args.quiet and sys.stderr is not None:
        if args.report == "json":
            payload = {
                "changed": result.changed,
                "nodes": [asdict(n) for n in result.nodes],
                "warnings": list(result.warnings),
            }
            sys.stderr.write(json.dumps(payload, indent=2) + "\n")
        else:
            _report_text(_printable_report(result), sys.stderr)
    if args.check:
        return 1 if result.changed else 0
    data = render_output(loaded, result.workflow, changed=result.changed)
    write_output(args.output, data, sys.stdout.buffer if sys.stdout is not None else None)
    return 0


def _silence_stdout() -> None:
    """After a failed write to stdout, point it at /dev/null: Python's own flush at exit would fail again."""
    if sys.stdout is None:
        return
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # not a real file descriptor (an in-process caller's stream)
        pass


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return _transform_command(args)
    except (InputError, WorkflowError, ConfigError, NodeParseError, OSError) as exc:
        if isinstance(exc, StdoutError):
            _silence_stdout()
        if sys.stderr is not None:
            sys.stderr.write(f"Error: {printable(str(exc))}\n")
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
