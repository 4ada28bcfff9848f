"""The admission decision: a pure function from an AdmissionReview to its response. Never blocks a run.

`admit()` applies exactly the CLI's `transform()` with the same config, in opt-in mode, and answers with
a JSON Patch. Any internal problem allows the Workflow unchanged with a warning (and says so in the
outcome, for the server's log line and error counter). The HTTP/TLS server is `transformer.webhook`.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from elyra_sidecar.transformer._config import Config
from elyra_sidecar.transformer._transform import transform
from elyra_sidecar.webhook._patch import make_patch

__all__ = ["Outcome", "admit"]

_MAX_WARNING = 120  # Kubernetes asks for short warnings (and truncates long ones)
Result = Literal["patched", "unchanged", "skipped", "error"]


@dataclass(frozen=True)
class Outcome:
    """The response to send, and what happened (for logs and metrics; never secrets)."""

    review: dict[str, Any]
    result: Result
    reason: str
    nodes_transformed: int = 0


def _warn(text: str) -> str:
    text = f"elyra-sidecar: {text}"
    return text if len(text) <= _MAX_WARNING else text[: _MAX_WARNING - 3] + "..."


def _response(
    uid: str, *, patch: list[dict[str, Any]] | None = None, warnings: list[str] | None = None
) -> dict[str, Any]:
    response: dict[str, Any] = {"uid": uid, "allowed": True}
    if patch:
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(json.dumps(patch, separators=(",", ":")).encode()).decode()
    if warnings:
        response["warnings"] = [_warn(w) for w in warnings]
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}


def admit(review: Any, config: Config) -> Outcome:
    """Decide on one AdmissionReview (v1). Always allows; patches opted-in Elyra nodes of Workflows."""
    request = review.get("request") if isinstance(review, Mapping) else None
    uid = str(request.get("uid", "")) if isinstance(request, Mapping) else ""
    if (
        not isinstance(review, Mapping)
        or review.get("apiVersion") != "admission.k8s.io/v1"
        or review.get("kind") != "AdmissionReview"
        or not isinstance(request, Mapping)
        or not uid
    ):
        return Outcome(
            _response(uid, warnings=["not an admission.k8s.io/v1 AdmissionReview request"]),
            "error",
            "malformed AdmissionReview",
        )
    kind = request.get("kind") or {}
    if (
        request.get("operation") != "CREATE"
        or kind.get("group") != "argoproj.io"
        or kind.get("kind") != "Workflow"
    ):
        return Outcome(
            _response(uid),
            "skipped",
            f"not a Workflow CREATE ({kind.get('kind')}/{request.get('operation')})",
        )
    workflow = request.get("object")
    if not isinstance(workflow, Mapping):
        return Outcome(_response(uid, warnings=["request.object is not a Workflow"]), "error", "no object")
    namespace = str(request.get("namespace") or (workflow or {}).get("metadata", {}).get("namespace") or "")
    all_in_namespace = namespace in config.webhook.inject_all_in_namespaces
    effective = replace(
        config, strict=False, selection=replace(config.selection, only_annotated=not all_in_namespace)
    )
    try:
        result = transform(workflow, effective)
        patch = make_patch(workflow, result.workflow) if result.changed else []
    except Exception as exc:  # never block a run: allow unchanged, and say why
        reason = f"{type(exc).__name__}: {exc}"
        return Outcome(_response(uid, warnings=[f"not injected: {reason}"]), "error", reason)
    warnings = [f"{n.template}: {w}" for n in result.nodes for w in n.warnings]
    transformed = sum(n.status == "transformed" for n in result.nodes)
    if not patch:
        return Outcome(_response(uid, warnings=warnings), "unchanged", "no opted-in Elyra node to transform")
    return Outcome(
        _response(uid, patch=patch, warnings=warnings),
        "patched",
        f"{transformed} node(s) transformed",
        nodes_transformed=transformed,
    )
