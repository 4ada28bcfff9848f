"""The real webhook server: real TLS on 127.0.0.1, real process, real signals."""

from __future__ import annotations

import json
import signal
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import trustme

from elyra_sidecar.transformer import Config, transform
from tests.helpers import FIXTURES, load_fixture
from tests.support.procs import wait_for
from tests.test_admission import annotate, patched, review


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Server:
    def __init__(self, tmp: Path, ca: trustme.CA, config: str = "") -> None:
        self.tmp = tmp
        self.ca = ca
        self.cert, self.key = tmp / "tls.crt", tmp / "tls.key"
        self.issue()
        cfg = tmp / "config.yaml"
        cfg.write_text(
            config
            or "webhook:\n  cert_reload_seconds: 0.2\n  drain_seconds: 1.5\n  shutdown_grace_seconds: 5\n"
        )
        self.port = free_port()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "elyra_sidecar",
                "webhook",
                "--config",
                str(cfg),
                "--tls-cert",
                str(self.cert),
                "--tls-key",
                str(self.key),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.context = ssl.create_default_context()
        ca.configure_trust(self.context)
        assert wait_for(self._ready, timeout=20), (
            self.proc.stderr.read1().decode() if self.proc.poll() is not None else ""
        )

    def issue(self) -> bytes:
        leaf = self.ca.issue_cert("127.0.0.1", "elyra-sidecar.elyra-sidecar.svc")
        self.cert.write_bytes(b"".join(b.bytes() for b in leaf.cert_chain_pems))
        self.key.write_bytes(leaf.private_key_pem.bytes())
        return leaf.cert_chain_pems[0].bytes()

    def _ready(self) -> bool:
        try:
            return self.get("/readyz")[0] == 200
        except OSError:
            return False

    def connect(self) -> ssl.SSLSocket:
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        return self.context.wrap_socket(raw, server_hostname="127.0.0.1")

    def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        with self.connect() as s:
            s.sendall(
                f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            return _read_response(s)

    def get(self, path: str) -> tuple[int, bytes]:
        return self.request("GET", path)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=20)


def _read_response(s: ssl.SSLSocket) -> tuple[int, bytes]:
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


@pytest.fixture
def server(tmp_path):
    srv = Server(tmp_path, trustme.CA())
    yield srv
    srv.stop()


class TestServer:
    def test_mutate_over_tls(self, server):
        """An opted-in Workflow posted over TLS comes back with the CLI's patch and the uid echoed."""
        workflow = annotate(load_fixture(FIXTURES / "elyra-4.0.0-three-node.yaml"), "workflow")
        status, body = server.request("POST", "/mutate", json.dumps(review(workflow, uid="abc")).encode())
        assert status == 200
        response = json.loads(body)["response"]
        assert response["uid"] == "abc"
        cfg = replace(Config(), selection=replace(Config().selection, only_annotated=True))
        assert patched(workflow, response) == transform(workflow, cfg).workflow

    def test_health_readiness_metrics(self, server):
        """/healthz, /readyz, and /metrics counting requests, injections and errors."""
        assert server.get("/healthz")[0] == 200
        workflow = annotate(load_fixture(FIXTURES / "elyra-3.15.0-three-node.yaml"), "workflow")
        server.request("POST", "/mutate", json.dumps(review(workflow)).encode())
        server.request("POST", "/mutate", json.dumps({"kind": "nonsense"}).encode())
        status, text = server.get("/metrics")
        assert status == 200
        metrics = text.decode()
        assert 'elyra_sidecar_admission_requests_total{result="patched"} 1.0' in metrics
        assert "elyra_sidecar_admission_injections_total 3.0" in metrics
        assert "elyra_sidecar_admission_errors_total 1.0" in metrics
        assert "elyra_sidecar_admission_duration_seconds_count 2.0" in metrics

    def test_bad_json_and_oversize_bodies(self, tmp_path):
        """Not JSON: 400. Over webhook.max_request_bytes: 413 (the API server then applies failurePolicy)."""
        srv = Server(tmp_path, trustme.CA(), "webhook:\n  max_request_bytes: 1000\n")
        try:
            assert srv.request("POST", "/mutate", b"{not json")[0] == 400
            assert srv.request("POST", "/mutate", b"[" + b"1," * 1000 + b"1]")[0] == 413
        finally:
            srv.stop()

    def test_certificate_swapped_on_disk_is_served_without_restart(self, server):
        """A new certificate written to the files is what new connections see, same process."""
        with server.connect() as s:
            first = s.getpeercert(binary_form=True)
        new_pem = server.issue()
        new_der = ssl.PEM_cert_to_DER_cert(new_pem.decode())
        assert new_der != first

        def serves_new() -> bool:
            with server.connect() as s:
                return s.getpeercert(binary_form=True) == new_der

        assert wait_for(serves_new, timeout=10)
        assert server.proc.poll() is None

    def test_sigterm_finishes_in_flight_requests(self, server):
        """A request whose body is still arriving at SIGTERM is answered; /readyz turns 503; exit 0."""
        body = json.dumps(
            review(annotate(load_fixture(FIXTURES / "elyra-4.0.0-three-node.yaml"), "workflow"))
        ).encode()
        with server.connect() as s:
            s.sendall(
                f"POST /mutate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body[:100]
            )
            time.sleep(0.3)
            server.proc.send_signal(signal.SIGTERM)
            assert wait_for(lambda: server.get("/readyz")[0] == 503, timeout=1)
            s.sendall(body[100:])
            status, answer = _read_response(s)
        assert status == 200 and json.loads(answer)["response"]["patchType"] == "JSONPatch"
        assert server.proc.wait(timeout=20) == 0
        # New connections are refused once it has stopped.
        with pytest.raises(OSError):
            server.connect()
