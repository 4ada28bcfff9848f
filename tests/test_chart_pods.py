"""The chart's Pod-mode webhook entry (webhook.pods), rendered by the real helm and validated offline.

Rendered with tests/chart-values/default.yaml: the chart's defaults plus the value it requires (the API
server's sources for the NetworkPolicy).
"""

from __future__ import annotations

import subprocess

import cel
import kubernetes_validate
import pytest
import yaml

from tests.helpers import ROOT
from tests.support.helm import helm_binary

CHART = ROOT / "charts" / "elyra-sidecar"
PODS = ROOT / "tests" / "fixtures" / "kfp-v2"
K8S = "1.30"

DEFAULTS = ROOT / "tests" / "chart-values" / "default.yaml"


def webhooks(*args: str) -> list[dict]:
    proc = subprocess.run(
        [str(helm_binary()), "template", "rel", str(CHART), "-n", "elyra-system", "-f", str(DEFAULTS), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    (mwc,) = [d for d in yaml.safe_load_all(proc.stdout) if d and d["kind"] == "MutatingWebhookConfiguration"]
    kubernetes_validate.validate(mwc, K8S, strict=True)
    return mwc["webhooks"]


def pod(name: str) -> dict:
    return yaml.safe_load((PODS / f"{name}.reconstructed.yaml").read_text())


class TestPodWebhookEntry:
    def test_off_by_default(self):
        """Without webhook.pods.enabled only the Workflow entry exists."""
        assert [w["name"] for w in webhooks()] == ["workflows.elyra-sidecar.io"]

    def test_entry_when_enabled(self):
        """Pod CREATE only, Ignore, narrowed to KFP v2 Pods and to namespaces not excluded."""
        hook = webhooks("--set", "webhook.pods.enabled=true")[1]
        assert hook["name"] == "pods.elyra-sidecar.io"
        assert hook["failurePolicy"] == "Ignore" and hook["sideEffects"] == "None"
        assert hook["rules"] == [
            {
                "apiGroups": [""],
                "apiVersions": ["v1"],
                "resources": ["pods"],
                "operations": ["CREATE"],
                "scope": "Namespaced",
            }
        ]
        assert hook["objectSelector"] == {"matchLabels": {"pipelines.kubeflow.org/v2_component": "true"}}
        (expression,) = hook["namespaceSelector"]["matchExpressions"]
        assert expression["operator"] == "NotIn" and "elyra-system" in expression["values"]
        assert hook["clientConfig"]["service"]["path"] == "/mutate"
        assert "matchConditions" not in hook

    def test_namespace_selector_is_added_to_the_exclusions(self):
        """A user namespace selector narrows further; the exclusions stay."""
        hook = webhooks(
            "--set",
            "webhook.pods.enabled=true",
            "--set",
            "webhook.pods.namespaceSelector.matchLabels.elyra-sidecar/pods=enabled",
        )[1]
        assert hook["namespaceSelector"]["matchLabels"] == {"elyra-sidecar/pods": "enabled"}
        assert hook["namespaceSelector"]["matchExpressions"][0]["operator"] == "NotIn"

    @pytest.mark.parametrize(
        ("name", "sent"),
        [
            ("pod-2.17-elyra-step", True),
            ("pod-2.14-elyra-step", True),
            ("pod-2.17-driver", False),
            ("pod-2.5-elyra-step-cos-secret", False),
        ],
    )
    def test_match_conditions(self, name, sent):
        """CEL: opted-in Pods are sent, 2.17 drivers and Pods without the annotation are not."""
        hook = webhooks(
            "--set", "webhook.pods.enabled=true", "--set", "webhook.pods.matchConditions.enabled=true"
        )[1]
        results = [cel.evaluate(c["expression"], {"object": pod(name)}) for c in hook["matchConditions"]]
        assert all(results) is sent

    def test_schema_rejects_misspelt_keys(self):
        """values.schema.json rejects unknown keys under webhook.pods."""
        proc = subprocess.run(
            [str(helm_binary()), "template", "rel", str(CHART), "--set", "webhook.pods.enabeld=true"],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        assert proc.returncode != 0 and "enabeld" in proc.stderr
