"""Step `promote_env_parameters`: node environment variables become KFP run parameters.

KFP's "Create run" form edits `spec.arguments.parameters`; Argo substitutes
`{{workflow.parameters.<name>}}` anywhere in the Workflow. So a promoted env entry keeps its name and
gets the value `{{workflow.parameters.<p>}}`, and `<p>` is added to `spec.arguments.parameters` with the
compiled value as its default (and to the `pipelines.kubeflow.org/pipeline_spec` annotation's inputs,
which the SDK writes, so the two stay consistent). Elyra's own parameters and "$N" wiring are untouched.

Naming rule (never changes any node's value silently):
- a variable with the same value on every node that has it -> one parameter named after it;
- a variable whose value differs between nodes -> one parameter per node, `<NAME>-<template>`;
- a name already taken by a workflow parameter (Elyra's own, e.g.) -> `-env` appended, then `-2`, ...
Secret-backed entries (`valueFrom`), Elyra's (`ELYRA_*`, `AWS_*`, `PYTHONPATH`) and ours are never
promoted, nor a value that already holds an Argo expression. With `all`, names that look like secrets
(`_SECRET_WORDS`) are skipped with a warning unless named explicitly: a promoted value is shown to
everyone who opens KFP's "Create run" form and is stored with every run.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from elyra_sidecar.transformer._config import Config
from elyra_sidecar.transformer._steps import (
    LIVE_LOG_ENV,
    LIVE_MAIN_ENV,
    LIVE_SCRIPT_ENV,
    Change,
    Names,
    RewrittenNode,
    WorkflowNotes,
    copy_tree,
    unique_name,
)

__all__ = ["looks_secret", "promote_env_parameters"]

_NEVER = {"PYTHONPATH", "PYTHONUNBUFFERED", LIVE_LOG_ENV, LIVE_MAIN_ENV, LIVE_SCRIPT_ENV}
_NEVER_PREFIXES = ("ELYRA_", "AWS_")
_PARAM_NAME = re.compile(r"[^A-Za-z0-9_-]+")
# Parts of a name that say it holds a secret (matched anywhere, case-insensitively: a false alarm only
# means the user names the variable explicitly).
_SECRET_WORDS = re.compile(
    r"PASSWORD|PASSWD|PASSPHRASE|PWD|SECRET|TOKEN|KEY|CREDENTIAL|PRIVATE|AUTH|CERT|SIGNATURE|SALT|COOKIE|SESSION",
    re.IGNORECASE,
)
_SPEC_ANNOTATION = "pipelines.kubeflow.org/pipeline_spec"


def looks_secret(name: str) -> bool:
    """True for names like DB_PASSWORD, API_TOKEN, SSH_KEY, AWS_CREDENTIALS."""
    return _SECRET_WORDS.search(name) is not None


def _eligible(entry: Mapping[str, Any], wanted: set[str]) -> bool:
    name = str(entry.get("name", ""))
    value = entry.get("value")
    return (
        (name in wanted or ("all" in wanted and not looks_secret(name)))
        and "valueFrom" not in entry
        and isinstance(value, str)
        and "{{" not in value
        and name not in _NEVER
        and not name.startswith(_NEVER_PREFIXES)
    )


def _unique(base: str, taken: Names) -> str:
    """`base`, else `base-env`, `base-env-2`, ..."""
    return unique_name(base if base not in taken else f"{base}-env", taken)


def promote_env_parameters(
    workflow: dict[str, Any], spec: dict[str, Any], nodes: Mapping[str, RewrittenNode], config: Config
) -> WorkflowNotes:
    """Promote the selected env entries of the rewritten nodes.

    `spec` is the output workflow's own spec (`workflow.spec`, or `.spec.workflowSpec` of a CronWorkflow);
    only `transform`'s private copies are changed."""
    notes = WorkflowNotes()
    wanted = set(config.parameters.promote_env)
    if not wanted:
        return notes
    templates = {t.get("name"): t for t in spec["templates"] if isinstance(t, dict)}
    # name -> [(template, env entry)]
    found: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    secret_looking: set[str] = set()
    for template_name in nodes:
        for entry in templates[template_name]["container"].get("env") or []:
            if _eligible(entry, wanted):
                found.setdefault(str(entry["name"]), []).append((template_name, entry))
            elif "all" in wanted and _eligible(entry, {str(entry.get("name", ""))}):
                secret_looking.add(str(entry.get("name", "")))
    notes.warnings += [
        f"--promote-env all: {name} looks like a secret; not promoted (name it explicitly to promote it)"
        for name in sorted(secret_looking)
    ]
    missing = sorted(w for w in wanted - {"all"} if w not in found)
    notes.warnings += [f"--promote-env {name}: no promotable env entry of that name" for name in missing]
    if not found:
        return notes
    arguments = spec["arguments"] = copy_tree(spec.get("arguments") or {})
    parameters = arguments.setdefault("parameters", [])
    taken = Names(str(p.get("name")) for p in parameters)
    added: list[tuple[str, str]] = []
    for env_name, uses in sorted(found.items()):
        values = {str(entry["value"]) for _, entry in uses}
        base = _PARAM_NAME.sub("-", env_name).strip("-") or "env"
        if len(values) == 1:
            groups = [(_unique(base, taken), uses)]
        else:
            groups = [(_unique(f"{base}-{template}", taken), [(template, entry)]) for template, entry in uses]
        for parameter, members in groups:
            default = str(members[0][1]["value"])
            parameters.append({"name": parameter, "value": default})
            added.append((parameter, default))
            for template, entry in members:
                entry["value"] = f"{{{{workflow.parameters.{parameter}}}}}"
                notes.of(template).added.append(
                    Change(
                        "run_parameter", f"run parameter {parameter} (default {default!r}) -> env {env_name}"
                    )
                )
    notes.warnings += _update_pipeline_spec(workflow, added)
    return notes


def _update_pipeline_spec(workflow: dict[str, Any], added: list[tuple[str, str]]) -> list[str]:
    metadata = workflow.get("metadata")
    annotations = metadata.get("annotations") if isinstance(metadata, Mapping) else None
    if not isinstance(annotations, Mapping) or _SPEC_ANNOTATION not in annotations:
        return []
    try:
        pipeline_spec = json.loads(str(annotations[_SPEC_ANNOTATION]))
    except ValueError:
        return [f"metadata.annotations[{_SPEC_ANNOTATION!r}] is not JSON; left as it was"]
    if not isinstance(pipeline_spec, dict):
        return [f"metadata.annotations[{_SPEC_ANNOTATION!r}] is not a JSON object; left as it was"]
    inputs = pipeline_spec.setdefault("inputs", [])
    inputs.extend(
        {"default": value, "name": name, "optional": True, "type": "String"} for name, value in added
    )
    new_metadata = dict(metadata)  # type: ignore[arg-type]
    new_metadata["annotations"] = {**annotations, _SPEC_ANNOTATION: json.dumps(pipeline_spec, sort_keys=True)}
    workflow["metadata"] = new_metadata
    return []
