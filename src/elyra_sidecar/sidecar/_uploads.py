"""Mirror uploads off the reading thread: one worker, the newest request per key replacing older ones."""

from __future__ import annotations

import os
import time

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing stays out of the pod's start-up (see tail.py)
    from elyra_sidecar.sidecar._mirror import Mirror, MirrorTarget

__all__ = ["UploadWorker"]


class UploadWorker:
    """Runs mirror uploads off the reading thread; the newest request per key replaces older ones."""

    def __init__(self, mirror: Mirror) -> None:
        import threading  # noqa: PLC0415 - only when mirroring

        self._mirror = mirror
        self._cond = threading.Condition()
        self._queue: dict[str, tuple[MirrorTarget, int, int, int]] = {}
        self._busy = False
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="mirror", daemon=True)
        self._thread.start()

    def submit(self, target: MirrorTarget, fd: int, length: int, generation: int) -> None:
        dup = os.dup(fd)  # the reader may close its fd (deleted/replaced file) while we upload
        with self._cond:
            old = self._queue.pop(target.key, None)
            if old is not None:
                os.close(old[1])
            self._queue[target.key] = (target, dup, length, generation)
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stop:
                    self._cond.wait()
                if not self._queue:
                    return
                key = next(iter(self._queue))
                target, fd, length, generation = self._queue.pop(key)
                self._busy = True
            try:
                self._mirror.upload(target, fd, length, generation=generation, deadline=time.monotonic() + 30)
            finally:
                os.close(fd)
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def drain(self, deadline: float) -> None:
        """Wait for the running upload (queued ones are superseded by the final upload)."""
        with self._cond:
            for _, fd, _, _ in self._queue.values():
                os.close(fd)
            self._queue.clear()
            self._stop = True
            self._cond.notify_all()
            while self._busy and time.monotonic() < deadline:
                self._cond.wait(timeout=max(0.0, deadline - time.monotonic()))
