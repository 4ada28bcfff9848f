"""The steps of the rewrite, declared once: name, when it runs (from the config), and what it does.

Node steps run on each selected Elyra node in this order, each on the node's private template copy;
workflow steps then run once over all rewritten nodes (they need every node's placement: lineage wires
artifacts between nodes, promotion names parameters across them). `transform` runs exactly this list;
docs/how-it-works.md shows it as a table in the same order (a test keeps the two in step). Adding a step
is one entry here. The webhook's Pod mode (`instrument_pod`, KFP v2) runs the node steps marked `pod` on
a view of the step's Pod, through the same `run_node_steps`: one implementation of what gets injected.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from elyra_sidecar.transformer._config import Config
from elyra_sidecar.transformer._elyra import ElyraNode
from elyra_sidecar.transformer._lineage import wire_input_artifacts
from elyra_sidecar.transformer._params import promote_env_parameters
from elyra_sidecar.transformer._steps import (
    Notes,
    Placement,
    RewrittenNode,
    WorkflowNotes,
    add_log_sidecar,
    declare_output_artifacts,
    enable_live_output,
    mark_transformed,
    mount_work_dir,
    set_unbuffered,
)

__all__ = ["NODE_STEPS", "POD_STEPS", "STEPS", "WORKFLOW_STEPS", "NodeStep", "WorkflowStep", "run_node_steps"]


@dataclass(frozen=True)
class NodeStep:
    """A step over one node: `run(template, node, placement, config)` changes only that template.

    `pod`: the step also runs in Pod mode (KFP v2), where the template is a view of the step's Pod."""

    name: str
    enabled: Callable[[Config], bool]
    run: Callable[[dict[str, Any], ElyraNode, Placement, Config], Notes]
    pod: bool = True


@dataclass(frozen=True)
class WorkflowStep:
    """A step over the whole output: `run(workflow, spec, rewritten nodes by template name, config)`."""

    name: str
    enabled: Callable[[Config], bool]
    run: Callable[[dict[str, Any], dict[str, Any], Mapping[str, RewrittenNode], Config], WorkflowNotes]


def _always(config: Config) -> bool:
    del config
    return True


STEPS: tuple[NodeStep | WorkflowStep, ...] = (
    # Always: it computes where the files land (read by every later step); the volume itself is added
    # only when `work_dir.enabled`.
    NodeStep("mount_work_dir", _always, mount_work_dir),
    NodeStep("set_unbuffered", lambda c: c.unbuffered, set_unbuffered),
    NodeStep(
        "enable_live_output",
        lambda c: (c.live.mode != "off" and c.sidecar.enabled) or c.live.main_log,
        enable_live_output,
    ),
    NodeStep("add_log_sidecar", lambda c: c.sidecar.enabled, add_log_sidecar),
    # Argo `outputs.artifacts` exist only in a Workflow template: not in Pod mode (KFP v2).
    NodeStep("declare_output_artifacts", lambda c: c.artifacts.enabled, declare_output_artifacts, pod=False),
    NodeStep("mark_transformed", _always, mark_transformed),  # idempotence rests on it
    WorkflowStep("wire_input_artifacts", lambda c: c.lineage.enabled, wire_input_artifacts),
    WorkflowStep("promote_env_parameters", lambda c: bool(c.parameters.promote_env), promote_env_parameters),
)

NODE_STEPS = tuple(s for s in STEPS if isinstance(s, NodeStep))
WORKFLOW_STEPS = tuple(s for s in STEPS if isinstance(s, WorkflowStep))
POD_STEPS = tuple(s for s in NODE_STEPS if s.pod)


def run_node_steps(
    steps: tuple[NodeStep, ...],
    template: dict[str, Any],
    node: ElyraNode,
    config: Config,
    place: Placement | None = None,
) -> tuple[Placement, Notes]:
    """Run the enabled `steps` in order on one node's template; what they placed and what they said."""
    place = Placement() if place is None else place
    notes = Notes()
    for step in steps:
        if step.enabled(config):
            result = step.run(template, node, place, config)
            notes.added += result.added
            notes.warnings += result.warnings
    return place, notes
