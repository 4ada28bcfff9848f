"""The pure parts of `elyra-sidecar logs`: the sidecar's args, the golden Workflows' steps, line decoding,
prefix sanitising, and where the namespace comes from."""

from __future__ import annotations

import copy
import io
import json
import os

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from elyra_sidecar import contract, diagnostics
from elyra_sidecar.logs import _sources
from elyra_sidecar.logs._endpoint import EndpointError, kfp_object_store, parse_endpoint
from elyra_sidecar.logs._output import LineSplitter, LogDecoder, sanitize
from elyra_sidecar.logs._workflow import (
    S3Location,
    SecretRef,
    ShapeError,
    check_workflow,
    elyra_templates,
    is_label_value,
    parse_sidecar_args,
    parse_time,
    steps_from_nodes,
)
from tests.helpers import GOLDEN
from tests.support.k8s_standin import start_standin


def golden(name: str) -> dict:
    return yaml.safe_load((GOLDEN / name).read_text())


class TestSidecarArgs:
    def test_both_option_forms(self):
        """`--key value` and `--key=value` read alike; repeats keep their order; --poll takes no value."""
        args = [
            contract.ARG_DIR,
            "/w",
            f"{contract.ARG_FILE}=a.log",
            contract.ARG_POLL,
            contract.ARG_FILE,
            "b.log",
            f"{contract.ARG_ENDPOINT}=http://s3:9000",
            contract.ARG_BUCKET,
            "bk",
            f"{contract.ARG_KEY}=p/a.log",
            contract.ARG_KEY,
            "p/b=c.log",
        ]
        options = parse_sidecar_args(args)
        assert options[contract.ARG_FILE] == ["a.log", "b.log"]
        assert options[contract.ARG_KEY] == ["p/a.log", "p/b=c.log"]
        assert options[contract.ARG_ENDPOINT] == ["http://s3:9000"]
        assert options[contract.ARG_POLL] == [""]
        assert options[contract.ARG_DIR] == ["/w"]


class TestGoldenWorkflows:
    def test_elyra_4_steps_and_their_s3_objects(self):
        """The 4.0.0 golden output: the Python and R nodes have the sidecar (the notebook has none), named
        by KFP's task_display_name, with the mirror's endpoint, bucket and key."""
        templates = elyra_templates(golden("elyra-4.0.0-three-node.default.yaml"))
        assert sorted(templates) == ["run-a-file", "run-a-file-3"]
        load = templates["run-a-file"]
        assert (load.display, load.container, load.log_format) == ("Load data", "elyra-log", "raw")
        assert load.location == S3Location(
            "http://127.0.0.1:9123", "elyra-bucket", ("my/project/three-node-1121214047/load_data.log",)
        )
        assert load.credentials == {"AWS_ACCESS_KEY_ID": "minio", "AWS_SECRET_ACCESS_KEY": "minio123"}

    def test_secret_backed_credentials(self):
        """With Elyra's cos_secret the sidecar's credentials are Secret references, kept as such."""
        templates = elyra_templates(golden("elyra-4.0.0-three-node-cos-secret.default.yaml"))
        creds = next(iter(templates.values())).credentials
        assert creds["AWS_ACCESS_KEY_ID"] == SecretRef("mlpipeline-minio-artifact", "AWS_ACCESS_KEY_ID")

    @pytest.mark.parametrize("path", sorted(GOLDEN.glob("*.yaml")), ids=lambda p: p.stem)
    def test_every_golden_sidecar_is_found_with_a_location(self, path):
        """Every template with the sidecar in every golden file yields an S3 location; a plain KFP
        pipeline yields no Elyra step."""
        wf = yaml.safe_load(path.read_text())
        templates = elyra_templates(wf)
        with_sidecar = [t for t in wf["spec"]["templates"] if t.get("sidecars")]
        assert len(templates) == len(with_sidecar)
        assert all(t.location is not None and t.location.keys for t in templates.values())
        assert bool(templates) == path.name.startswith("elyra-")

    def test_steps_in_start_order_only_pod_nodes_of_elyra_templates(self):
        """Nodes become steps only for Pod nodes of sidecar templates, sorted by start time."""
        wf = golden("elyra-4.0.0-three-node.default.yaml")
        wf["status"] = {
            "nodes": {
                "d": {"id": "d", "name": "w", "type": "DAG", "templateName": "three-node"},
                "a": {"id": "a", "name": "w.run-a-file-3", "type": "Pod", "templateName": "run-a-file-3"}
                | {"startedAt": "2026-11-22T06:00:09Z", "phase": "Running"},
                "b": {"id": "b", "name": "w.run-a-file", "type": "Pod", "templateName": "run-a-file"}
                | {"startedAt": "2026-11-22T06:00:01Z", "phase": "Succeeded"},
                "c": {"id": "c", "name": "w.run-a-file-2", "type": "Pod", "templateName": "run-a-file-2"},
            }
        }
        steps = steps_from_nodes(wf, elyra_templates(wf))
        assert [(s.display, s.phase) for s in steps] == [("Load data", "Succeeded"), ("Report", "Running")]

    def test_run_ids_are_label_values_long_names_are_not(self):
        """A KFP run id (UUID) may go into a label selector; a 64-character name may not."""
        assert is_label_value("4f8c1d52-0c5e-4b7a-9e0e-3a1c2b6d7e8f")
        assert not is_label_value("a" * 64)
        assert not is_label_value("bad,selector=x")


class TestLines:
    def test_sidecar_records_dropped_user_json_kept(self):
        """The sidecar's own diagnostic records are left out; a user's JSON line (even structlog-shaped) is
        printed."""
        decoder = LogDecoder(log_format="raw", timestamps=False)
        ours = {"event": "watching", "level": "info", "timestamp": "2026-11-22T06:00:01.5Z"}
        users = {"event": "epoch_done", "level": "info", "timestamp": "2026-11-22T06:00:01.5Z"}
        assert decoder.decode(json.dumps(ours).encode()) is None
        assert decoder.decode(json.dumps(users).encode()) == json.dumps(users).encode()

    @pytest.mark.parametrize("event", sorted(contract.SIDECAR_EVENTS))
    def test_every_sidecar_event_dropped(self, event):
        """A record of each event the contract lists, rendered by the pod's own logger (e.g. `main_exited`,
        which ends every Pod-mode step), is left out of the printed lines."""
        stream = io.StringIO()
        diagnostics.PodLogger(json_output=True, stream=stream).warning(event, file="a.log")
        decoder = LogDecoder(log_format="raw", timestamps=False)
        assert decoder.decode(stream.getvalue().rstrip("\n").encode()) is None

    def test_json_format_records_unwrapped_and_joined(self):
        """`--format json`: each record's line is printed; a split line's pieces are joined; the kubelet's
        time stays in front with --timestamps."""
        decoder = LogDecoder(log_format="json", timestamps=True)
        stamp = b"2026-11-22T06:00:01.123456789Z "
        first = json.dumps({"file": "a.log", "line": "hel", "partial": True}).encode()
        second = json.dumps({"file": "a.log", "line": "lo"}).encode()
        assert decoder.decode(stamp + first) is None
        assert decoder.decode(stamp + second) == stamp + b"hello"

    def test_splitter_keeps_the_unfinished_line(self):
        """Chunks split anywhere give whole lines; the unfinished rest waits."""
        splitter = LineSplitter()
        assert splitter.feed(b"a\nb") == [b"a"]
        assert splitter.feed(b"c\n\nd") == [b"bc", b""]
        assert splitter.tail == b"d"

    def test_splitter_is_linear_in_a_long_line_without_newline(self):
        """A line without a newline fed in many chunks costs work in proportion to its length, not to its
        square: the bytes the splitter touches through each chunk (concatenated, scanned, split) are
        counted; twice the chunks may cost about twice the bytes, never about four times (the old
        `tail + chunk` copied the whole rest each time: 32/64/96 MB took 7.9/27.9/63 s)."""

        def touched(chunks: int) -> int:
            counter = [0]

            class Chunk(bytes):  # counts the bytes of every operation done with a chunk
                def __radd__(self, other: bytes) -> bytes:
                    counter[0] += len(other) + len(self)
                    return Chunk(bytes(other) + bytes(self))

                def __add__(self, other: bytes) -> bytes:
                    counter[0] += len(self) + len(other)
                    return Chunk(bytes(self) + bytes(other))

                def __contains__(self, item: object) -> bool:
                    counter[0] += len(self)
                    return bytes.__contains__(self, item)  # type: ignore[operator]

                def split(self, *args: object, **kwargs: object) -> list[bytes]:  # type: ignore[override]
                    counter[0] += len(self)
                    return bytes.split(self, *args, **kwargs)  # type: ignore[arg-type]

                def find(self, *args: object, **kwargs: object) -> int:  # type: ignore[override]
                    counter[0] += len(self)
                    return bytes.find(self, *args, **kwargs)  # type: ignore[arg-type]

            splitter = LineSplitter()
            piece = b"x" * 4096
            for _ in range(chunks):
                assert splitter.feed(Chunk(piece)) == []
            assert splitter.feed(Chunk(b"end\nnext")) == [piece * chunks + b"end"]
            assert splitter.tail == b"next"
            return counter[0]

        small, large = touched(500), touched(1000)
        assert small >= 500 * 4096  # every byte is looked at
        assert large / small < 2.5, (small, large)


class TestSanitize:
    @pytest.mark.parametrize(
        ("raw", "shown"),
        [
            ("Load data", "Load data"),
            ("a\x1b[2Jb", "a\\x1b[2Jb"),
            ("x\ny\rz", "x\\x0ay\\x0dz"),
            ("rtl\u202eevil", "rtl\\u202eevil"),
            ("line\u2028sep", "line\\u2028sep"),
            ("日本語ノード", "日本語ノード"),
        ],
    )
    def test_controls_escaped_printables_kept(self, raw, shown):
        """Control, format and line-separator characters are shown escaped; other text stays."""
        assert sanitize(raw) == shown

    def test_long_names_cut(self):
        """A very long name is cut, so a prefix stays a prefix."""
        assert len(sanitize("n" * 500)) == 80


class TestNamespace:
    def test_from_the_kubeconfig_context(self, tmp_path, monkeypatch):
        """Without -n the namespace is the current context's."""
        standin = start_standin(tmp_path, namespace="from-context")
        try:
            monkeypatch.setenv("KUBECONFIG", str(standin.kubeconfig))
            assert _sources.connect(kubeconfig=None, context=None, namespace=None).namespace == "from-context"
            kube = _sources.connect(kubeconfig=None, context=None, namespace="given")
            assert kube.namespace == "given"
        finally:
            standin.stop()

    def test_in_cluster_from_the_service_account(self, tmp_path, monkeypatch):
        """In a pod (no kubeconfig), the service account's token, CA and namespace are used: a real call
        through them reaches the stand-in."""
        standin = start_standin(tmp_path, namespace="unused")
        try:
            account = tmp_path / "serviceaccount"
            account.mkdir()
            (account / "token").write_text("stand-in-token")
            (account / "ca.crt").write_text((tmp_path / "standin-ca.pem").read_text())
            (account / "namespace").write_text("team-b\n")
            monkeypatch.setattr(_sources, "SERVICE_ACCOUNT_DIR", account)
            monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
            monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
            monkeypatch.setenv("KUBERNETES_SERVICE_PORT", standin.url.rsplit(":", 1)[1])
            kube = _sources.connect(kubeconfig=None, context=None, namespace=None)
            assert kube.namespace == "team-b"
            assert kube.workflow("nothing-here") is None
            assert ("get", "workflows") in standin.cluster.requests
        finally:
            standin.stop()

    def test_nothing_configured_is_one_clear_error(self, tmp_path, monkeypatch):
        """No kubeconfig and not in a pod: a LogsError saying so."""
        monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
        monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
        with pytest.raises(_sources.LogsError, match="no Kubernetes configuration"):
            _sources.connect(kubeconfig=None, context=None, namespace=None)
        assert os.environ["KUBECONFIG"].endswith("absent")


class TestImports:
    def test_help_loads_no_client_and_no_other_room(self):
        """`elyra-sidecar logs --help` answers without loading the kubernetes client, minio or another
        room (they load when the command runs)."""
        import subprocess
        import sys

        probe = (
            "import json, sys\nfrom elyra_sidecar._cli import main\ntry:\n    main(['logs', '--help'])\n"
            "except SystemExit:\n    pass\nprint(json.dumps(sorted(sys.modules)), file=sys.stderr)\n"
        )
        proc = subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, check=False, timeout=60, cwd="/"
        )
        loaded = set(json.loads(proc.stderr.decode().strip().splitlines()[-1]))
        assert "elyra_sidecar.logs.cli" in loaded
        heavy = (
            "kubernetes",
            "minio",
            "elyra_sidecar.webhook",
            "elyra_sidecar.sidecar",
            "elyra_sidecar.transformer",
        )
        assert not {m for m in loaded if m.startswith(heavy)}


def _paths(node: object, path: tuple = ()) -> list[tuple]:
    """Every path to a value in a Workflow (mapping keys and list indexes)."""
    found = [path] if path else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += _paths(value, (*path, i))
    return found


def _running(name: str) -> dict:
    """A golden Workflow with a status, as `logs` reads it (nodes for each Elyra template)."""
    wf = golden(name)
    wf["metadata"] = {"name": "wf", "creationTimestamp": "2026-11-22T06:00:00Z", "labels": {"a": "b"}}
    nodes = {
        f"wf-{i}": {
            "name": f"wf.{t['name']}",
            "displayName": t["name"],
            "type": "Pod",
            "templateName": t["name"],
            "phase": "Succeeded",
            "startedAt": "2026-11-22T06:00:01Z",
            "finishedAt": "2026-11-22T06:00:09Z",
        }
        for i, t in enumerate(wf["spec"]["templates"])
    }
    wf["status"] = {"phase": "Succeeded", "nodes": nodes}
    return wf


def _shape_error(wf: dict) -> ShapeError | None:
    try:
        check_workflow(wf)
    except ShapeError as exc:
        return exc
    return None


_SHAPED = [
    _running("elyra-4.0.0-three-node.default.yaml"),
    _running("elyra-4.0.0-three-node-cos-secret.default.yaml"),
]
_WRONG = st.sampled_from([[], {}, "x", 0, 1.5, True, [1, "a"], {"a": [1]}, [{}], {"name": {}}])


class TestMalformedWorkflowShapes:
    @settings(max_examples=300, derandomize=True, deadline=None)
    @given(data=st.data())
    def test_checked_or_read_without_exception(self, data):
        """Any value at any path (or several) of a Workflow `logs` reads: either the shape check names the
        path in a ShapeError, or everything `logs` reads from a Workflow runs without an exception."""
        wf = copy.deepcopy(data.draw(st.sampled_from(_SHAPED)))
        for _ in range(data.draw(st.integers(1, 3))):
            paths = _paths(wf)
            path = data.draw(st.sampled_from(paths))
            node = wf
            for part in path[:-1]:
                node = node[part]
            node[path[-1]] = data.draw(_WRONG)
        refused = _shape_error(wf)
        if refused is not None:
            assert refused.path
            assert str(refused).split(":", 1)[0] == refused.path
            return
        templates = elyra_templates(wf)
        steps = steps_from_nodes(wf, templates)
        for node in ((wf.get("status") or {}).get("nodes") or {}).values():
            parse_time(node.get("finishedAt"))
        str((wf.get("metadata") or {}).get("name") or "")
        str((wf.get("status") or {}).get("phase") or "")
        assert all(isinstance(s.display, str) for s in steps)


class TestKfpObjectStore:
    @pytest.mark.parametrize(
        ("data", "url"),
        [
            # KFP 1.x manifests (Argo 2.7+): the artifactRepository key, no scheme, insecure for http.
            (
                {"artifactRepository": "s3:\n  endpoint: minio-service.kubeflow:9000\n  insecure: true\n"},
                "http://minio-service.kubeflow:9000",
            ),
            ({"artifactRepository": "s3:\n  endpoint: s3.amazonaws.com\n"}, "https://s3.amazonaws.com"),
            # Older Argo (KFP 1.0): inside the `config` key.
            (
                {
                    "config": "artifactRepository:\n  s3:\n    endpoint: minio-service.kubeflow:9000\n"
                    "    insecure: true\n"
                },
                "http://minio-service.kubeflow:9000",
            ),
            ({"artifactRepository": "s3:\n  endpoint: http://Minio.Example:80\n"}, "http://minio.example"),
            ({"artifactRepository": "gcs:\n  bucket: b\n"}, None),
            ({}, None),
        ],
    )
    def test_endpoint_from_the_configmap(self, data, url):
        found = kfp_object_store(data)
        assert (found.url if found else None) == url

    def test_same_server_is_host_and_port(self):
        kfp = parse_endpoint("minio-service.kubeflow:9000")
        assert kfp.same_server(parse_endpoint("https://minio-service.kubeflow:9000"))
        assert not kfp.same_server(parse_endpoint("http://minio-service.kubeflow:9001"))
        assert not kfp.same_server(parse_endpoint("http://evil.example:9000"))

    @pytest.mark.parametrize(
        "text", ["ftp://h", "http://h:99999", "http://[::1", "http://h/path", "http://u@h"]
    )
    def test_bad_endpoints_are_refused(self, text):
        with pytest.raises(EndpointError):
            parse_endpoint(text)
