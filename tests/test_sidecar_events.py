"""The sidecar emits only the diagnostic event names the contract lists (what `elyra-sidecar logs` drops).

Two views of the same rule: the sidecar's source (every call that writes a record, on every path, even
the rare failure paths no scenario reaches) and its real output in scenarios that reach many of them.
"""

from __future__ import annotations

import ast
import io
import json
import logging

from elyra_sidecar import contract, diagnostics
from tests.helpers import ROOT
from tests.support.procs import SidecarProcess, free_port, wait_for

#: The pod room's source folder.
SIDECAR_ROOM = ROOT / "src" / "elyra_sidecar" / "sidecar"
#: The PodLogger calls that write one record; their first argument is the event.
LOG_METHODS = frozenset({"debug", "info", "warning", "error", "exception"})
#: Helpers that take the event as their n-th positional argument and forward it to a logger call.
FORWARDERS = {"_report": 1, "route_stdlib_logging": 1}


def _event_values(node: ast.expr, where: str) -> list[str]:
    """The event names an argument expression can take (a contract constant, a literal, or a choice)."""
    if isinstance(node, ast.IfExp):
        return _event_values(node.body, where) + _event_values(node.orelse, where)
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.Attribute) and ast.unparse(node.value) in {
        "SidecarEvent",
        "contract.SidecarEvent",
    }:
        value = getattr(contract.SidecarEvent, node.attr, None)
        assert isinstance(value, str), f"{where}: SidecarEvent has no {node.attr}"
        return [value]
    raise AssertionError(f"{where}: cannot tell which event {ast.unparse(node)!r} names")


def _receiver_is_a_logger(func: ast.Attribute) -> bool:
    # `log`, `self.log`, `self._log`: the names the pod room gives its PodLogger.
    return ast.unparse(func.value).rsplit(".", 1)[-1].lstrip("_") == "log"


def emitted_in_source() -> dict[str, list[str]]:
    """Every event name a logger call or forwarder in the pod room's modules can write, with its places."""
    found: dict[str, list[str]] = {}
    for path in sorted(SIDECAR_ROOM.glob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        forwarding = {
            id(call)
            for fn in ast.walk(tree)
            if isinstance(fn, ast.FunctionDef) and fn.name in FORWARDERS
            for call in ast.walk(fn)
            if isinstance(call, ast.Call)
        }
        for call in ast.walk(tree):
            if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Attribute):
                continue
            where = f"{path.name}:{call.lineno}"
            name = call.func.attr
            if name in LOG_METHODS and _receiver_is_a_logger(call.func):
                event = call.args[0]
                if id(call) in forwarding and isinstance(event, ast.Name):
                    continue  # the forwarder's own parameter: its callers are checked instead
            elif name in FORWARDERS:
                event = call.args[FORWARDERS[name]]
            else:
                continue
            for value in _event_values(event, where):
                found.setdefault(value, []).append(where)
    return found


def events_on_stderr(err: str) -> set[str]:
    """The events of every JSON record the sidecar wrote, its own and those routed from minio/urllib3."""
    return {json.loads(line)["event"] for line in err.splitlines()}


class TestSource:
    def test_every_emitted_event_is_in_the_contract(self):
        """No call in the pod room writes an event name the contract's set (and so `logs`) does not know."""
        unknown = {e: places for e, places in emitted_in_source().items() if e not in contract.SIDECAR_EVENTS}
        assert not unknown, f"events missing from contract.SidecarEvent: {unknown}"

    def test_every_contract_event_is_emitted(self):
        """The contract lists no stale name, and the scan sees every call (it cannot pass by seeing none)."""
        assert set(emitted_in_source()) == contract.SIDECAR_EVENTS

    def test_the_scan_sees_a_new_literal_event(self, tmp_path, monkeypatch):
        """A logger call with a new literal name, as a future change could add it, is reported."""
        room = tmp_path / "sidecar"
        room.mkdir()
        (room / "x.py").write_text('def f(log):\n    log.info("brand_new_event", a=1)\n')
        monkeypatch.setattr(f"{__name__}.SIDECAR_ROOM", room)
        assert emitted_in_source() == {"brand_new_event": ["x.py:2"]}


class TestOutput:
    def test_a_run_writes_only_contract_events(self, tmp_path):
        """A run that finds, truncates, deletes and re-creates its file, refuses a second one, has its mirror
        disabled and stops on main's exit-code file writes only events of the contract."""
        exit_file = tmp_path / "exitcode"
        sc = SidecarProcess(
            *("--dir", str(tmp_path), "--file", "a.log", "--file", "../b.log"),
            *("--key", "k/a.log", "--key", "k/b.log", "--main-exit-file", str(exit_file)),
        )
        sc.wait_started()
        log = tmp_path / "a.log"
        log.write_bytes(b"one\ntwo\n")
        assert wait_for(lambda: sc.out == b"one\ntwo\n")
        log.write_bytes(b"x\n")
        assert wait_for(lambda: '"file_truncated"' in sc.err)
        log.unlink()
        assert wait_for(lambda: '"file_deleted"' in sc.err or '"file_replaced"' in sc.err)
        log.write_bytes(b"again\n")
        assert wait_for(lambda: sc.out.endswith(b"again\n"))
        exit_file.write_text("0")
        assert sc.proc.wait(timeout=15) == 0  # by itself, on main's exit code
        sc.terminate()  # already gone: only collects the rest of its stderr
        events = events_on_stderr(sc.err)
        assert {"file_found", "file_truncated", "file_refused", "mirror_disabled", "main_exited"} <= events
        assert events <= contract.SIDECAR_EVENTS, events - contract.SIDECAR_EVENTS

    def test_failures_write_only_contract_events(self, tmp_path):
        """A --dir that is a file and an unreachable storage endpoint write only events of the contract."""
        not_a_dir = tmp_path / "plain"
        not_a_dir.write_bytes(b"")
        refused = SidecarProcess("--dir", str(not_a_dir), "--file", "a.log")
        work = tmp_path / "work"
        work.mkdir()
        (work / "a.log").write_bytes(b"line\n")
        unreachable = SidecarProcess(
            *("--dir", str(work), "--file", "a.log", "--key", "k/a.log", "--bucket", "b"),
            *("--endpoint", f"http://127.0.0.1:{free_port()}", "--upload-interval", "0.2"),
            *("--shutdown-deadline", "2"),
            env={"AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_ACCESS_KEY": "secret"},
        )
        assert wait_for(lambda: '"directory_refused"' in refused.err)
        assert wait_for(lambda: '"upload_failed"' in unreachable.err, timeout=20)
        events = set()
        for sc in (refused, unreachable):
            assert sc.terminate()[0] == 0
            events |= events_on_stderr(sc.err)
        assert {"directory_refused", "upload_failed", "sidecar_stopped"} <= events
        assert events <= contract.SIDECAR_EVENTS, events - contract.SIDECAR_EVENTS


class TestRoutedLibraryRecords:
    def test_a_library_warning_is_a_contract_event(self):
        """A minio/urllib3 warning (stdlib logging) is written as `library_message` with the library's text
        in `message` (it used to be the event itself, which `logs` took for a line of the script)."""
        stream = io.StringIO()
        root = logging.getLogger()
        handlers, level = root.handlers[:], root.level
        try:
            diagnostics.route_stdlib_logging(
                diagnostics.PodLogger(json_output=True, stream=stream), contract.SidecarEvent.LIBRARY_MESSAGE
            )
            logging.getLogger("urllib3.connectionpool").warning(
                "Retrying (%s) after %s", "Retry(total=2)", "x"
            )
            logging.getLogger("minio").info("below WARNING: not written")
        finally:
            root.handlers[:], root.level = handlers, level
        (record,) = [json.loads(line) for line in stream.getvalue().splitlines()]
        assert record["event"] == "library_message" in contract.SIDECAR_EVENTS
        assert record["logger"] == "urllib3.connectionpool"
        assert record["message"] == "Retrying (Retry(total=2)) after x"
        assert record["level"] == "warning"


class TestDocs:
    def test_the_docs_table_names_every_event(self):
        """docs/sidecar.md's diagnostics table lists each event of the contract."""
        docs = (ROOT / "docs" / "sidecar.md").read_text()
        section = docs.split("## Diagnostics", 1)[1].split("\n## ", 1)[0]
        assert {e for e in contract.SIDECAR_EVENTS if f"`{e}`" not in section} == set()
