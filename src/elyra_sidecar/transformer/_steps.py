"""The rewrite of one Elyra node, as small named steps.

Each step takes the template it may change (made by `transform`: the parts steps write to are its own
copies, see `_transform._OWN_LISTS`; everything else is shared with the input and must not be written),
the node as read by `_elyra`, the shared `Placement` and the config, changes only that template, and
returns a `Notes` (what it added, as typed `Change`s, and warnings). Which steps run, in which order and
when, is declared once, in `_registry.STEPS`.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from mypy_extensions import mypyc_attr

from elyra_sidecar import contract
from elyra_sidecar._version import version
from elyra_sidecar.transformer._argo import (
    Artifact,
    EnvVar,
    Volume,
    VolumeMount,
    copy_mount,
    copy_tree,
    tool_container,
)
from elyra_sidecar.transformer._config import Config
from elyra_sidecar.transformer._elyra import ElyraNode

if TYPE_CHECKING:  # only in annotations; no runtime dependency
    from typing_extensions import Self

__all__ = [
    "TRANSFORMED_ANNOTATION",
    "Change",
    "ChangeKind",
    "Names",
    "Notes",
    "Placement",
    "RewrittenNode",
    "WorkflowNotes",
    "add_log_sidecar",
    "artifact_name",
    "copy_tree",
    "declare_output_artifacts",
    "enable_live_output",
    "live_hook",
    "mark_transformed",
    "mount_work_dir",
    "set_unbuffered",
    "unique_name",
]

TRANSFORMED_ANNOTATION = contract.ANNOTATION_TRANSFORMED
_INVALID_NAME_CHARS = re.compile(r"[^-a-zA-Z0-9_]+")
_WILDCARDS = ("*", "?", "[")


#: What a change is, for whoever counts them (the CLI's table); `note` is information that adds nothing.
#: `live_output`: a live copy of the script's `.log` for the sidecar (Elyra 4.x keeps the output in memory
#: until the end); `main_log`: the script's lines in main's log (the KFP Logs tab), on every version.
ChangeKind = Literal[
    "work_dir",
    "unbuffered",
    "live_output",
    "main_log",
    "sidecar",
    "output_artifact",
    "input_artifact",
    "run_parameter",
    "annotation",
    "note",
]


@mypyc_attr(native_class=False)  # compiled (setup.py), a subclass of str stays a Python class
class Change(str):
    """One thing a step added: its text (what reports show) typed with its `kind` (what tables count).

    A `str` on purpose: `NodeReport.added` is serialised as these texts (the JSON report and the golden
    files), while readers that count never parse them."""

    __slots__ = ("kind",)
    kind: ChangeKind

    def __new__(cls, kind: ChangeKind, detail: str) -> Self:
        change = str.__new__(cls, detail)  # not super(): mypyc compiles no super().__new__ here
        change.kind = kind
        return change

    def __getnewargs__(self) -> tuple[str, str]:  # type: ignore[override]  # copy/pickle rebuild it whole
        return (self.kind, str(self))

    @property
    def detail(self) -> str:
        return str(self)


@dataclass
class Notes:
    added: list[Change] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass
class Placement:
    """Where the node's files end up; filled by `mount_work_dir`, read by the later steps."""

    #: Absolute directory the bootstrapper runs in, or None when it cannot be known from the YAML.
    run_dir: str | None = None
    #: The main container's volumeMount that holds run_dir (shared with the sidecar), if any.
    shared_mount: dict[str, Any] | None = None
    #: Directory of the live copy of the log (Elyra 4.x live mode), followed instead of run_dir.
    live_dir: str | None = None
    #: (artifact name, path relative to run_dir) declared per Elyra `--outputs` entry.
    output_artifacts: dict[str, tuple[str, str]] = field(default_factory=dict)
    #: Pod mode only: main's mount of Argo's executor volume (`/var/run/argo`), where emissary writes main's
    #: exit code; the sidecar mounts it read-only and stops by itself when that file appears.
    argo_mount: dict[str, Any] | None = None


@dataclass(frozen=True)
class RewrittenNode:
    """A node this run rewrites: what `_elyra` read, and where the node steps placed its files."""

    node: ElyraNode
    place: Placement


@dataclass
class WorkflowNotes:
    """What a workflow step did: notes per rewritten template (by name), and workflow-wide warnings."""

    nodes: dict[str, Notes] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def of(self, template: str) -> Notes:
        return self.nodes.setdefault(template, Notes())


def _main(template: dict[str, Any]) -> dict[str, Any]:
    container = template["container"]
    if not isinstance(container, dict):  # pragma: no cover - read_elyra_node guarantees a container
        raise TypeError("not a container template")
    return container


def _covering_mount(container: dict[str, Any], path: str) -> dict[str, Any] | None:
    """The volumeMount of `container` whose mountPath is the longest prefix of `path`."""
    best: dict[str, Any] | None = None
    for mount in container.get("volumeMounts") or []:
        mount_path = str(mount.get("mountPath", "")).rstrip("/") or "/"
        if (path == mount_path or path.startswith(mount_path.rstrip("/") + "/")) and (
            best is None or len(mount_path) > len(str(best.get("mountPath", "")).rstrip("/"))
        ):
            best = mount
    return best


#: Argo's own containers in every step pod; a container we add must not take one of their names.
_ARGO_CONTAINERS = frozenset({"main", "wait", "init"})


def _container_names(template: dict[str, Any]) -> set[str]:
    """Every container name of the step's pod: a new one must differ from all (the Pod is invalid else)."""
    names = set(_ARGO_CONTAINERS)
    for key in ("initContainers", "sidecars"):
        names.update(str(c.get("name")) for c in template.get(key) or [] if isinstance(c, dict))
    return names


def _mounted_at(container: dict[str, Any], path: str) -> str | None:
    """The volume `container` already mounts exactly at `path` (a second mount there is invalid)."""
    wanted = posixpath.normpath(path)
    for mount in container.get("volumeMounts") or []:
        if posixpath.normpath(str(mount.get("mountPath", ""))) == wanted:
            return str(mount.get("name"))
    return None


def mount_work_dir(template: dict[str, Any], node: ElyraNode, place: Placement, config: Config) -> Notes:
    """Give the bootstrapper a known directory on a volume the sidecar and Argo's `wait` can read."""
    notes = Notes()
    main = _main(template)
    run_dir = node.run_dir
    if not posixpath.isabs(run_dir):
        base = main.get("workingDir")
        if not base and config.work_dir.enabled and config.work_dir.set_working_dir:
            cfg = config.work_dir
            volumes = template.setdefault("volumes", [])
            if any(v.get("name") == cfg.volume_name for v in volumes):
                notes.warnings.append(f"volume {cfg.volume_name!r} already exists; not adding the work dir")
                return notes
            taken = _mounted_at(main, cfg.mount_path)
            if taken is not None:
                notes.warnings.append(
                    f"volume {taken!r} is already mounted at {cfg.mount_path}; not adding the work dir"
                )
                return notes
            empty_dir: dict[str, Any] = {}
            if cfg.size_limit:
                empty_dir["sizeLimit"] = cfg.size_limit
            volume: Volume = {"name": cfg.volume_name, "emptyDir": empty_dir}
            mount: VolumeMount = {"name": cfg.volume_name, "mountPath": cfg.mount_path}
            volumes.append(volume)
            main.setdefault("volumeMounts", []).append(mount)
            main["workingDir"] = cfg.mount_path
            base = cfg.mount_path
            notes.added.append(
                Change("work_dir", f"emptyDir {cfg.volume_name} at {cfg.mount_path} (main's workingDir)")
            )
        if not base:
            notes.warnings.append(
                "the bootstrapper runs in the image's WORKDIR, which the YAML does not tell; "
                "no sidecar or artifacts (enable work_dir)"
            )
            return notes
        run_dir = posixpath.normpath(posixpath.join(str(base), run_dir))
    place.run_dir = run_dir
    place.shared_mount = _covering_mount(main, run_dir)
    if place.shared_mount is None:
        notes.warnings.append(f"{run_dir} is on no volume, so no other container can read the log there")
    return notes


def set_unbuffered(template: dict[str, Any], node: ElyraNode, place: Placement, config: Config) -> Notes:
    """PYTHONUNBUFFERED=1 in main, so a Python script's log grows line by line."""
    del node, place, config
    notes = Notes()
    env = _main(template).setdefault("env", [])
    if any(e.get("name") == "PYTHONUNBUFFERED" for e in env):
        return notes
    unbuffered: EnvVar = {"name": "PYTHONUNBUFFERED", "value": "1"}
    env.append(unbuffered)
    notes.added.append(Change("unbuffered", "env PYTHONUNBUFFERED=1"))
    return notes


LIVE_SCRIPT_ENV = contract.LIVE_SCRIPT_ENV
LIVE_LOG_ENV = contract.LIVE_LOG_ENV
LIVE_MAIN_ENV = contract.LIVE_MAIN_ENV


def _wants_live_log(node: ElyraNode, config: Config) -> bool:
    if node.kind != "python" or config.live.mode == "off":
        return False
    return config.live.mode == "on" or (node.elyra_version is not None and node.elyra_version >= (4, 0, 0))


#: Run by the `elyra-live-env` init container in main's image, with the image's environment (and main's
#: envFrom): records the image's PYTHONPATH, set or not, for the hook. Shell builtins only; never fails
#: the step. Kubernetes expands `$(NAME)` in commands, and nothing here has that form.
_RECORD_PYTHONPATH = (
    'if [ "${PYTHONPATH+set}" = set ]; then printf "set:%s" "$PYTHONPATH" > "$1"; '
    'else printf unset > "$1"; fi; exit 0'
)


def live_hook(
    main: dict[str, Any],
    *,
    live_dir: str,
    script: str,
    live_log: str | None,
    main_log: bool,
    mount: dict[str, Any],
    config: Config,
) -> list[dict[str, Any]] | str:
    """The live hook's wiring, for the Workflow transformer and the webhook's Pod mode alike: adds to
    main's env and returns the init containers to add (in this order), or why it cannot be wired.

    The hook is a `sitecustomize.py` in `live_dir` (installed by `live.init_container_name`, the sidecar
    image), found through main's PYTHONPATH. Where main's spec sets PYTHONPATH, the hook's directory goes
    first in it. Where it does not, a new entry would replace the image's own `ENV PYTHONPATH` (Kubernetes
    gives the container spec the last word, and `$(PYTHONPATH)` sees only the spec's own env), so a
    second init container, `elyra-live-env`, runs main's own image and records the image's PYTHONPATH
    into the live directory; the hook puts those entries back on `sys.path` after its own directory and
    into the environment of child processes. Main's command and args stay untouched."""
    env = main.setdefault("env", [])
    existing = next((e for e in env if e.get("name") == "PYTHONPATH"), None)
    if existing is not None and "value" not in existing:
        return "main's PYTHONPATH comes from a reference, it cannot be extended"
    if existing is None and not isinstance(main.get("image"), str):
        return "main names no image, whose own PYTHONPATH would be lost"
    cfg = config.sidecar
    containers: list[dict[str, Any]] = [
        dict(
            tool_container(
                config.live.init_container_name,
                cfg=cfg,
                command=[cfg.command[0], contract.INSTALL_LIVE_COMMAND],
                args=["--dest", live_dir],
                mount=copy_mount(mount),
            )
        )
    ]
    added: list[EnvVar] = []
    if existing is not None:
        existing["value"] = f"{live_dir}:{existing['value']}" if existing["value"] else live_dir
    else:
        record = posixpath.join(live_dir, contract.LIVE_IMAGE_PYTHONPATH_FILE)
        added.append({"name": "PYTHONPATH", "value": live_dir})
        added.append({"name": contract.LIVE_IMAGE_PYTHONPATH_ENV, "value": record})
        containers.append(_image_env_recorder(main, record=record, mount=mount, config=config))
    added.append({"name": LIVE_SCRIPT_ENV, "value": script})
    if live_log is not None:
        added.append({"name": LIVE_LOG_ENV, "value": live_log})
    if main_log:
        added.append({"name": LIVE_MAIN_ENV, "value": "1"})
    env += added
    return containers


def _image_env_recorder(
    main: dict[str, Any], *, record: str, mount: dict[str, Any], config: Config
) -> dict[str, Any]:
    """`elyra-live-env`: main's image and pull policy (and envFrom, which sits above the image's env), our
    resources and restricted security context (non-root, read-only root: it writes only to the volume)."""
    container: dict[str, Any] = {"name": contract.LIVE_ENV_CONTAINER, "image": main["image"]}
    if "imagePullPolicy" in main:
        container["imagePullPolicy"] = main["imagePullPolicy"]
    container["command"] = ["sh", "-c", _RECORD_PYTHONPATH, contract.LIVE_ENV_CONTAINER]
    container["args"] = [record]
    if main.get("envFrom"):
        container["envFrom"] = copy_tree(main["envFrom"])
    container["resources"] = copy_tree(config.sidecar.resources)
    container["securityContext"] = copy_tree(config.sidecar.security_context)
    container["volumeMounts"] = [copy_mount(mount)]
    return container


def enable_live_output(template: dict[str, Any], node: ElyraNode, place: Placement, config: Config) -> Notes:
    """The live hook in a Python node: on Elyra 4.x (which keeps the script's output in memory) a copy in
    a file the sidecar can follow; on every version the script's lines in main's log (the KFP Logs tab)."""
    notes = Notes()
    live_log = _wants_live_log(node, config) and config.sidecar.enabled  # only the sidecar reads it
    main_log = node.kind == "python" and config.live.main_log
    if not live_log and not main_log:
        return notes
    log_file = node.log_file
    if place.shared_mount is None or place.run_dir is None or log_file is None:
        notes.warnings.append("no live output: the work directory is not on a shared volume")
        return notes
    main = _main(template)
    env = main.setdefault("env", [])
    name = config.live.init_container_name
    names = _container_names(template)
    taken = next((n for n in (name, contract.LIVE_ENV_CONTAINER) if n in names), None)
    problem = (
        f"a container named {taken!r} already exists"
        if taken is not None
        else "main already sets ELYRA_SIDECAR_LIVE_*"
        if any(e.get("name") in (LIVE_SCRIPT_ENV, LIVE_LOG_ENV, LIVE_MAIN_ENV) for e in env)
        else "the work directory's volume is mounted read-only"
        if place.shared_mount.get("readOnly")
        else None
    )
    if problem is not None:
        notes.warnings.append(f"no live output: {problem}")
        return notes
    # At the volume's root, which exists before main starts. The bootstrapper's directory can be below it
    # (Elyra <= 3.13: jupyter-work-dir): had the init container created it, it would belong to the init
    # container's user, and main, running as another one, could not write there.
    live_dir = posixpath.join(str(place.shared_mount["mountPath"]), config.live.dir_name)
    wired = live_hook(
        main,
        live_dir=live_dir,
        script=posixpath.basename(node.file),
        live_log=posixpath.join(live_dir, log_file) if live_log else None,
        main_log=main_log,
        mount=place.shared_mount,
        config=config,
    )
    if isinstance(wired, str):
        notes.warnings.append(f"no live output: {wired}")
        return notes
    template.setdefault("initContainers", []).extend(wired)
    if live_log:
        place.live_dir = live_dir  # the sidecar follows the live copy, which exists on failure too
    # The init container serves the live copy of the `.log` (4.x, or `live.mode: on`) or, on 2.x-3.x by
    # default, main's log alone: counted as what it is for, so the table says "live output" only where the
    # sidecar gets a live copy it would not have without the hook.
    notes.added.append(
        Change(
            "live_output" if live_log else "main_log",
            f"live output: init container{'s' if len(wired) > 1 else ''} "
            + ", ".join(str(c["name"]) for c in wired)
            + f", sitecustomize in {live_dir}",
        )
    )
    if main_log:
        notes.added.append(
            Change("main_log", f"script output in main's log (KFP Logs tab): env {LIVE_MAIN_ENV}=1")
        )
    return notes


def sidecar_credentials(main: Mapping[str, Any]) -> tuple[list[EnvVar], list[VolumeMount]]:
    """What the sidecar needs of main's to reach object storage as main does: the env entries (copies,
    `value` or `valueFrom` as main has them) and the volume mounts (read-only) for them.

    Static keys (`contract.CREDENTIAL_ENV`) as they are. IRSA / web identity when main has both
    `contract.WEB_IDENTITY_ENV` entries: those, the optional ones of `WEB_IDENTITY_OPTIONAL_ENV` main has,
    and main's mount that holds the token file (the projected service-account token), read-only. Used by
    both the Workflow mode and the Pod mode."""
    env = main.get("env") or []
    names = {e.get("name") for e in env}
    wanted = set(contract.CREDENTIAL_ENV)
    if set(contract.WEB_IDENTITY_ENV) <= names:
        wanted |= {*contract.WEB_IDENTITY_ENV, *contract.WEB_IDENTITY_OPTIONAL_ENV}
    copies = [copy_tree(e) for e in env if e.get("name") in wanted]
    token = next((e for e in copies if e.get("name") == "AWS_WEB_IDENTITY_TOKEN_FILE"), None)
    mounts: list[VolumeMount] = []
    if token is not None and isinstance(token.get("value"), str):
        holder = _mount_holding(main, str(token["value"]))
        if holder is not None:
            mounts.append(copy_mount(holder, read_only=True))
    return copies, mounts


def _mount_holding(container: Mapping[str, Any], path: str) -> dict[str, Any] | None:
    """The container's mount whose directory holds `path` (the deepest one), if any."""
    best: dict[str, Any] | None = None
    for mount in container.get("volumeMounts") or []:
        root = str(mount.get("mountPath") or "").rstrip("/")
        if not mount.get("name") or not root or not path.startswith(root + "/"):
            continue
        if best is None or len(root) > len(str(best["mountPath"]).rstrip("/")):
            best = mount
    return best


def add_mounts(container: Any, mounts: list[VolumeMount]) -> None:
    """Append `mounts` to the container's, skipping any whose mountPath it already has."""
    have = container.setdefault("volumeMounts", [])
    taken = {str(m.get("mountPath", "")).rstrip("/") for m in have}
    have.extend(m for m in mounts if str(m["mountPath"]).rstrip("/") not in taken)


def object_key(cos_directory: str, name: str) -> str:
    """The key the bootstrapper uploads `name` to (`os.path.join(cos_directory, name)`)."""
    return posixpath.join(cos_directory, name)


def add_log_sidecar(template: dict[str, Any], node: ElyraNode, place: Placement, config: Config) -> Notes:
    """A template sidecar that follows `<name>.log` to its stdout and mirrors it to object storage."""
    notes = Notes()
    log_file = node.log_file
    if log_file is None:
        notes.added.append(Change("note", "no sidecar: notebooks write no .log"))
        return notes
    if place.run_dir is None or place.shared_mount is None:
        notes.warnings.append("no sidecar: the log directory is not on a shared volume")
        return notes
    cfg = config.sidecar
    if cfg.name in _container_names(template):
        notes.warnings.append(f"a container named {cfg.name!r} already exists; not adding the sidecar")
        return notes
    sidecars = template.setdefault("sidecars", [])
    main = _main(template)
    env, credential_mounts = sidecar_credentials(main)
    options: list[tuple[str, str]] = [
        (contract.ARG_DIR, place.live_dir or place.run_dir),
        (contract.ARG_FILE, log_file),
    ]
    if cfg.mirror:
        options += [
            (contract.ARG_ENDPOINT, node.cos_endpoint),
            (contract.ARG_BUCKET, node.cos_bucket),
            (contract.ARG_KEY, object_key(node.cos_directory, log_file)),
            (contract.ARG_UPLOAD_INTERVAL, _number(cfg.upload_interval_seconds)),
        ]
        if cfg.ca_bundle:
            options.append((contract.ARG_CA_BUNDLE, cfg.ca_bundle))
    options += [
        (contract.ARG_SHUTDOWN_DEADLINE, _number(cfg.shutdown_deadline_seconds)),
        (contract.ARG_FORMAT, cfg.log_format),
    ]
    if place.argo_mount is not None:  # Pod mode: Argo does not know our container, main's exit ends it
        options.append((contract.ARG_MAIN_EXIT_FILE, contract.ARGO_MAIN_EXIT_CODE_FILE))
    # `--name=value`, never `--name value`: a value starting with `-` (a script named `-x.py` logs to
    # `-x.log`) would otherwise be read as an option and the sidecar would exit 2 at once.
    args = [f"{name}={value}" for name, value in options]
    sidecar = tool_container(
        cfg.name,
        cfg=cfg,
        command=list(cfg.command),
        args=args,
        mount=copy_mount(place.shared_mount, read_only=True),
        env=env if cfg.mirror else None,
    )
    if place.argo_mount is not None:  # read-only: the sidecar only watches for main's exit-code file
        sidecar["volumeMounts"].append(copy_mount(place.argo_mount, read_only=True))
    if cfg.mirror:
        add_mounts(sidecar, credential_mounts)
    sidecars.append(sidecar)
    mirrored = (
        f", mirrored to s3://{node.cos_bucket}/{object_key(node.cos_directory, log_file)}"
        if cfg.mirror
        else ""
    )
    notes.added.append(Change("sidecar", f"sidecar {cfg.name} following {log_file}{mirrored}"))
    return notes


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


@mypyc_attr(native_class=False)  # compiled (setup.py), a subclass of set stays a Python class
class Names(set[str]):
    """Names in use (artifacts, parameters), handing out free ones in amortised constant time.

    Per base it remembers the next suffix to try, so n names from one base cost O(n) checks in all, not
    O(n^2): 15,000 `--outputs` that sanitise to one name once stalled the webhook for 29 s."""

    def __init__(self, names: Iterable[str] = ()) -> None:
        super().__init__(names)
        self._next: dict[str, int] = {}

    def unique(self, base: str) -> str:
        """`base`, or `base-2`, `base-3`, ... : the first one not taken; it is taken from now on."""
        name = base
        if name in self:
            n = self._next.get(base, 2)
            name = f"{base}-{n}"
            while name in self:
                n += 1
                name = f"{base}-{n}"
            self._next[base] = n + 1
        self.add(name)
        return name


def artifact_name(path: str, taken: Names) -> str:
    """A name valid for Argo (`^[-a-zA-Z0-9_]+$`) made from `path`, unique against `taken` (updated)."""
    return taken.unique(_INVALID_NAME_CHARS.sub("-", path).strip("-") or "output")


def unique_name(base: str, taken: Names) -> str:
    """`base`, or `base-2`, `base-3`, ... : the first one not in `taken` (which is updated)."""
    return taken.unique(base)


def _artifact_source(entry: str, config: Config, notes: Notes) -> str | None:
    """The path (relative to the run dir) to archive for one `--outputs` entry, or None to skip it."""
    normalized = posixpath.normpath(entry)
    if posixpath.isabs(normalized) or normalized == ".." or normalized.startswith("../"):
        notes.warnings.append(f"output {entry!r} lies outside the working directory; not declared")
        return None
    if normalized == ".":
        notes.warnings.append(
            f"output {entry!r} is the working directory itself; not declared "
            "(it would archive everything there: the bootstrapper, the dependencies, the logs)"
        )
        return None
    if not any(w in normalized for w in _WILDCARDS):
        return normalized
    parts = normalized.split("/")
    static = []
    for part in parts:
        if any(w in part for w in _WILDCARDS):
            break
        static.append(part)
    if config.artifacts.wildcards == "skip" or not static:
        notes.warnings.append(
            f"output {entry!r} is a wildcard"
            + ("" if static else " over the working directory itself")
            + "; not declared (Argo artifacts take no globs)"
        )
        return None
    return "/".join(static)


def declare_output_artifacts(
    template: dict[str, Any], node: ElyraNode, place: Placement, config: Config
) -> Notes:
    """Native `outputs.artifacts` for the script log, the notebook's outputs and each declared output."""
    notes = Notes()
    cfg = config.artifacts
    if place.run_dir is None:
        notes.warnings.append("no artifacts: the working directory is unknown")
        return notes
    outputs = template.setdefault("outputs", {})
    artifacts = outputs.setdefault("artifacts", [])
    taken = Names(str(a.get("name")) for a in artifacts)
    paths = {str(a.get("path")): str(a.get("name")) for a in artifacts}
    wanted: list[tuple[str, str, str]] = []  # (name hint, relative path, Elyra entry)
    if cfg.log and node.log_file:
        # In live mode the live copy is the log that exists on failure too.
        log_path = posixpath.join(place.live_dir, node.log_file) if place.live_dir else node.log_file
        wanted.append(("script-log", log_path, ""))
    if cfg.notebook and node.notebook_outputs:
        hints = ("notebook-output", "notebook-html")
        wanted += [(hint, path, "") for hint, path in zip(hints, node.notebook_outputs, strict=True)]
    if cfg.outputs:
        for entry in node.outputs:
            source = _artifact_source(entry, config, notes)
            if source is not None:
                wanted.append((source, source, entry))
    for hint, relative, entry in wanted:
        path = posixpath.normpath(posixpath.join(place.run_dir, relative))  # absolute `relative` wins
        if path in paths:
            if entry:
                place.output_artifacts[entry] = (paths[path], relative)
            continue
        name = artifact_name(hint, taken)
        paths[path] = name
        artifact: Artifact = {"name": name, "path": path, "optional": True, "archive": {"tar": {}}}
        artifacts.append(artifact)
        if entry:
            place.output_artifacts[entry] = (name, relative)
        notes.added.append(Change("output_artifact", f"output artifact {name} <- {path}"))
    return notes


def mark_transformed(template: dict[str, Any], node: ElyraNode, place: Placement, config: Config) -> Notes:
    """The annotation that makes a second run change nothing."""
    del node, place, config
    __version__ = version()
    metadata = template.setdefault("metadata", {})
    metadata.setdefault("annotations", {})[TRANSFORMED_ANNOTATION] = __version__
    return Notes(added=[Change("annotation", f"annotation {TRANSFORMED_ANNOTATION}={__version__}")])
