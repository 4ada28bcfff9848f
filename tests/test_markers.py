"""The `slow` marker is on every test that waits in real time, so `-m "not slow"` is a quick run.

A test is real-time when its body sleeps (`time.sleep`, `asyncio.sleep`) or asserts on the wall clock (an
`assert` comparing `time.monotonic()`, an `elapsed` or a `latencies` value). It must carry `slow` itself,
on its class, or through its module's `pytestmark` (`e2e` counts: conftest adds `slow` to every e2e test).
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.helpers import ROOT

SLEEPS = frozenset({"time.sleep", "asyncio.sleep"})
CLOCKS = frozenset({"time.monotonic", "time.perf_counter", "time.time"})
DURATIONS = ("elapsed", "latencies")  # names (or dict keys) holding a measured duration
REAL_TIME_MARKERS = frozenset({"slow", "e2e"})


def _markers(decorators: list[ast.expr]) -> set[str]:
    """`pytest.mark.NAME` and `pytest.mark.NAME(...)` among decorators or a pytestmark value."""
    names = set()
    for node in decorators:
        for sub in ast.walk(node):
            if isinstance(sub, ast.Attribute) and ast.unparse(sub.value) == "pytest.mark":
                names.add(sub.attr)
    return names


def _module_markers(tree: ast.Module) -> set[str]:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets
        ):
            return _markers([node.value])
    return set()


def _reads_the_clock(node: ast.AST) -> bool:
    if isinstance(node, ast.Call):
        return ast.unparse(node.func) in CLOCKS
    if isinstance(node, ast.Name):
        return any(word in node.id for word in DURATIONS)
    return (
        isinstance(node, ast.Subscript)
        and isinstance(node.slice, ast.Constant)
        and any(word in str(node.slice.value) for word in DURATIONS)
    )


def _real_time(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    """What makes a test real-time: its sleeps and wall-clock assertions, as `line: source`."""
    found = []
    for node in ast.walk(fn):
        if isinstance(node, ast.Call) and ast.unparse(node.func) in SLEEPS:
            found.append(f"{node.lineno}: {ast.unparse(node)}")
        elif isinstance(node, ast.Assert) and any(
            isinstance(c, ast.Compare) and any(_reads_the_clock(sub) for sub in ast.walk(c))
            for c in ast.walk(node.test)
        ):  # a comparison with the clock, not a deadline passed to a call
            found.append(f"{node.lineno}: assert {ast.unparse(node.test)}")
    return found


def unmarked_real_time_tests(paths: list[Path]) -> dict[str, list[str]]:
    """Every real-time test without a real-time marker, as `file::[Class::]test` -> its reasons."""
    unmarked: dict[str, list[str]] = {}

    def visit(body: list[ast.stmt], where: str, inherited: set[str]) -> None:
        for node in body:
            if isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
                visit(node.body, f"{where}::{node.name}", inherited | _markers(node.decorator_list))
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test"):
                marks = inherited | _markers(node.decorator_list)
                reasons = _real_time(node)
                if reasons and not marks & REAL_TIME_MARKERS:
                    unmarked[f"{where}::{node.name}"] = reasons

    for path in paths:
        tree = ast.parse(path.read_text(), filename=str(path))
        visit(tree.body, path.name, _module_markers(tree))
    return unmarked


def test_every_real_time_test_is_marked_slow():
    assert unmarked_real_time_tests(sorted((ROOT / "tests").glob("test_*.py"))) == {}


def test_the_scan_finds_an_unmarked_sleep_and_a_wall_clock_bound(tmp_path):
    """It cannot pass by seeing nothing: a new unmarked sleep and a bound are reported, marked ones not."""
    module = tmp_path / "test_x.py"
    module.write_text(
        "import time, pytest\n"
        "def test_a():\n    time.sleep(1)\n"
        "class TestB:\n    def test_b(self):\n        started = time.monotonic()\n"
        "        assert time.monotonic() - started < 2\n"
        "    @pytest.mark.slow\n    def test_c(self):\n        time.sleep(1)\n"
        "@pytest.mark.slow\nclass TestD:\n    def test_d(self):\n        time.sleep(1)\n"
    )
    assert unmarked_real_time_tests([module]) == {
        "test_x.py::test_a": ["3: time.sleep(1)"],
        "test_x.py::TestB::test_b": ["7: assert time.monotonic() - started < 2"],
    }
    module.write_text("import time, pytest\npytestmark = pytest.mark.e2e\ndef test_a():\n    time.sleep(1)\n")
    assert unmarked_real_time_tests([module]) == {}
