"""Recognise Elyra generic nodes in a compiled Workflow and read what their bootstrapper will do.

Everything here is derived from the container's `command` + `args` by reading them as the shell
will (see `_shell`), and from the bootstrapper's own argument definitions and file-naming rules
(elyra-ai/elyra `elyra/kfp/bootstrapper.py`, kfp-notebook `etc/docker-scripts/bootstrapper.py`).
"""

from __future__ import annotations

import functools
import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, NamedTuple

from elyra_sidecar.transformer._shell import START, Command, Directory, ShellSyntaxError, Word, parse_script

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


#: The bootstrapper's options (the union over Elyra 2.0-4.0, which is 4.0's table): short, long. Each takes
#: one value. `-h`/`--help` is argparse's own (add_help): the bootstrapper prints help and runs nothing.
_OPTIONS: tuple[tuple[str, str], ...] = (
    ("-e", "--cos-endpoint"),
    ("-b", "--cos-bucket"),
    ("-d", "--cos-directory"),
    ("-t", "--cos-dependencies-archive"),
    ("-f", "--file"),
    ("-o", "--outputs"),
    ("-i", "--inputs"),
    ("-p", "--user-volume-path"),
    ("-n", "--pipeline-name"),
    ("-r", "--pipeline-parameters"),
    ("-m", "--parameter-pass-method"),
)
_HELP = "help"
#: Every option string -> the key its value is stored under ("cos_endpoint", ...; "help" for -h/--help).
_OPTION_KEYS: dict[str, str] = {
    name: long.lstrip("-").replace("-", "_") for short, long in _OPTIONS for name in (short, long)
} | {"-h": _HELP, "--help": _HELP}
#: Values argparse `choices` allow (3.15+: `--parameter-pass-method` takes only "env").
_CHOICES = {"parameter_pass_method": ("env",)}
_NEGATIVE_NUMBER = re.compile(r"^-\d+$|^-\d*\.\d+$")


class _ArgError(Exception):
    pass


def _option_matches(arg: str) -> list[tuple[str, str | None]]:
    """Option strings `arg` may abbreviate (argparse's allow_abbrev, the bootstrapper's default), with the
    value written into `arg` itself (`--cos-dir=x`, `-fx`), or None."""
    if arg.startswith("--"):
        prefix, sep, explicit = arg.partition("=")
        return [(name, explicit if sep else None) for name in _OPTION_KEYS if name.startswith(prefix)]
    matches: list[tuple[str, str | None]] = []
    for name in _OPTION_KEYS:
        if name == arg[:2]:
            matches.append((name, arg[2:]))  # `-fvalue`: a short option with its value attached
        elif name.startswith(arg):
            matches.append((name, None))
    return matches


def _classify(arg: str) -> tuple[str, str | None] | None:
    """As argparse reads one command-line word: None for a value, else (option string, attached value);
    the option string is "" for an option-like word that names no option. Raises _ArgError if ambiguous."""
    if not arg.startswith("-") or arg == "-":
        return None
    if arg in _OPTION_KEYS:
        return arg, None
    name, sep, explicit = arg.partition("=")
    if sep and name in _OPTION_KEYS:
        return name, explicit
    matches = _option_matches(arg)
    if len(matches) > 1:
        raise _ArgError(f"ambiguous option {arg!r} (could be {', '.join(m for m, _ in matches)})")
    if matches:
        return matches[0]
    if _NEGATIVE_NUMBER.match(arg) or " " in arg:
        return None  # argparse takes these as values: no option of the table looks like a number
    return "", None


def _read_options(words: Sequence[Word]) -> dict[str, Word]:
    """The bootstrapper's argv read with its own option table, the way its argparse parser reads it, but
    silently (no library prints or exits on our behalf): every value keeps its own word, by position, so
    a value known only at run time stays marked as such. Raises _ArgError where the bootstrapper would
    stop (it exits with usage text, or prints help and runs nothing)."""
    # argparse classifies every word before it consumes any (so an ambiguous value is an error too), and
    # takes every word after a `--` as a value.
    end = next((i for i, w in enumerate(words) if w.value == "--" and not w.dynamic), len(words))
    kinds = [None if i >= end or w.dynamic else _classify(w.value) for i, w in enumerate(words)]
    values: dict[str, Word | None] = {}
    index = 0
    while index < len(words):
        word, kind = words[index], kinds[index]
        if word.dynamic:
            raise _ArgError(f"an option only known at run time ({word.value!r})")
        if word.value == "--" or kind is None:
            raise _ArgError(f"unexpected argument {word.value!r}")
        option, explicit = kind
        if not option:
            raise _ArgError(f"unknown option {word.value!r}")
        key = _OPTION_KEYS[option]
        if key == _HELP:
            raise _ArgError(f"{word.value!r} makes the bootstrapper print its help and run nothing")
        if explicit == "--":  # argparse strips a `--` out of the value, leaving none (a list, not a str)
            values[key] = None  # unless a later occurrence gives one
            index += 1
            continue
        if explicit is not None:
            value = Word(explicit)
            index += 1
        elif index + 1 < len(words) and kinds[index + 1] is None and words[index + 1].value != "--":
            value = words[index + 1]
            index += 2
        else:
            raise _ArgError(f"{option} expects a value")
        allowed = _CHOICES.get(key)
        if allowed and not value.dynamic and value.value not in allowed:
            raise _ArgError(f"{option} must be one of {', '.join(allowed)}, got {value.value!r}")
        values[key] = value  # repeated: the last one wins, as in argparse
    read = {key: value for key, value in values.items() if value is not None}
    if len(read) < len(values):
        raise _ArgError(f"no value for {', '.join(sorted(set(values) - set(read)))} (an attached `--`)")
    return read


class _Invocation(NamedTuple):
    args: tuple[Word, ...]
    cwd: str


class _Found(NamedTuple):
    """What a node's script says, remembered by its text: the node it describes (with no template index
    or name yet), or why it cannot be read (`problem`, the message after the template's place)."""

    node: ElyraNode | None
    problem: str


class _ScanError(Exception):
    """Why a script cannot be read (the caller names the place)."""


#: Elyra's scripts are 1-3 kB; longer ones are read every time, so the memory below stays a few MB.
_REMEMBERED_SCRIPT_CHARS = 16_384


def _read_script(script: str) -> _Found:
    """The walk over a node's `sh -c` script, remembered by its text when it is of a usual size."""
    if len(script) > _REMEMBERED_SCRIPT_CHARS:
        return _walk(script)
    return _scan_script(script)


@functools.lru_cache(maxsize=256)
def _scan_script(script: str) -> _Found:
    """Every run of one pipeline (every Workflow CREATE the webhook sees for it) carries the same scripts,
    so their walks are remembered: at most 256, by text (errors are not remembered)."""
    return _walk(script)


def _walk(script: str) -> _Found:
    """Everything the node reader takes from a script; raises _ScanError when the script itself is
    unreadable (not remembered). Checks in the order the reader always made them: the first one wins."""
    found = _Scan()
    _scan(Word(script), START, found)
    invocation = found.invocation
    if invocation is None:
        if found.never_runs:
            return _Found(
                None, f".container.args: the `python3 bootstrapper.py` call never runs ({found.never_runs})"
            )
        return _Found(None, ".container.args: no `python3 bootstrapper.py` call found")
    try:
        values = _read_options(invocation.args)
    except _ArgError as bad:  # not `exc`, the name of another type below: compiled, a name has one type
        return _Found(None, f".container.args: bootstrapper arguments cannot be read: {bad}")
    try:  # `where` left empty: the message then starts at ": ", after the template's place
        file = _required(values, "file", "")
        source, version = _version_from_url(found.url)
        node = ElyraNode(
            template_index=-1,
            template_name="",
            kind=_kind_of(file, ""),
            file=file,
            run_dir=invocation.cwd,
            cos_endpoint=_required(values, "cos_endpoint", ""),
            cos_bucket=_required(values, "cos_bucket", ""),
            cos_directory=_required(values, "cos_directory", "", allow_empty=True),
            inputs=_split_list(values.get("inputs"), "--inputs", ""),
            outputs=_split_list(values.get("outputs"), "--outputs", ""),
            elyra_version=version,
            bootstrapper_source=source,
            bootstrapper_url=found.url,
        )
    except NodeParseError as exc:
        return _Found(None, str(exc))
    return _Found(node, "")


@dataclass
class _Scan:
    invocation: _Invocation | None = None
    url: str = ""
    #: Why a command that mentions the bootstrapper never runs (the first one), e.g. "`false &&` before it".
    never_runs: str = ""


# What the reader knows of a command's exit status, to tell whether a command after `&&` or `||` runs.
_OK, _FAIL, _UNKNOWN = "ok", "fail", "unknown"
_KNOWN_STATUS = {"false": _FAIL, "true": _OK, ":": _OK}


def _runs(operator: str, status: str) -> str:
    """Whether a command after `operator` runs, the list before it having ended with `status`:
    "yes", "no", or "maybe" (the status is not known from the text)."""
    if operator not in ("&&", "||"):
        return "yes"
    if status == _UNKNOWN:
        return "maybe"
    return "yes" if (status == _OK) == (operator == "&&") else "no"


def _noexec(options: list[str]) -> bool:
    """Whether shell options (`sh -n`, `bash -xn`, `set -o noexec`) make the shell read commands without
    running them."""
    for index, option in enumerate(options):
        if option.startswith("-") and not option.startswith("--") and "n" in option[1:]:
            return True
        if option in ("-o", "+o") and options[index + 1 : index + 2] == ["noexec"]:
            return option == "-o"
    return False


def _mentions_bootstrapper(command: Command) -> bool:
    return any("bootstrapper.py" in w.value for w in command.words)


def _scan(script: Word, cwd: Directory, found: _Scan, depth: int = 0) -> None:  # noqa: C901, PLR0912 - one pass over a script's commands, a branch per shell construct
    """Walk the script as the shell would, following `cd` and nested `sh -c`, to `python3 bootstrapper.py`.

    Each script is parsed once, and only if it mentions `bootstrapper.py`: a child `sh -c` that does not
    can neither fetch nor run it, and its own `cd` does not come back to its parent."""
    if depth > 4:
        raise _ScanError("`sh -c` nested too deeply")
    try:
        commands = parse_script(script.value, outer=script.spans)
    except ShellSyntaxError as exc:
        raise _ScanError(str(exc)) from exc
    status, before = _OK, ""
    for position, command in enumerate(commands):
        words = command.words
        # Whether it runs at all: `false && X` and `true || X` never run X (the shell's rule for and-or
        # lists; only `true`, `:` and `false` have a status known from the text, any other may do either).
        joined, before = before, command.terminator
        runs = _runs(joined, status)
        if runs == "no":  # skipped: the list keeps its status
            if _mentions_bootstrapper(command) and not found.never_runs:
                found.never_runs = f"`{'false &&' if joined == '&&' else 'true ||'}` before it"
            continue
        own = _KNOWN_STATUS.get(words[0].value, _UNKNOWN) if words else _OK
        # "maybe": either skipped (then the status was the one that skips it) or run (then its own).
        skipped_status = _FAIL if joined == "&&" else _OK
        status = own if runs == "yes" or own == skipped_status else _UNKNOWN
        if not words:
            continue
        program = words[0].value  # argv only where a command can matter: most are `echo`, `pip`, `mkdir`
        in_subshell = joined == "|" or command.terminator in ("|", "&")
        if (
            runs == "yes"
            and not in_subshell
            and (program == "exit" or (program == "set" and _noexec([w.value for w in words[1:]])))
        ):
            # The shell stops here (`exit`) or only reads what follows (`set -n`): nothing after runs.
            if not found.never_runs and any(_mentions_bootstrapper(c) for c in commands[position + 1 :]):
                found.never_runs = f"`{program}{' -n' if program == 'set' else ''}` before it"
            return
        if program == "cd":
            target = words[1] if len(words) > 1 else None
            if target is None or target.dynamic:
                raise _ScanError("`cd` to a directory only known at run time")
            cwd = cwd.cd(target.value)
        elif program in _SHELLS:
            argv = command.argv
            if "-c" in argv[1:]:
                index = argv.index("-c", 1) + 1
                if index < len(argv) and "bootstrapper.py" in argv[index] and _noexec(argv[1 : index - 1]):
                    if not found.never_runs:  # `sh -n -c X` reads X and runs nothing
                        found.never_runs = f"`{program} -n` reads the script without running it"
                elif index < len(argv) and "bootstrapper.py" in argv[index]:
                    # A child shell inherits the working directory; its own `cd` does not come back.
                    _scan(words[index], cwd, found, depth + 1)
                    if found.invocation is not None:
                        return
        elif program.endswith("curl") and posixpath.basename(program) == "curl":
            argv = command.argv
            if "bootstrapper.py" in argv and not found.url:
                found.url = next((a for a in argv[1:] if a.startswith(("http://", "https://"))), "")
        elif (
            len(words) > 1
            and words[1].value.endswith("bootstrapper.py")
            and _PYTHONS.match(program)
            and posixpath.basename(words[1].value) == "bootstrapper.py"
        ):
            found.invocation = _Invocation(args=tuple(words[2:]), cwd=cwd.path)
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
    """The node kind exactly as the bootstrapper decides it (`FileOpBase.get_instance`): substring tests
    on the whole `--file` value, case-sensitive, in this order. So `lib.pytorch/fit.r` is a Python node
    (it runs `python3 fit.r` and writes `fit.r.log`), and `report.R` is no node the bootstrapper runs."""
    if ".ipynb" in file:
        return "notebook"
    if ".py" in file:
        return "python"
    if ".r" in file:
        return "r"
    raise NodeParseError(
        f"{where}: --file {file!r} is not a notebook, Python or R file "
        "(the bootstrapper looks for .ipynb, .py or .r in it and stops otherwise)"
    )


def _split_list(word: Word | None, option: str, where: str) -> tuple[str, ...]:
    if word is None or not word.value:
        return ()
    if word.dynamic:
        raise NodeParseError(f"{where}: {option} is only known at run time ({word.value!r})")
    return tuple(item.strip() for item in word.value.split(INOUT_SEPARATOR) if item.strip())


def _required(values: Mapping[str, Word], key: str, where: str, *, allow_empty: bool = False) -> str:
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
    try:
        found = _read_script(script)
    except _ScanError as exc:
        raise NodeParseError(f"{where}.container.args: {exc}") from exc
    if found.node is None:
        raise NodeParseError(f"{where}{found.problem}")
    return replace(found.node, template_index=index, template_name=str(template.get("name", "")))
