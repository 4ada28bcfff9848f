"""The processes that run `admit_body()` for the server: one per core, killed when a review overruns.

Why processes and not threads: a transform is pure CPU under the GIL, so threads would give one core and
could not be stopped; a worker that overruns its request's time budget is killed and replaced, so a
hostile review costs at most its budget of one core. Why one pool behind one server process (and not a
pre-forked server per core): the server process owns the listening socket, TLS, the certificate reload,
the metrics and the drain, so each exists once and needs no aggregation; idle workers take the next
review from one queue, so 20 keep-alive connections never pile up on one busy process.

Workers are forked from a forkserver that has imported the transformer once (a replacement is ready in
milliseconds). Each reads a body from its pipe and writes back a small JSON header and the answer. Their
stdout and stderr are captured per review and handed to the server as a log field, never printed: no
library can write a raw line into the webhook's JSON log on our behalf.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import math
import multiprocessing
import os
import signal
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from elyra_sidecar.transformer import Config
from elyra_sidecar.webhook._admission import Outcome, Result, admit_body, not_injected

__all__ = ["Answer", "WorkerPool", "available_cpus"]

_READY = b"ready"
_MAX_STRAY = 2000  # characters of captured stray output kept for the log line


@dataclass(frozen=True)
class Answer:
    """What the server sends (status and body) and logs (the rest)."""

    status: int
    body: bytes
    result: Result
    reason: str
    nodes_transformed: int = 0
    uid: str = ""
    namespace: str = ""
    name: str = ""
    stray_output: str = ""

    @classmethod
    def of(cls, outcome: Outcome, stray_output: str = "") -> Answer:
        if outcome.review is None:
            status, body = 400, json.dumps({"error": outcome.reason}).encode()
        else:
            status, body = 200, json.dumps(outcome.review, separators=(",", ":")).encode()
        return cls(
            status,
            body,
            outcome.result,
            outcome.reason,
            outcome.nodes_transformed,
            outcome.uid,
            outcome.namespace,
            outcome.name,
            stray_output[:_MAX_STRAY],
        )

    @classmethod
    def not_injected(cls, body: bytes, *, result: Result, reason: str) -> Answer:
        return cls.of(not_injected(body, result=result, reason=reason))


def available_cpus() -> int:
    """Cores this process may use: its CPU affinity, capped by a cgroup v2 CPU limit (a pod's limit)."""
    count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    with contextlib.suppress(OSError, ValueError):
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            count = min(count, max(1, math.ceil(int(quota) / int(period))))
    return max(1, count)


def _child(conn: Connection, config: Config) -> None:
    """A worker's loop: body in, header and answer out, until the pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the server, which stops us
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)  # C-level writes too: nothing reaches the pod log but the server's lines
    os.dup2(devnull, 2)
    conn.send_bytes(_READY)
    while True:
        try:
            body = conn.recv_bytes()
        except (EOFError, OSError):
            return
        captured = io.StringIO()
        try:
            with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured):
                outcome = admit_body(body, config)
        except BaseException as exc:  # admit() guards itself: this is the last resort (MemoryError, ...)
            reason = f"internal error: {type(exc).__name__}"
            try:
                outcome = not_injected(body, result="error", reason=reason)
            except BaseException:  # not even that: the server answers 400
                outcome = Outcome(None, "bad_request", reason)
        answer = Answer.of(outcome, captured.getvalue())
        header = {k: v for k, v in vars(answer).items() if k != "body"}
        conn.send_bytes(json.dumps(header).encode())
        conn.send_bytes(answer.body)


class _Worker:
    def __init__(self, context: Any, config: Config) -> None:
        self.conn, child_conn = context.Pipe()
        self.process = context.Process(
            target=_child, args=(child_conn, config), name="elyra-sidecar-webhook-worker", daemon=True
        )
        self.process.start()
        child_conn.close()

    def wait_ready(self) -> None:
        if self.conn.recv_bytes() != _READY:
            raise RuntimeError("webhook worker did not start")

    def roundtrip(self, body: bytes) -> Answer:
        """Blocking (run in a thread): send one body, read its answer."""
        self.conn.send_bytes(body)
        header = json.loads(self.conn.recv_bytes())
        return Answer(body=self.conn.recv_bytes(), **header)

    def kill(self) -> None:
        """Stop at once; a thread blocked in `roundtrip` then sees EOF."""
        with contextlib.suppress(OSError, ValueError):
            self.process.kill()

    def reap(self) -> None:
        """Blocking: wait for the process to end, then free the pipe."""
        self.process.join(timeout=10)
        self.conn.close()


class WorkerPool:
    """`count` worker processes; `admit()` gives a body to an idle one, within a time budget."""

    def __init__(self, config: Config, *, count: int, on_replace: Callable[[], object] | None = None) -> None:
        self.config = config
        self.count = count
        self._on_replace = on_replace  # told each time a worker is replaced (overran a budget, or died)
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload([__name__])
        self._threads = ThreadPoolExecutor(max_workers=2 * count + 2, thread_name_prefix="webhook-pipe")
        self._idle: asyncio.Queue[_Worker] | None = None
        self._all: set[_Worker] = set()
        self._closed = False
        self._start_failed = False
        self._pending: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Start every worker; OSError (for the CLI's `Error:` line) when one cannot start."""
        self._idle = asyncio.Queue()
        try:
            workers = await asyncio.gather(*(self._spawn() for _ in range(self.count)))
        except (OSError, EOFError, RuntimeError) as exc:  # e.g. no writable temporary directory
            await self.close()
            raise OSError(f"webhook worker processes could not start: {type(exc).__name__}: {exc}") from exc
        for worker in workers:
            self._idle.put_nowait(worker)

    async def _spawn(self) -> _Worker:
        def start() -> _Worker:
            worker = _Worker(self._context, self.config)
            try:
                worker.wait_ready()
            except BaseException:
                worker.kill()
                worker.reap()
                raise
            return worker

        worker = await asyncio.get_running_loop().run_in_executor(self._threads, start)
        self._all.add(worker)
        return worker

    def _replace(self, worker: _Worker) -> None:
        """Kill `worker` and put a fresh one in the queue (in the background)."""
        if self._on_replace is not None:
            self._on_replace()
        self._all.discard(worker)
        worker.kill()
        loop = asyncio.get_running_loop()
        loop.run_in_executor(self._threads, worker.reap)
        if self._closed:
            return

        async def respawn() -> None:
            while True:  # a worker that cannot start now (no memory, no pids) is tried again
                try:
                    fresh = await self._spawn()
                    self._start_failed = False
                    break
                except Exception:  # anything that stops a start is worth a retry
                    self._start_failed = True
                    await asyncio.sleep(1.0)
            if self._closed or self._idle is None:
                fresh.kill()
                fresh.reap()
                return
            self._idle.put_nowait(fresh)

        task = loop.create_task(respawn())
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    @property
    def healthy(self) -> bool:
        """False when no worker runs and the last start failed (a replacement starting is fine)."""
        return bool(self._all) or not self._start_failed

    async def admit(self, body: bytes, *, budget_seconds: float) -> Answer | None:
        """The answer of an idle worker, or None when waiting for one plus its work overran the budget."""
        try:
            return await asyncio.wait_for(self._admit(body), budget_seconds)
        except asyncio.TimeoutError:
            return None

    async def _admit(self, body: bytes) -> Answer:
        if self._idle is None or self._closed:
            raise RuntimeError("the worker pool is not running")
        worker = await self._idle.get()
        try:
            answer = await asyncio.get_running_loop().run_in_executor(self._threads, worker.roundtrip, body)
        except asyncio.CancelledError:  # over budget: the process is still busy with this review
            self._replace(worker)
            raise
        except (EOFError, OSError, ValueError) as exc:  # the process died (OOM kill, crash)
            self._replace(worker)
            reason = f"internal error: worker process ended ({type(exc).__name__})"
            return Answer.not_injected(body, result="error", reason=reason)
        self._idle.put_nowait(worker)
        return answer

    async def close(self) -> None:
        """Stop every worker (in-flight reviews are over: the server has drained)."""
        self._closed = True
        for task in list(self._pending):
            task.cancel()
        workers, self._all = list(self._all), set()
        for worker in workers:
            worker.kill()
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.run_in_executor(self._threads, w.reap) for w in workers))
        self._threads.shutdown(wait=False, cancel_futures=True)
