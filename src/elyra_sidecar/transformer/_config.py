"""The transform configuration: one YAML file, shared by the CLI and the webhook's ConfigMap.

Every key, its type and its default is declared once in `_SCHEMA`-like dataclasses below; `load_config`
validates a mapping against them and names the offending key in every error. `docs/configuration.md`
lists the same keys (a test keeps the two in step).
"""

from __future__ import annotations

import dataclasses
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints

import yaml

from elyra_sidecar import contract
from elyra_sidecar._argtypes import MAX_SECONDS
from elyra_sidecar._version import version
from elyra_sidecar.transformer._yaml import YamlLimitError, load_documents

__all__ = [
    "ArtifactsConfig",
    "Config",
    "ConfigError",
    "LineageConfig",
    "LiveConfig",
    "ParametersConfig",
    "SelectionConfig",
    "SidecarConfig",
    "WebhookConfig",
    "WorkDirConfig",
    "config_from_mapping",
    "config_to_mapping",
    "load_config",
]

IMAGE_REPOSITORY = "ghcr.io/elyra-sidecar/elyra-sidecar"
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class ConfigError(ValueError):
    """A configuration value is wrong; the message names the key."""


def _restricted_security_context() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": 65532,
        "runAsGroup": 65532,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _small_resources() -> dict[str, Any]:
    return {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}}


@dataclass(frozen=True)
class WorkDirConfig:
    """The shared emptyDir the bootstrapper runs in (step `mount_work_dir`)."""

    enabled: bool = True
    volume_name: str = "elyra-sidecar-work"
    mount_path: str = "/elyra-sidecar/work"
    size_limit: str | None = None
    set_working_dir: bool = True


@dataclass(frozen=True)
class SidecarConfig:
    """The log sidecar (step `add_log_sidecar`)."""

    enabled: bool = True
    name: str = contract.SIDECAR_CONTAINER
    #: The release's own image: its tag is this package's version (single-sourced from pyproject.toml).
    image: str = field(default_factory=lambda: f"{IMAGE_REPOSITORY}:{version()}")
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    command: list[str] = field(default_factory=lambda: ["elyra-sidecar", "tail"])
    mirror: bool = True
    upload_interval_seconds: float = 5.0
    shutdown_deadline_seconds: float = 10.0
    log_format: Literal["raw", "json"] = "raw"
    resources: dict[str, Any] = field(default_factory=_small_resources)
    security_context: dict[str, Any] = field(default_factory=_restricted_security_context)
    ca_bundle: str | None = None


@dataclass(frozen=True)
class ArtifactsConfig:
    """Native Argo output artifacts (step `declare_output_artifacts`)."""

    enabled: bool = True
    log: bool = True
    notebook: bool = True
    outputs: bool = True
    wildcards: Literal["directory", "skip"] = "directory"
    #: Pod mode (KFP v2): name the log and the outputs above as output artifacts in the launcher's
    #: `--executor_input`, linked into place by an init container (docs/pod-mode.md). Off until a real
    #: cluster has shown it: it edits a KFP-internal flag of main's command.
    kfp_v2: bool = False


@dataclass(frozen=True)
class LineageConfig:
    """Input artifacts wired from upstream nodes (step `wire_input_artifacts`); off by default."""

    enabled: bool = False
    mount_path: str = "/elyra-sidecar/inputs"


@dataclass(frozen=True)
class LiveConfig:
    """The live hook in Python nodes (step `enable_live_output`): a live copy of the log on Elyra 4.x,
    whose bootstrapper writes it only at the end, and the script's lines in main's log on every version."""

    #: auto: Python nodes of Elyra >= 4.0 (from the bootstrapper URL); on: every Python node; off: never.
    mode: Literal["auto", "on", "off"] = "auto"
    #: Copy every Python node's script output, line by line, into main's log (the KFP UI's Logs tab).
    main_log: bool = True
    #: The template init container that installs sitecustomize.py into the work volume.
    init_container_name: str = "elyra-live-setup"
    #: Directory (in the bootstrapper's working directory) holding sitecustomize.py and the live log.
    dir_name: str = ".elyra-sidecar-live"


@dataclass(frozen=True)
class ParametersConfig:
    """Node environment variables promoted to KFP run parameters (step `promote_env_parameters`)."""

    #: Names of env variables to promote, or ["all"]; secret-backed ones never are.
    promote_env: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SelectionConfig:
    """Which Elyra nodes are transformed."""

    only_annotated: bool = False


@dataclass(frozen=True)
class WebhookConfig:
    """In-cluster mode: which Workflows the admission webhook rewrites, and its server limits."""

    #: Namespaces where every Elyra node is transformed without the annotation ("false" still opts out).
    inject_all_in_namespaces: list[str] = field(default_factory=list)
    #: Requests larger than this are answered 413 (the API server then applies failurePolicy).
    max_request_bytes: int = 8 << 20
    #: Seconds between checks of the TLS files for a new certificate.
    cert_reload_seconds: float = 10.0
    #: Seconds to keep serving (not ready) after SIGTERM, while endpoints stop routing here.
    drain_seconds: float = 3.0
    #: Then, seconds for in-flight requests to finish.
    shutdown_grace_seconds: float = 10.0
    #: Worker processes running the transforms; null means one per core available (affinity, CPU limit).
    workers: int | None = None
    #: Seconds a review may take once read (waiting for a worker included); then allowed, not injected.
    request_budget_seconds: float = 3.0
    #: Seconds a connection has for its TLS handshake, headers and body (and to take each response).
    read_timeout_seconds: float = 5.0
    #: Connections open at once; further clients wait in the kernel's accept queue.
    max_connections: int = 100
    #: Bytes a review may take once parsed (a bound computed from the body before parsing it); a larger
    #: one is allowed, not injected, counted as too_large. Real reviews are bounded at about 9x their body.
    max_review_memory_bytes: int = 128 << 20


@dataclass(frozen=True)
class Config:
    """Everything `transform` can be told; every field has a default."""

    work_dir: WorkDirConfig = field(default_factory=WorkDirConfig)
    unbuffered: bool = True
    sidecar: SidecarConfig = field(default_factory=SidecarConfig)
    artifacts: ArtifactsConfig = field(default_factory=ArtifactsConfig)
    lineage: LineageConfig = field(default_factory=LineageConfig)
    live: LiveConfig = field(default_factory=LiveConfig)
    parameters: ParametersConfig = field(default_factory=ParametersConfig)
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    strict: bool = False
    webhook: WebhookConfig = field(default_factory=WebhookConfig)


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return " or ".join(repr(a) for a in get_args(tp))
    if origin is not None:
        return str(tp).replace("typing.", "")
    return getattr(tp, "__name__", str(tp))


def _check_value(value: Any, tp: Any, key: str) -> Any:  # noqa: C901, PLR0911, PLR0912 - one dispatch over the config's field types, a return each
    origin = get_origin(tp)
    args = get_args(tp)
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{key}: must be {_type_name(tp)}, got {value!r}")
        return value
    if args and type(None) in args:  # Optional[X]
        if value is None:
            return None
        inner = [a for a in args if a is not type(None)]
        return _check_value(value, inner[0], key)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: must be true or false, got {value!r}")
        return value
    if tp is float:
        # NaN compares false with everything, so `<= 0` alone would let `.nan` (and `.inf`) through. Every
        # float setting is seconds, at most what the sidecar's options take (the sidecar exits 2 above).
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= MAX_SECONDS:
            raise ConfigError(
                f"{key}: must be a finite positive number of at most {MAX_SECONDS} (a week), got {value!r}"
            )
        return float(value)
    if tp is str:
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{key}: must be a non-empty string, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ConfigError(f"{key}: must be a positive whole number, got {value!r}")
        return value
    if origin is list:
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise ConfigError(f"{key}: must be a list of non-empty strings, got {value!r}")
        return list(value)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: must be a mapping, got {value!r}")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key)
    raise ConfigError(f"{key}: unsupported type {tp!r}")  # pragma: no cover - guards future fields


def _build(cls: Any, data: Any, prefix: str) -> Any:
    where = prefix or "the configuration"
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: must be a mapping, got {type(data).__name__}")
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        key = f"{prefix}.{unknown[0]}" if prefix else str(unknown[0])
        raise ConfigError(f"{key}: unknown key (known: {', '.join(sorted(names))})")
    kwargs = {}
    for name, value in data.items():
        key = f"{prefix}.{name}" if prefix else name
        kwargs[name] = _check_value(value, hints[name], key)
    return cls(**kwargs)


def _validate(config: Config) -> Config:
    if not config.sidecar.command:
        raise ConfigError("sidecar.command: must not be empty (Argo's emissary needs an explicit command)")
    if not _DNS_LABEL.match(config.sidecar.name) or len(config.sidecar.name) > 63:
        raise ConfigError(f"sidecar.name: {config.sidecar.name!r} is not a valid container name (DNS label)")
    if config.sidecar.name in {"main", "wait", "init"}:
        raise ConfigError(f"sidecar.name: {config.sidecar.name!r} is reserved by Argo")
    if not _DNS_LABEL.match(config.work_dir.volume_name) or len(config.work_dir.volume_name) > 63:
        raise ConfigError(f"work_dir.volume_name: {config.work_dir.volume_name!r} is not a valid volume name")
    for key, path in (
        ("work_dir.mount_path", config.work_dir.mount_path),
        ("lineage.mount_path", config.lineage.mount_path),
    ):
        if not path.startswith("/") or path.rstrip("/") == "":
            raise ConfigError(f"{key}: must be an absolute path other than /, got {path!r}")
        if posixpath.normpath(path) != path.rstrip("/") or "//" in path or "\0" in path:
            # `/a/../..` would be mounted where it reads, not where the steps think it is.
            plain = "/" + "/".join(p for p in posixpath.normpath(path).split("/") if p)
            raise ConfigError(
                f"{key}: must be a plain absolute path (no `.`, `..` or `//`), got {path!r}; "
                f"did you mean {plain!r}?"
            )
    if config.lineage.mount_path.rstrip("/").startswith(config.work_dir.mount_path.rstrip("/") + "/") or (
        config.lineage.mount_path.rstrip("/") == config.work_dir.mount_path.rstrip("/")
    ):
        raise ConfigError(
            "lineage.mount_path: must lie outside work_dir.mount_path, where the bootstrapper runs"
        )
    if not _DNS_LABEL.match(config.live.init_container_name) or config.live.init_container_name in {
        "main",
        "wait",
        "init",
        config.sidecar.name,
    }:
        raise ConfigError(
            f"live.init_container_name: {config.live.init_container_name!r} is not a free container name"
        )
    if "/" in config.live.dir_name or config.live.dir_name in {".", ".."}:
        raise ConfigError(f"live.dir_name: {config.live.dir_name!r} must be one directory name")
    if config.sidecar.shutdown_deadline_seconds >= 30:
        raise ConfigError("sidecar.shutdown_deadline_seconds: must stay under Argo's 30 s grace period")
    return config


def config_from_mapping(data: Mapping[str, Any] | None) -> Config:
    """Build a Config from plain data (e.g. parsed YAML); raises ConfigError naming the key."""
    return _validate(_build(Config, data or {}, ""))


def load_config(path: str | Path | None) -> Config:
    """Read the YAML config file at `path` (None: all defaults)."""
    if path is None:
        return Config()
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror}") from exc
    try:
        documents = load_documents(text)
    except YamlLimitError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}") from exc
    if len(documents) > 1:
        raise ConfigError(f"{path}: holds {len(documents)} YAML documents; expected one mapping")
    data = documents[0] if documents else None
    try:
        return config_from_mapping(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def _type_schema(tp: Any) -> dict[str, Any]:  # noqa: PLR0911 - one dispatch over the config's field types, a return each
    origin = get_origin(tp)
    args = get_args(tp)
    if origin is Literal:
        return {"enum": list(args)}
    if args and type(None) in args:
        inner = _type_schema(next(a for a in args if a is not type(None)))
        return {"anyOf": [inner, {"type": "null"}]}
    if tp is bool:
        return {"type": "boolean"}
    if tp is float:
        return {"type": "number", "exclusiveMinimum": 0}
    if tp is int:
        return {"type": "integer", "minimum": 1}
    if tp is str:
        return {"type": "string", "minLength": 1}
    if origin is list:
        return {"type": "array", "items": {"type": "string", "minLength": 1}}
    if origin is dict:
        return {"type": "object"}
    return config_json_schema(tp)


def config_json_schema(cls: Any = None) -> dict[str, Any]:
    """JSON Schema of the config file (unknown keys rejected), derived from the dataclasses above."""
    cls = cls or Config
    hints = get_type_hints(cls)
    properties = {f.name: _type_schema(hints[f.name]) for f in dataclasses.fields(cls)}
    return {"type": "object", "additionalProperties": False, "properties": properties}


def config_to_mapping(config: Config) -> dict[str, Any]:
    """The config as plain data, every key present (what `elyra-sidecar config` prints)."""
    return dataclasses.asdict(config)
