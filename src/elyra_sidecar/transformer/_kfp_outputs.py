"""Pod mode, opt-in (config `artifacts.kfp_v2`): an Elyra step's log and declared outputs as KFP v2 artifacts.

On KFP v2 an output artifact reaches ML Metadata, and the step's Input/Output tab, only through the launcher
in `main`: after the user command succeeded it uploads every entry of `outputs.artifacts` in its
`--executor_input` (protobuf JSON of `ExecutorInput`) from the local path its URI maps to
(`minio://b/k` -> `/minio/b/k`, `s3://` -> `/s3/`, `gs://` -> `/gcs/`) and records it, whatever the IR
declared: the driver's own `executor-logs` entry, which no IR declares, is listed in the UI the same way.
Elyra 4.1's components declare no outputs, so two edits make our files artifacts (docs/pod-mode.md,
"Artifacts in the KFP UI", cites the KFP sources):

1. main's `--executor_input` gets one entry per file: a copy of the driver's `executor-logs` entry with its
   name, and the last segment of its URI, replaced; that is the URI the driver provisions for an output of
   that name (`<pipeline root>/<task>/<salt>/<name>`). Nothing else of the command changes; the component
   spec is not needed (the launcher reads output parameters from it, never output artifacts).
2. an init container (`elyra-sidecar link-outputs`) mounts the scratch volume main has at `/minio` (or
   `/s3`, `/gcs`) and places a symlink at each local path, pointing at the file in the work dir.

Without an `executor-logs` entry (KFP 2.0-2.4, or `PUBLISH_LOGS=false`) there is no URI to place ours beside,
and nothing is added (a warning says so). Everything here is refused rather than guessed: an unknown
launcher flag, a duplicate key, an unexpected shape, a URI with `.`/`..` segments or `$`.

`add_launcher_outputs()` changes a private copy of the Pod in place; it is the only entry point, called
by the Pod mode (`_pod.instrument_pod`) after the node steps.
"""

from __future__ import annotations

import json
import math
import posixpath
from collections.abc import Mapping
from typing import Any

from elyra_sidecar import contract
from elyra_sidecar.transformer._argo import copy_tree, tool_container
from elyra_sidecar.transformer._config import Config
from elyra_sidecar.transformer._elyra import ElyraNode
from elyra_sidecar.transformer._steps import Change, Names, Notes, _artifact_source, artifact_name

__all__ = [
    "EXECUTOR_LOGS",
    "LAUNCHER_PATH",
    "LINK_CONTAINER",
    "LauncherInputError",
    "add_launcher_outputs",
    "find_executor_input",
    "local_path_for_uri",
]

#: Where KFP's `kfp-launcher` init container copies the launcher (`component.KFPLauncherPath`).
LAUNCHER_PATH = "/kfp-launcher/launch"
#: The driver's log artifact (provisionOutputs, driver.go@2.5.0:2024-2037, @2.17.0:755-768).
EXECUTOR_LOGS = "executor-logs"
#: Our init container.
LINK_CONTAINER = "elyra-artifact-links"
#: LocalPathForURI (launcher_v2.go@2.5.0:882-897, @2.17.0:1239-1253): scheme -> local directory.
_SCHEMES = {"gs://": "/gcs/", "minio://": "/minio/", "s3://": "/s3/"}
#: The launcher's flags (backend/src/v2/cmd/launcher-v2/main.go, 2.0.0 to HEAD): Go's flag package gives
#: a bool flag no separate value, every other flag takes the next argument unless written `--name=value`.
_BOOL_FLAGS = frozenset({"cache_disabled", "ml_pipeline_tls_enabled", "metadata_tls_enabled"})
_VALUE_FLAGS = frozenset(
    {
        "copy",
        "pipeline_name",
        "run_id",
        "parent_dag_id",
        "executor_type",
        "execution_id",
        "executor_input",
        "component_spec",
        "importer_spec",
        "task_spec",
        "pod_name",
        "pod_uid",
        "ml_pipeline_server_address",
        "ml_pipeline_server_port",
        "mlmd_server_address",
        "mlmd_server_port",
        "log_level",
        "publish_logs",
        "ca_cert_path",
    }
)
_EMISSARY = ("argoexec", "emissary")


class LauncherInputError(ValueError):
    """main's launcher command or its executor input is not what this module can edit safely."""


def local_path_for_uri(uri: str) -> str | None:
    """The launcher's local path for an artifact URI (LocalPathForURI), or None for other schemes."""
    for scheme, root in _SCHEMES.items():
        if uri.startswith(scheme):
            return root + uri[len(scheme) :]
    return None


def _launcher_start(command: list[str]) -> int:
    """Index of the launcher in main's command, after Argo's (and on KFP 2.0-2.2 the driver's) emissary."""
    index = 0
    while (
        index + 1 < len(command)
        and posixpath.basename(command[index]) == _EMISSARY[0]
        and command[index + 1] == _EMISSARY[1]
    ):
        try:
            index = command.index("--", index + 2) + 1
        except ValueError:
            raise LauncherInputError("main's `argoexec emissary` prefix has no `--`") from None
    if index >= len(command) or command[index] != LAUNCHER_PATH:
        raise LauncherInputError(f"main's command does not run {LAUNCHER_PATH}")
    return index


def find_executor_input(command: list[str]) -> tuple[int, str]:
    """(index, prefix) of the `--executor_input` value in main's command: command[index] is prefix + JSON.

    Reads the launcher's flags the way Go's flag package does, up to the `--` before the user command;
    raises LauncherInputError on a flag it does not know (its arity would be a guess) or a repeated one."""
    index = _launcher_start(command) + 1
    found: tuple[int, str] | None = None
    while index < len(command):
        arg = command[index]
        if arg == "--":
            break
        if not arg.startswith("-") or arg == "-":  # Go's flag package stops there: the rest is the command
            raise LauncherInputError(f"main's command: launcher argument {arg!r} is not a flag")
        name, equals, _ = arg.lstrip("-").partition("=")
        if arg.startswith("---") or (name not in _BOOL_FLAGS and name not in _VALUE_FLAGS):
            raise LauncherInputError(f"main's command: unknown launcher flag {arg!r}")
        if name == "executor_input":
            if found is not None:
                raise LauncherInputError("main's command: --executor_input is given twice")
            if equals:
                found = (index, arg[: arg.index("=") + 1])
            elif index + 1 < len(command):
                found = (index + 1, "")
        if name in _VALUE_FLAGS and not equals:
            index += 1  # its value
        index += 1
    else:
        raise LauncherInputError("main's command has no `--` after the launcher's flags")
    if found is None:
        raise LauncherInputError("main's command has no --executor_input")
    return found


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise LauncherInputError("the executor input repeats a key")
    return result


def _reject_constant(name: str) -> Any:
    raise LauncherInputError(f"the executor input holds {name}, which is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise LauncherInputError(f"the executor input holds the number {text}, out of range")
    return value


def _parse(text: str) -> dict[str, Any]:
    try:
        doc = json.loads(
            text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant, parse_float=_finite
        )
    except json.JSONDecodeError as exc:
        raise LauncherInputError(
            f"the executor input is not JSON ({exc.msg} at character {exc.pos})"
        ) from None
    if not isinstance(doc, dict):
        raise LauncherInputError("the executor input is not a JSON object")
    return doc


def _dump(doc: Any) -> str:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _sibling_base(artifacts: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """(URI prefix ending in `/`, the runtime artifact to copy) from the driver's executor-logs entry."""
    entry = artifacts.get(EXECUTOR_LOGS)
    if entry is None:
        raise LauncherInputError(
            f"no {EXECUTOR_LOGS!r} output to place ours beside (KFP < 2.5, or PUBLISH_LOGS=false)"
        )
    listed = entry.get("artifacts") if isinstance(entry, dict) else None
    if not isinstance(listed, list) or len(listed) != 1 or not isinstance(listed[0], dict):
        raise LauncherInputError(f"the executor input's {EXECUTOR_LOGS!r} entry is not one runtime artifact")
    runtime = listed[0]
    uri = runtime.get("uri")
    if not isinstance(uri, str) or not uri.endswith("/" + EXECUTOR_LOGS):
        raise LauncherInputError(f"the {EXECUTOR_LOGS!r} URI {uri!r} does not end in /{EXECUTOR_LOGS}")
    unknown = sorted(set(runtime) - {"name", "type", "uri", "metadata"})
    if unknown:
        raise LauncherInputError(
            f"the {EXECUTOR_LOGS!r} artifact has fields this module does not copy: {unknown}"
        )
    local = local_path_for_uri(uri)
    if local is None:
        raise LauncherInputError(
            f"the pipeline root's scheme in {uri!r} has no launcher path (gs, s3, minio)"
        )
    segments = local.split("/")[1:]
    if any(s in ("", ".", "..") for s in segments) or "\0" in uri or "?" in uri or "$" in uri:
        raise LauncherInputError(f"the {EXECUTOR_LOGS!r} URI {uri!r} is not a plain path")
    return uri[: -len(EXECUTOR_LOGS)], runtime


def _scratch_mount(main: Mapping[str, Any], local: str) -> Mapping[str, Any]:
    """main's volumeMount at the launcher's scratch directory of `local` (`/minio`, `/s3` or `/gcs`)."""
    root = "/" + local.split("/")[1]
    for mount in main.get("volumeMounts") or []:
        if str(mount.get("mountPath", "")).rstrip("/") == root and not mount.get("subPath"):
            found: Mapping[str, Any] = mount
            return found
    raise LauncherInputError(f"main mounts no volume at {root}, where the launcher uploads from")


def _wanted(
    node: ElyraNode, config: Config, run_dir: str, log_dir: str, notes: Notes
) -> list[tuple[str, str]]:
    """(name hint, absolute path in main) for the log, a notebook's outputs and each declared output."""
    cfg = config.artifacts
    wanted: list[tuple[str, str]] = []
    if cfg.log and node.log_file:
        wanted.append(("script-log", posixpath.join(log_dir, node.log_file)))
    if cfg.notebook and node.notebook_outputs:
        hints = ("notebook-output", "notebook-html")
        wanted += [(h, posixpath.join(run_dir, p)) for h, p in zip(hints, node.notebook_outputs, strict=True)]
    if cfg.outputs:
        for entry in node.outputs:
            source = _artifact_source(entry, config, notes)
            if source is not None:
                wanted.append((source, posixpath.normpath(posixpath.join(run_dir, source))))
    return wanted


def add_launcher_outputs(
    spec: dict[str, Any],
    main: dict[str, Any],
    node: ElyraNode,
    config: Config,
    *,
    run_dir: str,
    log_dir: str,
    warnings: list[str],
) -> list[Change]:
    """With `artifacts.kfp_v2` on: name the node's files in main's `--executor_input` and link them into
    place (module docstring). Changes `spec` and `main` (a private copy of the Pod) in place; returns what
    was added. Anything it cannot do safely adds nothing and a warning, never an error."""
    if not (config.artifacts.enabled and config.artifacts.kfp_v2):
        return []
    try:
        return _add(spec, main, node, config, run_dir=run_dir, log_dir=log_dir, warnings=warnings)
    except LauncherInputError as exc:
        warnings.append(f"no KFP artifacts: {exc}")
        return []


def _add(
    spec: dict[str, Any],
    main: dict[str, Any],
    node: ElyraNode,
    config: Config,
    *,
    run_dir: str,
    log_dir: str,
    warnings: list[str],
) -> list[Change]:
    names_in_pod = {c.get("name") for key in ("containers", "initContainers") for c in spec.get(key) or []}
    if LINK_CONTAINER in names_in_pod:
        raise LauncherInputError(f"the Pod already has a container named {LINK_CONTAINER!r}")
    command = main.get("command")
    if not isinstance(command, list) or not all(isinstance(a, str) for a in command):
        raise LauncherInputError("main's command is not a list of strings")
    index, prefix = find_executor_input(command)
    text = command[index][len(prefix) :]
    doc = _parse(text)
    if _dump(doc).count("$") != text.count("$"):
        # Kubernetes expands `$(VAR)` in a command: re-encoding must not make or unmake a reference.
        raise LauncherInputError("the executor input writes `$` escaped; it is left as it is")
    outputs = doc.get("outputs", {})
    # protojson leaves out an empty map: no `artifacts` is an empty one (and then has no executor-logs).
    artifacts = outputs.get("artifacts", {}) if isinstance(outputs, dict) else None
    if not isinstance(artifacts, dict):
        raise LauncherInputError("the executor input's outputs.artifacts is not a mapping")
    base, template = _sibling_base(artifacts)
    notes = Notes()
    wanted = _wanted(node, config, run_dir, log_dir, notes)
    warnings += notes.warnings
    taken = Names(artifacts)
    links: list[tuple[str, str]] = []
    added: list[Change] = []
    seen: set[str] = set()
    mount: Mapping[str, Any] | None = None
    for hint, target in wanted:
        if target in seen:
            continue
        seen.add(target)
        name = artifact_name(hint, taken)
        uri = base + name
        local = local_path_for_uri(uri)
        assert local is not None  # noqa: S101 - base was checked to have a launcher scheme
        mount = mount or _scratch_mount(main, local)
        runtime = copy_tree(template)
        runtime["uri"] = uri
        if "name" in runtime:  # KFP >= 2.15 names it (driver.go@2.17.0:781-782); earlier drivers leave it out
            runtime["name"] = name
        artifacts[name] = {"artifacts": [runtime]}
        links.append((local, target))
        added.append(Change("output_artifact", f"KFP output artifact {name} <- {target}"))
    if not links or mount is None:
        return []
    command[index] = prefix + _dump(doc)
    args = [f"--link={local}" for local, _ in links] + [f"--to={target}" for _, target in links]
    side = config.sidecar
    root = str(mount["mountPath"]).rstrip("/")
    spec.setdefault("initContainers", []).append(
        tool_container(
            LINK_CONTAINER,
            cfg=side,
            command=[side.command[0], contract.LINK_OUTPUTS_COMMAND],
            args=args,
            mount={"name": str(mount["name"]), "mountPath": root},
        )
    )
    added.append(Change("note", f"init container {LINK_CONTAINER} (links in {root})"))
    return added
