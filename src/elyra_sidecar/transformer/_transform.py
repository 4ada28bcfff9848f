"""`transform()`: the one place where the steps are composed. Pure: never logs, never exits."""

from __future__ import annotations

import traceback
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import PurePath
from typing import Any, Literal

from elyra_sidecar import contract
from elyra_sidecar.transformer._config import Config
from elyra_sidecar.transformer._elyra import ElyraNode, NodeParseError, is_elyra_candidate, read_elyra_node
from elyra_sidecar.transformer._registry import NODE_STEPS, WORKFLOW_STEPS, run_node_steps
from elyra_sidecar.transformer._shape import WorkflowError, check_shape, restore_untouched
from elyra_sidecar.transformer._steps import (
    TRANSFORMED_ANNOTATION,
    Change,
    Notes,
    RewrittenNode,
)

__all__ = [
    "INJECT_ANNOTATION",
    "KFP_V2_NOTE",
    "NodeReport",
    "TransformResult",
    "WorkflowError",
    "templates_of",
    "transform",
]

INJECT_ANNOTATION = contract.ANNOTATION_INJECT
_WORKFLOW_KINDS = ("Workflow", "WorkflowTemplate", "ClusterWorkflowTemplate", "CronWorkflow")

NodeStatus = Literal["transformed", "already-transformed", "opted-out", "not-selected", "unreadable"]


#: What `transform` says about a KFP v2 IR: where the work happens instead (the webhook's Pod mode).
KFP_V2_NOTE = (
    "this is a KFP v2 pipeline spec (IR, Elyra 4.1+), not an Argo Workflow: there is nothing for `transform` "
    "to rewrite. On KFP v2 every step runs from one shared pod template whose command arrives at run time, "
    "so elyra-sidecar instruments each step's Pod in the cluster instead (the webhook's Pod mode): it adds "
    f"the {contract.SIDECAR_CONTAINER} container (`kubectl logs <pod> -c {contract.SIDECAR_CONTAINER}`, live "
    "for Python nodes) and mirrors the "
    "script's log to <cos-directory>/<name>.log while it runs and on failure, leaving main's image, command "
    "and args untouched. To enable it: install the chart with `webhook.pods.enabled=true`, then opt in each "
    'node with the Kubernetes pod annotation `elyra-sidecar/inject: "true"` in its Elyra node properties '
    "(KFP >= 2.14), or a whole namespace with `config.webhook.inject_all_in_namespaces` (any KFP 2.x). "
    "Upload this pipeline to KFP unchanged. See docs/pod-mode.md."
)


@dataclass(frozen=True)
class NodeReport:
    """What happened to one Elyra node."""

    template: str
    display_name: str
    elyra_version: str
    kind: str
    run_dir: str | None
    status: NodeStatus
    #: What the steps added, in step order; each reads as its text (the JSON report) and has a `kind`.
    added: tuple[Change, ...] = ()
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class TransformResult:
    """The new workflow and what was done. The input is never mutated; the new workflow is a new object
    along every path the transform changed and shares everything else with the input (the scripts, the
    images, untouched templates): copy it before changing it in place."""

    workflow: dict[str, Any]
    nodes: tuple[NodeReport, ...]
    warnings: tuple[str, ...]

    @property
    def changed(self) -> bool:
        return any(n.status == "transformed" for n in self.nodes)


def _spec_of(workflow: Mapping[str, Any]) -> Mapping[str, Any]:
    spec = workflow.get("spec")
    if workflow.get("kind") == "CronWorkflow" and isinstance(spec, Mapping):
        spec = spec.get("workflowSpec")
    if not isinstance(spec, Mapping):
        raise WorkflowError("spec: missing or not a mapping")
    return spec


def templates_of(workflow: Mapping[str, Any]) -> list[Any]:
    """`spec.templates` (or `spec.workflowSpec.templates` of a CronWorkflow), checked."""
    templates = _spec_of(workflow).get("templates")
    if not isinstance(templates, list):
        raise WorkflowError("spec.templates: missing or not a list")
    return templates


def check_workflow(workflow: Any) -> None:
    """Raise WorkflowError unless `workflow` is an Argo Workflow-like object."""
    if not isinstance(workflow, Mapping):
        raise WorkflowError(f"the document is a {type(workflow).__name__}, not a Workflow mapping")
    if "pipelineInfo" in workflow or "deploymentSpec" in workflow or "root" in workflow:
        raise WorkflowError(KFP_V2_NOTE)
    api = str(workflow.get("apiVersion", ""))
    kind = workflow.get("kind")
    if not api.startswith("argoproj.io/") or kind not in _WORKFLOW_KINDS:
        raise WorkflowError(
            f"apiVersion/kind: expected argoproj.io Workflow, got {api or '(none)'}/{kind or '(none)'}"
        )
    for index, template in enumerate(templates_of(workflow)):
        if not isinstance(template, Mapping):
            raise WorkflowError(f"spec.templates[{index}]: not a mapping")


def _annotation(obj: Any, path: tuple[str, ...]) -> str | None:
    for key in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return str(obj).lower() if obj is not None else None


def _selection(workflow: Mapping[str, Any], template: Mapping[str, Any], config: Config) -> NodeStatus | None:
    """None when the node is selected; otherwise why not."""
    own = _annotation(template, ("metadata", "annotations", INJECT_ANNOTATION))
    if own == "false":
        return "opted-out"
    if not config.selection.only_annotated or own == "true":
        return None
    spec = _spec_of(workflow)
    for where in (
        _annotation(workflow, ("metadata", "annotations", INJECT_ANNOTATION)),
        _annotation(spec, ("podMetadata", "annotations", INJECT_ANNOTATION)),
    ):
        if where == "true":
            return None
    return "not-selected"


def _display_name(template: Mapping[str, Any]) -> str:
    metadata = template.get("metadata")
    if isinstance(metadata, Mapping):
        annotations = metadata.get("annotations") or {}
        labels = metadata.get("labels") or {}
        name = annotations.get("pipelines.kubeflow.org/task_display_name") or labels.get("elyra/node-name")
        if name:
            return str(name)
    return str(template.get("name", ""))


def _read_selected(
    workflow: Mapping[str, Any], template: dict[str, Any], index: int, config: Config
) -> ElyraNode | NodeReport | None:
    """The node to rewrite; or the report of a node left alone (and why); None when it is no Elyra node."""
    if not is_elyra_candidate(template):
        return None
    name = str(template.get("name", ""))
    try:
        node = read_elyra_node(template, index)
    except NodeParseError as exc:
        if config.strict:
            raise
        return NodeReport(
            name,
            _display_name(template),
            "unknown",
            "unknown",
            None,
            "unreadable",
            warnings=(f"left untouched: {exc}",),
        )
    if node is None:  # pragma: no cover - is_elyra_candidate() said it is one
        return None
    if _annotation(template, ("metadata", "annotations", TRANSFORMED_ANNOTATION)) is not None:
        status: NodeStatus | None = "already-transformed"
    else:
        status = _selection(workflow, template, config)
    if status is not None:
        return NodeReport(name, _display_name(template), node.version_label, node.kind, None, status)
    return node


#: The parts of a node template the steps write to (append to, assign into): each gets its own copy in
#: the output; the rest (the script, resources, probes, ...) stays shared with the input, which is never
#: written. Copying only these keeps a review's cost in what changes, and lets the webhook's patch skip
#: every shared part by identity. A step that writes elsewhere must add its part here; the property test
#: `test_input_never_mutated_and_idempotent` fails otherwise.
_OWN_LISTS = ("volumes", "initContainers", "sidecars")
_OWN_MAPS = {
    "metadata": ("annotations", "labels"),
    "inputs": ("artifacts", "parameters"),
    "outputs": ("artifacts",),
}
_OWN_CONTAINER_LISTS = ("volumeMounts",)


def _writable_copy(template: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `template` whose written parts (see `_OWN_LISTS`...) are its own; the rest is shared."""
    mine = dict(template)
    for key in _OWN_LISTS:
        if isinstance(mine.get(key), list):
            mine[key] = list(mine[key])
    for key, inner_keys in _OWN_MAPS.items():
        if isinstance(mine.get(key), dict):
            part = mine[key] = dict(mine[key])
            for inner in inner_keys:
                value = part.get(inner)
                if isinstance(value, list):
                    part[inner] = list(value)
                elif isinstance(value, dict):
                    part[inner] = dict(value)
    container = mine.get("container")
    if isinstance(container, dict):
        container = mine["container"] = dict(container)
        for key in _OWN_CONTAINER_LISTS:
            if isinstance(container.get(key), list):
                container[key] = list(container[key])
        if isinstance(container.get("env"), list):  # entries too: a promoted or extended value is rewritten
            container["env"] = [dict(e) if isinstance(e, dict) else e for e in container["env"]]
    return mine


def _with_templates(
    workflow: Mapping[str, Any], templates: list[Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A shallow copy of `workflow` with its own spec holding `templates`; returns it and that spec."""
    out = dict(workflow)
    spec = dict(_spec_of(workflow))
    spec["templates"] = templates
    if workflow.get("kind") == "CronWorkflow":
        out["spec"] = {**workflow["spec"], "workflowSpec": spec}
    else:
        out["spec"] = spec
    return out, spec


#: What the rewrite can raise on a shape nobody foresaw; `transform` turns it into one WorkflowError line.
_CRASHES = (AttributeError, TypeError, KeyError, IndexError, ValueError, RecursionError)


def transform(workflow: Any, config: Config | None = None) -> TransformResult:
    """Rewrite every selected Elyra node of `workflow`. The input is never mutated. Safe on any input.

    The shape check comes first (an empty field such as `env:` reads as absent, a wrong type is refused
    naming its place) and every template the rewrite left alone is given back as the input had it.
    Raises WorkflowError (one line: what and where) when the input is not an Argo Workflow this tool can
    rewrite, and NodeParseError for an unreadable Elyra node when `config.strict` is set (otherwise that
    node is left alone with a warning). Nothing else escapes: a crash inside the rewrite on a shape the
    shape check does not know becomes a WorkflowError naming the place in the code (a bug to report).
    """
    config = config or Config()
    try:
        checked = check_shape(workflow)
        result = _transform(checked, config)
    except (WorkflowError, NodeParseError):
        raise
    except _CRASHES as exc:
        frames = traceback.extract_tb(exc.__traceback__)
        where = f"{PurePath(frames[-1].filename).name}:{frames[-1].lineno}" if frames else "an unknown place"
        raise WorkflowError(
            f"the rewrite failed on a Workflow shape it does not handle ({type(exc).__name__} at {where}); "
            "nothing was changed. Please report it with the input."
        ) from exc
    restored = restore_untouched(result.workflow, checked, workflow)
    return result if restored is result.workflow else replace(result, workflow=restored)


def _transform(workflow: Mapping[str, Any], config: Config) -> TransformResult:
    """`transform` on a shape-checked input."""
    check_workflow(workflow)
    templates = templates_of(workflow)
    reports: list[NodeReport] = []
    new_templates = list(templates)
    rewritten: dict[str, RewrittenNode] = {}
    notes: dict[str, Notes] = {}
    for index, template in enumerate(templates):
        read = _read_selected(workflow, template, index, config)
        if not isinstance(read, ElyraNode):
            reports += [read] if read is not None else []
            continue
        new_templates[index] = mine = _writable_copy(template)
        place, notes[read.template_name] = run_node_steps(NODE_STEPS, mine, read, config)
        rewritten[read.template_name] = RewrittenNode(read, place)
    if not rewritten:
        return TransformResult(workflow=dict(workflow), nodes=tuple(reports), warnings=())
    out, spec = _with_templates(workflow, new_templates)
    warnings: list[str] = []
    for step in WORKFLOW_STEPS:
        if step.enabled(config):
            result = step.run(out, spec, rewritten, config)
            warnings += result.warnings
            for name, extra in result.nodes.items():
                notes[name].added += extra.added
                notes[name].warnings += extra.warnings
    final = templates_of(out)
    reports += [
        NodeReport(
            name,
            _display_name(final[r.node.template_index]),
            r.node.version_label,
            r.node.kind,
            r.place.run_dir,
            "transformed",
            tuple(notes[name].added),
            tuple(notes[name].warnings),
        )
        for name, r in rewritten.items()
    ]
    order = {str(t.get("name")): i for i, t in enumerate(templates) if isinstance(t, Mapping)}
    reports.sort(key=lambda r: order.get(r.template, 0))
    return TransformResult(workflow=out, nodes=tuple(reports), warnings=tuple(warnings))
