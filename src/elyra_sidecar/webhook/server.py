"""`elyra-sidecar webhook`: the HTTPS server in front of `admit()` (a thin layer; the decision is pure).

Built on aiohttp (asyncio-native, well maintained) for HTTP only; this module owns the rest:
- the listening socket and its accept loop: at most `webhook.max_connections` connections are open (more
  wait in the kernel's accept queue, costing us nothing), and each gets `webhook.read_timeout_seconds` for
  its TLS handshake, headers and body, then may idle `IDLE_SECONDS` between requests (aiohttp bounds
  none of these: a half-sent request held ~0.3 MB forever);
- the TLS context: each new connection gets the current one; a renewed pair on disk is loaded into a
  new context, checked, and swapped in only when it loads, so a broken renewal never breaks handshakes;
- the reviews: run by worker processes (`_workers`), one per core, within `webhook.request_budget_seconds`;
  this loop only moves bytes and never parses a review (an over-budget answer is built from a bounded
  scan of the body's head), so /healthz and /readyz answer while big reviews are being transformed.

Endpoints: POST /mutate (AdmissionReview v1), GET /healthz (alive), GET /readyz (not shutting down, workers
can start), GET /metrics (Prometheus). Every log line is structlog key/value fields, rendered as
JSON in a cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import signal
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from elyra_sidecar import diagnostics
from elyra_sidecar.transformer import Config
from elyra_sidecar.webhook._workers import Answer, WorkerPool, available_cpus

__all__ = ["METRICS", "CertReloader", "Metrics", "make_app", "serve"]


class CertReloader:
    """The SSLContext for new connections, following the files on disk (checked by content hash).

    A changed pair is loaded into a fresh context; only a context that loaded (certificate and key
    match) replaces the current one, so a half-written or broken renewal leaves the old pair served.
    """

    def __init__(self, cert: str, key: str) -> None:
        self.cert = Path(cert)
        self.key = Path(key)
        self._digest = self._current_digest()
        self._refused = ""  # digest of the last pair that did not load (tried again once it changes)
        self.context = self._load()

    def _current_digest(self) -> str:
        return hashlib.sha256(self.cert.read_bytes() + b"\0" + self.key.read_bytes()).hexdigest()

    def _load(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.cert, self.key)  # raises unless the key matches the certificate
        return context

    def reload(self) -> bool:
        """True when a changed pair is now served; raises (old pair kept) when it does not load."""
        digest = self._current_digest()
        if digest in {self._digest, self._refused}:
            return False
        try:
            context = self._load()
        except (OSError, ssl.SSLError):
            self._refused = digest
            raise
        self.context, self._digest = context, digest
        return True


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.requests = Counter(
            "elyra_sidecar_admission_requests",
            "AdmissionReview requests by result (each request counted once)",
            ["result"],
            registry=self.registry,
        )
        self.injections = Counter(
            "elyra_sidecar_admission_injections", "Elyra nodes transformed", registry=self.registry
        )
        self.errors = Counter(
            "elyra_sidecar_admission_errors",
            "Requests allowed unchanged because of an internal error",
            registry=self.registry,
        )
        self.latency = Histogram(
            "elyra_sidecar_admission_duration_seconds",
            "Time to answer /mutate, from the request's headers to its answer",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=self.registry,
        )
        self.connections = Gauge(
            "elyra_sidecar_webhook_connections",
            "Connections open (TLS handshake included)",
            registry=self.registry,
        )
        self.timeouts = Counter(
            "elyra_sidecar_webhook_connection_timeouts",
            "Connections closed for not completing a request (or taking a response) within the read timeout",
            registry=self.registry,
        )
        self.restarts = Counter(
            "elyra_sidecar_webhook_worker_restarts",
            "Worker processes replaced (a review overran its budget, or the process ended)",
            registry=self.registry,
        )


#: Seconds a keep-alive connection may stay idle between requests (or take to read an answer): above the
#: 90 s after which Go's HTTP client, the API server's, drops idle connections, so that it closes them
#: first and never sends a request on a connection we are closing.
IDLE_SECONDS = 120.0


class _Connection(asyncio.Protocol):
    """One accepted connection: aiohttp's request handler inside, a deadline around everything the
    client controls (handshake, headers, body, taking the response), none around our own processing."""

    def __init__(self, listener: _Listener) -> None:
        self.listener = listener
        self.handler: Any = listener.server()  # aiohttp's RequestHandler (an asyncio.Protocol)
        self.transport: asyncio.Transport | None = None
        self._made = False
        self._expired = False
        self._lost = False
        self._idle = False
        self._timer: asyncio.TimerHandle | None = None
        self.arm()

    def arm(self, seconds: float | None = None) -> None:
        """Close the connection unless it completes a request (or goes idle) within `seconds`."""
        self.disarm()
        self._idle = False
        if self._lost:  # a handler finishing after its connection went away
            return
        seconds = self.listener.read_timeout if seconds is None else seconds
        self._timer = asyncio.get_running_loop().call_later(seconds, self._expire)

    def idle(self) -> None:
        """An answer is on its way: the client may keep the connection idle for a while (keep-alive);
        once it starts sending its next request, that has the read timeout again."""
        self.arm(IDLE_SECONDS)
        self._idle = True

    def disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self) -> None:
        self._timer = None
        self._expired = True
        if not self._idle:  # an idle keep-alive connection closing is normal, not a slow client
            self.listener.metrics.timeouts.inc()
        if self.transport is not None:
            self.transport.abort()
        # else: still in the TLS handshake, which has the same timeout of its own

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport = cast("asyncio.Transport", transport)
        if self._expired:
            transport.abort()
            return
        self._made = True
        self.listener.by_handler[self.handler] = self
        self.handler.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._idle:
            self.arm()
        self.handler.data_received(data)

    def eof_received(self) -> bool | None:
        return self.handler.eof_received()  # type: ignore[no-any-return]

    def pause_writing(self) -> None:
        self.handler.pause_writing()

    def resume_writing(self) -> None:
        self.handler.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self.disarm()
        self.listener.release(self)
        if self._made:
            self.listener.by_handler.pop(self.handler, None)
            self.handler.connection_lost(exc)


class _Listener:
    """The accept loop: a bounded number of connections, each with its deadline, the current TLS context."""

    def __init__(
        self,
        server: Callable[[], Any],
        reloader: CertReloader,
        *,
        config: Config,
        metrics: Metrics,
        by_handler: dict[Any, _Connection],
        log: Any,
    ) -> None:
        self.server = server
        self.reloader = reloader
        self.read_timeout = config.webhook.read_timeout_seconds
        self.metrics = metrics
        self.by_handler = by_handler
        self.log = log
        self._slots = asyncio.Semaphore(config.webhook.max_connections)
        self._open: set[_Connection] = set()
        self._handshakes: set[asyncio.Task[None]] = set()

    def release(self, conn: _Connection) -> None:
        if conn in self._open:
            self._open.discard(conn)
            self._slots.release()
            self.metrics.connections.dec()

    async def run(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._slots.acquire()
            try:
                client, _ = await loop.sock_accept(sock)
            except OSError as exc:  # EMFILE and the like: say so, back off, go on
                self._slots.release()
                self.log.warning("accept_failed", error=type(exc).__name__, detail=str(exc))
                await asyncio.sleep(0.1)
                continue
            except BaseException:
                self._slots.release()
                raise
            conn = _Connection(self)
            self._open.add(conn)
            self.metrics.connections.inc()
            task = loop.create_task(self._handshake(conn, client))
            self._handshakes.add(task)
            task.add_done_callback(self._handshakes.discard)

    async def _handshake(self, conn: _Connection, client: socket.socket) -> None:
        try:
            await asyncio.get_running_loop().connect_accepted_socket(
                lambda: conn,
                client,
                ssl=self.reloader.context,
                ssl_handshake_timeout=self.read_timeout,
            )
        except BaseException:  # failed or timed out handshake (or shutdown): the slot is free again
            conn.connection_lost(None)
            self.release(conn)
            with contextlib.suppress(OSError):
                client.close()

    def stop(self) -> None:
        """Cancel handshakes in progress (established connections are aiohttp's to shut down)."""
        for task in list(self._handshakes):
            task.cancel()


_STATE = web.AppKey("state", dict)
_CONNECTIONS = web.AppKey("connections", dict)
METRICS = web.AppKey("metrics", Metrics)


def _body_read(request: web.Request) -> None:
    """The request's body is in: our processing is not the client's time (its deadline pauses)."""
    conn = request.app[_CONNECTIONS].get(request.protocol)
    if conn is not None:
        conn.disarm()


@web.middleware
async def _deadlines(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    conn = request.app[_CONNECTIONS].get(request.protocol)
    if conn is not None and not request.body_exists:
        conn.disarm()
    try:
        return await handler(request)
    finally:
        if conn is not None:
            conn.idle()


def make_app(  # noqa: C901 - the routes and their handlers as closures over one state
    config: Config, pool: WorkerPool, *, metrics: Metrics | None = None, log: Any = None
) -> web.Application:
    """The aiohttp application (no TLS, no listening: `serve()` adds those). `pool` must be started."""
    metrics = metrics or Metrics()
    log = log or diagnostics.get_logger("elyra-sidecar-webhook")
    budget = config.webhook.request_budget_seconds
    app = web.Application(client_max_size=config.webhook.max_request_bytes, middlewares=[_deadlines])
    app[_STATE] = {"ready": True}
    app[_CONNECTIONS] = {}
    app[METRICS] = metrics

    async def decide(body: bytes) -> Answer:
        answer = await pool.admit(body, budget_seconds=budget)
        if answer is None:
            reason = f"review too large or slow: not done within the {budget:g} s budget"
            answer = Answer.not_injected(body, result="over_budget", reason=reason)
        return answer

    def report(answer: Answer, elapsed: float, peer: str | None) -> None:
        if answer.nodes_transformed:
            metrics.injections.inc(answer.nodes_transformed)
        if answer.status != 200:
            log.warning("bad_request", result=answer.result, reason=answer.reason, peer=peer)
            return
        event: dict[str, Any] = {
            "uid": answer.uid,
            "namespace": answer.namespace,
            "name": answer.name,
            "result": answer.result,
            "reason": answer.reason,
            "ms": round(elapsed * 1e3, 2),
            "peer": peer,  # the API server's address, to name in the chart's networkPolicy.ingressFrom
        }
        if answer.stray_output:  # something in the transform printed: kept as a field, never raw
            event["stray_output"] = answer.stray_output
        if answer.result == "error":
            metrics.errors.inc()
            log.warning("admission_error", **event)
        elif answer.result == "over_budget":
            log.warning("admission_over_budget", **event)
        elif answer.stray_output:
            log.warning("admission", **event)
        else:
            log.info("admission", **event)

    async def mutate(request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        result = "incomplete"  # the client went away (or timed out) before its body was in
        try:
            try:
                body = await request.read()
            except web.HTTPRequestEntityTooLarge:
                result = "too_large"
                log.warning("request_too_large", limit=config.webhook.max_request_bytes)
                raise
            _body_read(request)
            answer = await decide(body)
            result = answer.result
            report(answer, time.perf_counter() - started, request.remote)
            return web.Response(body=answer.body, status=answer.status, content_type="application/json")
        finally:  # every request counted exactly once, whatever happened
            metrics.requests.labels(result).inc()
            metrics.latency.observe(time.perf_counter() - started)

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(request: web.Request) -> web.Response:
        if not request.app[_STATE]["ready"]:
            return web.Response(text="shutting down\n", status=503)
        if not pool.healthy:
            return web.Response(text="no worker process can start\n", status=503)
        return web.Response(text="ready\n")

    async def metrics_view(_: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    app.router.add_post("/mutate", mutate)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_view)
    return app


def serve(config: Config, *, cert: str, key: str, host: str = "0.0.0.0", port: int = 8443) -> int:  # noqa: S104
    """Run until SIGTERM/SIGINT, then drain: not ready, still serving for `webhook.drain_seconds` (the
    endpoints controller needs that long to stop routing here), then stop accepting and give in-flight
    requests `webhook.shutdown_grace_seconds` to finish."""
    diagnostics.configure()
    # A library's warning becomes a log line with fields, never raw text.
    logging.captureWarnings(True)  # noqa: FBT003 - positional in the stdlib
    log = diagnostics.get_logger("elyra-sidecar-webhook")
    reloader = CertReloader(cert, key)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family, backlog=1024)
    sock.setblocking(False)  # noqa: FBT003 - positional in the stdlib
    try:
        return asyncio.run(_serve(config, reloader, sock, log))
    finally:
        sock.close()


async def _serve(config: Config, reloader: CertReloader, sock: socket.socket, log: Any) -> int:
    workers = config.webhook.workers or available_cpus()
    metrics = Metrics()
    pool = WorkerPool(config, count=workers, on_replace=metrics.restarts.inc)
    await pool.start()
    app = make_app(config, pool, metrics=metrics, log=log)
    runner = web.AppRunner(
        app,
        handle_signals=False,
        access_log=None,
        shutdown_timeout=config.webhook.shutdown_grace_seconds,
        keepalive_timeout=IDLE_SECONDS + config.webhook.read_timeout_seconds,  # ours closes first
    )
    await runner.setup()
    assert runner.server is not None  # noqa: S101 - set by setup()
    listener = _Listener(
        runner.server, reloader, config=config, metrics=metrics, by_handler=app[_CONNECTIONS], log=log
    )
    loop = asyncio.get_running_loop()
    accepting = loop.create_task(listener.run(sock))
    host, port = sock.getsockname()[:2]
    log.info(
        "webhook_started",
        host=host,
        port=port,
        workers=workers,
        max_connections=config.webhook.max_connections,
        read_timeout_seconds=config.webhook.read_timeout_seconds,
        request_budget_seconds=config.webhook.request_budget_seconds,
    )
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    async def watch_certs() -> None:
        while True:
            await asyncio.sleep(config.webhook.cert_reload_seconds)
            try:
                if reloader.reload():
                    log.info("certificate_reloaded", cert=str(reloader.cert))
            except (OSError, ssl.SSLError) as exc:  # logged once per broken pair; the old one is served
                log.warning("certificate_reload_failed", error=type(exc).__name__, detail=str(exc))

    watcher = loop.create_task(watch_certs())
    await stop.wait()
    app[_STATE]["ready"] = False
    log.info("draining", seconds=config.webhook.drain_seconds)
    await asyncio.sleep(config.webhook.drain_seconds)
    watcher.cancel()
    accepting.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await accepting
    sock.close()  # stop accepting: new connections are refused from here
    listener.stop()
    await runner.cleanup()  # wait for in-flight handlers (shutdown_grace_seconds), close the rest
    await pool.close()
    log.info("webhook_stopped")
    return 0
