"""End to end: a KFP v2 step Pod mutated by Pod mode, run with the real Elyra 4.1.1 bootstrapper.

The Pod is `pod-2.17-elyra-step.reconstructed.yaml` (its --cos-endpoint pointed at this test's S3 server, as
if Elyra had compiled against it). `tests/support/pod.py` runs its containers as processes sharing host
directories, with stand-ins for Argo's emissary and KFP's launcher that follow shared/docs/KFP-V2.md; the
bootstrapper, the sidecar, its live hook and the S3 server (SeaweedFS) are real.
"""

from __future__ import annotations

import io
import re
import signal
from pathlib import Path

import jsonpatch
import pytest
import yaml

from elyra_sidecar import contract
from elyra_sidecar.sidecar import tail
from elyra_sidecar.transformer import Config
from elyra_sidecar.webhook._pod import mutate_pod, read_step
from tests.support import elyra
from tests.support.pod import argo_kill_command, pid_namespaces_available, start_pod
from tests.support.procs import wait_for
from tests.support.runner import dependency_archive
from tests.test_e2e import EXPECTED, SCRIPT

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "kfp-v2" / "pod-2.17-elyra-step.reconstructed.yaml"
CONFIG = Config()
# Bounds derived from the configured intervals: the sidecar's deadline from stop to exit, plus start-up slack.
STOP_BOUND = CONFIG.sidecar.shutdown_deadline_seconds + 5
FAILING = b"""import time
print("about to fail")
time.sleep(1.5)
raise SystemExit("boom: the script failed")
"""
SLOW = b"""import time
print("started, now working for a long time")
time.sleep(120)
"""


def _sidecar_has_exit_file() -> bool:
    return any(contract.ARG_MAIN_EXIT_FILE in a.option_strings for a in tail.parser()._actions)


pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not _sidecar_has_exit_file(),
        reason=f"the sidecar has no {contract.ARG_MAIN_EXIT_FILE} yet (added on another branch); "
        "the Pod mode passes it, so the mutated Pod's elyra-log would exit 2 here",
    ),
]


def container(pod, name):
    return next(c for c in pod["spec"]["containers"] if c["name"] == name)


def mutated_step(s3, script: bytes):
    """The reconstructed 2.17 Pod, its storage prepared as Elyra's export leaves it, mutated by Pod mode."""
    pod = yaml.safe_load(FIXTURE.read_text())
    main = container(pod, "main")
    main["args"] = [a.replace("http://127.0.0.1:9123", s3.endpoint) for a in main["args"]]
    node, _ = read_step(main, "main")
    assert node is not None and node.elyra_version == (4, 1, 1)
    elyra.bootstrapper("4.1.1")  # the real one, from the elyra-server 4.1.1 wheel
    archive = re.search(r"--cos-dependencies-archive\s+'([^']+)'", main["args"][2])
    assert archive is not None
    data = dependency_archive({"load_data.py": script})
    s3.make_bucket(node.cos_bucket)
    key = f"{node.cos_directory}/{archive.group(1)}"
    s3.client().put_object(node.cos_bucket, key, io.BytesIO(data), len(data))
    outcome = mutate_pod(pod, CONFIG)
    assert outcome.result == "patched", outcome.reason
    return jsonpatch.apply_patch(pod, outcome.patch), node


def _text(log) -> str:
    return log.data.decode(errors="replace")[-3000:]


class TestPodModeEndToEnd:
    def test_success_live_log_object_and_self_exit(self, s3):
        """Lines reach elyra-log as printed; S3 holds the log; elyra-log exits 0 on main's exit-code file."""
        pod, node = mutated_step(s3, SCRIPT)
        running = start_pod(pod)
        try:
            main, side = running.containers["main"], running.containers["elyra-log"]
            assert main.wait(timeout=300) == 0, _text(main.stdout) + _text(main.stderr)
            first = side.stdout.arrival(b"progress 1/3")
            last = side.stdout.arrival(b"progress 3/3")
            assert first is not None and last is not None, _text(side.stderr)
            assert first < main.exited and last - first > 2.0, "live: lines arrive as printed"
            # Nobody signals elyra-log: it ends by itself once emissary wrote main's exit code.
            assert side.wait(timeout=STOP_BOUND) == 0, _text(side.stderr)
            assert (running.volumes["var-run-argo"] / "ctr" / "main" / "exitcode").read_text() == "0"
            assert side.stdout.data == EXPECTED
            assert s3.get(node.cos_bucket, f"{node.cos_directory}/load_data.log") == EXPECTED
        finally:
            running.cleanup()

    def test_failure_log_object(self, s3):
        """A failing script: main exits 1 (the launcher's rule), its output is in elyra-log and in S3."""
        pod, node = mutated_step(s3, FAILING)
        running = start_pod(pod)
        try:
            main, side = running.containers["main"], running.containers["elyra-log"]
            assert main.wait(timeout=300) == 1, _text(main.stdout) + _text(main.stderr)
            assert side.wait(timeout=STOP_BOUND) == 0, _text(side.stderr)
            expected = b"about to fail\nboom: the script failed\n"
            assert side.stdout.data == expected
            # Elyra 4.1 never writes <name>.log on failure: this object exists only thanks to the sidecar.
            assert s3.get(node.cos_bucket, f"{node.cos_directory}/load_data.log") == expected
        finally:
            running.cleanup()

    def test_kill_cmd_stops_the_sidecar(self, s3):
        """Argo's kill command from the annotation, exec'd into elyra-log (PID 1 of its own PID namespace)."""
        why_not = pid_namespaces_available()
        if why_not:
            pytest.skip(why_not)
        pod, node = mutated_step(s3, SLOW)
        running = start_pod(pod, isolate=("elyra-log",))
        try:
            side = running.containers["elyra-log"]
            assert wait_for(lambda: b"started" in side.stdout.data, timeout=240), _text(side.stderr)
            command = argo_kill_command(pod, "elyra-log", signal.SIGTERM)
            assert command == ["elyra-sidecar", "stop", "--signal", "15"]
            done = running.exec_in("elyra-log", command)
            assert done.returncode == 0, done.stderr
            assert side.wait(timeout=STOP_BOUND) == 0, _text(side.stderr)
            assert running.containers["main"].process.poll() is None, "main is still running"
            expected = b"started, now working for a long time\n"
            assert side.stdout.data == expected
            assert s3.get(node.cos_bucket, f"{node.cos_directory}/load_data.log") == expected
        finally:
            running.cleanup()
