"""Time the `transform` command's path on a 1000-node Workflow against a YAML load+dump of the same file.

The Workflow is the one bench/transform_bench.py builds from the real fixture nodes (distinct names per
node). In one run, medians of the CPU time of this process (the machine is shared: wall time is not
steady) over several repetitions of:
  floor           YAML load+dump: yaml.load with PyYAML's C safe loader, then yaml.dump with the CLI's
                  dumper class and options (PyYAML's own C path)
  before          the CLI's path as it was: that load, transform(), that dump
  after           the CLI's path now: the bounded load, the shape check, transform(), the fast dump
  cli             cli.main([file, "-o", out, "-q"]) in process (after, plus reading and writing files)
  and the parts: each loader alone, each dump of the transformed Workflow alone.
With --reference (repeatable), other checkouts (another commit; .cache/compiled: this checkout's compiled
build, scripts/build-compiled.sh) are measured the same way in a child process with their code first on
the path, before this tree (pure Python).
Writes bench/results/cli.json and prints the ratios to the floor.
Run: .venv/bin/python -m bench.cli_bench [--reference /path/to/another/checkout ...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from bench import trees
from bench.transform_bench import median_cpu, synthetic
from elyra_sidecar.transformer import cli, transform
from elyra_sidecar.transformer._io import _DUMP_OPTIONS, _Dumper, dump_yaml
from elyra_sidecar.transformer._yaml import load_documents

ROOT = Path(__file__).resolve().parent.parent

NODES = 1000
REPEAT = 5
_CLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def median_time(fn: Callable[[], object], repeat: int = REPEAT) -> float:
    """The median CPU time of `repeat` runs (the machine is shared: wall time is not steady)."""
    return median_cpu(fn, repeat)


def pyyaml_load(text: str) -> Any:
    return yaml.load(text, Loader=_CLoader)  # noqa: S506 - the safe C loader


def pyyaml_dump(data: Any) -> str:
    return str(yaml.dump(data, Dumper=_Dumper, sort_keys=False, **_DUMP_OPTIONS))


def before(text: str) -> str:
    return pyyaml_dump(transform(pyyaml_load(text)).workflow)


def after(text: str) -> str:
    """What the CLI does: transform() shape-checks its input itself."""
    return dump_yaml(transform(load_documents(text)[0]).workflow)


def measure() -> dict[str, Any]:
    text = dump_yaml(synthetic(NODES))
    loaded = pyyaml_load(text)
    transformed = transform(loaded).workflow
    assert before(text) == after(text)  # the two paths write the same bytes
    with tempfile.TemporaryDirectory() as folder:
        src = Path(folder) / "in.yaml"
        src.write_text(text)
        out = Path(folder) / "out.yaml"
        row: dict[str, Any] = {
            "nodes": NODES,
            "yaml_bytes": len(text.encode()),
            "floor_s": median_time(lambda: pyyaml_dump(pyyaml_load(text))),
            "before_s": median_time(lambda: before(text)),
            "after_s": median_time(lambda: after(text)),
            "cli_s": median_time(lambda: cli.main([str(src), "-o", str(out), "-q"])),
            "pyyaml_load_s": median_time(lambda: pyyaml_load(text)),
            "bounded_load_s": median_time(lambda: load_documents(text)),
            "transform_s": median_time(lambda: transform(loaded)),  # never mutates its input
            "pyyaml_dump_s": median_time(lambda: pyyaml_dump(transformed)),
            "fast_dump_s": median_time(lambda: dump_yaml(transformed)),
        }
    for key in ("before", "after", "cli"):
        row[f"{key}_over_floor"] = row[f"{key}_s"] / row["floor_s"]
    return row


def measure_tree(tree: Path) -> dict[str, Any]:
    """measure() in a child process with `tree`'s code first on the path."""
    done = subprocess.run(
        [sys.executable, __file__, "--child"],
        env={**os.environ, "PYTHONPATH": f"{tree / 'src'}{os.pathsep}{tree}"},
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(done.stdout))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--reference", type=Path, action="append", default=[], help="another checkout")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure()))
        return 0
    rows = [{"tree": trees.label(tree), **measure_tree(tree.resolve())} for tree in args.reference]
    rows.append({"tree": trees.label(ROOT), **measure()})
    result = ROOT / "bench" / "results" / "cli.json"
    result.write_text(json.dumps({"python": sys.version.split()[0], "rows": rows}, indent=2) + "\n")
    for row in rows:
        print(
            f"{row['tree']}: {NODES} nodes, {row['yaml_bytes'] / 1e6:.2f} MB YAML (CPU median of {REPEAT})",
        )
        for key, value in row.items():
            if key.endswith("_s"):
                print(f"  {key[:-2]:<14} {value * 1e3:8.1f} ms")
        for key in ("before", "after", "cli"):
            print(f"  {key + ' / floor':<14} {row[key + '_over_floor']:8.2f}")
    print("  aim: cli / floor <= 0.6")
    return 0


if __name__ == "__main__":
    sys.exit(main())
