"""Time the `transform` command's path on a 1000-node Workflow against a YAML load+dump of the same file.

The Workflow is the one bench/transform_bench.py builds from the real fixture nodes (distinct names per
node). In one run, medians of the CPU time of this process (the machine is shared: wall time is not
steady) over several repetitions of:
  floor           yaml.load with PyYAML's C safe loader, then dump_yaml (the same dumper the CLI uses)
  pyyaml load     yaml.load (C safe loader) alone: what the CLI read the file with before
  bounded load    transformer._yaml.load_documents alone: what it reads the file with now
  dump            dump_yaml of the transformed Workflow alone
  cli             cli.main([file, "-o", out, "-q"]) in process: read, check, transform, dump, write
Writes bench/results/cli.json and prints the ratios to the floor. Run: .venv/bin/python bench/cli_bench.py
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from bench.transform_bench import synthetic  # noqa: E402
from elyra_sidecar.transformer import cli, transform  # noqa: E402
from elyra_sidecar.transformer._io import dump_yaml  # noqa: E402
from elyra_sidecar.transformer._yaml import load_documents  # noqa: E402

NODES = 1000
REPEAT = 5
_CLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def median_time(fn: Callable[[], object], repeat: int = REPEAT) -> float:
    samples = []
    for _ in range(repeat):
        t0 = time.process_time()
        fn()
        samples.append(time.process_time() - t0)
    return statistics.median(samples)


def main() -> int:
    text = dump_yaml(synthetic(NODES))
    transformed = transform(yaml.load(text, Loader=_CLoader)).workflow  # noqa: S506 - the safe C loader
    with tempfile.TemporaryDirectory() as folder:
        src = Path(folder) / "in.yaml"
        src.write_text(text)
        out = Path(folder) / "out.yaml"
        row = {
            "nodes": NODES,
            "yaml_bytes": len(text.encode()),
            "floor_s": median_time(lambda: dump_yaml(yaml.load(text, Loader=_CLoader))),  # noqa: S506
            "pyyaml_load_s": median_time(lambda: yaml.load(text, Loader=_CLoader)),  # noqa: S506
            "bounded_load_s": median_time(lambda: load_documents(text)),
            "dump_transformed_s": median_time(lambda: dump_yaml(transformed)),
            "cli_s": median_time(lambda: cli.main([str(src), "-o", str(out), "-q"])),
        }
    row["cli_over_floor"] = row["cli_s"] / row["floor_s"]
    row["bounded_load_over_pyyaml_load"] = row["bounded_load_s"] / row["pyyaml_load_s"]
    result = ROOT / "bench" / "results" / "cli.json"
    result.write_text(json.dumps({"python": sys.version.split()[0], "rows": [row]}, indent=2) + "\n")
    print(f"{NODES} nodes, {row['yaml_bytes'] / 1e6:.2f} MB of YAML")
    for key in ("floor_s", "pyyaml_load_s", "bounded_load_s", "dump_transformed_s", "cli_s"):
        print(f"  {key[:-2]:<18} {row[key] * 1e3:8.1f} ms")
    print(f"  cli / floor        {row['cli_over_floor']:8.2f}   (aim: <= 1.5)")
    print(f"  bounded / pyyaml   {row['bounded_load_over_pyyaml_load']:8.2f}   (load alone)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
