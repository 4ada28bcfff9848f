"""Time transform() on synthetic 10/100/1000-node workflows against a plain YAML load+dump of the same file.

Workflows are built from the real fixture nodes (every Elyra template of every fixture, repeated and
renamed) chained in one DAG. For each size, in one run: the median of several repetitions of
  load+dump      yaml load then dump of the file (the same C-accelerated loader/dumper the CLI uses)
  transform      transform() alone on the loaded dict
  cli path       load + transform + dump (what `elyra-sidecar transform` does)
Writes bench/results/transform.json and prints a table. Run: .venv/bin/python bench/transform_bench.py
"""

from __future__ import annotations

import copy
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from elyra_sidecar.transformer import transform  # noqa: E402
from elyra_sidecar.transformer._io import _Loader, dump_yaml  # noqa: E402
from tests.helpers import ELYRA_FIXTURES, load_fixture  # noqa: E402

SIZES = (10, 100, 1000)


def synthetic(n: int) -> dict:
    pool = [t for p in ELYRA_FIXTURES for t in load_fixture(p)["spec"]["templates"] if "container" in t]
    templates, tasks = [], []
    for i in range(n):
        t = copy.deepcopy(pool[i % len(pool)])
        t["name"] = f"node-{i}"
        templates.append(t)
        tasks.append(
            {
                "name": f"node-{i}",
                "template": f"node-{i}",
                **({"dependencies": [f"node-{i - 1}"]} if i else {}),
            }
        )
    templates.append({"name": "main", "dag": {"tasks": tasks}})
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "bench-"},
        "spec": {"entrypoint": "main", "templates": templates},
    }


def median_time(fn, repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def main() -> int:
    rows = []
    for n in SIZES:
        text = dump_yaml(synthetic(n))
        loaded = yaml.load(text, Loader=_Loader)  # noqa: S506 - the safe C loader
        repeat = 7 if n < 1000 else 3
        load_dump = median_time(lambda t=text: dump_yaml(yaml.load(t, Loader=_Loader)), repeat)  # noqa: S506
        only = median_time(lambda w=loaded: transform(w), repeat)
        cli = median_time(lambda t=text: dump_yaml(transform(yaml.load(t, Loader=_Loader)).workflow), repeat)  # noqa: S506
        rows.append(
            {
                "nodes": n,
                "yaml_bytes": len(text),
                "load_dump_s": load_dump,
                "transform_s": only,
                "cli_path_s": cli,
                "transform_over_load_dump": only / load_dump,
                "cli_over_load_dump": cli / load_dump,
            }
        )
    out = ROOT / "bench" / "results" / "transform.json"
    out.write_text(json.dumps({"python": sys.version.split()[0], "rows": rows}, indent=2) + "\n")
    print(
        f"{'nodes':>6} {'YAML':>9} {'load+dump':>10} {'transform':>10} {'ratio':>6} "
        f"{'cli path':>9} {'ratio':>6}"
    )
    for r in rows:
        print(
            f"{r['nodes']:>6} {r['yaml_bytes'] / 1e6:>8.2f}M {r['load_dump_s'] * 1e3:>8.1f}ms "
            f"{r['transform_s'] * 1e3:>8.1f}ms {r['transform_over_load_dump']:>6.2f} "
            f"{r['cli_path_s'] * 1e3:>7.1f}ms {r['cli_over_load_dump']:>6.2f}"
        )
    per_node = [r["transform_s"] / r["nodes"] * 1e6 for r in rows]
    print("transform per node (us): " + ", ".join(f"{p:.0f}" for p in per_node))
    return 0


if __name__ == "__main__":
    sys.exit(main())
