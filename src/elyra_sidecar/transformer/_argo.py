"""Types of the Argo/Kubernetes snippets the steps build, and one builder for each repeated block.

The rewrite works on plain dicts (it must keep every key it does not know); these `TypedDict`s are plain
dicts at run time and only tell mypy and the reader which keys a snippet we build carries.
"""

from __future__ import annotations

from typing import Any, TypedDict

from elyra_sidecar.transformer._config import SidecarConfig

__all__ = [
    "Artifact",
    "ArtifactArgument",
    "Container",
    "EnvVar",
    "InputArtifact",
    "Volume",
    "VolumeMount",
    "copy_mount",
    "copy_tree",
    "tool_container",
]


class _EnvVarName(TypedDict):
    name: str


class EnvVar(_EnvVarName, total=False):
    """`env[]` entry: a literal `value` or a `valueFrom` reference."""

    value: str
    valueFrom: dict[str, Any]


class _MountBase(TypedDict):
    name: str
    mountPath: str


class VolumeMount(_MountBase, total=False):
    """`volumeMounts[]` entry (only the keys a copy keeps)."""

    readOnly: bool
    subPath: str
    subPathExpr: str


class Volume(TypedDict):
    """A template `volumes[]` entry we add (an emptyDir)."""

    name: str
    emptyDir: dict[str, Any]


class _ContainerBase(TypedDict):
    name: str
    image: str
    imagePullPolicy: str
    command: list[str]
    args: list[str]


class Container(_ContainerBase, total=False):
    """A container we add (the log sidecar, the live-output init container)."""

    env: list[EnvVar]
    resources: dict[str, Any]
    securityContext: dict[str, Any]
    volumeMounts: list[VolumeMount]


class InputArtifact(TypedDict):
    """`inputs.artifacts[]` entry."""

    name: str
    path: str
    optional: bool


class Artifact(InputArtifact):
    """`outputs.artifacts[]` entry (tar archive, optional: a missing file never fails the step)."""

    archive: dict[str, Any]


#: DAG task `arguments.artifacts[]` entry (`from` is a Python keyword, hence the functional form).
ArtifactArgument = TypedDict("ArtifactArgument", {"name": str, "from": str})


def copy_mount(mount: dict[str, Any], *, read_only: bool | None = None) -> VolumeMount:
    """The same volume at the same place, for another container: `subPath`/`subPathExpr` kept (they decide
    what is seen there), `readOnly` kept unless `read_only` says otherwise."""
    copied: VolumeMount = {"name": str(mount["name"]), "mountPath": str(mount["mountPath"])}
    only = mount.get("readOnly") if read_only is None else read_only
    if only:
        copied["readOnly"] = True
    for key in ("subPath", "subPathExpr"):
        if mount.get(key):
            copied[key] = str(mount[key])
    return copied


def tool_container(
    name: str,
    *,
    cfg: SidecarConfig,
    command: list[str],
    args: list[str],
    mount: VolumeMount,
    env: list[EnvVar] | None = None,
) -> Container:
    """A container of ours: the sidecar image, its pull policy, resources and security context (private
    copies, never shared between templates), one mount of the shared volume."""
    container: Container = {
        "name": name,
        "image": cfg.image,
        "imagePullPolicy": cfg.image_pull_policy,
        "command": command,
        "args": args,
    }
    if env:
        container["env"] = env
    container["resources"] = copy_tree(cfg.resources)
    container["securityContext"] = copy_tree(cfg.security_context)
    container["volumeMounts"] = [mount]
    return container


def copy_tree(value: Any) -> Any:
    """A deep copy of plain YAML/JSON data (dicts, lists, scalars); much faster than copy.deepcopy."""
    # Leaves (most of the tree) are taken as they are, without a call each.
    if isinstance(value, dict):
        return {k: copy_tree(v) if isinstance(v, (dict, list)) else v for k, v in value.items()}
    if isinstance(value, list):
        return [copy_tree(v) if isinstance(v, (dict, list)) else v for v in value]
    return value
