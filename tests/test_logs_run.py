"""`elyra-sidecar logs RUN` as a real process, through the real `kubernetes` client against the local HTTPS
stand-in for the API server (tests/support/k8s_standin.py), and the real S3 server for the mirrored copies.

The Workflow is the transformer's golden output for Elyra 4.0.0 (two steps with the log sidecar: "Load
data" and "Report"; the notebook "Train" has none), with the S3 endpoint of this module's server.
"""

from __future__ import annotations

import copy
import io
import json
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


def kfp_store(cluster: Cluster, endpoint: str) -> None:
    """The KFP installation's object store, as KFP v1's manifests record it: the `artifactRepository` of
    Argo's `workflow-controller-configmap` in the `kubeflow` namespace (no scheme; `insecure` for http)."""
    scheme, _, hostport = endpoint.partition("://")
    repository = {"s3": {"endpoint": hostport, "bucket": BUCKET, "insecure": scheme == "http"}}
    cluster.put_configmap(
        "kubeflow", "workflow-controller-configmap", {"artifactRepository": yaml.safe_dump(repository)}
    )


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


def error_of(err: str) -> str:
    """stderr without the note that says where S3 is read and with which credentials' source."""
    return "".join(line for line in err.splitlines(keepends=True) if not line.startswith("S3: reading at "))


def s3_env() -> dict[str, str]:
    return {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}


def finished_run(standin: StandIn, s3: S3Server) -> Run:
    kfp_store(standin.cluster, s3.endpoint)
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
        kfp_store(standin.cluster, s3.endpoint)
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
        kfp_store(standin.cluster, s3.endpoint)
        run = Run(standin.cluster, wf)
        run.start("run-a-file", pod=False)
        run.finish("run-a-file")
        run.end()
        s3.client().put_object(BUCKET, f"{PREFIX}/load_data.log", io.BytesIO(b"from s3\n"), 8)
        standin.cluster.put_secret(
            NS, "mlpipeline-minio-artifact", {"accesskey": ACCESS_KEY, "secretkey": SECRET_KEY}
        )
        code, out, err = run_logs(standin, RUN_ID, "--s3-secret", "mlpipeline-minio-artifact", "--insecure")
        assert code == 0, err
        assert out == "[Load data] from s3\n"
        assert ("get", "secrets") in standin.cluster.requests
        # Which endpoint and which credentials, by source only:
        assert (
            f"S3: reading at {s3.endpoint} (KFP's object store, ConfigMap kubeflow/"
            f"workflow-controller-configmap), credentials: secret {NS}/mlpipeline-minio-artifact keys "
            "accesskey,secretkey (--s3-secret)\n"
        ) in err
        assert SECRET_KEY not in err

    def test_a_cluster_secret_is_not_sent_over_http_without_insecure(self, standin, s3):
        """Credentials read from a Secret (`--s3-secret`, or a Workflow's secretKeyRef) never go over plain
        http unless `--insecure` is given: one `Error:` line, exit 1, nothing read."""
        kfp_store(standin.cluster, s3.endpoint)
        run = Run(
            standin.cluster, workflow(s3.endpoint, golden="elyra-4.0.0-three-node-cos-secret.default.yaml")
        )
        run.start("run-a-file", pod=False)
        run.finish("run-a-file")
        run.end()
        standin.cluster.put_secret(
            NS,
            "mlpipeline-minio-artifact",
            {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY},
        )
        for args in (("--s3-secret", "mlpipeline-minio-artifact"), ()):
            code, out, err = run_logs(standin, RUN_ID, *args)
            assert code == 1 and out == "", err
            assert err.startswith("Error: not sending the credentials of secret ") and err.count("\n") == 1, (
                err
            )
            assert "over plain http" in err and "--insecure" in err


def https_only_run(standin: StandIn, s3: S3Server) -> Run:
    """A finished run whose pods are gone and whose sidecars mirrored to the https endpoint."""
    assert s3.https_endpoint
    kfp_store(standin.cluster, s3.https_endpoint)
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
        kfp_store(standin.cluster, s3.endpoint)
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
        kfp_store(standin.cluster, dead)
        run = Run(standin.cluster, workflow(dead))
        run.start("run-a-file", pod=False)
        run.finish("run-a-file")
        run.end()
        code, _, err = run_logs(standin, RUN_ID, env=s3_env())
        assert code == 1
        err = error_of(err)
        assert err.startswith(f"Error: S3 endpoint {dead} is unreachable (") and err.count("\n") == 2 - 1
        assert f"while reading s3://{BUCKET}/{PREFIX}/load_data.log" in err

    def test_s3_certificate_not_trusted_without_the_bundle(self, standin, s3):
        """An https S3 endpoint whose certificate comes from a private CA, no --s3-ca-bundle: one line that
        says the certificate is not trusted and names the option, exit 1."""
        https_only_run(standin, s3)
        code, out, err = run_logs(standin, RUN_ID, env=s3_env())
        assert code == 1 and out == ""
        err = error_of(err)
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


class Recorder:
    """A hostile "S3 endpoint" on another 127.0.0.1 port: it records every request (method, path, headers)
    and answers 403, so that a credential sent to it would show in `requests`."""

    def __init__(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        recorder = self
        self.requests: list[tuple[str, str, dict[str, str]]] = []

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
                pass

            def do_GET(self) -> None:
                recorder.requests.append((self.command, self.path, dict(self.headers)))
                self.send_response(403)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_HEAD = do_GET  # noqa: N815 - the base class's naming

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1})
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def recorder() -> Any:
    rec = Recorder()
    try:
        yield rec
    finally:
        rec.stop()


WORKFLOW_GOLDEN = "elyra-4.0.0-three-node.default.yaml"  # the sidecars' credentials: plain env values
REF_GOLDEN = "elyra-4.0.0-three-node-cos-secret.default.yaml"  # secretKeyRefs


def hostile_run(standin: StandIn, endpoint: str, *, golden: str = WORKFLOW_GOLDEN) -> Run:
    """A finished run whose pods are gone and whose Workflow names `endpoint` as the sidecars' S3."""
    run = Run(standin.cluster, workflow(endpoint, golden=golden))
    run.start("run-a-file", pod=False)
    run.finish("run-a-file")
    run.end()
    return run


class TestS3EndpointRule:
    """S3 credentials go only to an endpoint the user confirmed: `--s3-endpoint`, or KFP's own object store
    (its workflow-controller-configmap), never to one that only a Workflow names."""

    @pytest.mark.parametrize("creds", ["secret", "env", "workflow"])
    def test_a_hostile_workflow_endpoint_receives_nothing(self, standin, s3, recorder, creds):
        """The Workflow points its sidecars at another 127.0.0.1 port (the recorder) while KFP's object store
        is the real S3 server: one `Error:` line naming both, exit 1; the recorder gets no request at all
        (so no credential: the Workflow's secretKeyRef Secret, the user's AWS_* env, or the Workflow's own
        values), and the Secret is not even read."""
        kfp_store(standin.cluster, s3.endpoint)
        hostile_run(standin, recorder.endpoint, golden=REF_GOLDEN if creds == "secret" else WORKFLOW_GOLDEN)
        standin.cluster.put_secret(
            NS,
            "mlpipeline-minio-artifact",
            {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY},
        )
        code, out, err = run_logs(standin, RUN_ID, "--insecure", env=s3_env() if creds == "env" else None)
        assert code == 1 and out == "", err
        assert err == (
            f"Error: the Workflow's S3 endpoint {recorder.endpoint} is not KFP's object store {s3.endpoint} "
            "(ConfigMap kubeflow/workflow-controller-configmap): no credentials sent there; pass "
            "--s3-endpoint URL, or --trust-workflow-endpoint if you trust this Workflow's author\n"
        )
        assert recorder.requests == []
        assert ("get", "secrets") not in standin.cluster.requests

    def test_no_kfp_config_and_no_option_refuses(self, standin, recorder):
        """No readable KFP configuration (here: no ConfigMap; a user without rights in `kubeflow` alike) and
        no `--s3-endpoint`: refused, the recorder untouched."""
        hostile_run(standin, recorder.endpoint)
        code, _, err = run_logs(standin, RUN_ID, env=s3_env())
        assert code == 1
        assert (
            err.startswith(
                "Error: no confirmed S3 endpoint to send credentials to (there is no ConfigMap "
                "kubeflow/workflow-controller-configmap): pass --s3-endpoint URL"
            )
            and err.count("\n") == 1
        ), err
        assert recorder.requests == []

    def test_kfp_config_forbidden_refuses_naming_it(self, standin, recorder):
        """The user may not read KFP's ConfigMap: the refusal says so (and what to pass instead)."""
        hostile_run(standin, recorder.endpoint)
        standin.cluster.deny("get", "configmaps")
        code, _, err = run_logs(standin, RUN_ID, env=s3_env())
        assert code == 1 and err.count("\n") == 1, err
        assert "cannot read ConfigMap kubeflow/workflow-controller-configmap: permission denied" in err
        assert recorder.requests == []

    def test_s3_endpoint_option_reads_there_not_where_the_workflow_says(self, standin, s3, recorder):
        """`--s3-endpoint` (e.g. a port-forward): the copy is read there; the Workflow's endpoint is never
        contacted; stderr names the endpoint and the credentials' source (not their values)."""
        hostile_run(standin, recorder.endpoint)
        s3.client().put_object(BUCKET, f"{PREFIX}/load_data.log", io.BytesIO(b"real\n"), 5)
        code, out, err = run_logs(standin, RUN_ID, "--s3-endpoint", s3.endpoint, env=s3_env())
        assert code == 0, err
        assert out == "[Load data] real\n"
        assert (
            f"S3: reading at {s3.endpoint} (--s3-endpoint), credentials: env AWS_ACCESS_KEY_ID,"
            "AWS_SECRET_ACCESS_KEY\n"
        ) in err
        assert SECRET_KEY not in err
        assert recorder.requests == []

    def test_trust_workflow_endpoint_is_an_explicit_opt_in(self, standin, recorder):
        """Only `--trust-workflow-endpoint` sends to the endpoint the Workflow names."""
        hostile_run(standin, recorder.endpoint)
        code, _, err = run_logs(standin, RUN_ID, "--trust-workflow-endpoint")
        assert code == 1 and error_of(err).startswith(f"Error: S3 endpoint {recorder.endpoint} "), err
        assert recorder.requests
        assert "S3: reading at " + recorder.endpoint + " (the Workflow's, --trust-workflow-endpoint)" in err

    def test_same_host_and_port_as_kfp_is_read(self, standin, s3):
        """KFP's ConfigMap names `127.0.0.1:PORT` without a scheme (`insecure: true`): a Workflow naming
        `http://127.0.0.1:PORT` is KFP's store, read with the Workflow's own values."""
        kfp_store(standin.cluster, s3.endpoint)
        hostile_run(standin, s3.endpoint)
        s3.client().put_object(BUCKET, f"{PREFIX}/load_data.log", io.BytesIO(b"kfp\n"), 4)
        code, out, err = run_logs(standin, RUN_ID)
        assert code == 0, err
        assert out == "[Load data] kfp\n"
        assert "credentials: the Workflow's env values AWS_ACCESS_KEY_ID,AWS_SECRET_ACCESS_KEY" in err


class TestClusterTextEscaped:
    def test_escapes_in_bucket_key_and_endpoint_never_reach_the_terminal(self, standin):
        """A Workflow whose sidecar args carry ESC/BEL in the bucket and key, its S3 unreachable: the
        `Error:` line shows them escaped (raw before: the terminal obeyed them)."""
        dead = f"http://127.0.0.1:{closed_port()}"
        wf = workflow(dead)
        sidecar = wf["spec"]["templates"][0]["sidecars"][0]
        sidecar["args"] = [
            a.replace(BUCKET, "elyra\x1b]0;owned\x07bucket").replace("load_data.log", "x\x1b[2J\x1b[H.log")
            for a in sidecar["args"]
        ]
        kfp_store(standin.cluster, dead)
        run = Run(standin.cluster, wf)
        run.start("run-a-file", pod=False)
        run.finish("run-a-file")
        run.end()
        code, out, err = run_logs(standin, RUN_ID, env=s3_env())
        assert code == 1 and out == ""
        assert "\x1b" not in err and "\x07" not in err and error_of(err).count("\n") == 1, repr(err)
        assert "s3://elyra\\x1b]0;owned\\x07bucket/" in err and "x\\x1b[2J\\x1b[H.log" in err

    def test_escapes_in_an_endpoint_refused(self, standin, s3):
        """An endpoint with control characters (not KFP's): the refusal shows it escaped."""
        kfp_store(standin.cluster, s3.endpoint)
        hostile_run(standin, "http://127.0.0.1:1\x1b[31m")
        code, _, err = run_logs(standin, RUN_ID, env=s3_env())
        assert code == 1 and "\x1b" not in err and err.count("\n") == 1, repr(err)


#: Runs `logs` as its only child, counts the bytes it prints, and reports the child's peak RSS (KiB).
_MEASURE = """
import json, resource, subprocess, sys
child = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
count = 0
while chunk := child.stdout.read(1 << 16):
    count += len(chunk)
err = child.stderr.read().decode(errors="replace")
code = child.wait()
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"code": code, "out": count, "err": err, "rss_kib": rss}))
"""


def measured_logs(standin: StandIn, *args: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "KUBE"))}
    env.update({"KUBECONFIG": str(standin.kubeconfig), "HOME": str(standin.kubeconfig.parent), **s3_env()})
    command = [sys.executable, "-c", _MEASURE, sys.executable, "-m", "elyra_sidecar", "logs", *args]
    done = subprocess.run(command, capture_output=True, env=env, timeout=600, check=True)
    result: dict[str, Any] = json.loads(done.stdout)
    return result


class TestLargeCopy:
    def test_a_large_s3_copy_is_streamed_in_bounded_memory(self, standin, s3):
        """A 64 MiB copy in the real S3 server is printed whole, line by line as it arrives: the command's
        peak RSS grows by less than a quarter of the object over the same run reading a one-line object
        (read whole before: about 4.5x the object, 400 MB -> 1.8 GB)."""
        kfp_store(standin.cluster, s3.endpoint)
        hostile_run(standin, s3.endpoint)
        key = f"{PREFIX}/load_data.log"
        small = measure_copy(standin, s3, key, b"one line\n")
        line = b"%07d " + b"x" * 90 + b"\n"
        body = b"".join(line % i for i in range((64 << 20) // len(line % 0)))
        large = measure_copy(standin, s3, key, body)
        assert large["code"] == 0 and large["out"] == len(body), large["err"]
        growth = (large["rss_kib"] - small["rss_kib"]) * 1024
        assert growth < len(body) / 4, (small["rss_kib"], large["rss_kib"], len(body))


def measure_copy(standin: StandIn, s3: S3Server, key: str, body: bytes) -> dict[str, Any]:
    s3.client().put_object(BUCKET, key, io.BytesIO(body), len(body))
    result = measured_logs(standin, RUN_ID, "--no-prefix")
    assert result["code"] == 0, result["err"]
    return result


#: Malformed Workflow shapes (fields `logs` reads, given the wrong type): (path, value).
MALFORMED: list[tuple[tuple[Any, ...], Any]] = [
    (("spec",), []),
    (("spec", "templates"), {"a": 1}),
    (("spec", "templates", 0), "run-a-file"),
    (("spec", "templates", 0, "name"), ["run-a-file"]),
    (("spec", "templates", 0, "metadata"), ["x"]),
    (("spec", "templates", 0, "metadata", "annotations"), ["x"]),
    (
        ("spec", "templates", 0, "metadata", "annotations", "pipelines.kubeflow.org/task_display_name"),
        {"a": 1},
    ),
    (("spec", "templates", 0, "metadata", "labels"), "x"),
    (("spec", "templates", 0, "sidecars"), {"name": "elyra-log"}),
    (("spec", "templates", 0, "sidecars", 0), "elyra-log"),
    (("spec", "templates", 0, "sidecars", 0, "args"), "--bucket=x"),
    (("spec", "templates", 0, "sidecars", 0, "args", 0), {"a": 1}),
    (("spec", "templates", 0, "sidecars", 0, "command"), {"a": 1}),
    (("spec", "templates", 0, "sidecars", 0, "env"), {"AWS_ACCESS_KEY_ID": "x"}),
    (("spec", "templates", 0, "sidecars", 0, "env", 0), "AWS_ACCESS_KEY_ID=x"),
    (("spec", "templates", 0, "sidecars", 0, "env", 0, "name"), ["AWS_ACCESS_KEY_ID"]),
    (("spec", "templates", 0, "sidecars", 0, "env", 0, "valueFrom"), ["x"]),
    (("spec", "templates", 0, "sidecars", 0, "env", 0, "valueFrom", "secretKeyRef"), "x"),
    (("spec", "templates", 0, "sidecars", 0, "env", 0, "valueFrom", "secretKeyRef", "name"), {"a": 1}),
    (("metadata", "creationTimestamp"), {"a": 1}),
    (("metadata", "annotations"), ["x"]),
    (("status",), ["Running"]),
    (("status", "phase"), ["Succeeded"]),
    (("status", "nodes"), ["x"]),
    (("status", "nodes", "*"), "Pod"),
    (("status", "nodes", "*", "type"), ["Pod"]),
    (("status", "nodes", "*", "templateName"), {"a": 1}),
    (("status", "nodes", "*", "name"), ["x"]),
    (("status", "nodes", "*", "startedAt"), {"a": 1}),
    (("status", "nodes", "*", "finishedAt"), [1]),
    (("status", "nodes", "*", "phase"), {"a": 1}),
]


def _pod_node(nodes: dict[str, Any]) -> str:
    return next(k for k, v in nodes.items() if isinstance(v, dict) and v.get("type") == "Pod")


def _shown(path: tuple[Any, ...], wf: dict[str, Any]) -> str:
    """The path as the error names it: `spec.templates[0].sidecars[0]`, `status.nodes['id'].type`."""
    out = ""
    for i, step in enumerate(path):
        part = _pod_node(wf["status"]["nodes"]) if step == "*" else step
        if isinstance(part, int):
            out += f"[{part}]"
        elif i and path[i - 1] in ("nodes", "annotations", "labels"):  # a mapping of any keys
            out += f"[{part!r}]"
        else:
            out += f".{part}" if out else part
    return out


def _put(wf: dict[str, Any], path: tuple[Any, ...], value: Any) -> None:
    node: Any = wf
    for i, step in enumerate(path):
        part = _pod_node(node) if step == "*" else step
        if i == len(path) - 1:
            node[part] = value
        elif isinstance(node, dict):
            node = node.setdefault(part, {})
        else:
            node = node[part]


class TestMalformedWorkflow:
    @pytest.mark.parametrize("case", MALFORMED, ids=lambda x: str(x)[:60])
    def test_one_error_line_naming_the_field(self, standin, s3, monkeypatch, capfd, case):
        """Each field `logs` reads, given a wrong type (an author's YAML, or a broken controller): one
        `Error:` line naming the Workflow and the field's path, exit 1, never a traceback."""
        from elyra_sidecar.logs.cli import main

        path, value = case
        run = finished_run(standin, s3)
        shown = _shown(path, run.wf)
        _put(run.wf, path, value)
        standin.cluster.put_workflow(run.wf)
        for name in [k for k in os.environ if k.startswith(("AWS_", "KUBE"))]:
            monkeypatch.delenv(name)
        monkeypatch.setenv("KUBECONFIG", str(standin.kubeconfig))
        code = main([RUN_ID, "--poll-interval", POLL])
        out, err = capfd.readouterr()
        assert code == 1 and out == "", err
        assert err.startswith(f"Error: Workflow {WF} is malformed: {shown}: expected "), (shown, err)
        assert err.count("\n") == 1 and "Traceback" not in err
