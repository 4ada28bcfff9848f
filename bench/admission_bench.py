"""Admission latency of the real webhook server, next to the bare transform() of the same Workflow.

A 50-node opted-in Workflow (real fixture nodes, as in transform_bench), the server started as its own
process with TLS on 127.0.0.1: first 100 requests from one client alone, then 20 client threads each on
its own keep-alive TLS connection posting the AdmissionReview 25 times (500 requests after a warm-up);
once with one worker process and once with one per core, in the same run. Reports p50/p99 of the
request latency, the median transform() time and the JSON load+dump of the review beside it. Then, with
one worker per core, reviews arriving at steady rates (open loop: the latency a Workflow CREATE sees at
that rate, whatever the others do). Then 1000
TLS clients that stall mid-request: the server's memory growth, and how many it still holds after 15 s.
With --reference (repeatable), other checkouts' servers (another commit, or .cache/compiled: this
checkout's compiled build, scripts/build-compiled.sh) are measured the same way first, with their default
workers, open loop and stalled clients included. Writes bench/results/admission.json.
Run: .venv/bin/python -m bench.admission_bench [--reference /path/to/another/checkout ...]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import trustme

from bench import trees
from bench.transform_bench import review_of, synthetic
from elyra_sidecar.transformer import config_from_mapping, transform
from elyra_sidecar.webhook._workers import available_cpus
from tests.support.procs import free_port

ROOT = Path(__file__).resolve().parent.parent

NODES, CLIENTS, PER_CLIENT = 50, 20, 25
STALLED = 1000
#: Arrival rates (reviews per second) of the open-loop runs, each for this long.
OPEN_RATES, OPEN_LOOP_SECONDS = (10.0, 20.0, 40.0, 60.0, 80.0), 20


def start_server(tmp: Path, port: int, workers: int | None, tree: Path) -> subprocess.Popen[bytes]:
    config: list[str] = []
    if workers is not None:
        # A budget far above any queueing here: this measures latency, not the budget's cut-off.
        (tmp / f"config-{workers}.yaml").write_text(
            f"webhook:\n  workers: {workers}\n  request_budget_seconds: 25\n"
        )
        config = ["--config", str(tmp / f"config-{workers}.yaml")]
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "elyra_sidecar",
            "webhook",
            *config,
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
        cwd=tree,
        env={**os.environ, "PYTHONPATH": f"{tree / 'src'}{os.pathsep}{tree}"},  # that tree's code, not ours
    )


def cpu_seconds(root: int) -> tuple[float, float]:
    """CPU time (user + system) of process `root` itself, and of all its descendants alive now."""
    tick = os.sysconf("SC_CLK_TCK")
    stats: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            stats[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
    descendants, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, (ppid, _) in stats.items() if ppid in frontier} - descendants
        descendants |= frontier
    return stats.get(root, (0, 0.0))[1], sum(stats[pid][1] for pid in descendants)


def wait_until_serving(port: int, context: ssl.SSLContext, body: bytes | None) -> None:
    """Until the server answers, for at most 30 s: 10 reviews (its workers warm) or, without a body, one
    health probe."""
    deadline = time.monotonic() + 30
    while True:
        try:
            conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
            for _ in range(10 if body is not None else 1):
                if body is None:
                    conn.request("GET", "/healthz")
                else:
                    conn.request("POST", "/mutate", body, {"Content-Type": "application/json"})
                conn.getresponse().read()
            conn.close()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
        else:
            return


def measure(tmp: Path, context: ssl.SSLContext, body: bytes, workers: int | None, tree: Path = ROOT) -> dict:
    """One server (`workers` worker processes; None: the tree's defaults): 100 requests from one client,
    then 20 clients at once."""
    port = free_port()
    server = start_server(tmp, port, workers, tree)

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
        wait_until_serving(port, context, body)
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

        cpu_before = cpu_seconds(server.pid)
        t0 = time.perf_counter()
        threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        cpu_after = cpu_seconds(server.pid)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    latencies.sort()
    return {
        "server": f"{trees.label(tree)}, {workers or 'default'} worker(s)",
        "one_client_p50_ms": serial[50] * 1e3,
        "one_client_p99_ms": serial[98] * 1e3,
        "p50_ms": latencies[len(latencies) // 2] * 1e3,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1e3,
        "throughput_rps": len(latencies) / wall,
        "requests": len(latencies),
        # CPU of the server process (TLS, HTTP, handing bodies over) and of its workers, per request
        "server_cpu_ms_per_request": (cpu_after[0] - cpu_before[0]) / len(latencies) * 1e3,
        "workers_cpu_ms_per_request": (cpu_after[1] - cpu_before[1]) / len(latencies) * 1e3,
    }


def open_loop(
    tmp: Path,
    context: ssl.SSLContext,
    body: bytes,
    workers: int,
    rates: tuple[float, ...],
    *,
    tree: Path = ROOT,
) -> list[dict]:
    """Reviews arriving at a steady rate (Poisson, from CLIENTS keep-alive connections) instead of 20
    clients each waiting for its answer: the latency a Workflow CREATE sees at that rate, counted from
    when it was due to be sent (a late send counts as waiting, so a slow server cannot hide its queue)."""
    port = free_port()
    server = start_server(tmp, port, workers, tree)
    rows = []
    try:
        wait_until_serving(port, context, body)
        name = f"{trees.label(tree)}, {workers} worker(s)"
        rows += [{"server": name, **_at_rate(port, context, body, rate)} for rate in rates]
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    return rows


def _at_rate(port: int, context: ssl.SSLContext, body: bytes, rate: float) -> dict:
    total = int(rate * OPEN_LOOP_SECONDS)
    rng = random.Random(1)  # the same arrivals in every run
    due, t = [], 0.0
    for _ in range(total):
        t += rng.expovariate(rate)
        due.append(t)
    latencies: list[float] = []
    lock = threading.Lock()
    start = time.perf_counter() + 0.5

    def client(mine: list[float]) -> None:
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=30)
        for when in mine:
            pause = start + when - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            conn.request("POST", "/mutate", body, {"Content-Type": "application/json"})
            response = conn.getresponse()
            response.read()
            elapsed = time.perf_counter() - (start + when)
            if response.status != 200:
                raise RuntimeError(f"unexpected answer {response.status}")
            with lock:
                latencies.append(elapsed)
        conn.close()

    threads = [threading.Thread(target=client, args=(due[i::CLIENTS],)) for i in range(CLIENTS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    latencies.sort()
    return {
        "rate_rps": rate,
        "requests": len(latencies),
        "p50_ms": latencies[len(latencies) // 2] * 1e3,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1e3,
    }


def rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))) / 1024


def stalled_clients(tmp: Path, context: ssl.SSLContext, tree: Path, workers: int | None) -> dict:
    """STALLED clients each send half a request over TLS and stop: the server's memory while they hang
    on, and how many connections it still holds after 3x the default read timeout (5 s)."""
    port = free_port()
    server = start_server(tmp, port, workers, tree)
    head = b"POST /mutate HTTP/1.1\r\nHost: x\r\nContent-Length: 200000\r\n\r\n" + b" " * 100_000
    try:
        wait_until_serving(port, context, None)
        before = rss_mib(server.pid)

        def stall() -> socket.socket:
            raw = socket.create_connection(("127.0.0.1", port))
            tls = context.wrap_socket(raw, server_hostname="127.0.0.1", do_handshake_on_connect=False)
            tls.settimeout(2)  # beyond the server's connection limit the handshake waits: leave it so
            try:
                tls.do_handshake()
                tls.sendall(head)
            except OSError:
                pass
            return tls

        fds_before = sum(1 for _ in Path(f"/proc/{server.pid}/fd").iterdir())
        with ThreadPoolExecutor(max_workers=50) as pool:
            clients = list(pool.map(lambda _: stall(), range(STALLED)))
        time.sleep(1)
        held = rss_mib(server.pid) - before
        time.sleep(15)
        # Sockets the server process still holds (those waiting in its accept queue are the kernel's).
        still_open = max(0, sum(1 for _ in Path(f"/proc/{server.pid}/fd").iterdir()) - fds_before)
        for s in clients:
            s.close()
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    return {
        "server": f"{trees.label(tree)}, {workers or 'default'} worker(s)",
        "stalled_clients": STALLED,
        "rss_growth_mib": held,
        "still_open_after_15s": still_open,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--reference",
        type=Path,
        action="append",
        default=[],
        help="another checkout (e.g. `git worktree add /tmp/ref main`): its server measured first, same way",
    )
    parser.add_argument("--open-loop-seconds", type=float, help="how long each steady rate runs (20)")
    args = parser.parse_args()
    references = [p.resolve() for p in args.reference]
    global OPEN_LOOP_SECONDS  # noqa: PLW0603  # chosen once per run
    OPEN_LOOP_SECONDS = args.open_loop_seconds or OPEN_LOOP_SECONDS
    review = review_of(synthetic(NODES))
    workflow = review["request"]["object"]  # the opted-in Workflow the review carries
    body = json.dumps(review).encode()
    tmp = Path(tempfile.mkdtemp())
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1")
    (tmp / "tls.crt").write_bytes(b"".join(b.bytes() for b in leaf.cert_chain_pems))
    (tmp / "tls.key").write_bytes(leaf.private_key_pem.bytes())
    context = ssl.create_default_context()
    ca.configure_trust(context)
    cores = available_cpus()
    runs = [measure(tmp, context, body, None, tree) for tree in references]
    runs += [measure(tmp, context, body, workers) for workers in sorted({1, cores})]
    steady = [
        row
        for tree in [*references, ROOT]
        for row in open_loop(tmp, context, body, cores, OPEN_RATES, tree=tree)
    ]
    stalled = [stalled_clients(tmp, context, tree, None) for tree in references]
    stalled.append(stalled_clients(tmp, context, ROOT, cores))
    config = config_from_mapping({"selection": {"only_annotated": True}})
    bare, floor = [], []
    for _ in range(20):
        t = time.perf_counter()
        transform(workflow, config)
        bare.append(time.perf_counter() - t)
        t = time.perf_counter()
        json.dumps(json.loads(body))
        floor.append(time.perf_counter() - t)
    result = {
        "nodes": NODES,
        "clients": CLIENTS,
        "body_bytes": len(body),
        "cores": cores,
        "transform_median_ms": statistics.median(bare) * 1e3,
        "json_load_dump_median_ms": statistics.median(floor) * 1e3,
        "runs": runs,
        "open_loop": steady,
        "stalled": stalled,
    }
    (ROOT / "bench" / "results" / "admission.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"{NODES}-node Workflow ({len(body) / 1e3:.0f} kB), {cores} cores; {CLIENTS} concurrent clients:")
    print(
        "| server | alone p50 | alone p99 | 20 clients p50 | 20 clients p99 | req/s | p99 / alone p50 "
        "| CPU/request: server + workers |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in runs:
        print(
            f"| {r['server']} | {r['one_client_p50_ms']:.1f} ms | {r['one_client_p99_ms']:.1f} ms "
            f"| {r['p50_ms']:.1f} ms | {r['p99_ms']:.1f} ms | {r['throughput_rps']:.0f} req/s "
            f"| {r['p99_ms'] / r['one_client_p50_ms']:.1f}x "
            f"| {r['server_cpu_ms_per_request']:.1f} + {r['workers_cpu_ms_per_request']:.1f} ms |"
        )
    print(f"Reviews arriving at a steady rate ({CLIENTS} connections, {OPEN_LOOP_SECONDS} s each):")
    print("| server | rate | p50 | p99 |")
    print("| --- | --- | --- | --- |")
    for r in steady:
        print(f"| {r['server']} | {r['rate_rps']:.0f} req/s | {r['p50_ms']:.1f} ms | {r['p99_ms']:.1f} ms |")
    print(f"{STALLED} clients stalled mid-request:")
    for r in stalled:
        print(
            f"  {r['server']}: RSS +{r['rss_growth_mib']:.0f} MiB while they hang on, "
            f"{r['still_open_after_15s']} still open after 15 s"
        )
    print(
        f"bare transform() median {result['transform_median_ms']:.1f} ms; "
        f"json load+dump of the review {result['json_load_dump_median_ms']:.1f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
