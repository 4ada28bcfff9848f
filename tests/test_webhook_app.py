"""The webhook's HTTP layer in-process, through aiohttp's test client, with real worker processes.

What needs real TLS, sockets and signals is in test_webhook_server.py; here: answers, metrics, log events
(structlog's capture_logs, not stderr greps).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import pytest
import structlog
from aiohttp.test_utils import TestClient, TestServer
from structlog.testing import capture_logs

from elyra_sidecar.transformer import Config, config_from_mapping, transform
from elyra_sidecar.webhook._workers import WorkerPool
from elyra_sidecar.webhook.server import METRICS, make_app
from tests.helpers import FIXTURES, load_fixture
from tests.test_admission import annotate, patched, review

Scenario = Callable[[TestClient, Any], Awaitable[Any]]


def run(scenario: Scenario, config: Config | None = None) -> tuple[Any, list[dict[str, Any]]]:
    """Run `scenario(client, app)` against a fresh app with one worker; its result and the log events."""
    config = config or Config()

    async def main() -> Any:
        pool = WorkerPool(config, count=1)
        await pool.start()
        try:
            app = make_app(config, pool, log=structlog.get_logger("test"))
            async with TestClient(TestServer(app)) as client:
                return await scenario(client, app)
        finally:
            await pool.close()

    with capture_logs() as logs:
        result = asyncio.run(main())
    return result, logs


def sample(app: Any, name: str, **labels: str) -> float:
    return app[METRICS].registry.get_sample_value(name, labels or None) or 0.0


class TestMutate:
    def test_patch_and_one_structured_event(self):
        """An opted-in Workflow: the CLI's patch, and one `admission` event with the request's identity."""
        workflow = annotate(load_fixture(FIXTURES / "elyra-4.0.0-three-node.yaml"), "workflow")

        async def scenario(client: TestClient, app: Any) -> Any:
            response = await client.post("/mutate", json=review(workflow, uid="abc", namespace="ns"))
            assert response.status == 200
            assert sample(app, "elyra_sidecar_admission_injections_total") == 3
            return (await response.json())["response"]

        response, logs = run(scenario)
        config = replace(Config(), selection=replace(Config().selection, only_annotated=True))
        assert patched(workflow, response) == transform(workflow, config).workflow
        (event,) = [e for e in logs if e["event"].startswith("admission")]
        assert event["event"] == "admission" and event["log_level"] == "info"
        assert (event["uid"], event["namespace"], event["name"], event["result"]) == (
            "abc",
            "ns",
            workflow["metadata"]["generateName"],
            "patched",
        )

    def test_every_request_counted_once_by_result(self):
        """Patched, skipped, malformed, not JSON, too large: each in exactly one result and in the latency."""
        workflow = annotate(load_fixture(FIXTURES / "elyra-3.15.0-three-node.yaml"), "workflow")
        bodies = [
            (json.dumps(review(workflow)).encode(), "patched", 200),
            (json.dumps(review({"kind": "Pod"}, kind="Pod")).encode(), "skipped", 200),
            (json.dumps({"kind": "nonsense"}).encode(), "error", 200),
            (b"{not json", "bad_request", 400),
            (b"[" + b"1," * 60_000 + b"1]", "too_large", 413),
        ]

        async def scenario(client: TestClient, app: Any) -> Any:
            for body, result, status in bodies:
                response = await client.post("/mutate", data=body)
                assert response.status == status, result
                assert sample(app, "elyra_sidecar_admission_requests_total", result=result) == 1
            assert sample(app, "elyra_sidecar_admission_duration_seconds_count") == len(bodies)
            assert sample(app, "elyra_sidecar_admission_errors_total") == 1

        _, logs = run(scenario, config_from_mapping({"webhook": {"max_request_bytes": 100_000}}))
        assert [e["event"] for e in logs] == [
            "admission",
            "admission",
            "admission_error",
            "bad_request",
            "request_too_large",
        ]
        assert logs[-1]["limit"] == 100_000

    @pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
    def test_probes_and_metrics(self, path):
        """The probes answer 200; /metrics is Prometheus text with the connection and worker series."""

        async def scenario(client: TestClient, _app: Any) -> Any:
            response = await client.get(path)
            return response.status, await response.text()

        (status, text), _ = run(scenario)
        assert status == 200
        if path == "/metrics":
            assert "elyra_sidecar_webhook_connections " in text
            assert "elyra_sidecar_webhook_worker_restarts_total 0.0" in text
