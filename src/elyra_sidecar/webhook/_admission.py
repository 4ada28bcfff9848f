"""The admission decision: a pure function from an AdmissionReview to its response. Never blocks a run.

`admit()` applies exactly the CLI's `transform()` with the same config, in opt-in mode, and answers with
a JSON Patch. Any internal problem allows the Workflow unchanged with a warning (and says so in the
outcome, for the server's log line and error counter). `admit_body()` does the same from the raw request
body (what the server's workers run), and refuses, before parsing, a body whose parsed form could
outgrow `webhook.max_review_memory_bytes`; `not_injected()` is the answer when that took too long, built
without parsing the body (the server process calls it: it never parses a review). The HTTP/TLS
server is `elyra_sidecar.webhook.server`.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal, TypedDict

from elyra_sidecar.transformer import Config, transform
from elyra_sidecar.webhook._patch import make_patch
from elyra_sidecar.webhook._pod import mutate_pod

__all__ = [
    "AdmissionRequest",
    "AdmissionResponse",
    "AdmissionReview",
    "GroupVersionKind",
    "Outcome",
    "Result",
    "admit",
    "admit_body",
    "admit_pod",
    "not_injected",
]

_MAX_WARNING = 120  # Kubernetes asks for short warnings (and truncates long ones)
_MAX_REASON = 300  # a reason is logged: keep one line of it, whatever an exception message holds
Result = Literal["patched", "unchanged", "skipped", "error", "over_budget", "bad_request", "too_large"]


class GroupVersionKind(TypedDict, total=False):
    """`request.kind` of an AdmissionReview."""

    group: str
    version: str
    kind: str


class AdmissionRequest(TypedDict, total=False):
    """The fields of `request` this webhook reads (the API server sends more; they are ignored)."""

    uid: str
    kind: GroupVersionKind
    operation: str
    namespace: str
    name: str
    object: dict[str, Any]


class _ResponseRequired(TypedDict):
    uid: str
    allowed: bool


class AdmissionResponse(_ResponseRequired, total=False):
    """`response` of the answer: always allowed; a base64 JSON Patch when something was injected."""

    patchType: Literal["JSONPatch"]
    patch: str
    warnings: list[str]


class AdmissionReview(TypedDict, total=False):
    """admission.k8s.io/v1 AdmissionReview: `request` in what the API server sends, `response` in ours.

    What arrives is untrusted JSON: `admit()` checks every field before using it, whatever this says.
    """

    apiVersion: str
    kind: str
    request: AdmissionRequest
    response: AdmissionResponse


@dataclass(frozen=True)
class Outcome:
    """The response to send, and what happened (for logs and metrics; never secrets).

    `review` is None only for a body that is not an AdmissionReview at all (the server answers 400).
    `uid`, `namespace` and `name` identify the request in the log line, as far as the body told them.
    """

    review: AdmissionReview | None
    result: Result
    reason: str
    nodes_transformed: int = 0
    uid: str = ""
    namespace: str = ""
    name: str = ""


def _warn(text: str) -> str:
    text = f"elyra-sidecar: {text}"
    return text if len(text) <= _MAX_WARNING else text[: _MAX_WARNING - 3] + "..."


def _short(text: str) -> str:
    return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 3] + "..."


def _response(
    uid: str, *, patch: list[dict[str, Any]] | None = None, warnings: list[str] | None = None
) -> AdmissionReview:
    response: AdmissionResponse = {"uid": uid, "allowed": True}
    if patch:
        response["patchType"] = "JSONPatch"
        # A tree built here from parsed JSON has no cycles: skipping the encoder's check saves ~20% of it.
        text = json.dumps(patch, separators=(",", ":"), check_circular=False)
        response["patch"] = base64.b64encode(text.encode()).decode()
    if warnings:
        response["warnings"] = [_warn(w) for w in warnings]
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}


def _text(value: object) -> str:
    """A string field as sent, or "" for anything else (never the repr of a structure)."""
    return value if isinstance(value, str) else ""


def _identity(review: object) -> tuple[str, str, str]:
    """(uid, namespace, name) of a review of any shape; "" for what it does not carry as strings."""
    request = review.get("request") if isinstance(review, Mapping) else None
    if not isinstance(request, Mapping):
        return "", "", ""
    workflow = request.get("object")
    metadata = workflow.get("metadata") if isinstance(workflow, Mapping) else None
    metadata = metadata if isinstance(metadata, Mapping) else {}
    namespace = _text(request.get("namespace")) or _text(metadata.get("namespace"))
    name = _text(metadata.get("name")) or _text(metadata.get("generateName")) or _text(request.get("name"))
    return _text(request.get("uid")), namespace, name


def admit(review: object, config: Config) -> Outcome:
    """Decide on one AdmissionReview (v1). Always allows; patches opted-in Elyra nodes of Workflows and,
    dispatched by `request.kind`, opted-in Elyra step Pods of KFP v2 (the Pod mode, `_pod.py`)."""
    return _guarded(review, config, pods_only=False)


def admit_pod(review: object, config: Config) -> Outcome:
    """`admit()` for Pod reviews only: anything but a Pod CREATE is allowed untouched ("skipped")."""
    return _guarded(review, config, pods_only=True)


def _guarded(review: object, config: Config, *, pods_only: bool) -> Outcome:
    uid, namespace, name = _identity(review)
    try:
        outcome = _admit(review, config, uid, namespace, pods_only=pods_only)
    except (Exception, SystemExit) as exc:  # never block a run (a library's exit() included): say why
        reason = _short(f"{type(exc).__name__}: {exc}")
        outcome = Outcome(_response(uid, warnings=[f"not injected: {reason}"]), "error", reason)
    return replace(outcome, uid=uid, namespace=namespace, name=name)


def _admit(
    review: object,
    config: Config,
    uid: str,
    namespace: str,
    *,
    pods_only: bool = False,
) -> Outcome:
    request = review.get("request") if isinstance(review, Mapping) else None
    if (
        not isinstance(review, Mapping)
        or review.get("apiVersion") != "admission.k8s.io/v1"
        or review.get("kind") != "AdmissionReview"
        or not isinstance(request, Mapping)
        or not uid
        or not isinstance(request.get("kind"), Mapping)
    ):
        return Outcome(
            _response(uid, warnings=["not an admission.k8s.io/v1 AdmissionReview request"]),
            "error",
            "malformed AdmissionReview",
        )
    kind = request["kind"]
    operation = request.get("operation")
    if operation == "CREATE" and kind.get("group") == "" and kind.get("kind") == "Pod":
        return _admit_pod(request, config, uid, namespace)
    if (
        pods_only
        or operation != "CREATE"
        or kind.get("group") != "argoproj.io"
        or kind.get("kind") != "Workflow"
    ):
        return Outcome(
            _response(uid),
            "skipped",
            _short(f"not a Workflow CREATE ({_text(kind.get('kind'))}/{_text(operation)})"),
        )
    workflow = request.get("object")
    if not isinstance(workflow, Mapping):
        return Outcome(_response(uid, warnings=["request.object is not a Workflow"]), "error", "no object")
    all_in_namespace = namespace in config.webhook.inject_all_in_namespaces
    effective = replace(
        config, strict=False, selection=replace(config.selection, only_annotated=not all_in_namespace)
    )
    result = transform(workflow, effective)  # shape-checked: a wrong type raises WorkflowError (guarded)
    patch = make_patch(workflow, result.workflow) if result.changed else []
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


def _admit_pod(request: Mapping[str, Any], config: Config, uid: str, namespace: str) -> Outcome:
    pod = request.get("object")
    if not isinstance(pod, Mapping):
        return Outcome(_response(uid, warnings=["request.object is not a Pod"]), "error", "no object")
    outcome = mutate_pod(pod, config, namespace_opted_in=namespace in config.webhook.inject_all_in_namespaces)
    return Outcome(
        _response(uid, patch=outcome.patch, warnings=outcome.warnings),
        outcome.result,
        _short(outcome.reason),
        nodes_transformed=int(outcome.result == "patched"),
    )


# The API server writes request.uid as the first "uid" member of the body (TypeMeta, then request, whose
# first field is uid). Used only when the body cannot be parsed as a whole (nested too deeply): a wrong
# match makes the API server refuse our answer, which is the same as no answer (failurePolicy).
_FIRST_UID = re.compile(rb'"uid"\s*:\s*("(?:[^"\\]|\\.){1,256}")')
_V1_REVIEW = re.compile(rb'"apiVersion"\s*:\s*"admission\.k8s\.io/v1"')


def _read(body: bytes) -> tuple[object, str]:
    """The parsed body and "", or None and why it could not be parsed (the caller answers 400)."""
    try:
        return json.loads(body), ""
    except RecursionError:
        return None, "too_deep"
    except ValueError:  # UnicodeDecodeError is a ValueError too
        return None, "body is not JSON"


def _unparsable(body: bytes, why: str, *, what: str) -> Outcome:
    """Allowed with a warning when the body still names its AdmissionReview uid, else a 400."""
    if why == "too_deep":
        uid_match = _FIRST_UID.search(body)
        if uid_match and _V1_REVIEW.search(body):
            uid = _text(json.loads(uid_match.group(1)))
            reason = f"{what}: JSON nested deeper than the parser allows"
            return Outcome(_response(uid, warnings=[f"not injected: {reason}"]), "error", reason, uid=uid)
        why = "body is JSON nested deeper than the parser allows"
    return Outcome(None, "bad_request", why)


#: What one byte of JSON text can cost once parsed, at most (CPython 3.11, 64-bit; measured for the worst
#: shapes: `[{},{},...]` is ~25 bytes a byte, `[[[...]]]` ~45, strings of 1-2 characters ~12): an object
#: (a dict with its first entries), an array, each quote (half a str object), each `,` (a slot and a small
#: value: int, float), each `:` (a dict entry). The text itself counts three times (the body decoded to a
#: str, the string values, their building), or eight times when a string may hold a character outside
#: Latin-1 (a str is as wide as its widest character: one emoji makes each ASCII character take 4 bytes).
_OBJECT_BYTES = 200
_ARRAY_BYTES = 96
_QUOTE_BYTES = 40
_COMMA_BYTES = 40
_COLON_BYTES = 48


def parsed_size_bound(body: bytes) -> int:
    """An upper bound on the memory `json.loads(body)` takes, from a few counts over the bytes (linear, in
    C, no parsing). Counting inside strings too only raises it. Real reviews: about 3.5x their parsed size
    (9x the body); 4 MiB of small objects: over 300 MiB."""
    text = 3 if body.isascii() and b"\\u" not in body else 8
    return (
        text * len(body)
        + _OBJECT_BYTES * body.count(b"{")
        + _ARRAY_BYTES * body.count(b"[")
        + _QUOTE_BYTES * body.count(b'"')
        + _COMMA_BYTES * body.count(b",")
        + _COLON_BYTES * body.count(b":")
    )


def admit_body(body: bytes, config: Config) -> Outcome:
    """`admit()` on a raw request body; a body that is not an AdmissionReview gets `review=None`. A body
    whose parsed form could take more than `webhook.max_review_memory_bytes` is not parsed: allowed,
    not injected, `too_large`."""
    limit = config.webhook.max_review_memory_bytes
    bound = parsed_size_bound(body)
    if bound > limit:
        reason = (
            f"review too large to read: parsed, it could take {bound / 2**20:.0f} MiB, over "
            f"webhook.max_review_memory_bytes ({limit / 2**20:.0f} MiB)"
        )
        return not_injected(body, result="too_large", reason=reason)
    review, why = _read(body)
    if why:
        return _unparsable(body, why, what="not injected")
    return admit(review, config)


#: How far into a body `not_injected` looks for the review's uid, namespace and name. The API server
#: writes them first: TypeMeta, then `request` with uid, kind, resource, ..., name, namespace, operation,
#: userInfo, and only then the object.
_SCAN_BYTES = 64 << 10
_FIRST_STRING = {
    key: re.compile(rb'"(?:' + key.encode() + rb')"\s*:\s*("(?:[^"\\]|\\.){0,256}")')
    for key in ("uid", "namespace", "name|generateName")
}
_METADATA = re.compile(rb'"metadata"\s*:\s*\{')


def _first_string(body: bytes, key: str, start: int = 0) -> str:
    """The first string member `key` (a regex alternation of names) in `body[start:_SCAN_BYTES]` (a
    bounded scan), or ""."""
    found = _FIRST_STRING[key].search(body, start, _SCAN_BYTES)
    if found is None:
        return ""
    try:
        return _text(json.loads(found.group(1)))  # one short JSON string, never the review
    except ValueError:
        return ""


def _head_identity(body: bytes) -> tuple[str, str, str]:
    """`_identity()` as far as the body's head tells, without parsing it: the first uid (request.uid) and
    namespace (request.namespace), and the first name or generateName in the first `metadata` (the
    object's)."""
    metadata = _METADATA.search(body, 0, _SCAN_BYTES)
    name = _first_string(body, "name|generateName", metadata.end()) if metadata is not None else ""
    return _first_string(body, "uid"), _first_string(body, "namespace"), name


def not_injected(body: bytes, *, result: Result, reason: str) -> Outcome:
    """Allowed unchanged, `reason` as the warning: for a review the server could not have decided in time
    (its time budget ran out), at all (its worker process ended) or within memory (`too_large`). Built from
    a bounded scan of the body's head, never by parsing it: the server process answers this way while its
    event loop must stay free. No uid there: answered 400 (the API server applies failurePolicy)."""
    uid, namespace, name = _head_identity(body)
    if not uid:
        return Outcome(None, result, reason)
    return Outcome(
        _response(uid, warnings=[f"not injected: {reason}"]),
        result,
        reason,
        uid=uid,
        namespace=namespace,
        name=name,
    )
