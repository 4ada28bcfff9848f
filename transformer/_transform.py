"""`transform()`: the one place where the steps are composed. Pure: never logs, never exits."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from elyra_sidecar import contract
from elyra_sidecar.transformer._config import Config
from elyra_sidecar.transformer._elyra import ElyraNode, NodeParseError, is_elyra_candidate, read_elyra_node
from elyra_sidecar.transformer._params import promote_env_parameters
from elyra_sidecar.transformer._steps import (
    NODE_STEPS,
    TRANSFORMED_ANNOTATION,
    Notes,
    Placement,
    artifact_name,
    copy_tree,
)

__all__ = [
    "INJECT_ANNOTATION",
    "NodeReport",
    "TransformResult",
    "WorkflowError",
    "templates_of",
    "transform",
]

INJECT_ANNOTATION = contract.ANNOTATION_INJECT
_WORKFLOW_KINDS = ("Workflow", "WorkflowTemplate", "ClusterWorkflowTemplate", "CronWorkflow")

NodeStatus = Literal["transformed", "already-transformed", "opted-out", "not-selected", "unreadable"]


class WorkflowError(ValueError):
    """The input is not a Workflow this tool can rewrite; the message says what and where."""


@dataclass(frozen=True)
class NodeReport:
    """What happened to one Elyra node."""

    template: str
    display_name: str
    elyra_version: str
    kind: str
    run_dir: str | None
    status: NodeStatus
    added: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class TransformResult:
    """The new workflow (a new object; the input is never mutated) and what was done."""

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
        raise WorkflowError(
            "this is a KFP v2 pipeline spec (IR, Elyra 4.1+), not an Argo Workflow; "
            "`transform` rewrites KFP v1 Workflows only (KFP v2 needs an in-cluster, Pod-level mode)"
        )
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


def _enabled(step: str, config: Config) -> bool:
    return {
        "mount_work_dir": True,  # always computes where files land; adds the volume only if work_dir.enabled
        "set_unbuffered": config.unbuffered,
        "enable_live_output": config.live.mode != "off" and config.sidecar.enabled,
        "add_log_sidecar": config.sidecar.enabled,
        "declare_output_artifacts": config.artifacts.enabled,
        "mark_transformed": True,  # idempotence rests on it
    }[step]


def _rewrite_node(template: dict[str, Any], node: ElyraNode, config: Config) -> tuple[Placement, Notes]:
    place = Placement()
    notes = Notes()
    for step_name, step in NODE_STEPS:
        if _enabled(step_name, config):
            result = step(template, node, place, config)
            notes.added += result.added
            notes.warnings += result.warnings
    return place, notes


def _ancestors(task: str, deps: Mapping[str, list[str]]) -> list[str]:
    """Ancestors of `task` nearest first (breadth-first over `dependencies`)."""
    seen: list[str] = []
    frontier = list(deps.get(task, []))
    while frontier:
        nxt: list[str] = []
        for parent in frontier:
            if parent not in seen:
                seen.append(parent)
                nxt += deps.get(parent, [])
        frontier = nxt
    return seen


def wire_input_artifacts(
    workflow: dict[str, Any],
    nodes: Mapping[str, tuple[ElyraNode, Placement]],
    config: Config,
) -> dict[str, Notes]:
    """Input artifacts from upstream nodes (lineage in the KFP UI), outside the bootstrapper's directory."""
    notes: dict[str, Notes] = {name: Notes() for name in nodes}
    templates = {t.get("name"): t for t in templates_of(workflow) if isinstance(t, dict)}
    uses: dict[str, int] = {}
    for template in templates.values():
        for task in (template.get("dag") or {}).get("tasks") or []:
            uses[str(task.get("template"))] = uses.get(str(task.get("template")), 0) + 1
    for dag_template in templates.values():
        tasks = (dag_template.get("dag") or {}).get("tasks") or []
        by_name = {str(t.get("name")): t for t in tasks}
        deps = {name: [str(d) for d in t.get("dependencies") or []] for name, t in by_name.items()}
        for task_name, task in by_name.items():
            consumer = str(task.get("template"))
            if consumer not in nodes:
                continue
            node, _ = nodes[consumer]
            if not node.inputs:
                continue
            if uses.get(consumer, 0) != 1:
                notes[consumer].warnings.append("lineage: template used by several tasks; inputs not wired")
                continue
            template = templates[consumer]
            inputs = template.setdefault("inputs", {}).setdefault("artifacts", [])
            taken = {str(a.get("name")) for a in inputs}
            for entry in node.inputs:
                producer = next(
                    (
                        a
                        for a in _ancestors(task_name, deps)
                        if str(by_name[a].get("template")) in nodes
                        and entry in nodes[str(by_name[a].get("template"))][1].output_artifacts
                    ),
                    None,
                )
                if producer is None:
                    continue
                produced, relative = nodes[str(by_name[producer].get("template"))][1].output_artifacts[entry]
                name = artifact_name(f"{producer}-{produced}", taken)
                path = f"{config.lineage.mount_path.rstrip('/')}/{producer}/{relative}"
                inputs.append({"name": name, "path": path, "optional": True})
                arguments = task.setdefault("arguments", {}).setdefault("artifacts", [])
                arguments.append(
                    {"name": name, "from": f"{{{{tasks.{producer}.outputs.artifacts.{produced}}}}}"}
                )
                notes[consumer].added.append(f"input artifact {name} <- {producer}.{produced} at {path}")
    return notes


def transform(workflow: Mapping[str, Any], config: Config | None = None) -> TransformResult:
    """Rewrite every selected Elyra node of `workflow`. The input is never mutated.

    Raises WorkflowError when the input is not an Argo Workflow, and NodeParseError for an unreadable
    Elyra node when `config.strict` is set (otherwise that node is left alone with a warning).
    """
    config = config or Config()
    check_workflow(workflow)
    out: dict[str, Any] = dict(workflow)  # shallow; only what changes is copied below
    reports: list[NodeReport] = []
    warnings: list[str] = []
    rewritten: dict[str, tuple[ElyraNode, Placement]] = {}
    node_notes: dict[str, Notes] = {}
    new_templates: list[Any] | None = None
    for index, template in enumerate(templates_of(workflow)):
        if not is_elyra_candidate(template):
            continue
        name = str(template.get("name", ""))
        try:
            node = read_elyra_node(template, index)
        except NodeParseError as exc:
            if config.strict:
                raise
            reports.append(
                NodeReport(
                    name,
                    _display_name(template),
                    "unknown",
                    "unknown",
                    None,
                    "unreadable",
                    warnings=(f"left untouched: {exc}",),
                )
            )
            continue
        if node is None:  # pragma: no cover - is_elyra_candidate() said it is one
            continue
        status: NodeStatus | None = None
        if _annotation(template, ("metadata", "annotations", TRANSFORMED_ANNOTATION)) is not None:
            status = "already-transformed"
        else:
            status = _selection(workflow, template, config)
        if status is not None:
            reports.append(
                NodeReport(name, _display_name(template), node.version_label, node.kind, None, status)
            )
            continue
        if new_templates is None:
            new_templates = list(templates_of(workflow))
        mine = copy_tree(template)
        new_templates[index] = mine
        place, notes = _rewrite_node(mine, node, config)
        rewritten[name] = (node, place)
        node_notes[name] = notes
    if new_templates is not None:
        out = copy.copy(dict(workflow))
        spec = dict(_spec_of(workflow))
        if workflow.get("kind") == "CronWorkflow":
            outer = dict(workflow["spec"])
            outer["workflowSpec"] = spec
            out["spec"] = outer
        else:
            out["spec"] = spec
        spec["templates"] = new_templates
        if config.lineage.enabled:
            _copy_dag_templates(spec)
            for name, extra in wire_input_artifacts(out, rewritten, config).items():
                node_notes[name].added += extra.added
                node_notes[name].warnings += extra.warnings
        if config.parameters.promote_env:
            promoted, promote_warnings = promote_env_parameters(out, spec, rewritten, config)
            warnings += promote_warnings
            for name, extra in promoted.items():
                node_notes[name].added += extra.added
    for name, (node, place) in rewritten.items():
        notes = node_notes[name]
        template = templates_of(out)[node.template_index]
        reports.append(
            NodeReport(
                name,
                _display_name(template),
                node.version_label,
                node.kind,
                place.run_dir,
                "transformed",
                tuple(notes.added),
                tuple(notes.warnings),
            )
        )
    order = {str(t.get("name")): i for i, t in enumerate(templates_of(workflow)) if isinstance(t, Mapping)}
    reports.sort(key=lambda r: order.get(r.template, 0))
    return TransformResult(workflow=out, nodes=tuple(reports), warnings=tuple(warnings))


def _copy_dag_templates(spec: dict[str, Any]) -> None:
    """Lineage edits DAG tasks: give the output its own copies of the DAG templates first."""
    spec["templates"] = [copy_tree(t) if isinstance(t, dict) and "dag" in t else t for t in spec["templates"]]
