"""End to end: a Python node's script output in main's log (the KFP UI's Logs tab), real bootstrappers.

Each step runs as its pod would (tests/support/runner.py): the real bootstrapper of Elyra 3.13, 3.15 and
4.0, the init container and the sidecar, a real S3 server. "Main's log" is main's stdout and stderr as
the runner collects them (one pipe, in arrival order).

The switch is `live.main_log`. Until /work/wt/h6-transformer.patch is applied, the transformer has no
such key: `_workflow` then adds by hand exactly what the patch makes the transformer add (marked
TRANSFORMER-PATCH below), so these tests drive the hook through the environment the transformer will
set. Once the patch is in, `_workflow` uses the real config and the hand-made branch is never taken.
"""

from __future__ import annotations

import dataclasses
import posixpath
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest

from elyra_sidecar.transformer import config_from_mapping, transform
from elyra_sidecar.transformer._config import Config, LiveConfig
from tests.helpers import FIXTURES, load_fixture
from tests.support import elyra
from tests.support.runner import StepResult, run_step

pytestmark = pytest.mark.e2e

PYTHON_NODE = "run-a-file"  # load_data.py in every three-node fixture
VERSIONS = {
    "3.13": "elyra-3.13.0-three-node.yaml",
    "3.15": "elyra-3.15.0-three-node.yaml",
    "4.0": "elyra-4.0.0-three-node.yaml",
}
# Where the bootstrapper leaves <name>.log (3.13 runs in jupyter-work-dir).
LOG_FILE = {
    "3.13": "/elyra-sidecar/work/jupyter-work-dir/load_data.log",
    "3.15": "/elyra-sidecar/work/load_data.log",
    "4.0": "/elyra-sidecar/work/load_data.log",
}
# The bootstrapper's records right before and right after the script runs.
BEFORE_SCRIPT = {"3.13": b"executing python script using", "3.15": b"executing python script using"}
BEFORE_SCRIPT["4.0"] = b"Processing file: load_data.py"
AFTER_SCRIPT = {"3.13": b"python script execution completed", "3.15": b"python script execution completed"}
AFTER_SCRIPT["4.0"] = b"] Output: "

LINES = [
    b"progress 1/3: loading data\n",
    "progress 2/3: training, caf\u00e9 \u2713\n".encode(),
    b"progress 3/3: done (stderr)\n",
    b"long line: " + b"z" * 10000 + b"\n",
]
EXPECTED = b"".join(LINES)

# The script waits after each line until the test has seen that line in main's log (a go-N file), so a
# line that reaches main's log only at the end makes it time out (a liveness bound, not a timing claim).
STEPPED = """import os, pathlib, sys, time
pathlib.Path("data.csv").write_text("a,b\\n1,2\\n")
GATE = {gate!r}
def step(n):
    for _ in range(12000):
        if os.path.exists(os.path.join(GATE, "go-%d" % n)):
            return
        time.sleep(0.01)
    sys.exit("line %d never reached main's log while the script ran" % n)
print("progress 1/3: loading data", flush=True)
step(1)
print("progress 2/3: training, caf\\u00e9 \\u2713", flush=True)
step(2)
print("progress 3/3: done (stderr)", file=sys.stderr, flush=True)
step(3)
print("long line: " + "z" * 10000, flush=True)
step(4)
"""
PLAIN = b"""import pathlib, sys
pathlib.Path("data.csv").write_text("a,b\\n1,2\\n")
print("progress 1/3: loading data")
print("progress 2/3: training, caf\\u00e9 \\u2713")
print("progress 3/3: done (stderr)", file=sys.stderr)
print("long line: " + "z" * 10000)
"""
FAILING = b"""import sys
print("about to fail")
raise SystemExit("boom: the script failed")
"""

# What a script may do to its own process (each writes its declared output first).
BEHAVIOURS = {
    "closes-stdout": b"""import os, pathlib, sys
pathlib.Path("data.csv").write_text("x\\n")
print("before", flush=True)
os.close(1)
sys.stderr.write("after\\n")
""",
    "redirects-stdout": b"""import os, pathlib, sys
pathlib.Path("data.csv").write_text("x\\n")
print("before", flush=True)
os.dup2(os.open("elsewhere.txt", os.O_WRONLY | os.O_CREAT), 1)
print("hidden", flush=True)
sys.stderr.write("after\\n")
""",
    "forks": b"""import os, pathlib
pathlib.Path("data.csv").write_text("x\\n")
print("parent", flush=True)
if os.fork() == 0:
    print("child", flush=True)
    os._exit(0)
while True:  # every child of this process: the hook's helper must not be one
    try:
        os.wait()
    except ChildProcessError:
        break
print("all children done", flush=True)
""",
    "execs": b"""import os, pathlib
pathlib.Path("data.csv").write_text("x\\n")
print("before", flush=True)
os.execv("/bin/sh", ["sh", "-c", "echo from exec"])
""",
    "os-exit": b"""import os, pathlib
pathlib.Path("data.csv").write_text("x\\n")
os.write(1, b"quick\\n")
os._exit(5)
""",
}


def _version_fixture(version: str) -> str:
    if version == "3.13" and elyra.find_interpreter("3.10") is None:
        pytest.skip(
            "Elyra 3.13's bootstrapper needs Python 3.7-3.10 in the image; python3.10 is not installed"
        )
    return VERSIONS[version]


def _patch_applied() -> bool:
    return "main_log" in {f.name for f in dataclasses.fields(LiveConfig)}


def _workflow(fixture: str, *, main_log: bool) -> dict[str, Any]:
    """The transformed workflow with the switch on or off."""
    if _patch_applied():
        return transform(
            load_fixture(FIXTURES / fixture), config_from_mapping({"live": {"main_log": main_log}})
        ).workflow
    # TRANSFORMER-PATCH: until /work/wt/h6-transformer.patch is applied, add what it adds, by hand.
    workflow = transform(load_fixture(FIXTURES / fixture)).workflow
    if main_log:
        template = next(t for t in workflow["spec"]["templates"] if t["name"] == PYTHON_NODE)
        _add_main_log(template, Config())
    return workflow


def _add_main_log(template: dict[str, Any], config: Config) -> None:
    """TRANSFORMER-PATCH: what `enable_live_output` adds with `live.main_log: true` (default config)."""
    main = template["container"]
    env = main["env"]
    names = {e["name"] for e in env}
    if "ELYRA_SIDECAR_LIVE_LOG" not in names:  # Elyra 2.x-3.x: the hook is not there yet
        mount = next(m for m in main["volumeMounts"] if m["name"] == config.work_dir.volume_name)
        live_dir = posixpath.join(mount["mountPath"], config.live.dir_name)  # the volume's root
        assert "PYTHONPATH" not in names
        script = next(a for a in main["args"] if "--file" in a).split("--file")[1].split()[0].strip("\"'")
        env += [
            {"name": "PYTHONPATH", "value": live_dir},
            {"name": "ELYRA_SIDECAR_LIVE_SCRIPT", "value": posixpath.basename(script)},
        ]
        template["initContainers"] = [
            {
                "name": config.live.init_container_name,
                "image": config.sidecar.image,
                "command": [config.sidecar.command[0], "install-live"],
                "args": ["--dest", live_dir],
                "volumeMounts": [{"name": mount["name"], "mountPath": mount["mountPath"]}],
            }
        ]
    env.append({"name": "ELYRA_SIDECAR_LIVE_MAIN", "value": "1"})


class Gate:
    """Opens go-N for the script once main's log holds its N-th line (called by the runner per chunk)."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="elyra-gate-"))
        self.seen = b""
        self.opened = 0

    def __call__(self, chunk: bytes) -> None:
        self.seen += chunk
        while self.opened < len(LINES) and LINES[self.opened] in self.seen:
            self.opened += 1
            (self.dir / f"go-{self.opened}").touch()

    def open_all(self) -> None:
        for n in range(1, len(LINES) + 1):
            (self.dir / f"go-{n}").touch()


@pytest.fixture
def cleanup():
    paths: list[Path] = []
    yield paths.append
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)


def _run(version: str, script: bytes, *, main_log: bool, s3: Any, cleanup: Any, **kwargs: Any) -> StepResult:
    fixture = _version_fixture(version)
    result = run_step(
        _workflow(fixture, main_log=main_log),
        PYTHON_NODE,
        s3=s3,
        files={"load_data.py": script},
        parameters={"learning_rate": "0.1"} if version != "3.13" else {},
        keep=True,
        **kwargs,
    )
    cleanup(result.pod_dir)
    return result


def _between(data: bytes, before: bytes, after: bytes) -> bytes:
    """Main's log from the line after the one holding `before` to the start of the line holding `after`."""
    start = data.index(b"\n", data.index(before)) + 1
    return data[start : data.rindex(b"\n", 0, data.index(after, start)) + 1]


def _output_record(result: StepResult) -> bytes | None:
    """Elyra 4.0's `Output: ...` record (the script's output as the bootstrapper logs it), else None."""
    data = result.main_out.data
    if b"] Output: " not in data:
        return None
    return data.split(b"] Output: ", 1)[1].split(b"\n[I ", 1)[0].split(b"\n[E ", 1)[0]


def _outcome(result: StepResult, version: str, s3: Any) -> tuple:
    """What must not depend on the switch: exit code, <name>.log, the S3 object, 4.0's Output record."""
    log = result.host_path(LOG_FILE[version])
    return (
        result.main_rc,
        log.read_bytes() if log is not None and log.exists() else None,
        s3.get("elyra-bucket", f"{result.node.cos_directory}/load_data.log"),
        _output_record(result),
    )


class TestLogsTab:
    @pytest.mark.parametrize("version", list(VERSIONS))
    def test_each_line_in_mains_log_while_the_script_runs(self, s3_server, cleanup, version):
        """Every line is in main's log before the script goes on (so before it ends); in order, exact."""
        gate = Gate()
        cleanup(gate.dir)
        script = STEPPED.format(gate=str(gate.dir)).encode()
        r = _run(version, script, main_log=True, s3=s3_server, cleanup=cleanup, main_echo=gate)
        assert r.main_rc == 0, r.main_out.data.decode(errors="replace")[-3000:]
        assert gate.opened == len(LINES)
        # Between the bootstrapper's records around the script: exactly the script's bytes, once.
        assert _between(r.main_out.data, BEFORE_SCRIPT[version], AFTER_SCRIPT[version]) == EXPECTED
        if version == "4.0":  # then 4.0 logs the same lines again in its Output record, at the end
            assert _output_record(r) == EXPECTED
            assert r.main_out.data.count(LINES[0]) == 2
        else:
            assert r.main_out.data.count(LINES[0]) == 1
            assert r.host_path(LOG_FILE[version]).read_bytes() == EXPECTED

    @pytest.mark.parametrize("version", list(VERSIONS))
    def test_without_the_switch_main_shows_no_script_line_live(self, s3_server, cleanup, version):
        """live.main_log off: as before, main's log has the lines only in 4.0's Output record."""
        gate = Gate()
        cleanup(gate.dir)
        gate.open_all()
        script = STEPPED.format(gate=str(gate.dir)).encode()
        r = _run(version, script, main_log=False, s3=s3_server, cleanup=cleanup)
        assert r.main_rc == 0
        assert _between(r.main_out.data, BEFORE_SCRIPT[version], AFTER_SCRIPT[version]) == b""
        assert r.main_out.data.count(LINES[0]) == (1 if version == "4.0" else 0)

    @pytest.mark.parametrize("version", list(VERSIONS))
    @pytest.mark.parametrize("script", [PLAIN, FAILING], ids=["succeeds", "fails"])
    def test_the_switch_changes_nothing_else(self, s3_server, cleanup, version, script):
        """Exit code, <name>.log, the S3 object and 4.0's Output record are the same, switch on and off."""
        on = _run(version, script, main_log=True, s3=s3_server, cleanup=cleanup)
        on_outcome = _outcome(on, version, s3_server)
        off = _run(version, script, main_log=False, s3=s3_server, cleanup=cleanup)
        assert on_outcome == _outcome(off, version, s3_server)
        assert on.main_rc == (0 if script is PLAIN else 1)
        assert b"about to fail\n" in on.main_out.data if script is FAILING else EXPECTED in on.main_out.data

    @pytest.mark.parametrize("version", ["3.15", "4.0"])
    @pytest.mark.parametrize("behaviour", list(BEHAVIOURS))
    def test_script_behaves_as_without_the_hook(self, s3_server, cleanup, version, behaviour):
        """Closing or redirecting stdout, fork + wait for all children, exec, os._exit: as without it."""
        script = BEHAVIOURS[behaviour]
        on = _run(version, script, main_log=True, s3=s3_server, cleanup=cleanup)
        on_outcome = _outcome(on, version, s3_server)
        off = _run(version, script, main_log=False, s3=s3_server, cleanup=cleanup)
        assert on_outcome == _outcome(off, version, s3_server)
        assert on.main_rc == (1 if behaviour == "os-exit" else 0)
