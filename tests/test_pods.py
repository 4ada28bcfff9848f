"""Real containers (podman): the image from sidecar/Dockerfile, steps run as Pods, the webhook as deployed.

The top of the pyramid: the same stories as tests/test_e2e.py, but with the transformer's exact container
specs run by a real container runtime (uid 65532, read-only root filesystem, no capabilities, the work
volume mounted read-only) and read back with `podman logs` (what `kubectl logs` shows). The harness and
every emulated difference from Kubernetes: tests/support/pods.py and docs/end-to-end.md.
"""

from __future__ import annotations

import base64
import json
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from elyra_sidecar.transformer import transform
from tests.helpers import FIXTURES, ROOT, compiled_modules, load_fixture, patched
from tests.support import pods
from tests.support.helm import helm_binary
from tests.support.procs import free_port, wait_for
from tests.test_admission import annotate, review
from tests.test_e2e import (
    EXPECTED,
    FAILING,
    NOTEBOOK,
    PARAMS,
    R_EXPECTED,
    R_INPUTS,
    R_PARAMS,
    R_SCRIPT,
    SCRIPT,
)

REASON = pods.unavailable()
# Cold, the first test also builds the images (debootstrap, pip): minutes, not the usual 300 s limit.
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(1800),
    pytest.mark.usefixtures("images"),
    pytest.mark.skipif(REASON is not None, reason=REASON or ""),
]

KILLED = b"""import time
print("step 1 of many")
time.sleep(120)
print("never printed")
"""
# The sidecar image's size over its base, in MB; the Dockerfile before the lean build gave 47.6.
ADDED_MB_BUDGET = 25.0


@pytest.fixture(scope="module")
def images():
    """The image from sidecar/Dockerfile and the stand-in runtime image, built once (cached after that)."""
    return pods.sidecar_image(), pods.runtime_image("bookworm")


@pytest.fixture
def cleanup():
    results = []
    yield results.append
    for result in results:
        pods.shutil.rmtree(result.out_dir, ignore_errors=True)


def _run(fixture, script, *, s3, cleanup, template="run-a-file", config=None, extra_files=None, **kwargs):
    workflow = transform(load_fixture(FIXTURES / fixture), config).workflow
    result = pods.run_pod(
        workflow,
        template,
        s3=s3,
        files={"load_data.py": script, "train.ipynb": NOTEBOOK, **(extra_files or {})},
        parameters=kwargs.pop("parameters", PARAMS),
        **kwargs,
    )
    cleanup(result)
    return result


def _main_log(result) -> str:
    logs = result.logs["main"]
    return (logs.stdout + logs.stderr).decode(errors="replace")[-3000:]


def _lived(result, first: str, last: str, gap: float) -> None:
    """`first` was on elyra-log's stdout before main ended, and `gap` seconds before `last` (as printed)."""
    log = result.logs["elyra-log"]
    t_first, t_last = log.first(first), log.first(last)
    assert t_first is not None and t_last is not None, log.timed
    assert t_first < result.main_finished
    assert (t_last - t_first).total_seconds() > gap


def _in_main_log(result, first: str, last: str, gap: float) -> None:
    """The KFP Logs tab (main's log, `live.main_log`): every script line on main's stdout, in order and
    whole, `first` before main ended and `gap` seconds before `last`."""
    log = result.logs["main"]
    position = 0
    for line in EXPECTED.splitlines(keepends=True):
        position = log.stdout.index(line, position) + len(line)
    t_first, t_last = log.first(first), log.first(last)
    assert t_first is not None and t_last is not None, log.timed
    assert t_first < result.main_finished
    assert (t_last - t_first).total_seconds() > gap


class TestImage:
    """The image built from the unchanged sidecar/Dockerfile on the stand-in base."""

    def test_lean_over_its_base(self):
        """The image adds at most 25 MB over its base (the Dockerfile kept wheels in a layer: 47.6 MB)."""
        added = (pods.image_size(pods.SIDECAR_IMAGE) - pods.image_size(pods.BASES["bookworm"])) / 1e6
        assert added <= ADDED_MB_BUDGET, f"{added:.1f} MB over the base"

    def test_runs_as_the_pod_spec_runs_it(self):
        """uid 65532, read-only root, no capabilities: the CLI starts and finds precompiled bytecode."""
        probe = (
            "import importlib.util, os, elyra_sidecar.sidecar, elyra_sidecar.webhook;"
            "print(os.getuid(), all(os.path.exists(importlib.util.cache_from_source(m.__file__))"
            " for m in (elyra_sidecar.sidecar, elyra_sidecar.webhook)))"
        )
        proc = pods.podman(
            "run", "--rm", "--read-only", "--cap-drop", "ALL", "--entrypoint", "python",
            pods.SIDECAR_IMAGE, "-c", probe,
        )  # fmt: skip
        assert proc.stdout.decode().split() == ["65532", "True"]
        version = pods.podman(
            "run", "--rm", "--read-only", "--entrypoint", "elyra-sidecar", pods.SIDECAR_IMAGE, "--version"
        )
        assert b"0.1.0" in version.stdout

    def test_the_hot_paths_are_compiled(self):
        """The image carries the mypyc-compiled modules (setup.py), and Python imports them, not the .py."""
        probe = (
            f"import importlib; print(*(importlib.import_module(m).__file__ for m in {compiled_modules()!r}))"
        )
        proc = pods.podman(
            "run", "--rm", "--read-only", "--entrypoint", "python", pods.SIDECAR_IMAGE, "-c", probe
        )
        files = proc.stdout.decode().split()
        assert len(files) == len(compiled_modules()) and all(f.endswith(".so") for f in files), files


class TestPodElyra315:
    """Elyra 3.15.0: the bootstrapper's child writes <name>.log as it runs; elyra-log streams it."""

    def test_live_byte_exact_mirrored_and_artifacts(self, s3, cleanup):
        """podman logs elyra-log == the script's output, first line before main ends; S3 object; artifacts."""
        r = _run("elyra-3.15.0-three-node.yaml", SCRIPT, s3=s3, cleanup=cleanup)
        assert r.main_rc == 0, _main_log(r)
        assert r.logs["elyra-log"].stdout == EXPECTED
        _lived(r, "progress 1/3", "progress 3/3", 2.0)
        _in_main_log(r, "progress 1/3", "progress 3/3", 2.0)
        assert s3.get("elyra-bucket", f"{_cos_dir(r)}/load_data.log") == EXPECTED
        assert r.sidecar_rcs == {"elyra-log": 0}
        assert r.artifacts["script-log"] is not None and _content(r.artifacts["script-log"]) == EXPECTED
        assert r.artifacts["data-csv"] is not None and _content(r.artifacts["data-csv"]) == b"a,b\n1,2\n"

    def test_failing_script_log_still_lands(self, s3, cleanup):
        """A script that exits non-zero: its log is in podman logs and in S3; main exits 1; sidecar 0."""
        r = _run("elyra-3.15.0-three-node.yaml", FAILING, s3=s3, cleanup=cleanup)
        expected = b"about to fail\nboom: the script failed\n"
        assert r.main_rc == 1
        assert r.logs["elyra-log"].stdout == expected
        assert s3.get("elyra-bucket", f"{_cos_dir(r)}/load_data.log") == expected
        assert r.sidecar_rcs == {"elyra-log": 0}

    def test_notebook_node_outputs_and_directories(self, s3, cleanup):
        """Notebook node: -output.ipynb, .html, a file and a directory output are where they are declared."""
        r = _run(
            "elyra-3.15.0-three-node.yaml",
            SCRIPT,
            s3=s3,
            cleanup=cleanup,
            template="run-a-file-2",
            inputs={"data.csv": b"a,b\n1,2\n3,4\n"},
            parameters={"learning_rate": "0.1", "epochs": "3"},
            secrets={("db-secret", "password"): "pw"},
        )
        assert r.main_rc == 0, _main_log(r)
        for name in ("notebook-output", "notebook-html", "model-pkl", "metrics"):
            assert r.artifacts[name] is not None, name
        assert "rows: 3" in _content(r.artifacts["notebook-output"]).decode()
        assert _names(r.artifacts["metrics"]) == {"acc.json"}


class TestPodElyra400:
    """Elyra 4.0.0 holds the output in memory; live mode tees it into the work volume for elyra-log."""

    def test_live_first_line_before_the_end(self, s3, cleanup):
        """Live mode in a Pod: the init container installs the hook as uid 65532; main (uid 1000) uses it."""
        r = _run("elyra-4.0.0-three-node.yaml", SCRIPT, s3=s3, cleanup=cleanup)
        assert r.main_rc == 0, _main_log(r)
        assert r.logs["elyra-log"].stdout == EXPECTED
        _lived(r, "progress 1/3", "progress 3/3", 2.0)
        assert s3.get("elyra-bucket", f"{_cos_dir(r)}/load_data.log") == EXPECTED
        assert r.sidecar_rcs == {"elyra-log": 0}
        assert r.artifacts["script-log"] is not None and _content(r.artifacts["script-log"]) == EXPECTED
        _in_main_log(r, "progress 1/3", "progress 3/3", 2.0)
        # The bootstrapper still received all of it: its output record in main's log.
        assert EXPECTED.decode() in _main_log(r)

    def test_live_failure_log_lands_in_storage(self, s3, cleanup):
        """A failing script: 4.0 writes no log, but the live copy is in podman logs and in S3."""
        r = _run("elyra-4.0.0-three-node.yaml", FAILING, s3=s3, cleanup=cleanup)
        expected = b"about to fail\nboom: the script failed\n"
        assert r.main_rc == 1
        assert r.logs["elyra-log"].stdout == expected
        assert s3.get("elyra-bucket", f"{_cos_dir(r)}/load_data.log") == expected

    def test_killed_step_keeps_what_was_printed(self, s3, cleanup):
        """main SIGKILLed mid-script (as the OOM killer does): exit 137; the lines so far logged and in S3."""
        r = _run(
            "elyra-4.0.0-three-node.yaml", KILLED, s3=s3, cleanup=cleanup, kill_main_after=b"step 1 of many"
        )
        assert r.main_rc == 137
        assert r.logs["elyra-log"].stdout == b"step 1 of many\n"
        assert s3.get("elyra-bucket", f"{_cos_dir(r)}/load_data.log") == b"step 1 of many\n"
        assert r.sidecar_rcs == {"elyra-log": 0}


class TestPodImagePythonpath:
    """A runtime image with its own `ENV PYTHONPATH=/opt/company-lib`: the live hook's PYTHONPATH entry in
    main replaces the image's (Kubernetes semantics); elyra-live-env records the image's value in main's
    image and the hook puts it back, so the image's module still imports and the lines are still live."""

    @pytest.mark.parametrize("fixture", ["elyra-3.15.0-three-node.yaml", "elyra-4.0.0-three-node.yaml"])
    def test_the_images_module_imports_and_lines_are_live(self, s3, cleanup, fixture):
        script = b"import companylib  # only on the image's own PYTHONPATH\n" + SCRIPT
        r = _run(fixture, script, s3=s3, cleanup=cleanup, runtime=pods.runtime_image_with_pythonpath())
        assert r.main_rc == 0, _main_log(r)
        assert "ModuleNotFoundError" not in _main_log(r)
        assert r.logs["elyra-log"].stdout == EXPECTED
        _in_main_log(r, "progress 1/3", "progress 3/3", 2.0)


class TestPodElyra313:
    """Elyra 3.13.0: one `&&` chain that `cd`s into jupyter-work-dir, on a Python 3.9 stand-in image."""

    def test_and_chain_runs_in_jupyter_work_dir(self, s3, cleanup):
        """The log and outputs land in <work>/jupyter-work-dir: streamed live, mirrored, artifacts there."""
        r = _run(
            "elyra-3.13.0-three-node.yaml", SCRIPT, s3=s3, cleanup=cleanup, parameters={}, suite="bullseye"
        )
        assert r.main_rc == 0, _main_log(r)
        assert r.logs["elyra-log"].stdout == EXPECTED
        _lived(r, "progress 1/3", "progress 3/3", 2.0)
        assert s3.get("elyra-bucket", f"{_cos_dir(r)}/load_data.log") == EXPECTED
        _in_main_log(r, "progress 1/3", "progress 3/3", 2.0)
        paths = {a["name"]: a["path"] for a in r.plan.artifacts}
        assert paths["data-csv"] == "/elyra-sidecar/work/jupyter-work-dir/data.csv"
        assert r.artifacts["data-csv"] is not None


class TestPodRNode:
    """An R node, with Debian's r-base-core in the stand-in runtime image."""

    def test_r_node_live_and_mirrored_on_315(self, s3, cleanup):
        """Elyra 3.15.0 R node: first line before the end, byte-exact podman logs and object, report.txt."""
        r = _run(
            "elyra-3.15.0-three-node.yaml",
            b"",
            s3=s3,
            cleanup=cleanup,
            template="run-a-file-3",
            inputs=R_INPUTS,
            parameters=R_PARAMS,
            extra_files={"report.r": R_SCRIPT},
            with_r=True,
        )
        assert r.main_rc == 0, _main_log(r)
        assert r.logs["elyra-log"].stdout == R_EXPECTED
        _lived(r, "report 1/2", "report 2/2", 1.5)
        assert s3.get("elyra-bucket", f"{_cos_dir(r)}/report.log") == R_EXPECTED
        assert (
            r.artifacts["report-txt"] is not None
            and _content(r.artifacts["report-txt"]) == b"title: Weekly\n"
        )


def _cos_dir(result) -> str:
    return result.node.cos_directory


def _content(path: Path) -> bytes:
    """The one file in what `podman cp` copied out (a file, or the directory holding it)."""
    if path.is_file():
        return path.read_bytes()
    (only,) = [p for p in path.rglob("*") if p.is_file()]
    return only.read_bytes()


def _names(path: Path) -> set[str]:
    """The files of a directory artifact, relative to it."""
    return {str(p.relative_to(path)) for p in path.rglob("*") if p.is_file()}


NAMESPACE = "elyra-system"


def _request(port: int, context: ssl.SSLContext, host: str, method: str, path: str, *, body: bytes = b""):
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=host) as s,
    ):
        s.sendall(_head(method, path, len(body)) + body)
        return _response(s)


def _head(method: str, path: str, length: int) -> bytes:
    return (
        f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\nConnection: close\r\n\r\n"
    ).encode()


def _response(s: ssl.SSLSocket) -> tuple[int, bytes]:
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


class TestWebhookDeployed:
    """The chart-rendered Deployment's container, run from the same image with podman."""

    def test_admission_over_tls_gives_the_cli_patch_and_sigterm_drains(self, tmp_path):
        """Chart args, ConfigMap, Secret, securityContext: probes pass, the CLI's patch, SIGTERM drains."""
        port = free_port()
        rendered = subprocess.run(
            [str(helm_binary()), "template", "rel", str(ROOT / "charts" / "elyra-sidecar"), "-n", NAMESPACE,
             "-f", str(ROOT / "tests" / "chart-values" / "default.yaml"), "--set", f"webhook.port={port}"],
            capture_output=True, text=True, check=True, timeout=120,
        )  # fmt: skip
        objects = {
            f"{d['kind']}/{d['metadata']['name']}": d for d in yaml.safe_load_all(rendered.stdout) if d
        }
        pod_name = f"elyra-webhook-{port}"
        manifest, server_name = pods.webhook_pod(objects, name=pod_name, files=tmp_path)
        webhook = next(d for k, d in objects.items() if k.startswith("MutatingWebhookConfiguration/"))
        ca_bundle = base64.b64decode(webhook["webhooks"][0]["clientConfig"]["caBundle"]).decode()
        path = webhook["webhooks"][0]["clientConfig"]["service"]["path"]
        # As the API server: trust the caBundle, call the Service's DNS name.
        context = ssl.create_default_context(cadata=ca_bundle)
        # As the kubelet's HTTPS probes: no certificate verification.
        probe_context = ssl.create_default_context()
        probe_context.check_hostname = False
        probe_context.verify_mode = ssl.CERT_NONE
        ctr = f"{pod_name}-webhook"
        (tmp_path / "pod.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
        try:
            pods.podman("kube", "play", str(tmp_path / "pod.yaml"))

            def ready() -> bool:
                try:
                    return _request(port, probe_context, "x", "GET", "/readyz")[0] == 200
                except OSError:
                    return False

            assert wait_for(ready, timeout=60, interval=0.2), pods.podman("logs", ctr, check=False).stderr
            assert _request(port, probe_context, "x", "GET", "/healthz")[0] == 200
            user = pods.podman("inspect", "--format", "{{.Config.User}}", ctr).stdout.decode().strip()
            assert user.split(":")[0] == "65532"

            workflow = annotate(load_fixture(FIXTURES / "elyra-4.0.0-three-node.yaml"), "workflow")
            body = json.dumps(review(workflow, uid="pod-1")).encode()
            status, answer = _request(port, context, server_name, "POST", path, body=body)
            assert status == 200
            response = json.loads(answer)["response"]
            assert response["uid"] == "pod-1" and response["allowed"] is True
            config = tmp_path / "config" / "config.yaml"  # the rendered ConfigMap
            src = tmp_path / "in.yaml"
            src.write_text(yaml.safe_dump(workflow))
            cli = subprocess.run(
                [sys.executable, "-m", "elyra_sidecar", "transform", "--config", str(config),
                 "--only-annotated", "-q", str(src)],
                capture_output=True, check=True,
            )  # fmt: skip
            assert patched(workflow, response) == yaml.safe_load(cli.stdout)

            # SIGTERM (as the kubelet sends it) while a request's body is still arriving: it is answered.
            with (
                socket.create_connection(("127.0.0.1", port), timeout=20) as raw,
                context.wrap_socket(raw, server_hostname=server_name) as s,
            ):
                s.sendall(_head("POST", path, len(body)) + body[:100])
                time.sleep(0.3)
                pods.podman("kill", "--signal", "TERM", ctr)
                s.sendall(body[100:])
                status, answer = _response(s)
            assert status == 200 and json.loads(answer)["response"]["patchType"] == "JSONPatch"
            assert pods.wait_exit(ctr, 60) == 0
        finally:
            pods.remove_pod(pod_name)
