"""Real containers: the image built from sidecar/Dockerfile, and one step run as the Pod Argo would create.

There is no Kubernetes API server or Argo controller here, but there is a real pod runtime: Debian's
podman runs Kubernetes Pod YAML (`podman kube play`), and `podman logs <pod>-<container>` is what
`kubectl logs <pod> -c <container>` shows. See docs/end-to-end.md ("Real containers") for every
difference from a cluster. In short, `run_pod` builds the Pod from the template as Argo does:
- the template's volumes, its init containers, `main` with its command, args, env, workingDir and mounts,
  and the template's sidecars with their exact spec (securityContext, mounts, args as written);
- substituted: the images (the sidecar image built here; main's a STAND-IN Elyra runtime image, see
  `runtime_image`), the S3 endpoint (the fixtures' 127.0.0.1:9123 becomes this run's server) and
  Argo's `{{...}}` parameters; `secretKeyRef` env values are given as values;
- added: one EMULATION init container, first, that makes every emptyDir 0777 as the kubelet does
  (podman makes it root-owned 0755);
- `hostNetwork: true`, so the containers reach the real S3 server on 127.0.0.1;
- Argo's part at the end, played here: when main exits, SIGTERM to the template's sidecars
  (`podman kill --signal TERM`), then the declared output artifacts copied out of main (`podman cp`).

Everything heavy is built once: the stand-in base images (scripts/base_image.sh: debootstrap, cached under
the cache directory), the image (podman's layer cache) and the runtime stand-in (keyed by its recipe).
"""

from __future__ import annotations

import base64
import copy
import functools
import hashlib
import io
import json
import os
import posixpath
import re
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from elyra_sidecar.transformer import Config
from elyra_sidecar.transformer._elyra import ElyraNode, read_elyra_node
from tests.support import elyra
from tests.support.elyra import CACHE, ROOT, _Lock
from tests.support.runner import CURL, dependency_archive

PODS_CACHE = CACHE / "pods"
# The sidecar image as the tests build it, and the reference the transformer writes by default.
SIDECAR_IMAGE = "localhost/elyra-sidecar:test"
# Stand-in bases (scripts/base_image.sh): Debian's Python under the Dockerfile's FROM name, and an older
# Debian (Python 3.9) for the Elyra releases whose bootstrapper accepts Python 3.7-3.10 only.
BASES = {
    "bookworm": "docker.io/library/python:3.12-slim",
    "bullseye": "localhost/elyra-sidecar-standin/debian-python:bullseye",
}
RUNTIME_PACKAGES = elyra.IMAGE_PACKAGES
LABEL = "elyra-sidecar.standin-key"
# What the transformer's chmod stand-in is called in the Pod, so nobody mistakes it for part of the product.
EMPTYDIR_INIT = "emulate-kubelet-emptydir-0777"
# Podman on these machines: crun refuses the hybrid cgroup layout, and the sandbox lacks CAP_SYS_RESOURCE
# to raise the default rlimits (FACTS.md section 5). Nothing under /etc is changed: CONTAINERS_CONF.
CONTAINERS_CONF = """[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
[engine]
runtime = "runc"
"""


def unavailable() -> str | None:
    """Why the podman tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "the podman tests need root (rootful podman with runc; scripts/test.sh installs it as root)"
    missing = [tool for tool in ("podman", "runc", "debootstrap") if shutil.which(tool) is None]
    if missing:
        return (
            f"{', '.join(missing)} not installed (scripts/test.sh installs podman, runc, debootstrap as root)"
        )
    return None


def containers_conf() -> Path:
    path = PODS_CACHE / "containers.conf"
    if not path.exists() or path.read_text() != CONTAINERS_CONF:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(CONTAINERS_CONF)
        tmp.replace(path)
    return path


def podman_env() -> dict[str, str]:
    return {**os.environ, "CONTAINERS_CONF": str(containers_conf())}


def podman(
    *args: str, check: bool = True, timeout: float = 600, input_: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    proc = subprocess.run(
        ["podman", *args],
        capture_output=True,
        env=podman_env(),
        check=False,
        timeout=timeout,
        input=input_,
    )
    if check and proc.returncode != 0:
        raise RuntimeError(
            f"podman {' '.join(args[:3])} ... exited {proc.returncode}:\n"
            + proc.stderr.decode(errors="replace")[-3000:]
        )
    return proc


def base_image(suite: str = "bookworm") -> str:
    """The stand-in base image for `suite`, imported from the cached debootstrap tar (built once)."""
    proc = subprocess.run(
        [str(ROOT / "scripts" / "base_image.sh"), suite, BASES[suite]],
        capture_output=True,
        text=True,
        env={**podman_env(), "ELYRA_SIDECAR_CACHE": str(CACHE)},
        check=False,
        timeout=1800,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"scripts/base_image.sh {suite} failed:\n{proc.stderr[-3000:]}")
    return BASES[suite]


def _build_mounts() -> list[str]:
    """What lets pip inside a build reach the index as pip on this machine does (nothing copied in)."""
    pip_conf = PODS_CACHE / "build-pip.conf"
    bundle = Path(os.environ.get("PIP_CERT") or "/etc/ssl/certs/ca-certificates.crt")
    pip_conf.write_text("[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n")
    mounts = ["-v", f"{pip_conf}:/etc/pip.conf:ro"]
    if bundle.exists():
        mounts += ["-v", f"{bundle}:/etc/ssl/certs/ca-certificates.crt:ro"]
    return mounts


def build(dockerfile: Path, tag: str, context: Path = ROOT, extra: list[str] | None = None) -> float:
    """`podman build --pull=never` of `dockerfile` (its FROM must be a stand-in here); returns seconds."""
    started = time.monotonic()
    podman(
        "build",
        "--pull=never",
        "--network",
        "host",
        *_build_mounts(),
        *(extra or []),
        "-f",
        str(dockerfile),
        "-t",
        tag,
        str(context),
        timeout=1800,
    )
    return time.monotonic() - started


@functools.cache
def sidecar_image() -> str:
    """The image built from the unchanged sidecar/Dockerfile on the stand-in base (podman's layer cache)."""
    with _Lock(PODS_CACHE / "build.lock"):
        base_image("bookworm")
        build(ROOT / "sidecar" / "Dockerfile", SIDECAR_IMAGE)
    return SIDECAR_IMAGE


def image_size(tag: str) -> int:
    return int(podman("image", "inspect", "--format", "{{.Size}}", tag).stdout)


RUNTIME_CONTAINERFILE = """\
# STAND-IN for an Elyra runtime image (elyra/kf-notebook, the example images): Debian's Python with the
# packages Elyra's bootstrapper needs, a stand-in `curl`, uid 1000 like Elyra's images. Test use only.
FROM {base}
RUN python3 -m pip install --no-cache-dir --quiet {packages} \\
    && mkdir -p /opt/elyra-standin \\
    && python3 -m pip freeze > /opt/elyra-standin/requirements-elyra.txt
{r_block}COPY elyra /opt/elyra-standin/elyra
COPY curl /usr/local/bin/curl
RUN chmod 0755 /usr/local/bin/curl && useradd --uid 1000 --gid 100 --create-home jovyan
USER 1000:100
WORKDIR /home/jovyan
"""
R_BLOCK = """RUN apt-get update -qq \\
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends r-base-core >/dev/null \\
    && rm -rf /var/lib/apt/lists/*
"""
ELYRA_VERSIONS = ("3.13.0", "3.15.0", "4.0.0")


@functools.cache
def runtime_image(suite: str = "bookworm", *, with_r: bool = False) -> str:
    """The STAND-IN Elyra runtime image: Python, Elyra's runtime packages, stand-in curl, user 1000.

    The stand-in curl answers the bootstrapper URL with the real bootstrapper of that release (baked in
    from the official wheel) and requirements-elyra.txt with the image's own pins (see support/elyra.py)."""
    tag = f"localhost/elyra-sidecar-standin/elyra-runtime:{suite}{'-r' if with_r else ''}"
    packages = " ".join([*RUNTIME_PACKAGES, *(["'packaging<22'"] if suite == "bullseye" else [])])
    containerfile = RUNTIME_CONTAINERFILE.format(
        base=BASES[suite], packages=packages, r_block=R_BLOCK if with_r else ""
    )
    curl = CURL.format(
        python="/usr/bin/python3",
        cache="/opt/elyra-standin",
        pins="/opt/elyra-standin/requirements-elyra.txt",
    )
    boots = {v: elyra.bootstrapper(v).read_bytes() for v in ELYRA_VERSIONS}
    digest = hashlib.sha256(containerfile.encode() + curl.encode())
    for version, data in boots.items():
        digest.update(version.encode() + data)
    with _Lock(PODS_CACHE / f"runtime-{suite}.lock"):
        base_image(suite)
        base_key = podman("image", "inspect", "--format", f'{{{{index .Labels "{LABEL}"}}}}', BASES[suite])
        digest.update(base_key.stdout)
        key = digest.hexdigest()[:16]
        have = podman("image", "inspect", "--format", f'{{{{index .Labels "{LABEL}"}}}}', tag, check=False)
        if have.returncode == 0 and have.stdout.decode().strip() == key:
            return tag
        with tempfile.TemporaryDirectory(prefix="elyra-runtime-standin-") as tmp:
            context = Path(tmp)
            (context / "Containerfile").write_text(containerfile + f"LABEL {LABEL}={key}\n")
            (context / "curl").write_text(curl)
            for version, data in boots.items():
                target = context / "elyra" / version / "bootstrapper.py"
                target.parent.mkdir(parents=True)
                target.write_bytes(data)
            build(context / "Containerfile", tag, context)
    return tag


IMAGE_PYTHONPATH_CONTAINERFILE = """\
# STAND-IN for a company runtime image that ships its own library on `ENV PYTHONPATH`. Test use only.
FROM {base}
COPY companylib.py /opt/company-lib/companylib.py
ENV PYTHONPATH=/opt/company-lib
"""
COMPANYLIB = b'GREETING = "companylib from the image"\n'


@functools.cache
def runtime_image_with_pythonpath() -> str:
    """The runtime stand-in plus `ENV PYTHONPATH=/opt/company-lib` holding `companylib.py`."""
    base = runtime_image("bookworm")
    tag = "localhost/elyra-sidecar-standin/elyra-runtime:bookworm-pythonpath"
    with _Lock(PODS_CACHE / "runtime-pythonpath.lock"), tempfile.TemporaryDirectory() as tmp:
        context = Path(tmp)
        (context / "Containerfile").write_text(IMAGE_PYTHONPATH_CONTAINERFILE.format(base=base))
        (context / "companylib.py").write_bytes(COMPANYLIB)
        build(context / "Containerfile", tag, context)
    return tag


_PARAM = re.compile(r"\{\{\s*([a-zA-Z0-9_.-]+)\s*\}\}")


def _substitute(text: str, values: Mapping[str, str]) -> str:
    def repl(m: re.Match[str]) -> str:
        if m.group(1) not in values:
            raise KeyError(f"no value for {{{{{m.group(1)}}}}}")
        return values[m.group(1)]

    return _PARAM.sub(repl, text)


def _walk_strings(value: Any, change: Any) -> Any:
    if isinstance(value, str):
        return change(value)
    if isinstance(value, list):
        return [_walk_strings(v, change) for v in value]
    if isinstance(value, dict):
        return {k: _walk_strings(v, change) for k, v in value.items()}
    return value


@dataclass
class PodPlan:
    """The Pod to play, and what Argo knows about it."""

    name: str
    manifest: dict[str, Any]
    sidecars: list[str]
    artifacts: list[dict[str, Any]]


def pod_manifest(
    workflow: Mapping[str, Any],
    template_name: str,
    *,
    runtime: str,
    endpoint: tuple[str, str],
    sidecar_ref: str,
    values: Mapping[str, str],
    secrets: Mapping[tuple[str, str], str],
    name: str | None = None,
) -> PodPlan:
    """The Pod Argo would create for `template_name`; only images, endpoint and parameters substituted.

    `endpoint` is (the S3 endpoint Elyra compiled in, the one of this run's server)."""
    template = next(t for t in workflow["spec"]["templates"] if t["name"] == template_name)
    name = name or f"elyra-step-{uuid.uuid4().hex[:8]}"

    def change(text: str) -> str:
        return _substitute(text, values).replace(*endpoint)

    def image_of(container: dict[str, Any]) -> str:
        if container.get("image") != sidecar_ref:
            raise ValueError(f"container {container['name']}: no local image for {container.get('image')}")
        return SIDECAR_IMAGE

    def env_of(container: dict[str, Any]) -> list[dict[str, Any]]:
        entries = []
        for entry in container.get("env") or []:
            ref = (entry.get("valueFrom") or {}).get("secretKeyRef")
            if ref is not None:  # emulated: no Secret objects here, the value is given directly
                entries.append({"name": entry["name"], "value": secrets[(ref["name"], ref["key"])]})
            else:
                entries.append(entry)
        return entries

    main = copy.deepcopy(template["container"])
    main["name"] = "main"
    main["image"] = runtime
    main["env"] = env_of(main)
    main.pop("imagePullPolicy", None)
    containers = [main]
    sidecars = []
    for spec in template.get("sidecars") or []:
        side = copy.deepcopy(spec)
        side["image"] = image_of(side)
        side["env"] = env_of(side)
        containers.append(side)
        sidecars.append(side["name"])
    inits = []
    for spec in template.get("initContainers") or []:
        init = copy.deepcopy(spec)
        # An init container in main's own image (the live hook's elyra-live-env) runs the runtime stand-in.
        if init.get("image") == template["container"].get("image"):
            init["image"] = runtime
            init.pop("imagePullPolicy", None)  # a local image, as main's
        else:
            init["image"] = image_of(init)
        inits.append(init)
    empty_dirs = [v["name"] for v in template.get("volumes") or [] if "emptyDir" in v]
    if empty_dirs:
        # EMULATION of the kubelet: an emptyDir is 0777 in Kubernetes; podman makes it root-owned 0755.
        inits.insert(
            0,
            {
                "name": EMPTYDIR_INIT,
                "image": runtime,
                "command": ["chmod", "0777", *(f"/emulated/{v}" for v in empty_dirs)],
                "securityContext": {"runAsUser": 0, "runAsGroup": 0},
                "volumeMounts": [{"name": v, "mountPath": f"/emulated/{v}"} for v in empty_dirs],
            },
        )
    metadata = template.get("metadata") or {}
    spec: dict[str, Any] = {
        "hostNetwork": True,
        "restartPolicy": "Never",
        "initContainers": inits,
        "containers": containers,
        "volumes": copy.deepcopy(template.get("volumes") or []),
    }
    if template.get("securityContext"):
        spec["securityContext"] = copy.deepcopy(template["securityContext"])
    manifest = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "labels": dict(metadata.get("labels") or {}),
            # podman 4.3 refuses annotation values over 63 characters (Kubernetes allows 256 KiB in all):
            # Elyra's long KFP annotations are left off; nothing in the pod reads them.
            "annotations": {
                k: str(v) for k, v in (metadata.get("annotations") or {}).items() if len(str(v)) <= 63
            },
        },
        "spec": _walk_strings(spec, change),
    }
    artifacts = list((template.get("outputs") or {}).get("artifacts") or [])
    return PodPlan(name, manifest, sidecars, artifacts)


@dataclass
class Logs:
    """One container's log as `podman logs` gives it: stdout and stderr apart, and timed lines."""

    stdout: bytes
    stderr: bytes
    timed: list[tuple[datetime, str]] = field(default_factory=list)

    def first(self, needle: str) -> datetime | None:
        return next((t for t, line in self.timed if needle in line), None)


@dataclass
class PodResult:
    plan: PodPlan
    node: ElyraNode
    main_rc: int
    main_finished: datetime
    sidecar_rcs: dict[str, int]
    sidecar_exit_seconds: dict[str, float]
    logs: dict[str, Logs]
    artifacts: dict[str, Path | None]
    out_dir: Path


def _time(text: str) -> datetime:
    # podman prints RFC 3339 with nanoseconds; Python 3.10's fromisoformat takes microseconds only.
    text = text.strip().replace("Z", "+00:00")
    m = re.match(r"(\d{4}-\d\d-\d\d)[T ](\d\d:\d\d:\d\d)(\.\d+)?(.*)$", text)
    if m is None:
        raise ValueError(f"not a time: {text!r}")
    frac = (m.group(3) or ".0")[:7]
    tz = m.group(4).strip()
    if tz and " " in tz:  # "+0000 UTC" as Go's default String() writes it
        tz = tz.split()[0]
    if re.fullmatch(r"[+-]\d{4}", tz):
        tz = tz[:3] + ":" + tz[3:]
    return datetime.fromisoformat(f"{m.group(1)}T{m.group(2)}{frac}{tz or '+00:00'}")


def container_logs(container: str) -> Logs:
    plain = podman("logs", container)
    timed = podman("logs", "--timestamps", container).stdout.decode(errors="replace")
    lines = []
    for line in timed.splitlines():
        stamp, _, rest = line.partition(" ")
        lines.append((_time(stamp), rest))
    return Logs(plain.stdout, plain.stderr, lines)


def finished_at(container: str) -> datetime:
    return _time(podman("inspect", "--format", "{{.State.FinishedAt}}", container).stdout.decode())


def wait_exit(container: str, timeout: float) -> int:
    return int(podman("wait", container, timeout=timeout).stdout.decode().split()[0])


def wait_for_log(container: str, needle: bytes, timeout: float) -> bool:
    """Poll `podman logs` until `needle` appears on the container's stdout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if needle in podman("logs", container, check=False).stdout:
            return True
        time.sleep(0.2)
    return False


def upload_inputs(
    workflow: Mapping[str, Any],
    template_name: str,
    s3: Any,
    files: Mapping[str, bytes],
    inputs: Mapping[str, bytes] | None,
) -> ElyraNode:
    """Object storage as Elyra's export leaves it: the dependency archive and the input files."""
    templates = workflow["spec"]["templates"]
    index, template = next((i, t) for i, t in enumerate(templates) if t["name"] == template_name)
    node = read_elyra_node(template, index)
    if node is None:
        raise ValueError(f"{template_name} is not an Elyra node")
    args_text = "\n".join(map(str, template["container"].get("args") or []))
    archive = re.search(r"--cos-dependencies-archive\s+['\"]?([^'\"\s]+)", args_text)
    if archive is None:
        raise ValueError("no --cos-dependencies-archive")
    s3.make_bucket(node.cos_bucket)
    client = s3.client()
    for key, data in {archive.group(1): dependency_archive(files), **(inputs or {})}.items():
        client.put_object(
            node.cos_bucket, posixpath.join(node.cos_directory, key), io.BytesIO(data), len(data)
        )
    return node


def run_pod(
    workflow: Mapping[str, Any],
    template_name: str,
    *,
    s3: Any,
    files: Mapping[str, bytes],
    inputs: Mapping[str, bytes] | None = None,
    parameters: Mapping[str, str] | None = None,
    secrets: Mapping[tuple[str, str], str] | None = None,
    workflow_parameters: Mapping[str, str] | None = None,
    sidecar_ref: str = Config().sidecar.image,  # what the transformer writes by default
    suite: str = "bookworm",
    with_r: bool = False,
    runtime: str | None = None,
    kill_main_after: bytes | None = None,
    echo: Callable[[bytes], None] | None = None,
    timeout: float = 300.0,
) -> PodResult:
    """Play the step's Pod with podman, then Argo's part; the pod is removed, its outputs kept in out_dir.

    `runtime`: another image for main (and init containers in main's image) than the runtime stand-in."""
    values = {f"inputs.parameters.{k}": v for k, v in (parameters or {}).items()}
    for p in (workflow["spec"].get("arguments") or {}).get("parameters") or []:
        values[f"workflow.parameters.{p['name']}"] = str(p.get("value", ""))
    for k, v in (workflow_parameters or {}).items():
        values[f"workflow.parameters.{k}"] = v
    values["workflow.uid"] = "pods-0000-uid"
    values["workflow.name"] = "pods"
    sidecar_image()
    runtime = runtime or runtime_image(suite, with_r=with_r)
    node = upload_inputs(workflow, template_name, s3, files, inputs)
    plan = pod_manifest(
        workflow,
        template_name,
        runtime=runtime,
        endpoint=(node.cos_endpoint, s3.endpoint),
        sidecar_ref=sidecar_ref,
        values=values,
        secrets=secrets or {},
    )
    out_dir = Path(tempfile.mkdtemp(prefix="elyra-pod-"))
    manifest = out_dir / "pod.yaml"
    manifest.write_text(yaml.safe_dump(plan.manifest, sort_keys=False))
    main = f"{plan.name}-main"
    try:
        played = podman("kube", "play", str(manifest), timeout=timeout, check=False)
        if played.returncode != 0:
            inits = [c["name"] for c in plan.manifest["spec"]["initContainers"]]
            said = {n: podman("logs", f"{plan.name}-{n}", check=False) for n in inits}
            raise RuntimeError(
                f"podman kube play exited {played.returncode}: "
                + played.stderr.decode(errors="replace")[-2000:]
                + "\n"
                + "\n".join(
                    f"{n}: {p.stdout.decode()[-1000:]}{p.stderr.decode()[-1000:]}" for n, p in said.items()
                )
            )
        follower = None
        if echo is not None and plan.sidecars:  # `kubectl logs -f <pod> -c <sidecar>`, as a person would
            follower = subprocess.Popen(
                ["podman", "logs", "--follow", f"{plan.name}-{plan.sidecars[0]}"],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env=podman_env(),
            )
            threading.Thread(target=_pump, args=(follower.stdout, echo), daemon=True).start()
        if kill_main_after is not None:
            # A killed step (the OOM killer, a node loss): SIGKILL to main once the script has begun.
            side = f"{plan.name}-{plan.sidecars[0]}"
            if not wait_for_log(side, kill_main_after, timeout):
                raise RuntimeError(f"{kill_main_after!r} never reached {side}'s log")
            podman("kill", "--signal", "KILL", main)
        main_rc = wait_exit(main, timeout)
        # Argo's part: SIGTERM to the template's sidecars once main has exited.
        rcs, seconds = {}, {}
        for name in plan.sidecars:
            started = time.monotonic()
            podman("kill", "--signal", "TERM", f"{plan.name}-{name}", check=False)
            rcs[name] = wait_exit(f"{plan.name}-{name}", 60)
            seconds[name] = time.monotonic() - started
        # Argo's wait: every declared output artifact from its path in main (volumes included).
        artifacts: dict[str, Path | None] = {}
        for artifact in plan.artifacts:
            target = out_dir / "artifacts" / artifact["name"]
            target.parent.mkdir(parents=True, exist_ok=True)
            done = podman("cp", f"{main}:{artifact['path']}", str(target), check=False)
            artifacts[artifact["name"]] = target if done.returncode == 0 and target.exists() else None
        if follower is not None:
            follower.wait(timeout=30)
        logs = {
            c["name"]: container_logs(f"{plan.name}-{c['name']}") for c in plan.manifest["spec"]["containers"]
        }
        return PodResult(plan, node, main_rc, finished_at(main), rcs, seconds, logs, artifacts, out_dir)
    finally:
        remove_pod(plan.name)


def _pump(pipe: Any, echo: Callable[[bytes], None]) -> None:
    while data := os.read(pipe.fileno(), 65536):
        echo(data)


def remove_pod(name: str) -> None:
    """Remove the pod, its containers and the volumes kube play made for it."""
    inspect = podman("pod", "inspect", name, check=False)
    volumes: set[str] = set()
    if inspect.returncode == 0:
        info = json.loads(inspect.stdout)
        info = info[0] if isinstance(info, list) else info
        for ctr in info.get("Containers") or []:
            mounts = podman("inspect", "--format", "{{json .Mounts}}", ctr["Id"], check=False)
            if mounts.returncode == 0:
                volumes |= {
                    m["Name"] for m in json.loads(mounts.stdout or b"[]") if m.get("Type") == "volume"
                }
    podman("pod", "rm", "--force", name, check=False)
    for volume in volumes:
        podman("volume", "rm", "--force", volume, check=False)


def webhook_pod(
    objects: Mapping[str, dict[str, Any]], *, name: str, files: Path
) -> tuple[dict[str, Any], str]:
    """The Pod of the chart-rendered webhook Deployment, and the Service DNS name its certificate is for.

    The container is the Deployment's, exactly (command, args, ports, securityContext, resources, mounts);
    substituted: the image. Emulated: the ConfigMap and Secret volumes are host directories holding their
    rendered data (files 0644, as the kubelet writes them by default); the probes are left to the test,
    which makes them from the host as the kubelet does (podman would run them with curl inside the image);
    `ports` left off (the server listens on the host network, where podman refuses port mappings);
    restartPolicy Never, so a stopped container stays stopped for the test to read its exit code."""
    deployment = next(d for k, d in objects.items() if k.startswith("Deployment/"))
    service = next(d for k, d in objects.items() if k.startswith("Service/"))
    pod_spec = copy.deepcopy(deployment["spec"]["template"]["spec"])
    volumes = []
    for volume in pod_spec.get("volumes") or []:
        target = files / volume["name"]
        target.mkdir(parents=True, exist_ok=True)
        target.chmod(0o755)
        if "configMap" in volume:
            data = {
                k: v.encode() for k, v in objects[f"ConfigMap/{volume['configMap']['name']}"]["data"].items()
            }
        elif "secret" in volume:
            secret = objects[f"Secret/{volume['secret']['secretName']}"]
            data = {k: base64.b64decode(v) for k, v in secret["data"].items()}
        elif "emptyDir" in volume:
            # Emulated: an empty host directory, world-writable as the kubelet makes an emptyDir (0777);
            # podman's own emptyDir is root-owned 0755, which the webhook's uid 65532 could not write.
            target.chmod(0o777)
            data = {}
        else:
            raise ValueError(f"volume {volume['name']}: not a ConfigMap, Secret or emptyDir")
        for key, value in data.items():
            (target / key).write_bytes(value)
            (target / key).chmod(0o644)
        volumes.append({"name": volume["name"], "hostPath": {"path": str(target), "type": "Directory"}})
    containers = []
    for container in pod_spec["containers"]:
        ctr = copy.deepcopy(container)
        ctr["image"] = SIDECAR_IMAGE
        ctr.pop("livenessProbe", None)
        ctr.pop("readinessProbe", None)
        # On the host network a containerPort only documents the port; podman refuses it there.
        ctr.pop("ports", None)
        containers.append(ctr)
    spec = {
        "hostNetwork": True,
        "restartPolicy": "Never",
        "securityContext": pod_spec.get("securityContext") or {},
        "terminationGracePeriodSeconds": pod_spec.get("terminationGracePeriodSeconds", 30),
        "containers": containers,
        "volumes": volumes,
    }
    manifest = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "labels": dict(deployment["spec"]["template"]["metadata"].get("labels") or {}),
        },
        "spec": spec,
    }
    server_name = f"{service['metadata']['name']}.{service['metadata']['namespace']}.svc"
    return manifest, server_name
