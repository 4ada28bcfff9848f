"""Pod mode: instrument the Pod of an Elyra 4.1+ step on Kubeflow Pipelines v2, at Pod CREATE.

KFP v2 runs every step from one shared pod template whose image, command and env arrive only at run time
(the driver's `pod-spec-patch`), so a Workflow rewrite cannot reach a single step: the Pod can. An Elyra step
is recognised by reading its `main` container, never by labels (absent on KFP 2.0, possibly another task's
on 2.1-2.5): the command is the KFP launcher behind one or two `argoexec emissary ... --` prefixes, and the
user command after the launcher's `--` is Elyra's `sh -c` script running `bootstrapper.py`, read with the
transformer's shell reader and bootstrapper option table. Design and source citations: docs/pod-mode.md.

`mutate_pod()` is pure (Pod in, JSON Patch and warnings out), never raises and never denies; main's image,
command and args are never changed. `admit_pod()` wraps it into an AdmissionReview response.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from elyra_sidecar import contract
from elyra_sidecar._version import version
from elyra_sidecar.transformer._config import Config
from elyra_sidecar.transformer._elyra import ElyraNode, NodeParseError, read_elyra_node
from elyra_sidecar.transformer._steps import live_hook
from elyra_sidecar.transformer._transform import KFP_V2_NOTE
from elyra_sidecar.webhook._patch import make_patch

__all__ = [
    "KILL_CMD_ANNOTATION_PREFIX",
    "LAUNCHER_PATH",
    "MAIN_EXIT_FILE",
    "POD_MODE_NOTE",
    "PodModeConfig",
    "PodOutcome",
    "kill_command",
    "mutate_pod",
    "read_step",
]

#: Argo's name for the user container of a step ("argo task user container is always called main").
MAIN = "main"
#: Where KFP's `kfp-launcher` init container copies the launcher (`component.KFPLauncherPath`).
LAUNCHER_PATH = "/kfp-launcher/launch"
#: Argo's executor volume, mounted in every container it creates; emissary writes exit codes there.
ARGO_VAR_RUN = "/var/run/argo"
#: Written by main's emissary when main's command has exited (all Argo 3.3-4.0 releases KFP ships).
MAIN_EXIT_FILE = contract.ARGO_MAIN_EXIT_CODE_FILE
#: `workflows.argoproj.io/kill-cmd-<container>`: the command Argo execs to signal an injected container.
KILL_CMD_ANNOTATION_PREFIX = "workflows.argoproj.io/kill-cmd-"
_EMISSARY = ("argoexec", "emissary")
_MAX_PREFIXES = 3  # KFP 2.0-2.2 have two (the driver's own and Argo's); more means something else

#: What `transform` says about a KFP v2 IR instead of a bare error (the transformer's check_workflow).
#: What `transform` says about a KFP v2 IR (the text lives with the transformer, which cannot import us).
POD_MODE_NOTE = KFP_V2_NOTE

Result = Literal["patched", "unchanged", "skipped", "error"]


@dataclass(frozen=True)
class PodModeConfig:
    """Pod-mode settings not (yet) in `Config` (the lead may move them under `webhook.pods`)."""

    #: The command Argo execs to stop elyra-log (`%d` = the signal). None: derived from `sidecar.command`
    #: (`elyra-sidecar tail` -> `elyra-sidecar stop --signal %d`).
    kill_command: tuple[str, ...] | None = None


@dataclass(frozen=True)
class PodOutcome:
    """What `mutate_pod` decided: the JSON Patch (RFC 6902) to send, warnings for the user, and why."""

    patch: list[dict[str, Any]]
    warnings: list[str]
    result: Result
    reason: str
    #: What was added (for the server's log line).
    added: list[str] = field(default_factory=list)


def _copy(value: Any) -> Any:
    """A deep copy of plain JSON data."""
    if isinstance(value, Mapping):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


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
    # The transformer's reader takes a container template: the user command is exactly what Elyra compiled.
    template = {"name": MAIN, "container": {"command": user_argv[:2], "args": user_argv[2:]}}
    try:
        node = read_elyra_node(template, 0)
    except NodeParseError as exc:
        message = str(exc).replace("spec.templates[0].container", where).replace("spec.templates[0]", where)
        raise NodeParseError(message) from exc
    if node is None:
        return None, "not an Elyra generic node"
    return node, ""


def kill_command(config: Config, pod_config: PodModeConfig) -> list[str] | None:
    """The command Argo should exec in elyra-log to signal it, or None when it cannot be derived."""
    if pod_config.kill_command is not None:
        return list(pod_config.kill_command)
    command = list(config.sidecar.command)
    if command[-1:] != [contract.TAIL_COMMAND]:
        return None
    return [*command[:-1], contract.STOP_COMMAND, contract.ARG_STOP_SIGNAL, "%d"]


def _wants_live(node: ElyraNode, config: Config) -> bool:
    # The same rule as the transformer's enable_live_output: Python nodes of Elyra >= 4.0 (or forced on).
    if node.kind != "python" or config.live.mode == "off":
        return False
    return config.live.mode == "on" or (node.elyra_version is not None and node.elyra_version >= (4, 0, 0))


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


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


def _already(pod: Mapping[str, Any], annotations: Mapping[str, Any], config: Config) -> str:
    if contract.ANNOTATION_TRANSFORMED in annotations:
        marker = annotations[contract.ANNOTATION_TRANSFORMED]
        return f"already instrumented ({contract.ANNOTATION_TRANSFORMED}: {marker})"
    spec = pod.get("spec") or {}
    names = {c.get("name") for key in ("containers", "initContainers") for c in spec.get(key) or []}
    for name in (config.sidecar.name, config.live.init_container_name, contract.LIVE_ENV_CONTAINER):
        if name in names:
            return f"the Pod already has a container named {name!r}"
    if any(v.get("name") == config.work_dir.volume_name for v in spec.get("volumes") or []):
        return f"the Pod already has a volume named {config.work_dir.volume_name!r}"
    return ""


def _within(path: str, root: str) -> bool:
    root = root.rstrip("/") or "/"
    return path == root or path.startswith(root.rstrip("/") + "/")


def mutate_pod(
    pod: Any,
    config: Config,
    *,
    namespace_opted_in: bool = False,
    pod_config: PodModeConfig | None = None,
) -> PodOutcome:
    """Decide on one Pod: a patch that instruments an opted-in Elyra step, else no patch and the reason."""
    try:
        return _mutate(pod, config, namespace_opted_in, pod_config or PodModeConfig())
    except Exception as exc:  # never block a step: leave the Pod unchanged, and say why
        reason = f"{type(exc).__name__}: {exc}"
        return PodOutcome([], [f"not injected: {reason}"], "error", reason)


def _mutate(pod: Any, config: Config, namespace_opted_in: bool, pod_config: PodModeConfig) -> PodOutcome:
    if not isinstance(pod, Mapping) or not isinstance(pod.get("spec"), Mapping):
        return PodOutcome([], ["request.object is not a Pod"], "error", "not a Pod")
    metadata = pod.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    opted_in, why_not, warnings = _opt_in(annotations, namespace_opted_in)
    if not opted_in:
        return PodOutcome([], warnings, "unchanged", why_not)
    done = _already(pod, annotations, config)
    if done:
        return PodOutcome([], warnings, "unchanged", done)
    containers = pod["spec"].get("containers") or []
    index = next((i for i, c in enumerate(containers) if c.get("name") == MAIN), None)
    if index is None:
        return PodOutcome([], warnings, "unchanged", "no container named main (not an Argo step Pod)")
    main = containers[index]
    where = f"spec.containers[{index}]"
    try:
        node, why_not = read_step(main, where)
    except NodeParseError as exc:
        return PodOutcome([], [*warnings, f"not injected: {exc}"], "unchanged", str(exc))
    if node is None:
        return PodOutcome([], warnings, "unchanged", why_not)
    log_file = node.log_file
    if log_file is None:
        return PodOutcome(
            [], warnings, "unchanged", "notebook node: it writes no .log (its cells stream to main's log)"
        )
    refused = _refusal(main, node, config, where)
    if refused:
        return PodOutcome([], [*warnings, f"not injected: {refused}"], "unchanged", refused)
    new = _copy(pod)
    added, sidecar = _instrument(
        new, index, node=node, log_file=log_file, config=config, pod_config=pod_config, warnings=warnings
    )
    # The sidecar is appended by its own operation, so main's changes stay small element-wise edits.
    patch = [*make_patch(pod, new), {"op": "add", "path": "/spec/containers/-", "value": sidecar}]
    kind = f"{node.kind} node {posixpath.basename(node.file)}"
    return PodOutcome(patch, warnings, "patched", f"instrumented the {kind}", added)


def _refusal(main: Mapping[str, Any], node: ElyraNode, config: Config, where: str) -> str:
    """Why the work dir cannot be set up in this Pod (empty when it can)."""
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


def _instrument(
    pod: dict[str, Any],
    index: int,
    *,
    node: ElyraNode,
    log_file: str,
    config: Config,
    pod_config: PodModeConfig,
    warnings: list[str],
) -> tuple[list[str], dict[str, Any]]:
    """Change `pod` (a private copy) in place; returns what was added, and the sidecar container to append."""
    spec = pod["spec"]
    main = spec["containers"][index]
    cfg = config.work_dir
    side = config.sidecar
    added = []
    empty_dir: dict[str, Any] = {"sizeLimit": cfg.size_limit} if cfg.size_limit else {}
    spec.setdefault("volumes", []).append({"name": cfg.volume_name, "emptyDir": empty_dir})
    main.setdefault("volumeMounts", []).append({"name": cfg.volume_name, "mountPath": cfg.mount_path})
    main["workingDir"] = cfg.mount_path
    added.append(f"emptyDir {cfg.volume_name} at {cfg.mount_path} (main's workingDir)")
    run_dir = posixpath.normpath(posixpath.join(cfg.mount_path, node.run_dir))
    env = main.setdefault("env", [])
    if (
        config.unbuffered
        and node.kind == "python"
        and not any(e.get("name") == "PYTHONUNBUFFERED" for e in env)
    ):
        env.append({"name": "PYTHONUNBUFFERED", "value": "1"})
        added.append("env PYTHONUNBUFFERED=1")
    follow_dir = run_dir
    if _wants_live(node, config):
        live_dir = _enable_live(
            spec, main, node=node, log_file=log_file, run_dir=run_dir, config=config, warnings=warnings
        )
        if live_dir is not None:
            follow_dir = live_dir
            added.append(f"live output: init container {config.live.init_container_name} ({live_dir})")
    argo_mount = next(
        (
            m
            for m in main.get("volumeMounts") or []
            if str(m.get("mountPath", "")).rstrip("/") == ARGO_VAR_RUN
        ),
        None,
    )
    args = [contract.ARG_DIR, follow_dir, contract.ARG_FILE, log_file]
    credentials = [_copy(e) for e in env if e.get("name") in contract.CREDENTIAL_ENV]
    key = posixpath.join(node.cos_directory, log_file)  # where the bootstrapper uploads it at the end
    if side.mirror:
        args += [contract.ARG_ENDPOINT, node.cos_endpoint, contract.ARG_BUCKET, node.cos_bucket]
        args += [contract.ARG_KEY, key, contract.ARG_UPLOAD_INTERVAL, _number(side.upload_interval_seconds)]
        if side.ca_bundle:
            args += [contract.ARG_CA_BUNDLE, side.ca_bundle]
        names = {e.get("name") for e in credentials}
        if not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= names:
            warnings.append(
                "main has no AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY entries: the log is not mirrored"
            )
    args += [
        contract.ARG_SHUTDOWN_DEADLINE,
        _number(side.shutdown_deadline_seconds),
        contract.ARG_FORMAT,
        side.log_format,
    ]
    mounts: list[dict[str, Any]] = [{"name": cfg.volume_name, "mountPath": cfg.mount_path, "readOnly": True}]
    if argo_mount is not None:
        # Read-only: the sidecar only watches for main's exit-code file (and Argo's fallback kill is there).
        mounts.append({"name": argo_mount["name"], "mountPath": ARGO_VAR_RUN, "readOnly": True})
        args += [contract.ARG_MAIN_EXIT_FILE, MAIN_EXIT_FILE]
    else:
        warnings.append(f"main does not mount {ARGO_VAR_RUN}: {side.name} stops only when Argo signals it")
    # `--name=value` as in v1 (transformer/_steps.py): a log named `-x.log` must not read as an option.
    args = [f"{name}={value}" for name, value in zip(args[::2], args[1::2], strict=True)]
    sidecar: dict[str, Any] = {
        "name": side.name,
        "image": side.image,
        "imagePullPolicy": side.image_pull_policy,
        "command": list(side.command),
        "args": args,
    }
    if side.mirror and credentials:
        sidecar["env"] = credentials
    sidecar["resources"] = _copy(side.resources)
    sidecar["securityContext"] = _copy(side.security_context)
    sidecar["volumeMounts"] = mounts
    added.append(
        f"container {side.name} following {log_file}" + (f", mirrored to {key}" if side.mirror else "")
    )
    grace = spec.get("terminationGracePeriodSeconds")
    if isinstance(grace, int) and grace <= side.shutdown_deadline_seconds:
        warnings.append(
            f"terminationGracePeriodSeconds {grace} is not above sidecar.shutdown_deadline_seconds "
            f"{_number(side.shutdown_deadline_seconds)}: the final upload may be cut short"
        )
    metadata = pod.setdefault("metadata", {})
    annotations = metadata.setdefault("annotations", {})
    stop = kill_command(config, pod_config)
    if stop is not None:
        annotations[KILL_CMD_ANNOTATION_PREFIX + side.name] = json.dumps(stop)
        added.append(f"annotation {KILL_CMD_ANNOTATION_PREFIX}{side.name}")
    else:
        warnings.append(
            "sidecar.command does not end in `tail`, so no kill command is named; "
            f"Argo falls back to {ARGO_VAR_RUN}/argoexec kill"
        )
    annotations[contract.ANNOTATION_TRANSFORMED] = version()
    return added, sidecar


def _enable_live(
    spec: dict[str, Any],
    main: dict[str, Any],
    *,
    node: ElyraNode,
    log_file: str,
    run_dir: str,
    config: Config,
    warnings: list[str],
) -> str | None:
    """Elyra 4.x keeps the script's output in memory: tee it to a file the sidecar follows (as on 4.0).
    The wiring is the transformer's (`live_hook`), so both modes give main the same env and containers."""
    live_dir = posixpath.join(run_dir, config.live.dir_name)
    wired = live_hook(
        main,
        live_dir=live_dir,
        script=posixpath.basename(node.file),
        live_log=posixpath.join(live_dir, log_file),
        main_log=config.live.main_log,  # the script's lines in main's log too (the KFP Logs tab)
        mount={"name": config.work_dir.volume_name, "mountPath": config.work_dir.mount_path},
        config=config,
    )
    if isinstance(wired, str):
        warnings.append(f"no live output: {wired}")
        return None
    # After KFP's kfp-launcher init container: they only prepare files, in their own volumes.
    spec.setdefault("initContainers", []).extend(wired)
    return live_dir
