"""Admission latency of the real webhook server, next to the bare transform() of the same Workflow.

A 50-node opted-in Workflow (real fixture nodes, as in transform_bench), the server started as its own
process with TLS on 127.0.0.1, 20 client threads each on its own keep-alive TLS connection posting
the AdmissionReview 25 times (500 requests after a warm-up). Reports p50/p99 of the request latency and
the median transform() time. Writes bench/results/admission.json.
Run: .venv/bin/python bench/admission_bench.py
"""

from __future__ import annotations

import http.client
import json
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import trustme  # noqa: E402

from bench.transform_bench import synthetic  # noqa: E402
from elyra_sidecar.transformer import config_from_mapping, transform  # noqa: E402

NODES, CLIENTS, PER_CLIENT = 50, 20, 25


def main() -> int:
    workflow = synthetic(NODES)
    workflow["metadata"]["annotations"] = {"elyra-sidecar/inject": "true"}
    review = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "bench",
            "kind": {"group": "argoproj.io", "version": "v1alpha1", "kind": "Workflow"},
            "operation": "CREATE",
            "namespace": "bench",
            "object": workflow,
        },
    }
    body = json.dumps(review).encode()
    tmp = Path(tempfile.mkdtemp())
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1")
    (tmp / "tls.crt").write_bytes(b"".join(b.bytes() for b in leaf.cert_chain_pems))
    (tmp / "tls.key").write_bytes(leaf.private_key_pem.bytes())
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "elyra_sidecar",
            "webhook",
            "--tls-cert",
            str(tmp / "tls.crt"),
            "--tls-key",
            str(tmp / "tls.key"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
    )
    context = ssl.create_default_context()
    ca.configure_trust(context)

    def post(conn: http.client.HTTPSConnection) -> float:
        t0 = time.perf_counter()
        conn.request("POST", "/mutate", body, {"Content-Type": "application/json"})
        response = conn.getresponse()
        data = response.read()
        elapsed = time.perf_counter() - t0
        if response.status != 200 or b"JSONPatch" not in data:
            raise RuntimeError(f"unexpected answer {response.status}")
        return elapsed

    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                warm = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
                for _ in range(10):
                    post(warm)
                warm.close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        single = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=30)
        serial = sorted(post(single) for _ in range(100))
        single.close()
        latencies: list[float] = []
        lock = threading.Lock()

        def client() -> None:
            conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=30)
            mine = [post(conn) for _ in range(PER_CLIENT)]
            conn.close()
            with lock:
                latencies.extend(mine)

        t0 = time.perf_counter()
        threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    config = config_from_mapping({"selection": {"only_annotated": True}})
    bare = []
    for _ in range(20):
        t = time.perf_counter()
        transform(workflow, config)
        bare.append(time.perf_counter() - t)
    latencies.sort()
    result = {
        "nodes": NODES,
        "clients": CLIENTS,
        "requests": len(latencies),
        "body_bytes": len(body),
        "p50_ms": latencies[len(latencies) // 2] * 1e3,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1e3,
        "throughput_rps": len(latencies) / wall,
        "transform_median_ms": statistics.median(bare) * 1e3,
        "one_client_p50_ms": serial[50] * 1e3,
        "one_client_p99_ms": serial[98] * 1e3,
    }
    (ROOT / "bench" / "results" / "admission.json").write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"{NODES}-node Workflow ({len(body) / 1e3:.0f} kB), {CLIENTS} concurrent clients, "
        f"{len(latencies)} requests:"
    )
    print(
        f"  admission p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms, "
        f"{result['throughput_rps']:.0f} req/s"
    )
    print(
        f"  one client alone: p50 {result['one_client_p50_ms']:.1f} ms, "
        f"p99 {result['one_client_p99_ms']:.1f} ms"
    )
    print(f"  bare transform() median {result['transform_median_ms']:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
