"""The sidecar next to GNU `tail -F`, plain Python and an older commit of itself, measured in one run.

Followers, each given `--dir D --file f.log`:
  sidecar        this tree, `python -m elyra_sidecar tail ...` (the dispatcher, as the pod runs it)
  sidecar@REF    the same at an older commit (BENCH_BASELINE, default d4f532a; empty to skip), exported
                 with `git archive` and put first on PYTHONPATH (same interpreter, same dependencies)
  tail           GNU `tail -F -n +1 D/f.log`
References:
  python -c pass                     spawn to exit: the floor of any Python start
  python -c "time.sleep(...)"        VmRSS: the floor of any Python process
Figures:
  start      spawn -> first byte of an existing one-line file on stdout (median of 7, kinds interleaved)
  latency    append one line -> that line read from stdout; 300 lines, 10 ms apart (p50, p99)
  catch-up   100 MB (100-byte lines) through a pipe, first byte to last; 3 rounds, every follower in
             each round; the ratio to `tail` is taken per round and the lowest is reported
  rss        VmRSS after the latency run (steady), VmHWM after catch-up (peak)
  mirror     a log grown to BENCH_MIRROR_MB in 24 steps, 0.3 s apart (upload interval 0.2 s), mirrored
             to a real SeaweedFS through a TCP proxy that counts the bytes the sidecar sends; SIGTERM,
             then the object is checked byte for byte against the file
Writes bench/results/sidecar.json and prints tables. Run: .venv/bin/python -m bench.sidecar_bench
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

from tests.support.procs import CountingProxy
from tests.support.s3 import start_s3

ROOT = Path(__file__).resolve().parent.parent

SIZE_MB = int(os.environ.get("BENCH_CATCHUP_MB", "100"))
MIRROR_MB = int(os.environ.get("BENCH_MIRROR_MB", "60"))
BASELINE = os.environ.get("BENCH_BASELINE", "d4f532a")
BUCKET = "bench-bucket"


class Follower:
    def __init__(self, name: str, pythonpath: str | None = None) -> None:
        self.name = name
        self.pythonpath = pythonpath

    def command(self, directory: Path, *extra: str) -> list[str]:
        if self.name == "tail":
            return ["tail", "-F", "-n", "+1", str(directory / "f.log")]
        return [
            sys.executable,
            "-m",
            "elyra_sidecar",
            "tail",
            "--dir",
            str(directory),
            "--file",
            "f.log",
            "--diagnostics",
            "json",
            *extra,
        ]

    def spawn(
        self, directory: Path, *extra: str, env: dict[str, str] | None = None, stderr: int | None = None
    ) -> subprocess.Popen[bytes]:
        full = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        full.update(env or {})
        if self.pythonpath:
            full["PYTHONPATH"] = self.pythonpath
        return subprocess.Popen(
            self.command(directory, *extra),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL if stderr is None else stderr,
            cwd=tempfile.gettempdir(),  # not ROOT: the baseline must not import this tree by accident
            env=full,
        )


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return -1


def start_once(follower: Follower | None) -> float:
    """Spawn to first byte for a follower; spawn to exit for `python -c pass` (None)."""
    if follower is None:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True, cwd=tempfile.gettempdir())
        return time.perf_counter() - t0
    d = Path(tempfile.mkdtemp())
    (d / "f.log").write_bytes(b"ready\n")
    t0 = time.perf_counter()
    proc = follower.spawn(d)
    assert proc.stdout is not None
    os.read(proc.stdout.fileno(), 1)
    elapsed = time.perf_counter() - t0
    stop(proc)
    shutil.rmtree(d)
    return elapsed


def python_sleep_rss() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], cwd=tempfile.gettempdir())
    time.sleep(1.0)
    rss = status_kib(proc.pid, "VmRSS")
    proc.kill()
    proc.wait()
    return rss


def latency(follower: Follower) -> tuple[float, float, int]:
    d = Path(tempfile.mkdtemp())
    path = d / "f.log"
    path.write_bytes(b"")
    proc = follower.spawn(d)
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
    time.sleep(1.0)  # let it settle on the file
    writes = {}
    with path.open("ab", buffering=0) as f:
        for i in range(300):
            writes[i] = time.perf_counter()
            f.write(b"seq %d payload-payload-payload\n" % i)
            time.sleep(0.01)
    deadline = time.monotonic() + 10
    while len(arrivals) < 300 and time.monotonic() < deadline:
        time.sleep(0.01)
    steady = status_kib(proc.pid, "VmRSS")
    stop(proc)
    thread.join(timeout=5)
    shutil.rmtree(d)
    lat = sorted(arrivals[i] - writes[i] for i in arrivals)
    return lat[len(lat) // 2], lat[min(len(lat) - 1, int(len(lat) * 0.99))], steady


def catch_up_once(follower: Follower, path: Path, size: int) -> tuple[float, int]:
    proc = follower.spawn(path.parent)
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
    peak = status_kib(proc.pid, "VmHWM")
    stop(proc)
    return ((got - first) / 1e6) / elapsed, peak


def mirror_run(follower: Follower, server: object) -> dict[str, float]:
    """Grow a log to MIRROR_MB in 24 steps while the follower mirrors it; count what it sends."""
    d = Path(tempfile.mkdtemp())
    path = d / "f.log"
    key = f"bench/{follower.name}/f.log"
    proxy = CountingProxy(server.port)  # type: ignore[attr-defined]
    proc = follower.spawn(
        d,
        "--endpoint",
        proxy.endpoint,
        "--bucket",
        BUCKET,
        "--key",
        key,
        "--upload-interval",
        "0.2",
        "--shutdown-deadline",
        "60",
        env=server.env,  # type: ignore[attr-defined]
    )
    assert proc.stdout is not None
    drain = threading.Thread(target=lambda: [None for _ in iter(lambda: proc.stdout.read(1 << 20), b"")])  # type: ignore[union-attr]
    drain.daemon = True
    drain.start()
    line = b"m" * 99 + b"\n"
    step = MIRROR_MB * 10_000 // 24
    t0 = time.perf_counter()
    rss = 0
    for _ in range(24):
        with path.open("ab") as f:
            f.write(line * step)
        time.sleep(0.3)
        rss = max(rss, status_kib(proc.pid, "VmRSS"))
    stop(proc)
    elapsed = time.perf_counter() - t0
    proxy.close()
    exact = server.get(BUCKET, key) == path.read_bytes()  # type: ignore[attr-defined]
    size = path.stat().st_size
    shutil.rmtree(d)
    return {
        "file_mb": size / 1e6,
        "sent_mb": proxy.sent / 1e6,
        "sent_over_file": proxy.sent / size,
        "seconds": elapsed,
        "object_equals_file": float(exact),
        "steady_rss_mib": rss / 1024,
    }


def baseline_tree() -> str | None:
    if not BASELINE:
        return None
    tree = tempfile.mkdtemp(prefix="elyra-sidecar-baseline-")
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", BASELINE], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", tree], input=archive.stdout, check=True)
    return tree


def main() -> int:
    baseline = baseline_tree()
    followers = [Follower("sidecar", None)]
    if baseline:
        followers.append(Follower(f"sidecar@{BASELINE}", baseline))
    followers.append(Follower("tail"))
    results: dict[str, dict[str, float]] = {f.name: {} for f in followers}

    # Start-up, interleaved so a busy moment on the machine hits every kind alike.
    starts: dict[str, list[float]] = {f.name: [] for f in followers}
    starts["python -c pass"] = []
    for _ in range(7):
        starts["python -c pass"].append(start_once(None))
        for f in followers:
            starts[f.name].append(start_once(f))
    python_pass = statistics.median(starts["python -c pass"])
    python_rss = python_sleep_rss()
    for f in followers:
        results[f.name]["start_s"] = statistics.median(starts[f.name])
        p50, p99, steady = latency(f)
        results[f.name].update(
            latency_p50_ms=p50 * 1e3, latency_p99_ms=p99 * 1e3, steady_rss_mib=steady / 1024
        )

    big_dir = Path(tempfile.mkdtemp())
    line = b"x" * 99 + b"\n"
    with (big_dir / "f.log").open("wb") as fh:
        fh.write(line * (SIZE_MB * 10_000))
    size = (big_dir / "f.log").stat().st_size
    rounds: dict[str, list[float]] = {f.name: [] for f in followers}
    peaks: dict[str, int] = {f.name: 0 for f in followers}
    for _ in range(3):
        for f in followers:
            mbps, peak = catch_up_once(f, big_dir / "f.log", size)
            rounds[f.name].append(mbps)
            peaks[f.name] = max(peaks[f.name], peak)
    shutil.rmtree(big_dir)
    for f in followers:
        results[f.name]["catchup_mb_s"] = statistics.median(rounds[f.name])
        results[f.name]["peak_rss_mib"] = peaks[f.name] / 1024

    mirror: dict[str, dict[str, float]] = {}
    server = start_s3()
    try:
        server.make_bucket(BUCKET)
        for f in followers:
            if f.name != "tail":
                mirror[f.name] = mirror_run(f, server)
    finally:
        server.stop()
    if baseline:
        shutil.rmtree(baseline, ignore_errors=True)

    tail_version = subprocess.run(
        ["tail", "--version"], capture_output=True, text=True, check=False
    ).stdout.split("\n")[0]
    sidecars = [f.name for f in followers if f.name != "tail"]
    aims = {
        name: {
            "start_over_python_pass": results[name]["start_s"] / python_pass,
            "steady_rss_over_python_sleep": results[name]["steady_rss_mib"] * 1024 / python_rss,
            "catchup_over_tail_lowest_round": min(
                s / t for s, t in zip(rounds[name], rounds["tail"], strict=True)
            ),
            "catchup_over_tail_each_round": [
                s / t for s, t in zip(rounds[name], rounds["tail"], strict=True)
            ],
        }
        for name in sidecars
    }
    out = {
        "python": sys.version.split()[0],
        "tail": tail_version,
        "catchup_mb": size / 1e6,
        "references": {"python_pass_start_s": python_pass, "python_sleep_rss_mib": python_rss / 1024},
        "results": results,
        "aims": aims,
        "mirror": mirror,
    }
    (ROOT / "bench" / "results" / "sidecar.json").write_text(json.dumps(out, indent=2) + "\n")

    print(f"{'':22} {'start':>8} {'p50':>8} {'p99':>8} {'catch-up':>11} {'steady RSS':>11} {'peak RSS':>9}")
    print(f"{'python -c pass/sleep':22} {python_pass * 1e3:>6.0f}ms {'':>29} {python_rss / 1024:>9.1f}Mi")
    for name, r in results.items():
        print(
            f"{name:22} {r['start_s'] * 1e3:>6.0f}ms "
            f"{r['latency_p50_ms']:>6.2f}ms {r['latency_p99_ms']:>6.2f}ms "
            f"{r['catchup_mb_s']:>7.0f}MB/s {r['steady_rss_mib']:>9.1f}Mi {r['peak_rss_mib']:>7.1f}Mi"
        )
    for name, a in aims.items():
        print(
            f"{name}: start {a['start_over_python_pass']:.2f}x python -c pass (aim <= 2), "
            f"steady RSS {a['steady_rss_over_python_sleep']:.2f}x python sleeping (aim <= 1.5), "
            f"catch-up >= {a['catchup_over_tail_lowest_round']:.2f}x tail -F in every round (aim >= 0.5)"
        )
    for name, m in mirror.items():
        print(
            f"mirror {name}: {m['file_mb']:.0f} MB log, sent {m['sent_mb']:.0f} MB "
            f"({m['sent_over_file']:.2f}x the file), object == file: {bool(m['object_equals_file'])}, "
            f"RSS {m['steady_rss_mib']:.1f}Mi"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
