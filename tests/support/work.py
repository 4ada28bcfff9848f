"""How the work of a reader grows with its input: counted, not timed against a limit.

Two measures, each taken for an input and for the same shape `GROWTH` times larger:
- `steps`: the Python lines the package runs (`sys.settrace`), exact and repeatable; it sees every loop
  written in Python (a look at every span for every word, a character-by-character loop);
- `cpu`: the thread's CPU time (not the wall clock), the least of a few runs; it also sees the loops the
  interpreter runs in C for one line (`sum(map(len, pieces))` at each `$` of a word), which no trace can
  count. Only the ratio between the two sizes is checked, with room for noise: linear work grows
  `GROWTH` times, quadratic work `GROWTH**2` times.

Compiled modules (mypyc) run no traced lines: their steps are 0 and only the CPU ratio speaks.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any

GROWTH = 8
#: The most a linear reader's work may grow for a `GROWTH` times larger input (quadratic: 64).
STEPS_BOUND = GROWTH * 1.5
CPU_BOUND = GROWTH * 3.0
_PACKAGE = "elyra_sidecar"


def steps(run: Callable[[], object]) -> int:
    """Lines of the package's own code that `run()` executes."""
    count = 0

    def local(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal count
        if event == "line":
            count += 1
        return local

    def global_(frame: FrameType, event: str, arg: Any) -> Any:
        return local if _PACKAGE in frame.f_code.co_filename else None

    sys.settrace(global_)
    try:
        run()
    finally:
        sys.settrace(None)
    return count


def cpu(run: Callable[[], object], repeat: int = 3) -> float:
    """The least CPU time of this thread over `repeat` runs of `run()`."""
    best = float("inf")
    for _ in range(repeat):
        started = time.thread_time()
        run()
        best = min(best, time.thread_time() - started)
    return best


@dataclass(frozen=True)
class Growth:
    small_steps: int
    large_steps: int
    small_cpu: float
    large_cpu: float

    @property
    def steps_ratio(self) -> float:
        return self.large_steps / max(self.small_steps, 1)

    @property
    def cpu_ratio(self) -> float:
        return self.large_cpu / max(self.small_cpu, 1e-6)

    def is_linear(self) -> bool:
        return self.steps_ratio <= STEPS_BOUND and self.cpu_ratio <= CPU_BOUND


def growth(make: Callable[[int], Callable[[], object]], n: int) -> Growth:
    """The work of `make(n)()` and of `make(GROWTH * n)()`; `make` builds the input outside the measure."""
    small, large = make(n), make(GROWTH * n)
    return Growth(steps(small), steps(large), cpu(small, repeat=5), cpu(large))
