"""`elyra-sidecar webhook`: the HTTPS server in front of `admit()` (a thin layer; the decision is pure).

Built on aiohttp: asyncio-native and well maintained; it lets us own the `ssl.SSLContext`, so a renewed
certificate is loaded into the live context and served to new connections without a restart; it bounds
request bodies (`client_max_size`) and finishes in-flight requests on SIGTERM (`shutdown_timeout`).

Endpoints: POST /mutate (AdmissionReview v1), GET /healthz (alive), GET /readyz (certificate loaded and
not shutting down), GET /metrics (Prometheus).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import signal
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from elyra_sidecar import diagnostics
from elyra_sidecar.transformer._config import Config
from elyra_sidecar.webhook._admission import admit

__all__ = ["CertReloader", "Metrics", "make_app", "serve"]


class CertReloader:
    """Keeps one SSLContext whose certificate follows the files on disk (checked by content hash)."""

    def __init__(self, cert: str, key: str) -> None:
        self.cert = Path(cert)
        self.key = Path(key)
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self._digest = ""
        self.reload()

    def _current_digest(self) -> str:
        return hashlib.sha256(self.cert.read_bytes() + b"\0" + self.key.read_bytes()).hexdigest()

    def reload(self) -> bool:
        """Load the pair if it changed; True when a new certificate is now served."""
        digest = self._current_digest()
        if digest == self._digest:
            return False
        self.context.load_cert_chain(self.cert, self.key)
        self._digest = digest
        return True


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.requests = Counter(
            "elyra_sidecar_admission_requests",
            "AdmissionReview requests by result",
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
            "Time to answer /mutate",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
            registry=self.registry,
        )


def make_app(config: Config, *, metrics: Metrics | None = None, log: Any = None) -> web.Application:
    """The aiohttp application (no TLS, no listening: `serve()` adds those)."""
    metrics = metrics or Metrics()
    log = log or diagnostics.get_logger("elyra-sidecar-webhook")
    app = web.Application(client_max_size=config.webhook.max_request_bytes)
    state = {"ready": True}
    app["state"] = state

    async def mutate(request: web.Request) -> web.Response:
        started = time.perf_counter()
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            metrics.requests.labels("too_large").inc()
            log.warning("request_too_large", limit=config.webhook.max_request_bytes)
            raise
        try:
            review = json.loads(body)
        except ValueError:
            metrics.requests.labels("bad_request").inc()
            log.warning("bad_request", reason="body is not JSON")
            return web.json_response({"error": "body is not JSON"}, status=400)
        outcome = admit(review, config)
        elapsed = time.perf_counter() - started
        metrics.latency.observe(elapsed)
        metrics.requests.labels(outcome.result).inc()
        if outcome.nodes_transformed:
            metrics.injections.inc(outcome.nodes_transformed)
        request_meta = review.get("request") if isinstance(review, dict) else None
        meta = request_meta if isinstance(request_meta, dict) else {}
        obj = meta.get("object")
        metadata = (obj.get("metadata") if isinstance(obj, dict) else None) or {}
        event = {
            "uid": meta.get("uid"),
            "namespace": meta.get("namespace"),
            "name": metadata.get("name") or metadata.get("generateName"),
            "result": outcome.result,
            "reason": outcome.reason,
            "ms": round(elapsed * 1e3, 2),
        }
        if outcome.result == "error":
            metrics.errors.inc()
            log.warning("admission_error", **event)
        else:
            log.info("admission", **event)
        return web.json_response(outcome.review)

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(_: web.Request) -> web.Response:
        return (
            web.Response(text="ready\n")
            if state["ready"]
            else web.Response(text="shutting down\n", status=503)
        )

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
    log = diagnostics.get_logger("elyra-sidecar-webhook")
    reloader = CertReloader(cert, key)
    return asyncio.run(_serve(config, reloader, host, port, log))


async def _serve(config: Config, reloader: CertReloader, host: str, port: int, log: Any) -> int:
    app = make_app(config, log=log)
    runner = web.AppRunner(
        app, handle_signals=False, access_log=None, shutdown_timeout=config.webhook.shutdown_grace_seconds
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=reloader.context)
    await site.start()
    log.info("webhook_started", host=host, port=port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    async def watch_certs() -> None:
        while True:
            await asyncio.sleep(config.webhook.cert_reload_seconds)
            try:
                if reloader.reload():
                    log.info("certificate_reloaded", cert=str(reloader.cert))
            except (OSError, ssl.SSLError) as exc:
                log.warning("certificate_reload_failed", error=f"{type(exc).__name__}: {exc}")

    watcher = asyncio.create_task(watch_certs())
    await stop.wait()
    app["state"]["ready"] = False
    log.info("draining", seconds=config.webhook.drain_seconds)
    await asyncio.sleep(config.webhook.drain_seconds)
    watcher.cancel()
    await runner.cleanup()  # stop accepting, wait for in-flight handlers (shutdown_grace_seconds)
    log.info("webhook_stopped")
    return 0
