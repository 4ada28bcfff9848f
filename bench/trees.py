"""The checkouts a bench compares: this one (pure Python, its src/), its compiled build, other commits.

`scripts/build-compiled.sh` installs this checkout's compiled (mypyc) build into .cache/compiled/src, beside
links to bench/ and tests/, so a bench runs it as it runs any other checkout: with `tree/src` first on the
path. Another commit: `git worktree add /tmp/ref <commit>`.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMPILED = ROOT / ".cache" / "compiled"


def label(tree: Path) -> str:
    """How a tree is named in a table: this checkout (pure Python), its compiled build, or a commit."""
    tree = tree.resolve()
    if tree == ROOT:
        return "this tree, pure Python"
    if tree == COMPILED.resolve():
        return "this tree, compiled"
    done = subprocess.run(
        ["git", "-C", str(tree), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    )
    return done.stdout.strip() or str(tree)
