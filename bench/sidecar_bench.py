"""The sidecar next to GNU `tail -F`, measured in one run on this machine.

For each follower (`python -m elyra_sidecar.sidecar --dir D --file f` and `tail -F -n +1 D/f`):
  start      spawn -> first byte of an existing one-line file on its stdout (median of 5)
  latency    append one line -> that line read from its stdout pipe; 300 lines, 10 ms apart (p50, p99)
  catch-up   a 100 MB file (100-byte lines) through a pipe, first byte to last (MB/s, median of 3;
             start-up is the separate `start` figure)
  rss        VmRSS after the latency run (steady), VmHWM after catch-up (peak)
Writes bench/results/sidecar.json and prints a table. Run: .venv/bin/python bench/sidecar_bench.py
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SIZE_MB = int(os.environ.get("BENCH_CATCHUP_MB", "100"))


def command(kind: str, directory: Path) -> list[str]:
    if kind == "sidecar":
        return [
            sys.executable,
            "-m",
            "elyra_sidecar.sidecar",
            "--dir",
            str(directory),
            "--file",
            "f.log",
            "--diagnostics",
            "json",
        ]
    return ["tail", "-F", "-n", "+1", str(directory / "f.log")]


def spawn(kind: str, directory: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        command(kind, directory), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=ROOT
    )


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def rss_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return -1


def start_time(kind: str) -> float:
    samples = []
    for _ in range(5):
        d = Path(tempfile.mkdtemp())
        (d / "f.log").write_bytes(b"ready\n")
        t0 = time.perf_counter()
        proc = spawn(kind, d)
        assert proc.stdout is not None
        os.read(proc.stdout.fileno(), 1)
        samples.append(time.perf_counter() - t0)
        stop(proc)
        shutil.rmtree(d)
    return statistics.median(samples)


def latency(kind: str) -> tuple[float, float, int]:
    d = Path(tempfile.mkdtemp())
    path = d / "f.log"
    path.write_bytes(b"")
    proc = spawn(kind, d)
    assert proc.stdout is not None
    arrivals: dict[int, float] = {}

    def reader() -> None:
        buf = b""
        fd = proc.stdout.fileno()  # type: ignore[union-attr]
        while True:
            data = os.read(fd, 65536)
            if not data:
                return
            now = time.perf_counter()
            buf += data
            *lines, buf = buf.split(b"\n")
            for line in lines:
                if line.startswith(b"seq "):
                    arrivals[int(line.split()[1])] = now

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    time.sleep(1.0)  # let both settle on the file
    writes = {}
    with path.open("ab", buffering=0) as f:
        for i in range(300):
            writes[i] = time.perf_counter()
            f.write(b"seq %d payload-payload-payload\n" % i)
            time.sleep(0.01)
    deadline = time.monotonic() + 10
    while len(arrivals) < 300 and time.monotonic() < deadline:
        time.sleep(0.01)
    steady = rss_kib(proc.pid, "VmRSS")
    stop(proc)
    thread.join(timeout=5)
    shutil.rmtree(d)
    lat = sorted(arrivals[i] - writes[i] for i in arrivals)
    return lat[len(lat) // 2], lat[min(len(lat) - 1, int(len(lat) * 0.99))], steady


def catch_up_once(kind: str, path: Path, size: int) -> tuple[float, int]:
    proc = spawn(kind, path.parent)
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    got = len(os.read(fd, 1 << 20))
    t0 = time.perf_counter()
    first = got
    while got < size:
        data = os.read(fd, 1 << 20)
        if not data:
            break
        got += len(data)
    elapsed = time.perf_counter() - t0
    peak = rss_kib(proc.pid, "VmHWM")
    stop(proc)
    return ((got - first) / 1e6) / elapsed, peak


def catch_up(kind: str, path: Path, size: int) -> tuple[float, int]:
    runs = [catch_up_once(kind, path, size) for _ in range(3)]
    return statistics.median(r[0] for r in runs), max(r[1] for r in runs)


def main() -> int:
    results: dict[str, dict[str, float]] = {}
    big_dir = Path(tempfile.mkdtemp())
    line = b"x" * 99 + b"\n"
    with (big_dir / "f.log").open("wb") as f:
        f.write(line * (SIZE_MB * 10_000))
    size = (big_dir / "f.log").stat().st_size
    for kind in ("sidecar", "tail"):
        p50, p99, steady = latency(kind)
        mbps, peak = catch_up(kind, big_dir / "f.log", size)
        results[kind] = {
            "start_s": start_time(kind),
            "latency_p50_ms": p50 * 1e3,
            "latency_p99_ms": p99 * 1e3,
            "catchup_mb_s": mbps,
            "steady_rss_mib": steady / 1024,
            "peak_rss_mib": peak / 1024,
        }
    shutil.rmtree(big_dir)
    tail_version = subprocess.run(
        ["tail", "--version"], capture_output=True, text=True, check=False
    ).stdout.split("\n")[0]
    out = {
        "python": sys.version.split()[0],
        "tail": tail_version,
        "catchup_mb": size / 1e6,
        "results": results,
        "ratios_sidecar_over_tail": {k: results["sidecar"][k] / results["tail"][k] for k in results["tail"]},
    }
    (ROOT / "bench" / "results" / "sidecar.json").write_text(json.dumps(out, indent=2) + "\n")
    print(f"{'':10} {'start':>9} {'p50':>8} {'p99':>8} {'catch-up':>11} {'steady RSS':>11} {'peak RSS':>9}")
    for kind, r in results.items():
        print(
            f"{kind:10} {r['start_s'] * 1e3:>7.0f}ms "
            f"{r['latency_p50_ms']:>6.2f}ms {r['latency_p99_ms']:>6.2f}ms "
            f"{r['catchup_mb_s']:>7.0f}MB/s {r['steady_rss_mib']:>9.1f}Mi {r['peak_rss_mib']:>7.1f}Mi"
        )
    print("sidecar/tail: " + ", ".join(f"{k} {v:.2f}" for k, v in out["ratios_sidecar_over_tail"].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
