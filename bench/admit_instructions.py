"""`admit()` of the 50-node review against a JSON load+dump of it, counted in CPU instructions (issue 14).

CPU time on a shared 2-core machine moves with its load; the instructions a piece of code retires do not
(within about 3% here). Each phase runs in its own process under `perf stat -e instructions:u`, twice: 2
and 22 repetitions after the same set-up, so the difference over 20 is the cost of one call without the
interpreter's start and the imports. Phases:
  floor          json.loads + json.dumps of the AdmissionReview (the aim's reference)
  admit_new      admit() of the review (its json.loads included), a pipeline not seen before: the node
                 reader's and the shell reader's memories cleared before every call
  admit_seen     the same review again (every run of a pipeline is a new Workflow CREATE with its scripts)
  loads, shape, transform_new, transform_seen, patch: the parts of admit_seen, for the profile
With --reference (repeatable), other checkouts (e.g. `git worktree add /tmp/ref <commit>`, or this
checkout's compiled build: scripts/build-compiled.sh makes .cache/compiled a tree) are counted the same way.
Needs `perf` (linux-tools) where the machine has hardware counters, else counts with valgrind's cachegrind
(`Ir`, the same user-space instructions; about 50x slower, so 2 and 7 repetitions there). Writes
bench/results/admit_instructions.json.
Run: .venv/bin/python -m bench.admit_instructions [--reference /path/to/another/checkout ...]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import trees

ROOT = Path(__file__).resolve().parent.parent

PHASES = ("floor", "admit_new", "admit_seen", "loads", "shape", "transform_new", "transform_seen", "patch")
FEW, MANY = 2, 22
MANY_CACHEGRIND = 7
COUNTER = "perf"


def _child(phase: str, repeat: int) -> None:
    """Set up with the tree's code (PYTHONPATH, set by _count), then run `phase` `repeat` times (what perf
    counts)."""
    from dataclasses import replace

    from bench.transform_bench import review_of, synthetic
    from elyra_sidecar.transformer import Config, _elyra, _shell
    from elyra_sidecar.transformer._shape import check_shape, restore_untouched
    from elyra_sidecar.transformer._transform import transform
    from elyra_sidecar.webhook._admission import admit
    from elyra_sidecar.webhook._patch import make_patch

    body = json.dumps(review_of(synthetic(50)))
    config = Config()
    effective = replace(config, strict=False, selection=replace(config.selection, only_annotated=True))
    workflow = json.loads(body)["request"]["object"]
    checked = check_shape(workflow)
    new = restore_untouched(transform(checked, effective).workflow, checked, workflow)
    admit(json.loads(body), config)  # the memories filled, as after one review

    def forget_scripts() -> None:  # what bench.transform_bench.forget_scripts does, in trees before it too
        _elyra._scan_script.cache_clear()
        head = getattr(_shell, "_remembered", None) or getattr(_shell, "_remembered_head", None)
        if head is not None:
            head.cache_clear()

    def admit_new() -> None:
        forget_scripts()
        admit(json.loads(body), config)

    def transform_new() -> None:
        forget_scripts()
        transform(checked, effective)

    run = {
        "floor": lambda: json.dumps(json.loads(body)),
        "admit_new": admit_new,
        "admit_seen": lambda: admit(json.loads(body), config),
        "loads": lambda: json.loads(body),
        "shape": lambda: check_shape(workflow),
        "transform_new": transform_new,
        "transform_seen": lambda: transform(checked, effective),
        "patch": lambda: make_patch(workflow, new),
    }[phase]
    for _ in range(repeat):
        run()


def _perf_counts() -> bool:
    """Whether `perf stat` can count instructions here (a VM may expose no hardware counters)."""
    if shutil.which("perf") is None:
        return False
    done = subprocess.run(
        ["perf", "stat", "-x,", "-e", "instructions:u", "true"], capture_output=True, text=True, check=False
    )
    return done.returncode == 0 and "not supported" not in done.stderr and "not counted" not in done.stderr


def _count_cachegrind(command: list[str], tree: Path, env: dict[str, str]) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "cachegrind.out"
        subprocess.run(
            ["valgrind", "--tool=cachegrind", "--cache-sim=no", f"--cachegrind-out-file={out}", *command],
            capture_output=True,
            check=True,
            cwd=tree,
            env=env,
        )
        for line in out.read_text().splitlines():
            if line.startswith("summary:"):
                return int(line.split()[1])
    raise RuntimeError(f"no summary in cachegrind's output for {command}")


def _count(tree: Path, phase: str, repeat: int) -> int:
    command = [sys.executable, __file__, "--child", phase, str(repeat)]
    # That tree's code, not ours: its src/ (older trees keep the package at the top) and its bench/.
    env = {**os.environ, "PYTHONPATH": f"{tree / 'src'}{os.pathsep}{tree}"}
    if COUNTER == "cachegrind":
        return _count_cachegrind(command, tree, env)
    result = subprocess.run(
        ["perf", "stat", "-x,", "-e", "instructions:u", *command],
        capture_output=True,
        text=True,
        check=True,
        cwd=tree,
        env=env,
    )
    for line in result.stderr.splitlines():
        if line.endswith(("instructions:u", "instructions:u,,")) or ",instructions:u" in line:
            return int(line.split(",")[0])
    raise RuntimeError(f"no instruction count from perf: {result.stderr.strip()[-300:]}")


def _measure(tree: Path) -> dict[str, dict[str, float]]:
    many = MANY if COUNTER == "perf" else MANY_CACHEGRIND
    per_call = {p: (_count(tree, p, many) - _count(tree, p, FEW)) / (many - FEW) for p in PHASES}
    floor = per_call["floor"]
    return {p: {"instructions": round(v), "over_floor": round(v / floor, 2)} for p, v in per_call.items()}


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        _child(sys.argv[2], int(sys.argv[3]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--reference", type=Path, action="append", default=[], help="another checkout, measured first"
    )
    references = [p.resolve() for p in parser.parse_args().reference]
    global COUNTER  # noqa: PLW0603  # chosen once per run
    if not _perf_counts():
        if shutil.which("valgrind") is None:
            print(
                "neither perf with hardware counters nor valgrind is here; nothing measured", file=sys.stderr
            )
            return 1
        COUNTER = "cachegrind"
    print(f"counting with {COUNTER}", file=sys.stderr)
    runs = {trees.label(tree): _measure(tree) for tree in [*references, ROOT]}
    out = ROOT / "bench" / "results" / "admit_instructions.json"
    out.write_text(
        json.dumps({"python": sys.version.split()[0], "counter": COUNTER, "runs": runs}, indent=2) + "\n"
    )
    print("| phase | " + " | ".join(f"{name}: instructions, / JSON load+dump" for name in runs) + " |")
    print("| --- |" + " --- |" * len(runs))
    for phase in PHASES:
        cells = [
            f"{r[phase]['instructions'] / 1e6:.1f} M, {r[phase]['over_floor']:.2f}x" for r in runs.values()
        ]
        print(f"| {phase} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
