"""Run one transformed Elyra step the way its pod would: two processes sharing a directory.

There is no cluster here, but a pod is its containers' processes plus shared volumes. The runner:
- makes a temporary directory per volume of the template and maps every `mountPath` onto it;
- runs main's exact `command` + `args` (Argo's `{{...}}` substitution applied, nothing else changed)
  with the template's env, in main's `workingDir` mapped to the host;
- starts the sidecar as a separate process with its spec's command, args (container paths mapped)
  and env, right after main (Argo starts template sidecars after main);
- substitutes only `curl` (answering the bootstrapper URL with the real bootstrapper of that Elyra
  release, see `support/elyra.py`) and the image (a virtualenv with Elyra's runtime packages);
- talks to a real S3 server at the step's own --cos-endpoint, preloaded with the dependency archive
  and input files as Elyra's export uploads them;
- when main exits, sends SIGTERM to the sidecar, as Argo does, and collects everything.
"""

from __future__ import annotations

import io
import os
import posixpath
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from elyra_sidecar.transformer._elyra import ElyraNode, read_elyra_node
from tests.support import elyra

_PARAM = re.compile(r"\{\{\s*([a-zA-Z0-9_.-]+)\s*\}\}")

CURL = r"""#!{python}
# Stand-in for curl inside the step: serves the real Elyra files, refuses anything else (like --fail).
import re, shutil, sys
args = sys.argv[1:]
url = next((a for a in args if a.startswith(("http://", "https://"))), None)
out = args[args.index("--output") + 1] if "--output" in args else None
m = re.search(r"/elyra/v(\d+\.\d+\.\d+)/elyra/kfp/bootstrapper\.py$", url or "")
if m and out:
    shutil.copyfile({cache!r} + "/elyra/" + m.group(1) + "/bootstrapper.py", out)
    sys.exit(0)
if url and re.search(r"/requirements-elyra(-py37)?\.txt$", url) and out:
    shutil.copyfile({pins!r}, out)
    sys.exit(0)
sys.stderr.write("curl (e2e stand-in): no offline answer for %s\n" % url)
sys.exit(22)
"""


@dataclass
class StreamLog:
    """Bytes from a pipe with their arrival times."""

    chunks: list[tuple[float, bytes]] = field(default_factory=list)

    @property
    def data(self) -> bytes:
        return b"".join(c for _, c in self.chunks)

    def arrival(self, needle: bytes) -> float | None:
        acc = b""
        for t, chunk in self.chunks:
            acc += chunk
            if needle in acc:
                return t
        return None


def _pump(pipe: Any, log: StreamLog, echo: Callable[[bytes], None] | None) -> None:
    fd = pipe.fileno()
    while True:
        data = os.read(fd, 65536)
        if not data:
            return
        log.chunks.append((time.monotonic(), data))
        if echo is not None:
            echo(data)


@dataclass
class StepResult:
    node: ElyraNode
    main_rc: int
    main_out: StreamLog
    main_started: float
    main_exited: float
    sidecar_rc: int | None
    sidecar_out: StreamLog
    sidecar_err: StreamLog
    sidecar_exit_seconds: float | None
    pod_dir: Path
    mounts: dict[str, Path]
    artifacts: list[tuple[str, str, Path]]

    def host_path(self, container_path: str) -> Path | None:
        return _map_path(container_path, self.mounts)


def _map_path(path: str, mounts: Mapping[str, Path]) -> Path | None:
    best = None
    for mount_path in mounts:
        mp = mount_path.rstrip("/")
        if (path == mp or path.startswith(mp + "/")) and (best is None or len(mp) > len(best)):
            best = mp
    if best is None:
        return None
    rest = path[len(best) :].lstrip("/")
    base = mounts[best if best in mounts else best + "/"]
    return base / rest if rest else base


def _map_env_paths(env: dict[str, str], mounts: Mapping[str, Path]) -> None:
    """Env values naming paths in a volume (`/elyra-sidecar/work/...`, `a:b` lists) point at the host copy."""
    for key, value in env.items():
        parts = []
        for part in value.split(":"):
            mapped = _map_path(part, mounts) if part.startswith("/") else None
            parts.append(str(mapped) if mapped is not None else part)
        env[key] = ":".join(parts)


def _substitute(text: str, values: Mapping[str, str]) -> str:
    def repl(m: re.Match[str]) -> str:
        key = m.group(1)
        if key not in values:
            raise KeyError(f"no value for {{{{{key}}}}}")
        return values[key]

    return _PARAM.sub(repl, text)


def _env(
    entries: list[dict[str, Any]], secrets: Mapping[tuple[str, str], str], values: Mapping[str, str]
) -> dict[str, str]:
    env: dict[str, str] = {}
    for entry in entries:
        if "value" in entry:
            env[entry["name"]] = _substitute(str(entry["value"]), values)
        elif "secretKeyRef" in entry.get("valueFrom", {}):
            ref = entry["valueFrom"]["secretKeyRef"]
            env[entry["name"]] = secrets[(ref["name"], ref["key"])]
    return env


def dependency_archive(files: Mapping[str, bytes]) -> bytes:
    """A tar.gz of the node's files, as Elyra's export uploads it (`<name>-<id>.tar.gz`)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = int(time.time())
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def run_step(
    workflow: Mapping[str, Any],
    template_name: str,
    *,
    s3: Any,
    files: Mapping[str, bytes],
    inputs: Mapping[str, bytes] | None = None,
    parameters: Mapping[str, str] | None = None,
    secrets: Mapping[tuple[str, str], str] | None = None,
    workflow_parameters: Mapping[str, str] | None = None,
    echo: Callable[[bytes], None] | None = None,
    main_echo: Callable[[bytes], None] | None = None,
    timeout: float = 300.0,
    keep: bool = False,
) -> StepResult:
    templates = workflow["spec"]["templates"]
    index, template = next((i, t) for i, t in enumerate(templates) if t["name"] == template_name)
    node = read_elyra_node(template, index)
    if node is None:
        raise ValueError(f"{template_name} is not an Elyra node")
    parameters = dict(parameters or {})
    secrets = dict(secrets or {})
    values = {f"inputs.parameters.{k}": v for k, v in parameters.items()}
    # Argo: {{workflow.parameters.x}} is the run's value, else spec.arguments.parameters' default.
    for p in (workflow["spec"].get("arguments") or {}).get("parameters") or []:
        values[f"workflow.parameters.{p['name']}"] = str(p.get("value", ""))
    for k, v in (workflow_parameters or {}).items():
        values[f"workflow.parameters.{k}"] = v
    values["workflow.uid"] = "e2e-0000-uid"
    values["workflow.name"] = "e2e"

    # Object storage as Elyra's export leaves it: the dependency archive and the inputs.
    args_text = "\n".join(map(str, template["container"].get("args") or []))
    archive = re.search(r"--cos-dependencies-archive\s+['\"]?([^'\"\s]+)", args_text)
    if archive is None:
        raise ValueError("no --cos-dependencies-archive")
    s3.make_bucket(node.cos_bucket)
    client = s3.client()
    uploads = {archive.group(1): dependency_archive(files), **(inputs or {})}
    for name, data in uploads.items():
        client.put_object(
            node.cos_bucket, posixpath.join(node.cos_directory, name), io.BytesIO(data), len(data)
        )

    pod = Path(tempfile.mkdtemp(prefix="elyra-e2e-pod-"))
    volumes = {v["name"]: pod / "volumes" / v["name"] for v in template.get("volumes") or []}
    for path in volumes.values():
        path.mkdir(parents=True)
    main = template["container"]
    mounts = {m["mountPath"]: volumes[m["name"]] for m in main.get("volumeMounts") or []}
    workdir = _map_path(main["workingDir"], mounts) if main.get("workingDir") else pod / "image-workdir"
    if workdir is None:
        raise ValueError(f"workingDir {main['workingDir']} is on no volume")
    workdir.mkdir(parents=True, exist_ok=True)
    (pod / "tmp").mkdir()
    (pod / "home").mkdir()
    bin_dir = pod / "bin"
    bin_dir.mkdir()
    pins = pod / "requirements-elyra.txt"
    # Elyra before 3.14 accepts Python 3.7-3.10 only (its determine_elyra_requirements()).
    image_version = "3.10" if node.elyra_version is not None and node.elyra_version < (3, 14, 0) else None
    pins.write_bytes(elyra.image_pins(image_version))
    if node.elyra_version is not None and node.bootstrapper_source == "elyra":
        elyra.bootstrapper(".".join(map(str, node.elyra_version)))
    curl = bin_dir / "curl"
    curl.write_text(CURL.format(python=sys.executable, cache=str(elyra.CACHE), pins=str(pins)))
    curl.chmod(0o755)
    image_bin = elyra.image_python(image_version).parent

    main_env = _env(main.get("env") or [], secrets, values)
    if main_env.get("ELYRA_WRITABLE_CONTAINER_DIR") == "/tmp":
        main_env["ELYRA_WRITABLE_CONTAINER_DIR"] = str(pod / "tmp")
    _map_env_paths(main_env, mounts)
    main_env.update(
        {
            "PATH": f"{bin_dir}:{image_bin}:/usr/bin:/bin",
            "HOME": str(pod / "home"),
            "TMPDIR": str(pod / "tmp"),
            "LANG": "C.UTF-8",
        }
    )
    # Template init containers run first, each to completion (as the kubelet does).
    for init in template.get("initContainers") or []:
        init_mounts = {m["mountPath"]: volumes[m["name"]] for m in init.get("volumeMounts") or []}
        init_args = []
        for arg in map(str, init.get("args") or []):
            mapped = _map_path(arg, init_mounts) if arg.startswith("/") else None
            init_args.append(str(mapped) if mapped is not None else arg)
        init_cmd = list(init["command"])
        if init_cmd[0] == "elyra-sidecar":
            init_cmd[0] = str(Path(sys.executable).parent / "elyra-sidecar")
        done = subprocess.run([*init_cmd, *init_args], capture_output=True, check=False, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"init container {init['name']} failed: {done.stderr.decode()[-2000:]}")
    argv = [_substitute(str(a), values) for a in [*(main.get("command") or []), *(main.get("args") or [])]]

    sidecar_spec = next(iter(template.get("sidecars") or []), None)
    main_log, side_out, side_err = StreamLog(), StreamLog(), StreamLog()
    started = time.monotonic()
    main_proc = subprocess.Popen(
        argv,
        cwd=workdir,
        env=main_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    threads = [threading.Thread(target=_pump, args=(main_proc.stdout, main_log, main_echo), daemon=True)]
    side_proc = None
    if sidecar_spec is not None:
        side_mounts = {m["mountPath"]: volumes[m["name"]] for m in sidecar_spec.get("volumeMounts") or []}
        side_args = []
        for arg in map(str, sidecar_spec.get("args") or []):
            option, sep, value = arg.partition("=") if arg.startswith("--") else ("", "", arg)
            mapped = _map_path(value, side_mounts) if value.startswith("/") else None  # `--dir=/x` too
            side_args.append(f"{option}{sep}{mapped}" if mapped is not None else arg)
        command = list(sidecar_spec["command"])
        if command[0] == "elyra-sidecar":
            command[0] = str(Path(sys.executable).parent / "elyra-sidecar")
        side_env = _env(sidecar_spec.get("env") or [], secrets, values)
        side_env.update({"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"})
        side_proc = subprocess.Popen(
            [*command, *side_args, "--diagnostics", "json"],
            env=side_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        threads += [
            threading.Thread(target=_pump, args=(side_proc.stdout, side_out, echo), daemon=True),
            threading.Thread(target=_pump, args=(side_proc.stderr, side_err, None), daemon=True),
        ]
    for t in threads:
        t.start()
    try:
        main_rc = main_proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(main_proc.pid, signal.SIGKILL)
        raise
    exited = time.monotonic()
    side_rc = side_seconds = None
    if side_proc is not None:
        t0 = time.monotonic()
        side_proc.send_signal(signal.SIGTERM)
        side_rc = side_proc.wait(timeout=35)
        side_seconds = time.monotonic() - t0
    for t in threads:
        t.join(timeout=10)
    artifacts = []
    for artifact in (template.get("outputs") or {}).get("artifacts") or []:
        host = _map_path(artifact["path"], mounts)
        if host is not None:
            artifacts.append((artifact["name"], artifact["path"], host))
    result = StepResult(
        node,
        main_rc,
        main_log,
        started,
        exited,
        side_rc,
        side_out,
        side_err,
        side_seconds,
        pod,
        mounts,
        artifacts,
    )
    if not keep:
        shutil.rmtree(pod, ignore_errors=True)
    return result
