"""Step `wire_input_artifacts`: input artifacts from upstream nodes, for lineage in the KFP UI.

A workflow step: it needs every rewritten node's output artifacts (declared by the node steps) and the
DAG that orders them, so it runs once, after the node steps.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from elyra_sidecar.transformer._argo import ArtifactArgument, InputArtifact
from elyra_sidecar.transformer._config import Config
from elyra_sidecar.transformer._steps import (
    Change,
    Names,
    RewrittenNode,
    WorkflowNotes,
    artifact_name,
    copy_tree,
)

__all__ = ["wire_input_artifacts"]


def _ancestors(task: str, deps: Mapping[str, list[str]]) -> list[str]:
    """Ancestors of `task` nearest first (breadth-first over `dependencies`)."""
    seen: dict[str, None] = {}  # ordered, with constant-time membership
    frontier = list(deps.get(task, []))
    while frontier:
        nxt: list[str] = []
        for parent in frontier:
            if parent not in seen:
                seen[parent] = None
                nxt += deps.get(parent, [])
        frontier = nxt
    return list(seen)


def wire_input_artifacts(
    workflow: dict[str, Any], spec: dict[str, Any], nodes: Mapping[str, RewrittenNode], config: Config
) -> WorkflowNotes:
    """Input artifacts from upstream nodes (lineage in the KFP UI), outside the bootstrapper's directory.

    `spec` is the output workflow's own spec; its DAG templates are copied here before their tasks change."""
    del workflow
    notes = WorkflowNotes()
    spec["templates"] = [copy_tree(t) if isinstance(t, dict) and "dag" in t else t for t in spec["templates"]]
    templates = {t.get("name"): t for t in spec["templates"] if isinstance(t, dict)}
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
            node = nodes[consumer].node
            if not node.inputs:
                continue
            if uses.get(consumer, 0) != 1:
                notes.of(consumer).warnings.append(
                    "lineage: template used by several tasks; inputs not wired"
                )
                continue
            template = templates[consumer]
            inputs = template.setdefault("inputs", {}).setdefault("artifacts", [])
            taken = Names(str(a.get("name")) for a in inputs)
            ancestors = _ancestors(task_name, deps)
            for entry in node.inputs:
                producer = next(
                    (
                        a
                        for a in ancestors
                        if str(by_name[a].get("template")) in nodes
                        and entry in nodes[str(by_name[a].get("template"))].place.output_artifacts
                    ),
                    None,
                )
                if producer is None:
                    continue
                produced, relative = nodes[str(by_name[producer].get("template"))].place.output_artifacts[
                    entry
                ]
                name = artifact_name(f"{producer}-{produced}", taken)
                path = f"{config.lineage.mount_path.rstrip('/')}/{producer}/{relative}"
                artifact: InputArtifact = {"name": name, "path": path, "optional": True}
                argument: ArtifactArgument = {
                    "name": name,
                    "from": f"{{{{tasks.{producer}.outputs.artifacts.{produced}}}}}",
                }
                inputs.append(artifact)
                task.setdefault("arguments", {}).setdefault("artifacts", []).append(argument)
                notes.of(consumer).added.append(
                    Change("input_artifact", f"input artifact {name} <- {producer}.{produced} at {path}")
                )
    return notes
