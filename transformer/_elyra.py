"""Recognise Elyra generic nodes in a compiled Workflow and read what their bootstrapper will do.

Everything here is derived from the container's `command` + `args` by reading them as the shell
will (see `_shell`), and from the bootstrapper's own argument definitions and file-naming rules
(elyra-ai/elyra `elyra/kfp/bootstrapper.py`, kfp-notebook `etc/docker-scripts/bootstrapper.py`).
"""

from __future__ import annotations

import argparse
import posixpath
import re
from dataclasses import dataclass
from typing import Any, Literal

from elyra_sidecar.transformer._shell import ShellSyntaxError, Word, change_directory, parse_script

__all__ = ["ElyraNode", "NodeParseError", "is_elyra_candidate", "read_elyra_node"]

NodeKind = Literal["python", "r", "notebook"]
INOUT_SEPARATOR = ";"
_SHELLS = frozenset({"sh", "bash", "/bin/sh", "/bin/bash", "/usr/bin/sh", "/usr/bin/bash"})
_PYTHONS = re.compile(r"^(?:.*/)?python(?:3(?:\.\d+)?)?$")
# The version segment of a bootstrapper URL: .../elyra/v4.0.0/... or .../kfp-notebook/v0.18.0/...
_VERSION_SEGMENT = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)")
_NODE_TYPE_LABEL = "elyra/node-type"
_NODE_TYPE_GENERIC = "notebook-script"


class NodeParseError(ValueError):
    """An Elyra node whose command line cannot be read; the message says what and where."""


@dataclass(frozen=True)
class ElyraNode:
    """What the bootstrapper in one template will do, as far as the YAML tells."""

    template_index: int
    template_name: str
    kind: NodeKind
    file: str
    #: Directory the bootstrapper runs in: absolute, or relative to the container's working directory.
    run_dir: str
    cos_endpoint: str
    cos_bucket: str
    cos_directory: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    #: (major, minor, patch) of Elyra, or None when the bootstrapper URL does not say.
    elyra_version: tuple[int, int, int] | None
    #: "elyra" or "kfp-notebook" (Elyra 2.x), from the bootstrapper URL.
    bootstrapper_source: str
    bootstrapper_url: str

    @property
    def log_file(self) -> str | None:
        """The `<name>.log` file the bootstrapper writes, computed exactly like it does."""
        base = posixpath.basename(self.file)
        if self.kind == "python":
            return base.replace(".py", "") + ".log"
        if self.kind == "r":
            return base.replace(".r", "") + ".log"
        return None

    @property
    def notebook_outputs(self) -> tuple[str, ...]:
        if self.kind != "notebook":
            return ()
        name = posixpath.basename(self.file).replace(".ipynb", "")
        return (f"{name}-output.ipynb", f"{name}.html")

    @property
    def version_label(self) -> str:
        if self.elyra_version is None:
            return "unknown"
        if self.bootstrapper_source == "kfp-notebook":
            return "2.x (kfp-notebook {}.{}.{})".format(*self.elyra_version)
        return "{}.{}.{}".format(*self.elyra_version)


def _bootstrapper_parser() -> argparse.ArgumentParser:
    """The bootstrapper's own options (union over Elyra 2.0-4.0), so values are read as it reads them."""
    parser = argparse.ArgumentParser(add_help=False, exit_on_error=False)
    for short, long in (
        ("-e", "--cos-endpoint"),
        ("-b", "--cos-bucket"),
        ("-d", "--cos-directory"),
        ("-t", "--cos-dependencies-archive"),
        ("-f", "--file"),
        ("-o", "--outputs"),
        ("-i", "--inputs"),
        ("-p", "--user-volume-path"),
        ("-n", "--pipeline-name"),
        (None, "--pipeline-parameters"),
        (None, "--parameter-pass-method"),
    ):
        names = [n for n in (short, long) if n]
        parser.add_argument(*names, dest=long.lstrip("-").replace("-", "_"))
    return parser


_PARSER = _bootstrapper_parser()


class _ArgError(Exception):
    pass


def _parse_bootstrapper_args(words: list[Word], where: str) -> dict[str, Word]:
    """Parse the bootstrapper's argv with its own option table; values keep their `dynamic` flag."""
    argv = [w.value for w in words]
    # argparse works on strings; map each value back to its Word to keep the dynamic flag.
    by_value: dict[str, Word] = {}
    for w in words:
        by_value.setdefault(w.value, w)
    try:
        namespace, unknown = _PARSER.parse_known_args(argv)
    except (argparse.ArgumentError, SystemExit) as exc:  # exit_on_error=False still exits on some errors
        raise NodeParseError(f"{where}: bootstrapper arguments cannot be read: {exc}") from exc
    if unknown:
        raise NodeParseError(f"{where}: unknown bootstrapper arguments {unknown!r}")
    result: dict[str, Word] = {}
    for key, value in vars(namespace).items():
        if value is not None:
            result[key] = by_value.get(value, Word(value))
    return result


@dataclass(frozen=True)
class _Invocation:
    args: list[Word]
    cwd: str


@dataclass
class _Scan:
    """What one walk over the script found: the bootstrapper call (and its directory), its URL."""

    invocation: _Invocation | None = None
    url: str = ""


def _scan(script: str, cwd: str, where: str, found: _Scan, depth: int = 0) -> None:
    """Walk the script as the shell would, following `cd` and nested `sh -c`, to `python3 bootstrapper.py`."""
    if depth > 4:
        raise NodeParseError(f"{where}: `sh -c` nested too deeply")
    try:
        commands = parse_script(script)
    except ShellSyntaxError as exc:
        if "bootstrapper.py" in script:
            raise NodeParseError(f"{where}: {exc}") from exc
        return  # a step that is not the bootstrapper's and that sh would reject too
    for command in commands:
        argv = command.argv
        if not argv:
            continue
        if argv[0] == "cd":
            target = command.words[1] if len(command.words) > 1 else None
            if target is None or target.dynamic:
                raise NodeParseError(f"{where}: `cd` to a directory only known at run time")
            cwd = change_directory(cwd, target.value)
        elif argv[0] in _SHELLS and "-c" in argv[1:]:
            index = argv.index("-c", 1) + 1
            if index < len(argv):
                # A child shell inherits the working directory; its own `cd` does not come back.
                _scan(argv[index], cwd, where, found, depth + 1)
        elif posixpath.basename(argv[0]) == "curl" and "bootstrapper.py" in argv and not found.url:
            found.url = next((a for a in argv[1:] if a.startswith(("http://", "https://"))), "")
        elif _PYTHONS.match(argv[0]) and len(argv) > 1 and posixpath.basename(argv[1]) == "bootstrapper.py":
            found.invocation = _Invocation(args=command.words[2:], cwd=cwd)
        if found.invocation is not None:
            return


def _version_from_url(url: str) -> tuple[str, tuple[int, int, int] | None]:
    segments = url.split("?", maxsplit=1)[0].split("/")
    source = "kfp-notebook" if "kfp-notebook" in segments else "elyra"
    for segment in segments:
        m = _VERSION_SEGMENT.match(segment)
        if m and segment.startswith("v"):
            return source, (int(m.group(1)), int(m.group(2)), int(m.group(3)))
    return source, None


def _kind_of(file: str, where: str) -> NodeKind:
    lowered = file.lower()
    if lowered.endswith(".ipynb"):
        return "notebook"
    if lowered.endswith(".py"):
        return "python"
    if lowered.endswith(".r"):
        return "r"
    raise NodeParseError(f"{where}: --file {file!r} is not a notebook, Python or R file")


def _split_list(word: Word | None, option: str, where: str) -> tuple[str, ...]:
    if word is None or not word.value:
        return ()
    if word.dynamic:
        raise NodeParseError(f"{where}: {option} is only known at run time ({word.value!r})")
    return tuple(item.strip() for item in word.value.split(INOUT_SEPARATOR) if item.strip())


def _required(values: dict[str, Word], key: str, where: str, *, allow_empty: bool = False) -> str:
    word = values.get(key)
    option = "--" + key.replace("_", "-")
    if word is None or (not word.value and not allow_empty):
        raise NodeParseError(f"{where}: bootstrapper call has no {option}")
    if word.dynamic:
        raise NodeParseError(f"{where}: {option} is only known at run time ({word.value!r})")
    return word.value


def main_script(template: dict[str, Any]) -> str | None:
    """The shell script a container template runs with `sh -c`, or None when it is not one."""
    container = template.get("container")
    if not isinstance(container, dict):
        return None
    command = container.get("command") or []
    args = container.get("args") or []
    if not isinstance(command, list) or not isinstance(args, list):
        return None
    argv = [*command, *args]
    if len(argv) < 3 or not all(isinstance(a, str) for a in argv[:3]):
        return None
    if argv[0] not in _SHELLS or argv[1] != "-c":
        return None
    script = argv[2]
    return script if isinstance(script, str) else None


def is_elyra_candidate(template: dict[str, Any]) -> bool:
    """True when a template claims to be, or looks like, an Elyra generic node."""
    metadata = template.get("metadata")
    labels = metadata.get("labels") if isinstance(metadata, dict) else None
    if isinstance(labels, dict) and labels.get(_NODE_TYPE_LABEL) == _NODE_TYPE_GENERIC:
        return True
    script = main_script(template)
    return script is not None and "bootstrapper.py" in script


def read_elyra_node(template: dict[str, Any], index: int) -> ElyraNode | None:
    """Read an Elyra generic node; None when the template is not one. Raises NodeParseError."""
    where = f"spec.templates[{index}]"
    if not is_elyra_candidate(template):
        return None
    script = main_script(template)
    if script is None:
        raise NodeParseError(f"{where}.container: an Elyra node that does not run `sh -c <script>`")
    found = _Scan()
    _scan(script, ".", f"{where}.container.args", found)
    invocation = found.invocation
    if invocation is None:
        raise NodeParseError(f"{where}.container.args: no `python3 bootstrapper.py` call found")
    values = _parse_bootstrapper_args(invocation.args, f"{where}.container.args")
    file = _required(values, "file", where)
    url = found.url
    source, version = _version_from_url(url)
    return ElyraNode(
        template_index=index,
        template_name=str(template.get("name", "")),
        kind=_kind_of(file, where),
        file=file,
        run_dir=invocation.cwd,
        cos_endpoint=_required(values, "cos_endpoint", where),
        cos_bucket=_required(values, "cos_bucket", where),
        cos_directory=_required(values, "cos_directory", where, allow_empty=True),
        inputs=_split_list(values.get("inputs"), "--inputs", where),
        outputs=_split_list(values.get("outputs"), "--outputs", where),
        elyra_version=version,
        bootstrapper_source=source,
        bootstrapper_url=url,
    )
