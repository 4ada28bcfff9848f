"""Diagnostics for the sidecar and the webhook: JSON lines on stderr in a container, console on a TTY.

Few and short events (snake_case facts). Stdlib loggers (minio, urllib3) go through the same
renderer at WARNING and above. Secrets never reach here: callers pass only names and counts.

Two implementations of the same output: the webhook configures structlog (`configure`, `get_logger`);
the step pod uses `pod_logger`, a few lines of our own, because importing structlog (its dev renderer,
rich, asyncio) cost ~170 ms of every step's sidecar start. Both write `{..fields, "event", "level",
"timestamp"}` with the same names, so a line means the same whichever wrote it.
"""

from __future__ import annotations

import json
import sys
import threading
import time

TYPE_CHECKING = False
if TYPE_CHECKING:  # the pod's start-up does without typing
    from typing import Any, TextIO

__all__ = ["PodLogger", "configure", "get_logger", "pod_logger", "route_stdlib_logging"]


def configure(*, json_output: bool | None = None) -> None:
    import logging  # noqa: PLC0415 - structlog is for the webhook only (see the module docstring)

    import structlog  # noqa: PLC0415

    if json_output is None:
        json_output = not sys.stderr.isatty()
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer() if json_output else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*shared, structlog.processors.dict_tracebacks if json_output else _identity, renderer],
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(processor=renderer, foreign_pre_chain=shared))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)


def _identity(_logger: Any, _name: str, event: Any) -> Any:
    return event


def get_logger(name: str = "elyra-sidecar") -> Any:
    import structlog  # noqa: PLC0415

    return structlog.get_logger(name)


def _timestamp() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}Z"


class PodLogger:
    """structlog's bound-logger calls (`info`, `warning`, `exception`, ...) rendered as structlog would."""

    def __init__(self, *, json_output: bool, stream: TextIO | None = None) -> None:
        self._json = json_output
        self._stream = stream if stream is not None else sys.stderr
        self._lock = threading.Lock()

    def _render(self, level: str, event: str, fields: dict[str, Any]) -> str:
        record = {**fields, "event": event, "level": level, "timestamp": _timestamp()}
        if self._json:
            return json.dumps(record, default=repr)
        extra = " ".join(f"{k}={v!r}" if isinstance(v, str) else f"{k}={v}" for k, v in fields.items())
        return f"{record['timestamp']} [{level:<9}] {event:<30} {extra}".rstrip()

    def log(self, level: str, event: str, **fields: Any) -> None:
        line = self._render(level, event, fields)
        with self._lock:
            try:
                self._stream.write(line + "\n")
                self._stream.flush()
            except (OSError, ValueError):
                pass  # diagnostics must never stop the program they describe

    def debug(self, event: str, **fields: Any) -> None:
        self.log("debug", event, **fields)

    def info(self, event: str, **fields: Any) -> None:
        self.log("info", event, **fields)

    def warning(self, event: str, **fields: Any) -> None:
        self.log("warning", event, **fields)

    def error(self, event: str, **fields: Any) -> None:
        self.log("error", event, **fields)

    def exception(self, event: str, **fields: Any) -> None:
        import traceback  # noqa: PLC0415 - only on the rare path that needs it

        self.log("error", event, **fields, exception=traceback.format_exc())


def pod_logger(*, json_output: bool | None = None) -> PodLogger:
    """The step pod's logger (stderr; JSON unless stderr is a TTY)."""
    if json_output is None:
        json_output = not sys.stderr.isatty()
    return PodLogger(json_output=json_output)


def route_stdlib_logging(log: PodLogger, event: str) -> None:
    """Stdlib loggers (minio, urllib3) at WARNING and above through `log` (only when they are used), each
    record as `event` with the library's `logger` and `message` (a library's message is no event name:
    `elyra-sidecar logs` knows ours, and would take an unknown one for a line of the script)."""
    import logging  # noqa: PLC0415 - ~1 MiB and a few ms the pod needs only when mirroring

    class _Handler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            try:
                log.log(record.levelname.lower(), event, logger=record.name, message=record.getMessage())
            except Exception:
                self.handleError(record)

    root = logging.getLogger()
    root.handlers[:] = [_Handler()]
    root.setLevel(logging.WARNING)
