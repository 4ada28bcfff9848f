"""End to end: a transformed Elyra step run with the real bootstrapper, the sidecar and a real S3 server.

The pod is two processes sharing a directory (see tests/support/runner.py for the exact substitutions).
"""

from __future__ import annotations

import json
import shutil

import pytest

from elyra_sidecar.transformer import config_from_mapping, transform
from tests.helpers import FIXTURES, load_fixture
from tests.support import elyra
from tests.support.runner import run_step

LIVE_OFF = config_from_mapping({"live": {"mode": "off"}})

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


def _run(fixture: str, script: bytes, *, s3, template="run-a-file", config=None, extra_files=None, **kwargs):
    workflow = transform(load_fixture(FIXTURES / fixture), config).workflow
    result = run_step(
        workflow,
        template,
        s3=s3,
        files={"load_data.py": script, "train.ipynb": NOTEBOOK, **(extra_files or {})},
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


class TestElyra313:
    """Elyra 3.13.0: one `&&` chain that `cd`s into jupyter-work-dir before the bootstrapper."""

    def test_and_chain_runs_in_jupyter_work_dir(self, s3_server, cleanup):
        """The log and outputs land in <work>/jupyter-work-dir, streamed live, mirrored, artifacts there."""
        if elyra.find_interpreter("3.10") is None:
            pytest.skip(
                "Elyra 3.13's bootstrapper needs Python 3.7-3.10 in the image; python3.10 is not installed"
            )
        _, r = _run("elyra-3.13.0-three-node.yaml", SCRIPT, s3=s3_server, parameters={})
        cleanup(r)
        assert r.main_rc == 0, r.main_out.data.decode(errors="replace")[-3000:]
        first, last = r.sidecar_out.arrival(b"progress 1/3"), r.sidecar_out.arrival(b"progress 3/3")
        assert first is not None and last is not None and last - first > 2.0
        assert r.sidecar_out.data == EXPECTED
        assert r.host_path("/elyra-sidecar/work/jupyter-work-dir/load_data.log").read_bytes() == EXPECTED
        assert s3_server.get("elyra-bucket", f"{r.node.cos_directory}/load_data.log") == EXPECTED
        paths = {name: path for name, path, _ in r.artifacts}
        assert paths["data-csv"] == "/elyra-sidecar/work/jupyter-work-dir/data.csv"
        assert [n for n, _, host in r.artifacts if not host.exists()] == []


class TestElyra400:
    """Elyra 4.0.0 holds the output in memory and writes <name>.log only after success; live mode tees it."""

    def test_live_first_line_before_the_end(self, s3_server, cleanup):
        """Live mode: first line out while the script runs; byte-exact; in S3; artifacts; exit 0."""
        _, r = _run("elyra-4.0.0-three-node.yaml", SCRIPT, s3=s3_server)
        cleanup(r)
        assert r.main_rc == 0, r.main_out.data.decode(errors="replace")[-3000:]
        first = r.sidecar_out.arrival(b"progress 1/3")
        last = r.sidecar_out.arrival(b"progress 3/3")
        assert first is not None and last is not None and last - first > 2.0
        assert r.sidecar_out.data == EXPECTED
        assert s3_server.get("elyra-bucket", f"{r.node.cos_directory}/load_data.log") == EXPECTED
        assert r.sidecar_rc == 0 and r.sidecar_exit_seconds < 2
        assert [n for n, _, host in r.artifacts if not host.exists()] == []
        # The bootstrapper still received everything: its own log (and its <name>.log) hold the output.
        assert EXPECTED.decode() in r.main_out.data.decode()
        assert r.host_path("/elyra-sidecar/work/load_data.log").read_bytes() == EXPECTED

    def test_bootstrapper_output_and_exit_code_unchanged_by_live_mode(self, s3_server, cleanup):
        """Same script with live mode off and on: the bootstrapper's output record and exit code agree."""
        for script, rc in ((SCRIPT, 0), (FAILING, 1)):
            _, off = _run("elyra-4.0.0-three-node.yaml", script, s3=s3_server, config=LIVE_OFF)
            _, on = _run("elyra-4.0.0-three-node.yaml", script, s3=s3_server)
            cleanup(off)
            cleanup(on)
            assert off.main_rc == on.main_rc == rc
            assert _output_record(off) == _output_record(on)

    def test_live_failure_log_lands_in_storage(self, s3_server, cleanup):
        """A failing script: 4.0 writes no log, but the live copy is streamed and mirrored to S3."""
        _, r = _run("elyra-4.0.0-three-node.yaml", FAILING, s3=s3_server)
        cleanup(r)
        expected = b"about to fail\nboom: the script failed\n"
        assert r.main_rc == 1
        assert r.sidecar_out.data == expected
        assert s3_server.get("elyra-bucket", f"{r.node.cos_directory}/load_data.log") == expected
        assert not r.host_path("/elyra-sidecar/work/load_data.log").exists()  # 4.0's own: never written

    def test_without_live_mode_the_log_comes_at_the_end_only(self, s3_server, cleanup):
        """live.mode off: the sidecar can only stream what 4.0 writes after success."""
        _, r = _run("elyra-4.0.0-three-node.yaml", SCRIPT, s3=s3_server, config=LIVE_OFF)
        cleanup(r)
        assert r.main_rc == 0
        assert r.sidecar_out.data == EXPECTED
        first = r.sidecar_out.arrival(b"progress 1/3")
        assert first is not None and first > r.main_exited - 1.0  # nothing before the script had ended

    def test_failure_without_live_mode_leaves_no_log_documented(self, s3_server, cleanup):
        """live.mode off and a failing script: no log file, nothing streamed, nothing in storage."""
        _, r = _run("elyra-4.0.0-three-node.yaml", FAILING, s3=s3_server, config=LIVE_OFF)
        cleanup(r)
        assert r.main_rc == 1
        assert b"about to fail" in r.main_out.data
        assert r.sidecar_out.data == b""
        assert not r.host_path("/elyra-sidecar/work/load_data.log").exists()
        assert r.sidecar_rc == 0


def _output_record(result) -> bytes:
    """The bootstrapper's `Output: ...` log record (where 4.0 logs the script output), to the next record."""
    return result.main_out.data.split(b"Output: ", 1)[1].split(b"[I ", 1)[0].split(b"[E ", 1)[0]


PARAM_SCRIPT = b"""import os, pathlib
pathlib.Path("data.csv").write_text("x\\n")
print("DATASET_URL=" + os.environ["DATASET_URL"])
"""


class TestPromotedParameters:
    @pytest.mark.parametrize("fixture", ["elyra-3.15.0-three-node.yaml", "elyra-4.0.0-three-node.yaml"])
    def test_changed_run_parameter_reaches_the_script(self, s3_server, cleanup, fixture):
        """--promote-env DATASET_URL, then a run with another value: the script sees the new value."""
        config = config_from_mapping({"parameters": {"promote_env": ["DATASET_URL"]}})
        _, default = _run(fixture, PARAM_SCRIPT, s3=s3_server, config=config)
        _, changed = _run(
            fixture,
            PARAM_SCRIPT,
            s3=s3_server,
            config=config,
            workflow_parameters={"DATASET_URL": "s3://other-bucket/other.csv"},
        )
        cleanup(default)
        cleanup(changed)
        assert default.sidecar_out.data == b"DATASET_URL=https://example.com/data.csv\n"
        assert changed.sidecar_out.data == b"DATASET_URL=s3://other-bucket/other.csv\n"


R_SCRIPT = b"""cat("report 1/2: starting\\n")
Sys.sleep(2)
message("report 2/2: done (stderr)")
writeLines(paste("title:", Sys.getenv("report_title")), "report.txt")
"""
R_EXPECTED = b"report 1/2: starting\nreport 2/2: done (stderr)\n"
R_INPUTS = {"model.pkl": b"m", "metrics/*.json": b"{}", "data.csv": b"a\n"}
R_PARAMS = {"report_title": "Weekly", "publish": "True"}


@pytest.mark.skipif(
    shutil.which("Rscript") is None, reason="no R runtime (scripts/test.sh installs r-base-core as root)"
)
class TestRNodes:
    """R nodes: `Rscript <file>` writes <name>.log as it runs in 3.x."""

    def test_r_node_live_and_mirrored_on_315(self, s3_server, cleanup):
        """Elyra 3.15.0 R node: first line before the end, byte-exact stdout and object, report.txt exists."""
        _, r = _run(
            "elyra-3.15.0-three-node.yaml",
            b"",
            s3=s3_server,
            template="run-a-file-3",
            inputs=R_INPUTS,
            parameters=R_PARAMS,
            extra_files={"report.r": R_SCRIPT},
        )
        cleanup(r)
        assert r.main_rc == 0, r.main_out.data.decode(errors="replace")[-3000:]
        first, last = r.sidecar_out.arrival(b"report 1/2"), r.sidecar_out.arrival(b"report 2/2")
        assert first is not None and last is not None and last - first > 1.5
        assert r.sidecar_out.data == R_EXPECTED
        assert s3_server.get("elyra-bucket", f"{r.node.cos_directory}/report.log") == R_EXPECTED
        declared = {name: host for name, _, host in r.artifacts}
        assert declared["report-txt"].read_text() == "title: Weekly\n"

    def test_r_node_on_400_log_at_the_end(self, s3_server, cleanup):
        """Elyra 4.0.0 R node (no live mode for R): the log arrives when the bootstrapper writes it."""
        _, r = _run(
            "elyra-4.0.0-three-node.yaml",
            b"",
            s3=s3_server,
            template="run-a-file-3",
            inputs=R_INPUTS,
            parameters=R_PARAMS,
            extra_files={"report.r": R_SCRIPT},
        )
        cleanup(r)
        assert r.main_rc == 0, r.main_out.data.decode(errors="replace")[-3000:]
        assert r.sidecar_out.data == R_EXPECTED
        assert r.sidecar_out.arrival(b"report 1/2") > r.main_exited - 1.0
