"""`elyra-sidecar logs RUN` as a real process, through the real `kubernetes` client against the local HTTPS
stand-in for the API server (tests/support/k8s_standin.py), and the real S3 server for the mirrored copies.

The Workflow is the transformer's golden output for Elyra 4.0.0 (two steps with the log sidecar: "Load
data" and "Report"; the notebook "Train" has none), with the S3 endpoint of this module's server.
"""

from __future__ import annotations

import copy
import io
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import zlib
from typing import Any

import pytest
import trustme
import yaml

from tests.helpers import GOLDEN
from tests.support.k8s_standin import Cluster, StandIn, now, start_standin
from tests.support.procs import wait_for
from tests.support.s3 import ACCESS_KEY, SECRET_KEY, S3Server, start_s3

NS = "team-a"
RUN_ID = "4f8c1d52-0c5e-4b7a-9e0e-3a1c2b6d7e8f"
WF = "three-node-x7k2p"
BUCKET = "elyra-bucket"
PREFIX = "my/project/three-node-1121214047"
WAIT = 20.0  # seconds to wait for a condition; every loop in the command is bounded by --poll-interval
POLL = "0.2"

pytestmark = pytest.mark.s3

#: A record of the sidecar's own diagnostics on its stderr, which the pod log interleaves with the script.
DIAGNOSTIC = (
    b'{"directory": "/elyra-sidecar/work", "files": ["load_data.log"], "mirror": true, "pid": 7, '
    b'"event": "sidecar_started", "level": "info", "timestamp": "2026-11-22T06:00:01.000000Z"}\n'
)


@pytest.fixture(scope="module")
def s3(tmp_path_factory) -> Any:
    """The real S3 server, on http and (a certificate from a private `trustme` CA) on https; `s3.ca` is the
    CA's PEM file."""
    tls = tmp_path_factory.mktemp("s3-tls")
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1")
    leaf.cert_chain_pems[0].write_to_path(str(tls / "cert.pem"))
    leaf.private_key_pem.write_to_path(str(tls / "key.pem"))
    ca.cert_pem.write_to_path(str(tls / "ca.pem"))
    server = start_s3(tls=(str(tls / "cert.pem"), str(tls / "key.pem")))
    server.ca = tls / "ca.pem"
    server.make_bucket(BUCKET)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def standin(tmp_path) -> Any:
    srv = start_standin(tmp_path, namespace=NS)
    try:
        yield srv
    finally:
        srv.stop()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def workflow(endpoint: str, *, golden: str = "elyra-4.0.0-three-node.default.yaml") -> dict[str, Any]:
    """The golden transformed Workflow as the cluster holds it once KFP has submitted it (running)."""
    wf = yaml.safe_load((GOLDEN / golden).read_text())
    for i, template in enumerate(wf["spec"]["templates"]):
        for sidecar in template.get("sidecars") or []:
            args = [a.replace("http://127.0.0.1:9123", endpoint) for a in sidecar["args"]]
            if i == 0:  # the `--name value` form the 0.1 transformer wrote (the goldens have `--name=value`)
                args = [part for arg in args for part in arg.split("=", 1)]
            sidecar["args"] = args
    wf["metadata"] = {
        "name": WF,
        "namespace": NS,
        "uid": "0b9c6a4e-5d1f-4c2a-8f3e-7a6b5c4d3e2f",
        "creationTimestamp": now(),
        "labels": {"pipeline/runid": RUN_ID, "workflows.argoproj.io/phase": "Running"},
    }
    wf["status"] = {
        "phase": "Running",
        "startedAt": now(),
        "nodes": {WF: {"id": WF, "name": WF, "displayName": WF, "type": "DAG", "phase": "Running"}},
    }
    return wf


class Run:
    """Plays Argo's and the kubelet's part on the stand-in: nodes, pods, container states, logs."""

    def __init__(self, cluster: Cluster, wf: dict[str, Any]) -> None:
        self.cluster = cluster
        self.wf = wf
        self.templates = {t["name"]: t for t in wf["spec"]["templates"]}
        self.pods: dict[str, str] = {}
        cluster.put_workflow(wf)

    def start(self, task: str, *, started: str | None = None, pod: bool = True, waiting: bool = False) -> str:
        """The node starts (Running) and its pod appears, its log sidecar running (or still waiting)."""
        started = started or now()
        node_id = f"{WF}-{zlib.crc32(task.encode())}"  # Argo's node ids are hashes of the node name too
        self.wf["status"]["nodes"][node_id] = {
            "id": node_id,
            "name": f"{WF}.{task}",
            "displayName": task,
            "type": "Pod",
            "templateName": task,
            "phase": "Running",
            "startedAt": started,
        }
        self.cluster.put_workflow(self.wf)
        self.pods[task] = node_id
        if pod:
            self.cluster.put_pod(self._pod(task, node_id, started, "waiting" if waiting else "running"))
        return node_id

    def _pod(self, task: str, name: str, started: str, state: str) -> dict[str, Any]:
        template = self.templates[task]
        meta = template.get("metadata") or {}
        containers = [
            {"name": "wait", "image": "quay.io/argoproj/argoexec:v3.4.17"},
            {"name": "main", **template["container"]},
            *template.get("sidecars", []),
        ]
        states = {
            "waiting": {"waiting": {"reason": "ContainerCreating"}},
            "running": {"running": {"startedAt": started}},
            "terminated": {"terminated": {"exitCode": 0, "reason": "Completed", "finishedAt": now()}},
        }
        return {
            "metadata": {
                "name": name,
                "namespace": NS,
                "uid": f"uid-{name}",
                "creationTimestamp": started,
                "labels": {**(meta.get("labels") or {}), "workflows.argoproj.io/workflow": WF},
                "annotations": {
                    **(meta.get("annotations") or {}),
                    "workflows.argoproj.io/node-name": f"{WF}.{task}",
                    "workflows.argoproj.io/node-id": name,
                },
            },
            "spec": {"containers": containers, "restartPolicy": "Never"},
            "status": {
                "phase": "Running" if state != "terminated" else "Succeeded",
                "startTime": started,
                "containerStatuses": [
                    {
                        "name": c["name"],
                        "ready": state == "running",
                        "restartCount": 0,
                        "image": c.get("image", ""),
                        "imageID": "",
                        "state": states[state],
                    }
                    for c in containers
                ],
            },
        }

    def container(self, task: str) -> str:
        return str(next(s["name"] for s in self.templates[task]["sidecars"]))

    def log(self, task: str, data: bytes) -> None:
        self.cluster.write_log(NS, self.pods[task], self.container(task), data)

    def set_state(self, task: str, state: str) -> None:
        with self.cluster.cond:
            pod = copy.deepcopy(self.cluster.pods[(NS, self.pods[task])])
        started = pod["status"]["startTime"]
        self.cluster.put_pod(self._pod(task, self.pods[task], started, state))

    def finish(self, task: str, phase: str = "Succeeded") -> None:
        """The containers terminate: the log ends, the pod and the node are done."""
        node = self.wf["status"]["nodes"][self.pods[task]]
        if (NS, self.pods[task]) in self.cluster.pods:
            self.set_state(task, "terminated")
            self.cluster.close_log(NS, self.pods[task], self.container(task))
        node["phase"] = phase
        node["finishedAt"] = now()
        self.cluster.put_workflow(self.wf)

    def delete_pod(self, task: str) -> None:
        self.cluster.delete_pod(NS, self.pods[task])

    def end(self, phase: str = "Succeeded") -> None:
        self.wf["status"]["phase"] = phase
        self.wf["status"]["finishedAt"] = now()
        self.wf["metadata"]["labels"]["workflows.argoproj.io/phase"] = phase
        self.cluster.put_workflow(self.wf)


class Logs:
    """`python -m elyra_sidecar logs ...` as a child process, its output collected as it comes."""

    def __init__(self, standin: StandIn, *args: str, env: dict[str, str] | None = None) -> None:
        full = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "KUBE"))}
        full.update({"KUBECONFIG": str(standin.kubeconfig), "HOME": str(standin.kubeconfig.parent)})
        full.update(env or {})
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "elyra_sidecar", "logs", "--poll-interval", POLL, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=full,
        )
        self._out = io.BytesIO()
        self._err = io.BytesIO()
        self._threads = [
            threading.Thread(target=self._pump, args=(self.proc.stdout, self._out), daemon=True),
            threading.Thread(target=self._pump, args=(self.proc.stderr, self._err), daemon=True),
        ]
        for t in self._threads:
            t.start()

    @staticmethod
    def _pump(stream: Any, sink: io.BytesIO) -> None:
        sink.writelines(iter(lambda: os.read(stream.fileno(), 65536), b""))

    @property
    def out(self) -> str:
        return self._out.getvalue().decode(errors="replace")

    @property
    def err(self) -> str:
        return self._err.getvalue().decode(errors="replace")

    def wait_out(self, text: str) -> None:
        assert wait_for(lambda: text in self.out, WAIT), (
            f"{text!r} not printed\nout:\n{self.out}\nerr:\n{self.err}"
        )

    def wait(self) -> int:
        code = self.proc.wait(timeout=WAIT)
        for t in self._threads:
            t.join(timeout=5)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def run_logs(standin: StandIn, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    logs = Logs(standin, *args, env=env)
    try:
        code = logs.wait()
    finally:
        logs.kill()
    return code, logs.out, logs.err


def s3_env() -> dict[str, str]:
    return {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}


def finished_run(standin: StandIn, s3: S3Server) -> Run:
    run = Run(standin.cluster, workflow(s3.endpoint))
    run.start("run-a-file", started="2026-11-22T06:00:01Z")
    run.log("run-a-file", DIAGNOSTIC + b"loading 1\nloading 2\n")
    run.finish("run-a-file")
    run.start("run-a-file-3", started="2026-11-22T06:00:09Z")
    run.log("run-a-file-3", b"report 1\nreport 2")
    run.finish("run-a-file-3")
    run.end()
    return run


class TestFinishedRun:
    def test_steps_in_start_order_prefixed_from_the_pods(self, standin, s3):
        """A finished run, found by its KFP run id: each step's script lines, prefixed with the node's
        display name, steps in start order; the sidecar's own records left out; nothing said on stderr."""
        finished_run(standin, s3)
        code, out, err = run_logs(standin, RUN_ID)
        assert code == 0, err
        assert out == ("[Load data] loading 1\n[Load data] loading 2\n[Report] report 1\n[Report] report 2\n")
        assert err == ""

    def test_by_workflow_name_one_node_no_prefix_with_timestamps(self, standin, s3):
        """By Workflow name, `--node Report --no-prefix --timestamps`: that step's lines only, each
        after the kubelet's time."""
        finished_run(standin, s3)
        code, out, err = run_logs(standin, WF, "--node", "Report", "--no-prefix", "--timestamps")
        assert code == 0, err
        lines = out.splitlines()
        assert len(lines) == 2
        for line, text in zip(lines, ("report 1", "report 2"), strict=True):
            stamp, _, rest = line.partition(" ")
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z", stamp) and rest == text

    def test_pods_gone_lines_from_s3_with_the_steps_own_credentials(self, standin, s3):
        """Pods garbage-collected: each step's mirrored object, read with the credentials the Workflow gives
        the sidecar (no AWS_* in the environment); stderr says where each step's lines came from."""
        run = finished_run(standin, s3)
        client = s3.client()
        for name, body in (("load_data.log", b"loading 1\nloading 2\n"), ("report.log", b"report 1\n")):
            client.put_object(BUCKET, f"{PREFIX}/{name}", io.BytesIO(body), len(body))
        for task in ("run-a-file", "run-a-file-3"):
            run.delete_pod(task)
        code, out, err = run_logs(standin, RUN_ID)
        assert code == 0, err
        assert out == "[Load data] loading 1\n[Load data] loading 2\n[Report] report 1\n", err
        assert f"[Load data] its pod is gone: lines from s3://{BUCKET}/{PREFIX}/load_data.log" in err
        assert f"[Report] its pod is gone: lines from s3://{BUCKET}/{PREFIX}/report.log" in err

    def test_offloaded_node_status_steps_found_from_their_pods(self, standin, s3):
        """Argo offloads large node statuses to its database (`status.nodes` absent): the steps are found
        from their pods alone, named and ordered from the pods."""
        run = finished_run(standin, s3)
        run.wf["status"]["nodes"] = None
        run.wf["status"]["offloadNodeStatusVersion"] = "fnv:1234"
        standin.cluster.put_workflow(run.wf)
        code, out, err = run_logs(standin, RUN_ID)
        assert code == 0, err
        assert out == ("[Load data] loading 1\n[Load data] loading 2\n[Report] report 1\n[Report] report 2\n")

    def test_missing_object_is_a_note_and_an_older_copy_is_flagged(self, standin, s3):
        """Pod gone and no object: a note for that step, exit 0. An object written before its step
        started (another run of the same pipeline wrote the shared key) is printed with a note."""
        run = Run(standin.cluster, workflow(s3.endpoint))
        run.start("run-a-file", pod=False, started="2099-01-01T00:00:00Z")
        run.finish("run-a-file")
        run.start("run-a-file-3", pod=False, started="2099-01-01T00:00:05Z")
        run.finish("run-a-file-3")
        run.end()
        s3.client().put_object(BUCKET, f"{PREFIX}/load_data.log", io.BytesIO(b"old\n"), 4)
        s3.client().remove_object(BUCKET, f"{PREFIX}/report.log")
        code, out, err = run_logs(standin, RUN_ID)
        assert code == 0, err
        assert out == "[Load data] old\n"
        assert "[Load data] note: that object was written before this step started" in err
        assert f"[Report] no log: its pod is gone, and s3://{BUCKET}/{PREFIX}/report.log" in err

    def test_credentials_from_a_named_secret(self, standin, s3):
        """`--s3-secret NAME` reads the credentials from that Secret (KFP's accesskey/secretkey keys)
        through the API; the Workflow's own (wrong here) values are not used."""
        wf = workflow(s3.endpoint)
        for template in wf["spec"]["templates"]:
            for sidecar in template.get("sidecars") or []:
                sidecar["env"] = [{"name": "AWS_ACCESS_KEY_ID", "value": "wrong"}]
        run = Run(standin.cluster, wf)
        run.start("run-a-file", pod=False)
        run.finish("run-a-file")
        run.end()
        s3.client().put_object(BUCKET, f"{PREFIX}/load_data.log", io.BytesIO(b"from s3\n"), 8)
        standin.cluster.put_secret(
            NS, "mlpipeline-minio-artifact", {"accesskey": ACCESS_KEY, "secretkey": SECRET_KEY}
        )
        code, out, err = run_logs(standin, RUN_ID, "--s3-secret", "mlpipeline-minio-artifact")
        assert code == 0, err
        assert out == "[Load data] from s3\n"
        assert ("get", "secrets") in standin.cluster.requests


def https_only_run(standin: StandIn, s3: S3Server) -> Run:
    """A finished run whose pods are gone and whose sidecars mirrored to the https endpoint."""
    assert s3.https_endpoint
    run = Run(standin.cluster, workflow(s3.https_endpoint))
    run.start("run-a-file", pod=False)
    run.finish("run-a-file")
    run.end()
    s3.client().put_object(BUCKET, f"{PREFIX}/load_data.log", io.BytesIO(b"over tls\n"), 9)
    return run


class TestS3OverTls:
    def test_ca_bundle_trusts_a_private_ca(self, standin, s3):
        """`--s3-ca-bundle` with the private CA that signed the https S3 endpoint's certificate: the copy is
        read over TLS (the same run without it fails: TestFailures)."""
        https_only_run(standin, s3)
        code, out, err = run_logs(standin, RUN_ID, "--s3-ca-bundle", str(s3.ca), env=s3_env())
        assert code == 0, err
        assert out == "[Load data] over tls\n"
        assert f"lines from s3://{BUCKET}/{PREFIX}/load_data.log at {s3.https_endpoint}" in err


class TestFollow:
    def test_steps_starting_while_following(self, standin, s3):
        """`-f` streams a running step as it writes, picks up the next step when its pod appears (watch),
        and exits 0 once the run has ended and every step's log is drained."""
        run = Run(standin.cluster, workflow(s3.endpoint))
        run.start("run-a-file")
        run.log("run-a-file", b"first 1\n")
        logs = Logs(standin, RUN_ID, "-f")
        try:
            logs.wait_out("[Load data] first 1\n")
            run.log("run-a-file", b"first 2\n")
            logs.wait_out("[Load data] first 2\n")
            run.finish("run-a-file")
            run.start("run-a-file-3", waiting=True)  # the new pod's sidecar still being created
            run.set_state("run-a-file-3", "running")
            run.log("run-a-file-3", b"second 1\n")
            logs.wait_out("[Report] second 1\n")
            run.log("run-a-file-3", b"second 2\n")
            logs.wait_out("[Report] second 2\n")
            assert logs.proc.poll() is None  # the run has not ended: still following
            run.finish("run-a-file-3")
            run.end()
            assert logs.wait() == 0, logs.err
        finally:
            logs.kill()
        assert logs.out == (
            "[Load data] first 1\n[Load data] first 2\n[Report] second 1\n[Report] second 2\n"
        )
        assert ("watch", "pods") in standin.cluster.requests

    @pytest.mark.parametrize("answer", ["event", "http"])
    def test_watch_too_old_lists_again_and_goes_on(self, standin, s3, answer):
        """The pod watch is refused with 410 Gone (its resourceVersion compacted away; as an ERROR event, the
        API server's way, or as an HTTP status): the pods are listed again, a step whose pod appeared in
        the gap is followed live, and every line is printed once."""
        run = Run(standin.cluster, workflow(s3.endpoint))
        run.start("run-a-file")
        run.log("run-a-file", b"first 1\n")
        logs = Logs(standin, RUN_ID, "-f")
        try:
            logs.wait_out("[Load data] first 1\n")
            assert wait_for(lambda: ("watch", "pods") in standin.cluster.requests, WAIT)
            # One step: the new pod's ADDED event falls into the compacted history, never into a watch.
            with standin.cluster.cond:
                run.start("run-a-file-3")
                standin.cluster.expire_watches(answer=answer)
            run.log("run-a-file", b"first 2\n")
            run.log("run-a-file-3", b"second 1\n")
            logs.wait_out("[Report] second 1\n")
            assert logs.proc.poll() is None  # the run has not ended: found by the new list, followed live
            logs.wait_out("[Load data] first 2\n")
            run.finish("run-a-file")
            run.log("run-a-file-3", b"second 2\n")
            run.finish("run-a-file-3")
            run.end()
            assert logs.wait() == 0, logs.err
        finally:
            logs.kill()
        assert standin.cluster.expired_served == 1
        lines = logs.out.splitlines()
        assert len(lines) == 4, logs.out  # each line once, none lost; in order within each step:
        assert [x for x in lines if x.startswith("[Load data]")] == [
            "[Load data] first 1",
            "[Load data] first 2",
        ]
        assert [x for x in lines if x.startswith("[Report]")] == ["[Report] second 1", "[Report] second 2"]
        assert logs.err == ""

    def test_pod_deleted_mid_follow_continues_from_s3(self, standin, s3):
        """The pod is deleted while followed: the lines not yet shown come from the S3 copy, each line once,
        and stderr says so."""
        run = Run(standin.cluster, workflow(s3.endpoint))
        run.start("run-a-file")
        run.log("run-a-file", b"line 1\nline 2\n")
        body = b"line 1\nline 2\nline 3\nline 4\n"  # what the sidecar had mirrored when the pod went
        s3.client().put_object(BUCKET, f"{PREFIX}/load_data.log", io.BytesIO(body), len(body))
        logs = Logs(standin, RUN_ID, "-f", env=s3_env())
        try:
            logs.wait_out("[Load data] line 2\n")
            run.delete_pod("run-a-file")
            logs.wait_out("[Load data] line 4\n")
            run.finish("run-a-file", phase="Failed")
            run.end("Failed")
            assert logs.wait() == 0, logs.err
        finally:
            logs.kill()
        assert logs.out == "".join(f"[Load data] line {i}\n" for i in range(1, 5))
        assert "[Load data] its pod was deleted while being read: lines after the 2 lines shown" in logs.err

    def test_ctrl_c_exits_130_cleanly(self, standin, s3):
        """SIGINT while following a running step: exit 130, no traceback."""
        run = Run(standin.cluster, workflow(s3.endpoint))
        run.start("run-a-file")
        run.log("run-a-file", b"busy\n")
        logs = Logs(standin, RUN_ID, "-f")
        try:
            logs.wait_out("[Load data] busy\n")
            logs.proc.send_signal(signal.SIGINT)
            assert logs.wait() == 130
        finally:
            logs.kill()
        assert "Traceback" not in logs.err


class TestFailures:
    @pytest.mark.parametrize(
        ("verb", "resource", "shown"),
        [
            ("list", "workflows", "cannot list workflows.argoproj.io"),
            ("list", "pods", "cannot list pods"),
            ("get", "pods/log", "cannot get pods/log"),
        ],
    )
    def test_forbidden_names_the_verb_and_resource(self, standin, s3, verb, resource, shown):
        """A 403 from the API (a Status object): one `Error:` line naming what was denied, exit 1."""
        finished_run(standin, s3)
        standin.cluster.deny(verb, resource)
        code, out, err = run_logs(standin, RUN_ID)
        assert code == 1
        assert out == ""
        role = "(docs/logs.md shows the Role a user needs)"
        assert err == f"Error: permission denied: {shown} in namespace '{NS}' {role}\n"

    def test_watch_forbidden_while_following(self, standin, s3):
        """With -f and no `watch` on pods: one line, exit 1."""
        run = Run(standin.cluster, workflow(s3.endpoint))
        run.start("run-a-file")
        standin.cluster.deny("watch", "pods")
        code, _, err = run_logs(standin, RUN_ID, "-f")
        assert code == 1
        assert (
            err.startswith("Error: permission denied: cannot watch pods in namespace")
            and err.count("\n") == 1
        )

    def test_no_such_run(self, standin, s3):
        """Neither a run id nor a Workflow name that exists: one line, exit 1."""
        finished_run(standin, s3)
        code, out, err = run_logs(standin, "nope-123")
        assert code == 1 and out == ""
        assert err.startswith(f"Error: no such run in namespace '{NS}'") and err.count("\n") == 1

    def test_wrong_namespace_is_no_such_run(self, standin, s3):
        """`-n` overrides the kubeconfig context's namespace."""
        finished_run(standin, s3)
        code, _, err = run_logs(standin, RUN_ID, "-n", "elsewhere")
        assert code == 1 and "no such run in namespace 'elsewhere'" in err

    def test_no_elyra_steps(self, standin, s3):
        """A plain KFP pipeline (no log sidecar anywhere): one line, exit 1."""
        wf = workflow(s3.endpoint, golden="kfp-1.8.24-plain-two-step.default.yaml")
        Run(standin.cluster, wf)
        code, _, err = run_logs(standin, RUN_ID)
        assert code == 1
        assert err.startswith(f"Error: Workflow {WF} has no Elyra steps") and err.count("\n") == 1

    def test_s3_unreachable(self, standin):
        """The pod is gone and the S3 endpoint refuses connections: one line naming it, exit 1."""
        dead = f"http://127.0.0.1:{closed_port()}"
        run = Run(standin.cluster, workflow(dead))
        run.start("run-a-file", pod=False)
        run.finish("run-a-file")
        run.end()
        code, _, err = run_logs(standin, RUN_ID, env=s3_env())
        assert code == 1
        assert err.startswith(f"Error: S3 endpoint {dead} is unreachable (") and err.count("\n") == 2 - 1
        assert f"while reading s3://{BUCKET}/{PREFIX}/load_data.log" in err

    def test_s3_certificate_not_trusted_without_the_bundle(self, standin, s3):
        """An https S3 endpoint whose certificate comes from a private CA, no --s3-ca-bundle: one line that
        says the certificate is not trusted and names the option, exit 1."""
        https_only_run(standin, s3)
        code, out, err = run_logs(standin, RUN_ID, env=s3_env())
        assert code == 1 and out == ""
        assert err.startswith(f"Error: S3 endpoint {s3.https_endpoint} ") and err.count("\n") == 1, err
        assert "certificate" in err and "--s3-ca-bundle" in err, err

    def test_unreadable_ca_bundle(self, standin, s3, tmp_path):
        """--s3-ca-bundle naming a missing file or one without a PEM certificate: one line naming the option
        and the file, exit 1, nothing printed."""
        https_only_run(standin, s3)
        junk = tmp_path / "junk.pem"
        junk.write_text("not a certificate\n")
        for bundle in (tmp_path / "missing.pem", junk):
            code, out, err = run_logs(standin, RUN_ID, "--s3-ca-bundle", str(bundle), env=s3_env())
            assert code == 1 and out == ""
            assert err.startswith(f"Error: --s3-ca-bundle {bundle}: ") and err.count("\n") == 1, err

    def test_unknown_node(self, standin, s3):
        """`--node` naming no Elyra step: one line listing the steps, exit 1."""
        finished_run(standin, s3)
        code, _, err = run_logs(standin, RUN_ID, "--node", "Nope")
        assert code == 1 and "steps: Load data, Report" in err


class TestHostileNames:
    def test_control_characters_in_a_node_name_are_escaped(self, standin, s3):
        """A display name carrying a terminal escape and a newline cannot clear the screen or forge a line:
        the prefix shows them escaped; the script's own bytes are printed as they are."""
        wf = workflow(s3.endpoint)
        meta = wf["spec"]["templates"][0]["metadata"]
        meta["annotations"]["pipelines.kubeflow.org/task_display_name"] = "evil\x1b[2J\n[Report] forged\u202e"
        run = Run(standin.cluster, wf)
        run.start("run-a-file")
        run.log("run-a-file", b"user \x1b[1mbold\x1b[0m\n")
        run.finish("run-a-file")
        run.end()
        code, out, err = run_logs(standin, RUN_ID)
        assert code == 0, err
        assert out == "[evil\\x1b[2J\\x0a[Report] forged\\u202e] user \x1b[1mbold\x1b[0m\n"
