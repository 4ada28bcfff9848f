"""Write charts/elyra-sidecar/values.schema.json: the chart's values, with `config` derived from the code.

Run after changing values.yaml or the transform config: .venv/bin/python scripts/gen_chart_schema.py
(tests/test_chart.py fails while the committed file differs from what this writes).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from elyra_sidecar.transformer._config import config_json_schema

ROOT = Path(__file__).resolve().parent.parent

TARGET = ROOT / "charts" / "elyra-sidecar" / "values.schema.json"


def obj(properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "object", "additionalProperties": False, "properties": properties, **extra}


STR = {"type": "string"}
BOOL = {"type": "boolean"}
MAP = {"type": "object"}
LIST = {"type": "array"}
STR_MAP = {"type": "object", "additionalProperties": {"type": "string"}}


def schema() -> dict[str, Any]:
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "elyra-sidecar chart values",
        **obj(
            {
                "replicaCount": {"type": "integer", "minimum": 1},
                "image": obj(
                    {
                        "repository": {"type": "string", "minLength": 1},
                        "tag": STR,
                        "pullPolicy": {"enum": ["Always", "IfNotPresent", "Never"]},
                    }
                ),
                "imagePullSecrets": LIST,
                "nameOverride": STR,
                "fullnameOverride": STR,
                "commonLabels": STR_MAP,
                "podAnnotations": STR_MAP,
                "resources": MAP,
                "podSecurityContext": MAP,
                "securityContext": MAP,
                "terminationGracePeriodSeconds": {"type": "integer", "minimum": 1},
                "nodeSelector": STR_MAP,
                "tolerations": LIST,
                "affinity": MAP,
                "priorityClassName": STR,
                "topologySpreadConstraints": LIST,
                "podDisruptionBudget": obj(
                    {"enabled": BOOL, "minAvailable": {"type": ["integer", "string"]}}
                ),
                "service": obj({"port": {"type": "integer", "minimum": 1, "maximum": 65535}}),
                "webhook": obj(
                    {
                        "port": {"type": "integer", "minimum": 1024, "maximum": 65535},
                        "failurePolicy": {"enum": ["Ignore", "Fail"]},
                        "timeoutSeconds": {"type": "integer", "minimum": 1, "maximum": 30},
                        "excludeNamespaces": {"type": "array", "items": STR},
                        "objectSelector": MAP,
                        "matchConditions": obj({"enabled": BOOL}),
                        # The Pod mode's entry (KFP v2, docs/pod-mode.md); off by default.
                        "pods": obj(
                            {
                                "enabled": BOOL,
                                "timeoutSeconds": {"type": "integer", "minimum": 1, "maximum": 30},
                                "namespaceSelector": obj(
                                    {
                                        "matchLabels": STR_MAP,
                                        "matchExpressions": {"type": "array", "items": {"type": "object"}},
                                    }
                                ),
                                "matchConditions": obj({"enabled": BOOL}),
                            }
                        ),
                    }
                ),
                "certificates": obj(
                    {
                        "certManager": obj({"enabled": BOOL, "issuerRef": MAP, "duration": STR}),
                        "generated": obj({"validityDays": {"type": "integer", "minimum": 1}}),
                    }
                ),
                "networkPolicy": obj(
                    {"enabled": BOOL, "ingressFrom": {"type": "array", "items": MAP}, "allowAllSources": BOOL}
                ),
                "probes": obj(
                    {
                        "timeoutSeconds": {"type": "integer", "minimum": 1},
                        "livenessPeriodSeconds": {"type": "integer", "minimum": 1},
                        "readinessPeriodSeconds": {"type": "integer", "minimum": 1},
                    }
                ),
                "serviceAccount": obj({"create": BOOL, "name": STR}),
                "config": config_json_schema(),
            }
        ),
    }


if __name__ == "__main__":
    TARGET.write_text(json.dumps(schema(), indent=2) + "\n")
    print(f"wrote {TARGET.relative_to(ROOT)}")
