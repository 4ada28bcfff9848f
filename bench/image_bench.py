"""The image's size over its base and its build time, against the Dockerfile of a reference revision.

Both Dockerfiles are built in this run with podman (`--no-cache`, so the time is a full build; the pip
downloads are not cached either) on the same stand-in base (scripts/base_image.sh), from the current
sources. Reported per image:
  added MB      image size minus the base's (`podman image inspect .Size`), with the layers over the base
                (`podman history`)
  build s       wall time of `podman build`
  start s       median time of importing what `elyra-sidecar tail` and `webhook` run, inside the image with
                a read-only root filesystem (bytecode that is not in the image is compiled on every start)
Writes bench/results/image.json and prints a table. Needs root, podman, runc, debootstrap.
Run: .venv/bin/python -m bench.image_bench [--reference REV] (default d4f532a, before the lean build)
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.support import pods

ROOT = Path(__file__).resolve().parent.parent

PROBE = """import subprocess, sys, time
code = ("import elyra_sidecar.sidecar.tail, elyra_sidecar.webhook.server, minio, "
        "aiohttp.web, prometheus_client, structlog, yaml")
samples = []
for _ in range(7):
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    samples.append(time.perf_counter() - t)
print(sorted(samples)[3])
"""


def layers_over_base(tag: str, base: str) -> list[dict[str, object]]:
    def history(ref: str) -> list[dict[str, object]]:
        out = pods.podman("history", "--no-trunc", "--format", "json", ref).stdout
        return list(json.loads(out))

    # History is newest first; the base's own entries come last.
    own = history(tag)[: -len(history(base))]
    return [
        {"size_mb": round(int(h["size"]) / 1e6, 2), "created_by": str(h.get("CreatedBy", ""))[:120]}
        for h in own
        if int(h["size"]) > 0
    ]


def start_seconds(tag: str) -> float:
    out = pods.podman(
        "run", "--rm", "--read-only", "--entrypoint", "python", tag, "-c", PROBE
    ).stdout  # fmt: skip
    return float(out.decode().strip())


def measure(name: str, dockerfile: Path, base: str) -> dict:
    tag = f"localhost/elyra-sidecar-bench:{name}"
    seconds = pods.build(dockerfile, tag, extra=["--no-cache"])
    added = (pods.image_size(tag) - pods.image_size(base)) / 1e6
    return {
        "image": name,
        "tag": tag,
        "added_mb": round(added, 1),
        "build_seconds": round(seconds, 1),
        "layers": layers_over_base(tag, base),
    }


def add_start_seconds(rows: list[dict], rounds: int = 5) -> None:
    """Start-up times measured alternately, so load from elsewhere on the machine hits both alike."""
    samples: dict[str, list[float]] = {row["tag"]: [] for row in rows}
    for _ in range(rounds):
        for row in rows:
            samples[row["tag"]].append(start_seconds(row["tag"]))
    for row in rows:
        row["start_seconds"] = round(statistics.median(samples[row["tag"]]), 3)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", default="d4f532a", help="git revision of the reference Dockerfile")
    args = parser.parse_args()
    reason = pods.unavailable()
    if reason:
        print(f"Error: {reason}", file=sys.stderr)
        return 1
    base = pods.base_image("bookworm")
    old = subprocess.run(
        ["git", "show", f"{args.reference}:sidecar/Dockerfile"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    with tempfile.TemporaryDirectory() as tmp:
        reference = Path(tmp) / "Dockerfile"
        reference.write_bytes(old)
        ref = measure(f"reference-{args.reference}", reference, base)
        cur = measure("current", ROOT / "sidecar" / "Dockerfile", base)
    add_start_seconds([ref, cur])
    for row in (ref, cur):
        pods.podman("rmi", "--force", row.pop("tag"), check=False)
    report = {
        "base": base,
        "note": "stand-in base: Debian bookworm's Python 3.11 (debootstrap), tagged as the Dockerfile's FROM",
        "reference": ref,
        "current": cur,
        **{f"{k}_ratio": round(cur[k] / ref[k], 3) for k in ("added_mb", "build_seconds", "start_seconds")},
    }
    out = ROOT / "bench" / "results" / "image.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"{'image':28} {'added MB':>9} {'build s':>8} {'start s':>8}")
    for row in (ref, cur):
        print(f"{row['image']:28} {row['added_mb']:>9} {row['build_seconds']:>8} {row['start_seconds']:>8}")
    print(
        f"current / reference: size {report['added_mb_ratio']}, build {report['build_seconds_ratio']}, "
        f"start {report['start_seconds_ratio']}  (written to {out.relative_to(ROOT)})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
