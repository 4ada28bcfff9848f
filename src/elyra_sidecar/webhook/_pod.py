"""Pod mode, the admission side: recognise the Pod of an Elyra 4.1+ step on KFP v2 at CREATE, and patch it.

KFP v2 runs every step from one shared pod template whose image, command and env arrive only at run time
(the driver's `pod-spec-patch`), so a Workflow rewrite cannot reach a single step: the Pod can. An Elyra step
is recognised by reading its `main` container, never by labels (absent on KFP 2.0, possibly another task's
on 2.1-2.5): the command is the KFP launcher behind one or two `argoexec emissary ... --` prefixes, and the
user command after the launcher's `--` is Elyra's `sh -c` script running `bootstrapper.py`, read with the
transformer's reader (`read_command`). What the Pod gets is decided by the transformer (`instrument_pod`,
the Workflow mode's node steps); this module only adds the opt-in and the JSON Patch. Design and source
citations: docs/pod-mode.md.

`mutate_pod()` is pure (Pod in, JSON Patch and warnings out), never raises and never denies; main's image,
command and args are never changed. `admit_pod()` (in `_admission`) wraps it into an AdmissionReview response.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from elyra_sidecar import contract
from elyra_sidecar.transformer import (
    KFP_V2_NOTE,
    Config,
    ElyraNode,
    NodeParseError,
    instrument_pod,
    read_command,
)
from elyra_sidecar.webhook._patch import make_patch

__all__ = ["LAUNCHER_PATH", "POD_MODE_NOTE", "PodOutcome", "mutate_pod", "read_step"]

#: Argo's name for the user container of a step ("argo task user container is always called main").
MAIN = "main"
#: Where KFP's `kfp-launcher` init container copies the launcher (`component.KFPLauncherPath`).
LAUNCHER_PATH = "/kfp-launcher/launch"
_EMISSARY = ("argoexec", "emissary")
_MAX_PREFIXES = 3  # KFP 2.0-2.2 have two (the driver's own and Argo's); more means something else

#: What `transform` says about a KFP v2 IR (the text lives with the transformer, which cannot import us).
POD_MODE_NOTE = KFP_V2_NOTE

Result = Literal["patched", "unchanged", "skipped", "error"]


@dataclass(frozen=True)
class PodOutcome:
    """What `mutate_pod` decided: the JSON Patch (RFC 6902) to send, warnings for the user, and why."""

    patch: list[dict[str, Any]]
    warnings: list[str]
    result: Result
    reason: str
    #: What was added (for the server's log line).
    added: list[str] = field(default_factory=list)


def _strings(value: Any) -> list[str] | None:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return None
    return list(value)


def _unwrap_emissary(command: list[str]) -> int | None:
    """The index after every `argoexec emissary [options] --` prefix, or None when they cannot be read."""
    index = prefixes = 0
    while (
        index + 1 < len(command)
        and posixpath.basename(command[index]) == _EMISSARY[0]
        and command[index + 1] == _EMISSARY[1]
    ):
        if prefixes == _MAX_PREFIXES:
            return None
        try:
            index = command.index("--", index + 2) + 1
        except ValueError:
            return None
        prefixes += 1
    return index


def read_step(main: Mapping[str, Any], where: str) -> tuple[ElyraNode | None, str]:
    """Read an Elyra step from a KFP v2 `main` container: (node, "") or (None, why it is not one).

    Raises NodeParseError when the script runs the bootstrapper but its command line cannot be read."""
    command = _strings(main.get("command"))
    args = _strings(main.get("args") or [])
    if command is None or args is None:
        return None, "main's command or args are not lists of strings"
    start = _unwrap_emissary(command)
    if start is None:
        return None, "main's `argoexec emissary` prefix cannot be read"
    if start >= len(command) or command[start] != LAUNCHER_PATH:
        what = command[start] if start < len(command) else "nothing"
        role = "a KFP driver Pod" if posixpath.basename(what) == "driver" else "not a KFP v2 executor Pod"
        return None, f"{role} (main runs {what!r}, not {LAUNCHER_PATH})"
    try:
        separator = command.index("--", start + 1)
    except ValueError:
        return None, "the KFP launcher's command has no `--` before the user command"
    user_argv = command[separator + 1 :] + args
    if len(user_argv) < 3 or "bootstrapper.py" not in user_argv[2]:
        return None, "not an Elyra generic node (the user command does not run bootstrapper.py)"
    node = read_command(user_argv, where)
    if node is None:
        return None, "not an Elyra generic node"
    return node, ""


def _opt_in(annotations: Mapping[str, Any], namespace_opted_in: bool) -> tuple[bool, str, list[str]]:
    value = annotations.get(contract.ANNOTATION_INJECT)
    if value == "false":
        return False, f'opted out ({contract.ANNOTATION_INJECT}: "false")', []
    if value == "true":
        return True, "", []
    warnings = []
    if value is not None:
        warnings.append(f'{contract.ANNOTATION_INJECT}: {value!r} is neither "true" nor "false"')
    if namespace_opted_in:
        return True, "", warnings
    return False, f'not opted in (no {contract.ANNOTATION_INJECT}: "true", namespace not opted in)', warnings


def mutate_pod(pod: Any, config: Config, *, namespace_opted_in: bool = False) -> PodOutcome:
    """Decide on one Pod: a patch that instruments an opted-in Elyra step, else no patch and the reason."""
    try:
        return _mutate(pod, config, namespace_opted_in)
    except Exception as exc:  # never block a step: leave the Pod unchanged, and say why
        reason = f"{type(exc).__name__}: {exc}"
        return PodOutcome([], [f"not injected: {reason}"], "error", reason)


def _mutate(pod: Any, config: Config, namespace_opted_in: bool) -> PodOutcome:
    if not isinstance(pod, Mapping) or not isinstance(pod.get("spec"), Mapping):
        return PodOutcome([], ["request.object is not a Pod"], "error", "not a Pod")
    metadata = pod.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    opted_in, why_not, warnings = _opt_in(annotations, namespace_opted_in)
    if not opted_in:
        return PodOutcome([], warnings, "unchanged", why_not)
    containers = pod["spec"].get("containers") or []
    index = next((i for i, c in enumerate(containers) if c.get("name") == MAIN), None)
    if index is None:
        return PodOutcome([], warnings, "unchanged", "no container named main (not an Argo step Pod)")
    try:
        node, why_not = read_step(containers[index], f"spec.containers[{index}]")
    except NodeParseError as exc:
        return PodOutcome([], [*warnings, f"not injected: {exc}"], "unchanged", str(exc))
    if node is None:
        return PodOutcome([], warnings, "unchanged", why_not)
    result = instrument_pod(pod, node, config)
    warnings += result.warnings
    if result.skipped:
        return PodOutcome([], warnings, "unchanged", result.skipped)
    if result.refused:
        return PodOutcome([], [*warnings, f"not injected: {result.refused}"], "unchanged", result.refused)
    return PodOutcome(_patch(pod, result.pod), warnings, "patched", _what(node), list(result.added))


def _what(node: ElyraNode) -> str:
    return f"instrumented the {node.kind} node {posixpath.basename(node.file)}"


def _patch(old: Mapping[str, Any], new: dict[str, Any]) -> list[dict[str, Any]]:
    """The JSON Patch from `old` to `new`. The sidecar (new's last container) is appended by its own
    operation, so main's changes stay small element-wise edits of the containers list."""
    containers = new["spec"]["containers"]
    before = {**new, "spec": {**new["spec"], "containers": containers[:-1]}}
    return [*make_patch(old, before), {"op": "add", "path": "/spec/containers/-", "value": containers[-1]}]
