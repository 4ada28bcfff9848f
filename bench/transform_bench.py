"""Time transform() on synthetic 10/50/100/1000-node workflows against a plain load+dump of the same data.

Workflows are built from the real fixture nodes (every Elyra template of every fixture, repeated and
renamed, each node with its own file names, as one pipeline's nodes differ) chained in one DAG. For each
size, in one run: the median of several repetitions of
  load+dump      yaml load then dump of the file (the same C-accelerated loader/dumper the CLI uses)
  transform      transform() alone on the loaded dict
  cli path       load + transform + dump (what `elyra-sidecar transform` does)
and, for the 50-node admission review (issue 14's aim: admit() CPU <= 3x a JSON load+dump of the review):
  json           json.loads + json.dumps of the AdmissionReview
  transform      transform() of its Workflow (what admit() spends most of its time in)
  admit          admit() of the review, if the webhook room is importable
each for a pipeline not seen before (the node reader's and shell reader's memories cleared every time) and
for the same pipeline again (every run of a pipeline is a new Workflow CREATE carrying the same scripts).
Writes bench/results/transform.json and prints tables. Run: .venv/bin/python -m bench.transform_bench
"""

from __future__ import annotations

import copy
import json
import re
import statistics
import sys
import time
from pathlib import Path

import yaml

from elyra_sidecar.transformer import transform
from elyra_sidecar.transformer._elyra import _scan_script
from elyra_sidecar.transformer._io import _Loader, dump_yaml
from elyra_sidecar.transformer._shell import _remembered
from tests.helpers import ELYRA_FIXTURES, load_fixture

ROOT = Path(__file__).resolve().parent.parent

SIZES = (10, 50, 100, 1000)
REVIEW_NODES = 50
# The fixtures' node files (load_data.py, train.ipynb, report.r/.py, their archives and outputs).
_FILE_STEM = re.compile(r"\b(load_data|train|report)(?=[.-])")


def _distinct_files(template: dict, i: int) -> None:
    """Give node `i` its own file names (script, archive, outputs), as nodes of one pipeline have."""
    container = template["container"]
    container["args"] = [
        _FILE_STEM.sub(rf"\1_{i}", a) if isinstance(a, str) else a for a in container["args"]
    ]
    annotations = (template.get("metadata") or {}).get("annotations") or {}
    if "elyra/node-file-name" in annotations:
        annotations["elyra/node-file-name"] = _FILE_STEM.sub(rf"\1_{i}", annotations["elyra/node-file-name"])


def synthetic(n: int) -> dict:
    pool = [t for p in ELYRA_FIXTURES for t in load_fixture(p)["spec"]["templates"] if "container" in t]
    templates, tasks = [], []
    for i in range(n):
        t = copy.deepcopy(pool[i % len(pool)])
        t["name"] = f"node-{i}"
        _distinct_files(t, i)
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


def median_time(fn, repeat: int, clock=time.perf_counter) -> float:
    """The median of `repeat` runs of `fn` by `clock` (wall time; time.process_time for CPU time)."""
    samples = []
    for _ in range(repeat):
        t0 = clock()
        fn()
        samples.append(clock() - t0)
    return statistics.median(samples)


def forget_scripts() -> None:
    """As if no pipeline had been seen: the node reader's scripts and the shell reader's heads forgotten."""
    _scan_script.cache_clear()
    _remembered.cache_clear()


def review_of(workflow: dict) -> dict:
    """The AdmissionReview the API server sends for an opted-in Workflow CREATE."""
    workflow = {
        **workflow,
        "metadata": {**workflow["metadata"], "annotations": {"elyra-sidecar/inject": "true"}},
    }
    return {
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


def admission_row() -> dict:
    """transform() and admit() of a 50-node review against a JSON load+dump of it (process CPU time)."""
    review = review_of(synthetic(REVIEW_NODES))
    body = json.dumps(review)
    workflow = review["request"]["object"]

    def new_pipeline() -> None:
        forget_scripts()  # as if no run of this pipeline had been seen: every script is new
        transform(workflow)

    row = {
        "nodes": REVIEW_NODES,
        "review_bytes": len(body),
        "json_s": median_cpu(lambda: json.dumps(json.loads(body)), 25),
        "transform_s": median_cpu(new_pipeline, 25),
        "transform_seen_s": median_cpu(lambda: transform(workflow), 25),
    }
    try:
        from elyra_sidecar.transformer import Config
        from elyra_sidecar.webhook._admission import admit  # optional: the webhook room
    except ImportError:
        return row
    config = Config()

    def admit_new() -> None:
        forget_scripts()
        admit(json.loads(body), config)

    row["admit_s"] = median_cpu(admit_new, 25)
    row["admit_seen_s"] = median_cpu(lambda: admit(json.loads(body), config), 25)
    return row


def median_cpu(fn, repeat: int) -> float:
    return median_time(fn, repeat, time.process_time)


def main() -> int:
    # First, with a small heap as in a webhook worker: after the 1000-node runs below, every collection of
    # Python's cyclic GC walks their millions of objects, which once tripled admit()'s time here.
    admission = admission_row()
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
    out.write_text(
        json.dumps({"python": sys.version.split()[0], "rows": rows, "admission": admission}, indent=2) + "\n"
    )
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
    a = admission
    line = (
        f"{a['nodes']}-node review ({a['review_bytes'] / 1e3:.0f} kB), CPU: json load+dump "
        f"{a['json_s'] * 1e3:.2f}ms, transform {a['transform_s'] * 1e3:.2f}ms "
        f"({a['transform_s'] / a['json_s']:.1f}x, {a['transform_s'] / a['nodes'] * 1e6:.0f}us/node)"
    )
    if "admit_s" in a:
        line += f", admit {a['admit_s'] * 1e3:.2f}ms ({a['admit_s'] / a['json_s']:.1f}x; aim <= 3x)"
    print(line + " (a pipeline not seen before)")
    seen = f"  the same pipeline again (scripts remembered): transform {a['transform_seen_s'] * 1e3:.2f}ms"
    seen += f" ({a['transform_seen_s'] / a['json_s']:.1f}x)"
    if "admit_seen_s" in a:
        seen += f", admit {a['admit_seen_s'] * 1e3:.2f}ms ({a['admit_seen_s'] / a['json_s']:.1f}x)"
    print(seen)
    return 0


if __name__ == "__main__":
    sys.exit(main())
