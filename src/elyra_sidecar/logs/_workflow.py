"""What a Workflow and its pods say about a run's Elyra steps: pure functions over plain dicts.

An Elyra step here is a Pod node whose template has the log sidecar (the container running
`elyra-sidecar tail`). Its script log is that container's output while the pod exists, and the object the
sidecar mirrors (endpoint, bucket, key from the sidecar's own args) once it is gone.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from elyra_sidecar import contract

__all__ = [
    "ElyraTemplate",
    "S3Location",
    "SecretRef",
    "ShapeError",
    "Step",
    "check_workflow",
    "elyra_templates",
    "parse_sidecar_args",
    "pod_container",
    "pod_display_name",
    "steps_from_nodes",
]

RUN_ID_LABEL = "pipeline/runid"
WORKFLOW_LABEL = "workflows.argoproj.io/workflow"
NODE_NAME_ANNOTATION = "workflows.argoproj.io/node-name"
DISPLAY_ANNOTATION = "pipelines.kubeflow.org/task_display_name"
ELYRA_NODE_LABEL = "elyra/node-name"
#: Argo node phases after which a node's pod has nothing more to say.
DONE_PHASES = frozenset({"Succeeded", "Failed", "Error", "Skipped", "Omitted"})
#: Nodes in these phases never ran a script (nothing to look for, anywhere).
NEVER_RAN = frozenset({"Skipped", "Omitted"})
_FLAGS = frozenset({contract.ARG_POLL})  # the sidecar's options that take no value


@dataclass(frozen=True)
class S3Location:
    endpoint: str
    bucket: str
    keys: tuple[str, ...]


@dataclass(frozen=True)
class SecretRef:
    name: str
    key: str


@dataclass(frozen=True)
class ElyraTemplate:
    """One container template with the log sidecar: what to read and how to name it."""

    name: str
    display: str
    container: str
    log_format: str
    location: S3Location | None
    #: AWS_* entries of the sidecar's env: a plain value or a Secret reference.
    credentials: Mapping[str, str | SecretRef] = field(default_factory=dict)


@dataclass
class Step:
    """One Elyra step of the run: a Pod node of the Workflow, or a pod seen before its node."""

    key: str  # the Argo node name (unique in a Workflow), else the pod name
    display: str
    template: ElyraTemplate | None
    started: datetime | None = None
    phase: str = ""
    pod: str | None = None
    aliases: frozenset[str] = frozenset()


def parse_sidecar_args(args: Sequence[str]) -> dict[str, list[str]]:
    """The sidecar's options, `--name value` and `--name=value` alike, each a list (some repeat)."""
    options: dict[str, list[str]] = {}
    i = 0
    while i < len(args):
        token = str(args[i])
        i += 1
        if not token.startswith("--"):
            continue
        if "=" in token:
            name, value = token.split("=", 1)
        elif token in _FLAGS or i >= len(args):
            name, value = token, ""
        else:
            name, value = token, str(args[i])
            i += 1
        options.setdefault(name, []).append(value)
    return options


def _is_log_sidecar(container: Mapping[str, Any]) -> bool:
    if container.get("name") == contract.SIDECAR_CONTAINER:
        return True
    words = [str(w) for w in [*(container.get("command") or []), *(container.get("args") or [])]]
    # Why also by command: the sidecar's name is configurable (config `sidecar.name`), its program is not.
    return contract.TAIL_COMMAND in words and any(
        w == contract.ARG_DIR or w.startswith(contract.ARG_DIR + "=") for w in words
    )


def _display(metadata: Mapping[str, Any], fallback: str) -> str:
    annotations = metadata.get("annotations") or {}
    labels = metadata.get("labels") or {}
    return str(annotations.get(DISPLAY_ANNOTATION) or labels.get(ELYRA_NODE_LABEL) or fallback)


def _credentials(container: Mapping[str, Any]) -> dict[str, str | SecretRef]:
    found: dict[str, str | SecretRef] = {}
    for entry in container.get("env") or []:
        name = entry.get("name")
        if name not in contract.CREDENTIAL_ENV:
            continue
        ref = (entry.get("valueFrom") or {}).get("secretKeyRef") or {}
        if ref.get("name") and ref.get("key"):
            found[name] = SecretRef(str(ref["name"]), str(ref["key"]))
        elif isinstance(entry.get("value"), str):
            found[name] = entry["value"]
    return found


def _template_from(name: str, metadata: Mapping[str, Any], sidecar: Mapping[str, Any]) -> ElyraTemplate:
    options = parse_sidecar_args([str(a) for a in sidecar.get("args") or []])
    endpoint = (options.get(contract.ARG_ENDPOINT) or [""])[-1]
    bucket = (options.get(contract.ARG_BUCKET) or [""])[-1]
    keys = tuple(k for k in options.get(contract.ARG_KEY, []) if k)
    location = S3Location(endpoint, bucket, keys) if endpoint and bucket and keys else None
    return ElyraTemplate(
        name=name,
        display=_display(metadata, name),
        container=str(sidecar.get("name") or contract.SIDECAR_CONTAINER),
        log_format=(options.get(contract.ARG_FORMAT) or ["raw"])[-1],
        location=location,
        credentials=_credentials(sidecar),
    )


def elyra_templates(workflow: Mapping[str, Any]) -> dict[str, ElyraTemplate]:
    """Every template of the Workflow that carries the log sidecar, by template name."""
    found: dict[str, ElyraTemplate] = {}
    for template in (workflow.get("spec") or {}).get("templates") or []:
        if not isinstance(template, Mapping):
            continue
        sidecar = next((s for s in template.get("sidecars") or [] if _is_log_sidecar(s)), None)
        if sidecar is not None and template.get("name"):
            found[str(template["name"])] = _template_from(
                str(template["name"]), template.get("metadata") or {}, sidecar
            )
    return found


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 time as Kubernetes and Argo write it (`2026-11-22T06:00:00Z`), or None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def steps_from_nodes(workflow: Mapping[str, Any], templates: Mapping[str, ElyraTemplate]) -> list[Step]:
    """The Workflow's Pod nodes that ran an Elyra template, named, in the order they started."""
    nodes = (workflow.get("status") or {}).get("nodes") or {}
    steps: list[Step] = []
    for node_id, node in nodes.items():
        if not isinstance(node, Mapping) or node.get("type") != "Pod":
            continue
        template = templates.get(str(node.get("templateName") or ""))
        if template is None:
            continue
        name = str(node.get("name") or node_id)
        argo_display = str(node.get("displayName") or "")
        steps.append(
            Step(
                key=name,
                display=template.display,
                template=template,
                started=parse_time(node.get("startedAt")),
                phase=str(node.get("phase") or ""),
                aliases=frozenset({template.display, template.name, argo_display, str(node_id)} - {""}),
            )
        )
    return sort_steps(steps)


def sort_steps(steps: list[Step]) -> list[Step]:
    far = datetime.max.replace(tzinfo=timezone.utc)
    return sorted(steps, key=lambda s: (s.started or far, s.key))


def pod_node_name(pod: Mapping[str, Any]) -> str | None:
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    value = annotations.get(NODE_NAME_ANNOTATION)
    return str(value) if value else None


def pod_display_name(pod: Mapping[str, Any]) -> str:
    metadata = pod.get("metadata") or {}
    node = pod_node_name(pod) or ""
    fallback = node.rsplit(".", 1)[-1] if node else str(metadata.get("name") or "?")
    return _display(metadata, fallback)


def pod_container(pod: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The log sidecar container of a pod (None: a KFP cache hit or a pod without our sidecar)."""
    spec = pod.get("spec") or {}
    return next((c for c in spec.get("containers") or [] if _is_log_sidecar(c)), None)


def template_from_pod(pod: Mapping[str, Any]) -> ElyraTemplate | None:
    """What a pod alone tells (the Workflow's node status may be offloaded to a database)."""
    container = pod_container(pod)
    if container is None:
        return None
    metadata = pod.get("metadata") or {}
    return _template_from(str(metadata.get("name") or "?"), metadata, container)


def container_state(pod: Mapping[str, Any], container: str) -> str:
    """`waiting`, `running` or `terminated` for the named container of the pod (`waiting` if unknown)."""
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") == container:
            state = status.get("state") or {}
            for name in ("terminated", "running"):
                if state.get(name) is not None:
                    return name
    return "waiting"


def pod_started(pod: Mapping[str, Any]) -> datetime | None:
    status = pod.get("status") or {}
    return parse_time(status.get("startTime")) or parse_time(
        (pod.get("metadata") or {}).get("creationTimestamp")
    )


_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def is_label_value(text: str) -> bool:
    """Whether `text` may be used as a label value in a selector (a KFP run id is a UUID)."""
    return len(text) <= 63 and bool(_LABEL_VALUE.match(text))


class ShapeError(ValueError):
    """A field this command reads has the wrong type: `path` says where, the message what."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path


class _Scalar:
    """A string, number or boolean (what `str()` reads as text)."""


class _MapOf:
    """A mapping of any keys to `value`."""

    def __init__(self, value: Any) -> None:
        self.value = value


_SCALAR = _Scalar()
_ENV = {"name": _SCALAR, "value": _SCALAR, "valueFrom": {"secretKeyRef": {"name": _SCALAR, "key": _SCALAR}}}
_CONTAINER = {"name": _SCALAR, "command": [_SCALAR], "args": [_SCALAR], "env": [_ENV]}
_NODE_FIELDS = ("name", "displayName", "type", "templateName", "phase", "startedAt", "finishedAt")
_METADATA = {"name": _SCALAR, "annotations": _MapOf(_SCALAR), "labels": _MapOf(_SCALAR)}
#: Every field of a Workflow this command reads, and its type (None, as YAML's empty value, reads as absent).
_WORKFLOW = {
    "metadata": {**_METADATA, "creationTimestamp": _SCALAR},
    "spec": {"templates": [{"name": _SCALAR, "metadata": _METADATA, "sidecars": [_CONTAINER]}]},
    "status": {
        "phase": _SCALAR,
        "nodes": _MapOf(
            dict.fromkeys(
                ("name", "displayName", "type", "templateName", "phase", "startedAt", "finishedAt"), _SCALAR
            )
        ),
    },
}


def check_workflow(workflow: Any) -> None:
    """Raise ShapeError, naming the path, when a field this command reads has the wrong type."""
    _check(workflow, _WORKFLOW, "")


def _kind(value: Any) -> str:
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    return f"a {type(value).__name__}" if not isinstance(value, str) else "a string"


def _check(value: Any, shape: Any, path: str) -> None:
    if value is None:
        return
    where = path or "the Workflow"
    if isinstance(shape, _Scalar):
        if isinstance(value, (Mapping, list, tuple)):
            raise ShapeError(where, f"expected a string, found {_kind(value)}")
    elif isinstance(shape, _MapOf):
        if not isinstance(value, Mapping):
            raise ShapeError(where, f"expected a mapping, found {_kind(value)}")
        for key, item in value.items():
            _check(item, shape.value, f"{path}[{str(key)!r}]")
    elif isinstance(shape, list):
        if not isinstance(value, list):
            raise ShapeError(where, f"expected a list, found {_kind(value)}")
        for i, item in enumerate(value):
            _check(item, shape[0], f"{path}[{i}]")
    else:
        if not isinstance(value, Mapping):
            raise ShapeError(where, f"expected a mapping, found {_kind(value)}")
        for key, item_shape in shape.items():
            _check(value.get(key), item_shape, f"{path}.{key}" if path else key)
