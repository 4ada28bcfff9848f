"""End to end: a transformed Elyra step run with the real bootstrapper, the sidecar and a real S3 server.

The pod is two processes sharing a directory (see tests/support/runner.py for the exact substitutions).
"""

from __future__ import annotations

import json
import shutil

import pytest

from tests.helpers import FIXTURES, load_fixture
from tests.support.runner import run_step
from transformer import transform

pytestmark = pytest.mark.e2e

SCRIPT = b"""import pathlib, sys, time
pathlib.Path("data.csv").write_text("a,b\\n1,2\\n")
print("progress 1/3: loading data")
time.sleep(1.5)
print("progress 2/3: training, caf\\u00e9 \\u2713")
time.sleep(1.5)
print("progress 3/3: done", file=sys.stderr)
"""
EXPECTED = (
    "progress 1/3: loading data\nprogress 2/3: training, caf\u00e9 \u2713\nprogress 3/3: done\n".encode()
)
FAILING = b"""import time
print("about to fail")
time.sleep(0.5)
raise SystemExit("boom: the script failed")
"""
PARAMS = {"learning_rate": "0.1"}


def _run(fixture: str, script: bytes, *, s3, template="run-a-file", **kwargs):
    workflow = transform(load_fixture(FIXTURES / fixture)).workflow
    result = run_step(
        workflow,
        template,
        s3=s3,
        files={"load_data.py": script, "train.ipynb": NOTEBOOK},
        parameters=kwargs.pop("parameters", PARAMS),
        keep=True,
        **kwargs,
    )
    return workflow, result


NOTEBOOK = json.dumps(
    {
        "cells": [
            {
                "cell_type": "code",
                "execution_count": None,
                "id": "c1",
                "metadata": {},
                "outputs": [],
                "source": [
                    "import pathlib, os\n",
                    "print('rows:', len(pathlib.Path('data.csv').read_text().splitlines()))\n",
                    "pathlib.Path('model.pkl').write_text('model')\n",
                    "os.makedirs('metrics', exist_ok=True)\n",
                    "pathlib.Path('metrics/acc.json').write_text('{\"acc\": 1}')\n",
                ],
            }
        ],
        "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
).encode()


@pytest.fixture
def cleanup():
    results = []
    yield results.append
    for result in results:
        shutil.rmtree(result.pod_dir, ignore_errors=True)


class TestElyra315:
    """Elyra 3.15.0: the script writes <name>.log as it runs, so the sidecar streams it live."""

    def test_live_byte_exact_mirrored_and_artifacts(self, s3_server, cleanup):
        """First line out before the script ends; stdout == log == S3 object; artifacts exist; exit codes."""
        _, r = _run("elyra-3.15.0-three-node.yaml", SCRIPT, s3=s3_server)
        cleanup(r)
        assert r.main_rc == 0, r.main_out.data.decode(errors="replace")[-3000:]
        first = r.sidecar_out.arrival(b"progress 1/3")
        last = r.sidecar_out.arrival(b"progress 3/3")
        assert first is not None and last is not None
        assert last - first > 2.0, "lines should arrive as the script prints them, not at the end"
        assert first < r.main_exited
        assert r.sidecar_out.data == EXPECTED
        assert (r.host_path("/elyra-sidecar/work/load_data.log")).read_bytes() == EXPECTED
        assert s3_server.get("elyra-bucket", f"{r.node.cos_directory}/load_data.log") == EXPECTED
        assert r.sidecar_rc == 0 and r.sidecar_exit_seconds is not None and r.sidecar_exit_seconds < 2
        missing = [(name, path) for name, path, host in r.artifacts if not host.exists()]
        assert missing == []
        assert {name for name, _, _ in r.artifacts} >= {"script-log"}

    def test_failing_script_log_still_lands(self, s3_server, cleanup):
        """A script that exits non-zero: its log is on stdout and in S3; main exits non-zero."""
        _, r = _run("elyra-3.15.0-three-node.yaml", FAILING, s3=s3_server)
        cleanup(r)
        expected = b"about to fail\nboom: the script failed\n"
        assert r.main_rc == 1
        assert r.sidecar_out.data == expected
        assert s3_server.get("elyra-bucket", f"{r.node.cos_directory}/load_data.log") == expected
        assert r.sidecar_rc == 0 and r.sidecar_exit_seconds < 2

    def test_notebook_node_outputs_and_directories(self, s3_server, cleanup):
        """Notebook node: -output.ipynb, .html, a file and a directory output all exist where declared."""
        _, r = _run(
            "elyra-3.15.0-three-node.yaml",
            SCRIPT,
            s3=s3_server,
            template="run-a-file-2",
            inputs={"data.csv": b"a,b\n1,2\n3,4\n"},
            parameters={"learning_rate": "0.1", "epochs": "3"},
            secrets={("db-secret", "password"): "pw"},
        )
        cleanup(r)
        assert r.main_rc == 0, r.main_out.data.decode(errors="replace")[-3000:]
        declared = {name: host for name, _, host in r.artifacts}
        for name in ("notebook-output", "notebook-html", "model-pkl", "metrics"):
            assert declared[name].exists(), name
        assert declared["metrics"].is_dir() and (declared["metrics"] / "acc.json").exists()
        assert b"rows: 3" in declared["notebook-output"].read_bytes()


class TestElyra400:
    """Elyra 4.0.0 writes <name>.log only after success (live output: a separate issue)."""

    def test_log_at_end_byte_exact(self, s3_server, cleanup):
        """Success: the sidecar's stdout and the S3 object equal the output; artifacts exist."""
        _, r = _run("elyra-4.0.0-three-node.yaml", SCRIPT, s3=s3_server)
        cleanup(r)
        assert r.main_rc == 0, r.main_out.data.decode(errors="replace")[-3000:]
        assert r.sidecar_out.data == EXPECTED
        assert s3_server.get("elyra-bucket", f"{r.node.cos_directory}/load_data.log") == EXPECTED
        assert r.sidecar_rc == 0 and r.sidecar_exit_seconds < 2
        assert [n for n, _, host in r.artifacts if not host.exists()] == []

    def test_failure_leaves_no_log_documented(self, s3_server, cleanup):
        """Failure: 4.0 never writes the log; the output is only in main's log. What 4.0 leaves, asserted."""
        _, r = _run("elyra-4.0.0-three-node.yaml", FAILING, s3=s3_server)
        cleanup(r)
        assert r.main_rc == 1
        assert b"about to fail" in r.main_out.data
        assert r.sidecar_out.data == b""
        assert not r.host_path("/elyra-sidecar/work/load_data.log").exists()
        assert r.sidecar_rc == 0
