"""Pod mode: what gets injected into the Pod of one Elyra step on Kubeflow Pipelines v2 (Elyra 4.1+).

KFP v2 has no Workflow to rewrite (every step runs from one shared pod template whose command arrives at
run time), so the webhook instruments each step's Pod at CREATE. What it adds is what `transform` adds to a
Workflow template: the same registered node steps (`_registry.POD_STEPS`), the same builders, the same
typed `Change`s, run on a view of the Pod shaped like a template (`container` is main; `volumes` and
`initContainers` are the Pod's; `sidecars` land in the Pod's containers). Only what Argo does not do for a
container it did not create is added here: main's exit-code file for the sidecar to stop by itself, and the
kill command Argo execs to signal it. Recognising the step from an AdmissionReview, the opt-in and the JSON
Patch belong to the webhook (`elyra_sidecar.webhook._pod`). Design and citations: docs/pod-mode.md.

Where the two modes once differed, the Workflow mode's rule now holds for both: the live directory sits at
the work volume's root (an init container that created it below, in the bootstrapper's directory, would own
that directory, and main, running as another user, could not write there), and `PYTHONUNBUFFERED=1` goes to
every node (the bootstrapper itself is a Python process for R nodes too: its own lines reach main's log as
they are printed).
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from elyra_sidecar import contract
from elyra_sidecar.transformer._argo import copy_tree
from elyra_sidecar.transformer._config import Config
from elyra_sidecar.transformer._elyra import ElyraNode, NodeParseError, read_elyra_node
from elyra_sidecar.transformer._kfp_outputs import add_launcher_outputs
from elyra_sidecar.transformer._registry import POD_STEPS, run_node_steps
from elyra_sidecar.transformer._steps import Change, Placement, _number, sidecar_credentials

__all__ = [
    "ARGO_VAR_RUN",
    "KILL_CMD_ANNOTATION_PREFIX",
    "MAIN",
    "MAIN_EXIT_FILE",
    "PodError",
    "PodResult",
    "instrument_pod",
    "kill_command",
    "read_command",
]

#: Argo's name for the user container of a step ("argo task user container is always called main").
MAIN = "main"
#: Argo's executor volume, mounted in every container it creates; emissary writes exit codes there.
ARGO_VAR_RUN = "/var/run/argo"
#: Written by main's emissary when main's command has exited (all Argo 3.3-4.0 releases KFP ships).
MAIN_EXIT_FILE = contract.ARGO_MAIN_EXIT_CODE_FILE
#: `workflows.argoproj.io/kill-cmd-<container>`: the command Argo execs to signal an injected container.
KILL_CMD_ANNOTATION_PREFIX = "workflows.argoproj.io/kill-cmd-"


class PodError(ValueError):
    """The input is not a Pod this tool can instrument; the message says what and where."""


@dataclass(frozen=True)
class PodResult:
    """The instrumented Pod and what was done. The input is never mutated; `pod` is a new object, and the
    sidecar is the last of its `spec.containers`.

    When nothing was added, `pod` is the input's (shallow) copy and one of these says why: `skipped`, there
    is nothing to do (instrumented already, a notebook node); `refused`, it cannot be done in this Pod (a
    problem to show the user: main has a workingDir, a mount inside the work dir, ...)."""

    pod: dict[str, Any]
    added: tuple[Change, ...]
    warnings: tuple[str, ...]
    skipped: str = ""
    refused: str = ""

    @property
    def changed(self) -> bool:
        return not (self.skipped or self.refused)


def read_command(argv: Sequence[str], where: str) -> ElyraNode | None:
    """The Elyra node a container's user command (`sh -c <script> ...`) runs, read exactly as in a Workflow
    template; None when it runs none. Raises NodeParseError naming `where` when the script calls the
    bootstrapper but its command line cannot be read."""
    template = {"name": MAIN, "container": {"command": list(argv[:2]), "args": list(argv[2:])}}
    try:
        return read_elyra_node(template, 0)
    except NodeParseError as exc:
        message = str(exc).replace("spec.templates[0].container", where).replace("spec.templates[0]", where)
        raise NodeParseError(message) from exc


def kill_command(config: Config) -> list[str] | None:
    """The command Argo should exec in the sidecar to signal it (`%d` = the signal), derived from
    `sidecar.command` (`elyra-sidecar tail` -> `elyra-sidecar stop --signal %d`); None when it ends in
    something else."""
    command = list(config.sidecar.command)
    if command[-1:] != [contract.TAIL_COMMAND]:
        return None
    return [*command[:-1], contract.STOP_COMMAND, contract.ARG_STOP_SIGNAL, "%d"]


def _within(path: str, root: str) -> bool:
    root = root.rstrip("/") or "/"
    return path == root or path.startswith(root.rstrip("/") + "/")


def _items(value: Any, where: str) -> list[Any]:
    """`value` as a list of mappings (absent: empty); raises PodError naming `where` otherwise."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        raise PodError(f"{where}: must be a list of mappings")
    return value


def _main_index(pod: Any) -> int:
    """Where main is in `pod.spec.containers`, after checking the fields the steps read; raises PodError."""
    if not isinstance(pod, Mapping) or not isinstance(pod.get("spec"), Mapping):
        raise PodError("not a Pod (no spec mapping)")
    metadata = pod.get("metadata")
    if metadata is not None and not (
        isinstance(metadata, Mapping) and isinstance(metadata.get("annotations") or {}, Mapping)
    ):
        raise PodError("metadata.annotations: must be a mapping")
    spec = pod["spec"]
    for key in ("volumes", "initContainers"):
        _items(spec.get(key), f"spec.{key}")
    containers = _items(spec.get("containers"), "spec.containers")
    index = next((i for i, c in enumerate(containers) if c.get("name") == MAIN), None)
    if index is None:
        raise PodError("spec.containers: no container named main (not an Argo step Pod)")
    main = containers[index]
    for key in ("env", "volumeMounts"):
        _items(main.get(key), f"spec.containers[{index}].{key}")
    return index


def _skip(pod: Mapping[str, Any], node: ElyraNode, config: Config) -> str:
    """Why there is nothing to do: the Pod is instrumented already, or holds something of ours, or the
    node writes no log ("" when there is something to do)."""
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    if contract.ANNOTATION_TRANSFORMED in annotations:
        marker = annotations[contract.ANNOTATION_TRANSFORMED]
        return f"already instrumented ({contract.ANNOTATION_TRANSFORMED}: {marker})"
    spec = pod["spec"]
    names = {c.get("name") for key in ("containers", "initContainers") for c in spec.get(key) or []}
    for name in (config.sidecar.name, config.live.init_container_name):
        if name in names:
            return f"the Pod already has a container named {name!r}"
    if any(v.get("name") == config.work_dir.volume_name for v in spec.get("volumes") or []):
        return f"the Pod already has a volume named {config.work_dir.volume_name!r}"
    if node.log_file is None:
        return "notebook node: it writes no .log (its cells stream to main's log)"
    return ""


def _refusal(main: Mapping[str, Any], node: ElyraNode, config: Config, where: str) -> str:
    """Why the work dir cannot be set up in this Pod ("" when it can): Pod mode adds all or nothing."""
    cfg = config.work_dir
    if not config.sidecar.enabled:
        return "sidecar.enabled is off: Pod mode has nothing to add"
    if not (cfg.enabled and cfg.set_working_dir):
        return "work_dir.enabled and work_dir.set_working_dir must be on for Pod mode"
    if main.get("workingDir"):
        return (
            f"{where}.workingDir is already {main['workingDir']!r}; the bootstrapper's files would not be "
            "where the sidecar looks"
        )
    for mount in main.get("volumeMounts") or []:
        path = str(mount.get("mountPath", ""))
        if _within(path, cfg.mount_path):
            return f"{where} already mounts {mount.get('name')!r} at {path}, inside work_dir.mount_path"
    if posixpath.isabs(node.run_dir):
        return f"the bootstrapper runs in {node.run_dir} (an absolute `cd`), not in the working directory"
    if not _within(posixpath.normpath(posixpath.join(cfg.mount_path, node.run_dir)), cfg.mount_path):
        return f"the bootstrapper runs in {node.run_dir!r}, outside the working directory"
    return ""


def instrument_pod(pod: Any, node: ElyraNode, config: Config | None = None) -> PodResult:
    """Instrument the Pod of one Elyra step (KFP v2) that runs `node` in its `main` container.

    The node steps of the Workflow mode run on the Pod (work dir, unbuffered output, live hook, log
    sidecar, the transformed annotation), plus what only a Pod needs: the sidecar stops on main's
    exit-code file and Argo gets a kill command for it. All or nothing: when the work dir cannot be set up
    (main has a workingDir or a mount inside the work dir, a notebook node, ...), `refused` says why and
    the Pod is unchanged. The input is never mutated. Raises PodError when `pod` is not a Pod with a
    `main` container whose fields the steps read have their types."""
    config = config or Config()
    index = _main_index(pod)
    unchanged = dict(pod)
    skipped = _skip(pod, node, config)
    if skipped:
        return PodResult(unchanged, (), (), skipped=skipped)
    refused = _refusal(pod["spec"]["containers"][index], node, config, f"spec.containers[{index}]")
    if refused:
        return PodResult(unchanged, (), (), refused=refused)
    new: dict[str, Any] = copy_tree(unchanged)
    spec = new["spec"]
    main = spec["containers"][index]
    metadata = new["metadata"] = new.get("metadata") or {}
    if metadata.get("annotations") is None:  # `annotations: null` reads as absent, as the API server reads it
        metadata.pop("annotations", None)
    # The template view: the steps write into main, the Pod's own lists and metadata (shared, not copied).
    view: dict[str, Any] = {"name": MAIN, "container": main, "metadata": metadata, "sidecars": []}
    absent = [key for key in ("volumes", "initContainers") if key not in spec]
    for key in ("volumes", "initContainers"):
        view[key] = spec[key] = spec.get(key) or []
    mounts = main.get("volumeMounts") or []
    argo_mount = next((m for m in mounts if str(m.get("mountPath", "")).rstrip("/") == ARGO_VAR_RUN), None)
    place, notes = run_node_steps(POD_STEPS, view, node, config, Placement(argo_mount=argo_mount))
    warnings = list(notes.warnings)
    added = list(notes.added)
    side = config.sidecar
    if not any(c.get("name") == side.name for c in view["sidecars"]):  # pragma: no cover - _refusal
        return PodResult(unchanged, (), tuple(warnings), refused="no sidecar could be added")
    spec["containers"].extend(view["sidecars"])
    if (
        place.run_dir is not None
    ):  # opt-in (artifacts.kfp_v2): the log and outputs as the launcher's artifacts
        log_dir = place.live_dir or place.run_dir
        added += add_launcher_outputs(
            spec, main, node, config, run_dir=place.run_dir, log_dir=log_dir, warnings=warnings
        )
    for key in absent:
        if not spec[key]:
            del spec[key]
    _pod_warnings(new, main, place, config, warnings)
    annotations = metadata.setdefault("annotations", {})
    stop = kill_command(config)
    if stop is not None:
        annotations[KILL_CMD_ANNOTATION_PREFIX + side.name] = json.dumps(stop)
        added.append(Change("annotation", f"annotation {KILL_CMD_ANNOTATION_PREFIX}{side.name}"))
    else:
        warnings.append(
            "sidecar.command does not end in `tail`, so no kill command is named; "
            f"Argo falls back to {ARGO_VAR_RUN}/argoexec kill"
        )
    return PodResult(new, tuple(added), tuple(warnings))


def _pod_warnings(
    pod: Mapping[str, Any], main: Mapping[str, Any], place: Placement, config: Config, warnings: list[str]
) -> None:
    """What a user of this Pod should know: the log not mirrored, the sidecar stopped late, cut short."""
    side = config.sidecar
    credentials, credential_mounts = sidecar_credentials(main)
    names = {e.get("name") for e in credentials}
    keys = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= names
    web_identity = set(contract.WEB_IDENTITY_ENV) <= names and bool(credential_mounts)
    if side.mirror and not keys and not web_identity:
        warnings.append(
            "main has no AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY entries (nor AWS_ROLE_ARN/"
            "AWS_WEB_IDENTITY_TOKEN_FILE with the token's mount): the log is not mirrored"
        )
    if place.argo_mount is None:
        warnings.append(f"main does not mount {ARGO_VAR_RUN}: {side.name} stops only when Argo signals it")
    grace = pod["spec"].get("terminationGracePeriodSeconds")
    if isinstance(grace, int) and grace <= side.shutdown_deadline_seconds:
        warnings.append(
            f"terminationGracePeriodSeconds {grace} is not above sidecar.shutdown_deadline_seconds "
            f"{_number(side.shutdown_deadline_seconds)}: the final upload may be cut short"
        )
