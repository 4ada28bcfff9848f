"""What the README and docs/ say about the commands is what the code does.

The option tables and lists against each command's argparse parser, the exit codes against the values
the commands' code returns, the sidecar's event list against the contract. A new option, exit code or
event without its line in the docs fails here, and so does a line the code no longer backs.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import inspect
import pkgutil
import re
from pathlib import Path
from types import ModuleType

import pytest

from elyra_sidecar import _cli, contract
from tests.helpers import ROOT

README = ROOT / "README.md"
DOCS = ROOT / "docs"

#: Where each command's options table is: (file, the heading of its section).
OPTION_TABLES = {
    "transform": (DOCS / "cli.md", "## `elyra-sidecar transform`"),
    "webhook": (DOCS / "cli.md", "## `elyra-sidecar webhook`"),
    "logs": (DOCS / "logs.md", "## Options"),
    contract.TAIL_COMMAND: (DOCS / "sidecar.md", "## Command line"),
    contract.INSTALL_LIVE_COMMAND: (DOCS / "cli.md", "## `elyra-sidecar install-live`"),
    contract.STOP_COMMAND: (DOCS / "cli.md", "## `elyra-sidecar stop`"),
    "link-outputs": (DOCS / "cli.md", "## `elyra-sidecar link-outputs`"),
}
#: The README's inline option lists: (command, the text the list starts with, the text that ends it).
README_OPTION_LISTS = (
    ("transform", "Options: `-o FILE`", "Exit codes:"),
    ("logs", "Options: `-n NAMESPACE`", "It uses your kubeconfig"),
    (contract.TAIL_COMMAND, "`--dir`, `--file` (repeatable)", "; credentials from"),
)
#: The README's and docs' exit-code sentences: (file, command, the text that precedes the sentence).
EXIT_SENTENCES = (
    (README, "transform", "see `docs/parameters.md`), `-q`."),
    (README, "logs", "`docs/logs.md` has the Role."),
)
#: Exit-code tables of one command (first column the code): (file, command, the heading of their section).
EXIT_TABLES = ((DOCS / "logs.md", "logs", "## Options"),)


# --- reading the docs ---------------------------------------------------------------------------------


def section(path: Path, heading: str) -> str:
    """The text under `heading` up to the next heading of the same or a higher level."""
    text = path.read_text()
    assert f"\n{heading}\n" in text, f"{path.name}: no section {heading!r}"
    level = heading.split(" ", 1)[0]
    rest = text.split(f"\n{heading}\n", 1)[1]
    ends = [m.start() for m in re.finditer(rf"^#{{1,{len(level)}}} ", rest, re.MULTILINE)]
    return rest[: ends[0]] if ends else rest


def table_rows(text: str) -> list[list[str]]:
    """The body rows of the first markdown table in `text`, as cells (`\\|` is a `|` inside a cell)."""
    rows = []
    for line in text.splitlines():
        if not line.startswith("|"):
            if rows:
                break
            continue
        cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        if set("".join(cells)) <= set("- "):
            continue  # the separator row
        rows.append(cells)
    return rows[1:]  # without the header


def named_options(text: str) -> set[str]:
    """Every option a text names in backticks: `--name`, `--name VALUE`, `-n` (the name only)."""
    return {m.group(1) for m in re.finditer(r"`(--?[a-zA-Z][-a-zA-Z0-9]*)(?:[ =][^`]*)?`", text)}


def exit_codes_in(sentence: str) -> set[int]:
    """The codes of an `N meaning, N meaning; ...` list (separators outside parentheses only)."""
    codes, depth, item = set(), 0, ""
    for char in sentence + ",":
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char in ",;" and depth == 0:
            if m := re.match(r"\s*(\d+)\s", item + " "):
                codes.add(int(m.group(1)))
            item = ""
        else:
            item += char
    return codes


def exit_sentence(path: Path, after: str) -> str:
    """The `Exit codes: ...` sentence that follows `after` in `path` (up to its full stop)."""
    text = path.read_text()
    assert after in text, f"{path.name}: {after!r} not found"
    rest = text.split(after, 1)[1]
    assert "Exit codes:" in rest, f"{path.name}: no `Exit codes:` after {after!r}"
    sentence = rest.split("Exit codes:", 1)[1]
    depth = 0
    for i, char in enumerate(sentence):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "." and depth == 0 and (i + 1 == len(sentence) or sentence[i + 1].isspace()):
            return sentence[:i]
    return sentence


# --- reading the code ---------------------------------------------------------------------------------


def command_module(command: str) -> ModuleType:
    return importlib.import_module(_cli.COMMANDS[command][0])


def parser_options(command: str) -> list[tuple[str, ...]]:
    """Each option of the command's parser as its strings (`-o`, `--output`), without --help."""
    parser: argparse.ArgumentParser = command_module(command).parser()
    return [
        tuple(action.option_strings)
        for action in parser._actions
        if action.option_strings and not isinstance(action, argparse._HelpAction)
    ]


def _package_functions(module: ModuleType) -> dict[str, list[ast.FunctionDef | ast.AsyncFunctionDef]]:
    """Every function and method annotated `-> int` in the command module's package, by name."""
    package = importlib.import_module(module.__name__.rpartition(".")[0])
    names = [module.__name__] + [
        f"{package.__name__}.{info.name}" for info in pkgutil.iter_modules(package.__path__)
    ]
    found: dict[str, list[ast.FunctionDef | ast.AsyncFunctionDef]] = {}
    for name in dict.fromkeys(n for n in names if not n.endswith(".__main__")):  # __main__ would run
        source = inspect.getsource(importlib.import_module(name))
        for node in ast.walk(ast.parse(source)):
            if (
                isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                and node.returns is not None
                and ast.unparse(node.returns) == "int"
            ):
                found.setdefault(node.name, []).append(node)
    return found


def returned_exit_codes(command: str) -> set[int]:
    """The exit codes the command's `main` can return: its literal returns, and those of the `-> int`
    functions of its package whose result it returns (`return serve(...)`, `return session.run()`,
    `return asyncio.run(_serve(...))`), followed by name; plus 2, argparse's usage error."""
    module = command_module(command)
    functions = _package_functions(module)
    (main,) = [
        node
        for node in ast.parse(inspect.getsource(module)).body
        if isinstance(node, ast.FunctionDef) and node.name == "main"
    ]
    codes: set[int] = {2}
    seen: set[str] = set()
    todo: list[ast.FunctionDef | ast.AsyncFunctionDef] = [main]
    while todo:
        fn = todo.pop()
        for node in ast.walk(fn):
            if not isinstance(node, ast.Return) or node.value is None:
                continue
            values = [node.value]
            if isinstance(node.value, ast.IfExp):
                values = [node.value.body, node.value.orelse]
            for value in values:
                if isinstance(value, ast.Constant) and isinstance(value.value, int):
                    codes.add(value.value)
                elif isinstance(value, ast.Call):
                    for call in (value, *(a for a in value.args if isinstance(a, ast.Call))):
                        func = call.func
                        name = func.attr if isinstance(func, ast.Attribute) else ast.unparse(func)
                        if name not in seen:
                            seen.add(name)
                            todo.extend(functions.get(name, []))
    return codes


# --- the checks ---------------------------------------------------------------------------------------


def test_every_command_has_a_documented_options_table():
    assert set(OPTION_TABLES) == set(_cli.COMMANDS)


@pytest.mark.parametrize("command", sorted(OPTION_TABLES))
def test_options_table_equals_the_parser(command):
    path, heading = OPTION_TABLES[command]
    rows = table_rows(section(path, heading))
    documented = [named_options(row[0]) for row in rows]
    assert all(documented), f"{path.name} {heading}: a row names no option: {rows}"
    named = set().union(*documented)
    actual = parser_options(command)
    missing = [opts for opts in actual if not set(opts) & named]
    stale = sorted(name for name in named if not any(name in opts for opts in actual))
    where = f"{path.name} {heading}"
    assert (missing, stale) == ([], []), f"{where}: missing {missing}, not in the parser {stale}"


@pytest.mark.parametrize(("command", "start", "end"), README_OPTION_LISTS)
def test_readme_option_lists_equal_the_parser(command, start, end):
    text = " ".join(README.read_text().split())
    assert start in text, start
    rest = text[text.index(start) :]
    assert end in rest, end
    listed = named_options(rest.split(end, 1)[0])
    actual = parser_options(command)
    missing = [opts for opts in actual if not set(opts) & listed]
    stale = sorted(name for name in listed if not any(name in opts for opts in actual))
    assert (missing, stale) == ([], []), f"README, {command}: missing {missing}, not in the parser {stale}"


def test_exit_code_table_names_every_command():
    rows = table_rows(section(DOCS / "cli.md", "## Exit codes"))
    assert [row[0].strip("`") for row in rows] == list(_cli.COMMANDS)


@pytest.mark.parametrize("command", list(_cli.COMMANDS))
def test_exit_code_table_equals_the_code(command):
    rows = {row[0].strip("`"): row[1] for row in table_rows(section(DOCS / "cli.md", "## Exit codes"))}
    assert exit_codes_in(rows[command]) == returned_exit_codes(command)


@pytest.mark.parametrize(("path", "command", "after"), EXIT_SENTENCES)
def test_exit_code_sentences_equal_the_code(path, command, after):
    assert exit_codes_in(exit_sentence(path, after)) == returned_exit_codes(command)


@pytest.mark.parametrize(("path", "command", "heading"), EXIT_TABLES)
def test_exit_code_tables_equal_the_code(path, command, heading):
    text = section(path, heading)
    assert "Exit codes:" in text, f"{path.name} {heading}: no `Exit codes:` table"
    rows = table_rows(text.split("Exit codes:", 1)[1])
    assert {int(row[0]) for row in rows} == returned_exit_codes(command)


def test_the_code_scan_follows_returned_calls():
    """The scan cannot pass by seeing only `main`: the webhook's 0 comes from `serve`, `logs`'s 0 from
    its session's `run`, the sidecar's 1-less set from its `main` alone."""
    assert returned_exit_codes("webhook") == {0, 1, 2, 130}
    assert returned_exit_codes("logs") >= {0, 1, 2, 130, 141}
    assert returned_exit_codes(contract.TAIL_COMMAND) == {0, 2}


def test_readme_event_list_is_the_contract():
    """The README's list of the sidecar's diagnostics names exactly contract.SIDECAR_EVENTS."""
    text = README.read_text()
    listed = text.split("Its diagnostics go to stderr as", 1)[1].split("exactly the names of", 1)[0]
    named = set(re.findall(r"`([a-z_]+)`", listed))
    assert named == contract.SIDECAR_EVENTS, (
        f"missing {sorted(contract.SIDECAR_EVENTS - named)}, stale {sorted(named - contract.SIDECAR_EVENTS)}"
    )
