"""Run a (mutated) KFP v2 step Pod as processes: its containers, emptyDirs, and stand-ins for Argo and KFP.

There is no cluster here. A Pod is its containers' processes plus shared volumes, so this harness:
- makes one host directory per volume (mode 0777, as Kubernetes makes an emptyDir) and maps every
  `mountPath` of a container onto it;
- plays the init containers in order: Argo's `init` places the stand-in `argoexec` in `var-run-argo`,
  KFP's `kfp-launcher` places the stand-in `launch` in `kfp-launcher` (what their real `--copy` does), and
  any other init container (ours: `elyra-live-setup`) runs its real command;
- runs `main`'s exact command and args (argv elements that are paths in its volumes mapped to the host,
  Kubernetes' `$(VAR)` expansion applied), with its env, in its `workingDir`;
- runs every other container but Argo's `wait` with its real command (ours: `elyra-sidecar tail`), optionally
  as PID 1 of its own PID namespace (`unshare`, root only), so that Argo's kill command can be exec'd into it
  with `nsenter`, as `kubectl exec` does;
- substitutes only `curl` (the real Elyra bootstrapper, see support/elyra.py) and the image (a virtualenv).

The stand-ins follow the contracts in shared/docs/KFP-V2.md:
- `argoexec emissary [options] -- CMD...` runs CMD, passes SIGTERM on, then writes CMD's exit code to
  `/var/run/argo/ctr/<ARGO_CONTAINER_NAME>/exitcode` (argo cmd/argoexec/commands/emissary.go) and exits
  with it. Nested prefixes (KFP 2.0-2.2) run one emissary inside the other, as in the real Pod.
- `launch [--flag value ...] -- CMD...` runs CMD in the inherited working directory (the launcher sets no
  `Dir`, launcher_v2.go@2.17.0:707) with its output passed through, and exits 1 when CMD fails (it returns
  "failed to execute component"). MLMD, caching and artifact uploads are left out: Elyra declares no outputs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support import elyra
from tests.support.runner import CURL, StreamLog, _map_env_paths, _map_path, _pump

EMISSARY = r"""#!{python}
# Stand-in for Argo's `argoexec emissary [options] -- CMD...` (see tests/support/pod.py).
import os, signal, subprocess, sys
argv = sys.argv[1:]
if not argv or argv[0] != "emissary" or "--" not in argv:
    sys.stderr.write("argoexec stand-in: only `emissary ... -- CMD` is supported\n")
    sys.exit(64)
cmd = argv[argv.index("--") + 1:]
child = subprocess.Popen(cmd)
signal.signal(signal.SIGTERM, lambda s, f: child.send_signal(s))
code = child.wait()
code = code if code >= 0 else 128 - code
exit_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ctr", os.environ["ARGO_CONTAINER_NAME"])
os.makedirs(exit_dir, exist_ok=True)
tmp = os.path.join(exit_dir, ".exitcode.tmp")
with open(tmp, "w") as f:
    f.write(str(code))
os.replace(tmp, os.path.join(exit_dir, "exitcode"))
sys.exit(code)
"""

LAUNCHER = r"""#!{python}
# Stand-in for KFP's /kfp-launcher/launch (see tests/support/pod.py).
import subprocess, sys
argv = sys.argv[1:]
if "--" not in argv:
    sys.stderr.write("launcher stand-in: no `--` before the user command\n")
    sys.exit(2)
flags, cmd = argv[: argv.index("--")], argv[argv.index("--") + 1 :]
if "--executor_input" not in flags or "--component_spec" not in flags:
    sys.stderr.write("launcher stand-in: --executor_input and --component_spec are required\n")
    sys.exit(2)
code = subprocess.run(cmd).returncode
if code != 0:
    sys.stderr.write("failed to execute component: exit status %d\n" % code)
    sys.exit(1)
"""

_VAR_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion in command, args and env values (unknown references stay)."""
    return _VAR_REF.sub(lambda m: env.get(m.group(1), m.group(0)), text)


@dataclass
class Container:
    name: str
    process: subprocess.Popen[bytes]
    stdout: StreamLog = field(default_factory=StreamLog)
    stderr: StreamLog = field(default_factory=StreamLog)
    threads: list[threading.Thread] = field(default_factory=list)
    exited: float | None = None
    #: Host PID of the process that is PID 1 in the container's own PID namespace (None: no namespace).
    ns_pid: int | None = None

    def wait(self, timeout: float) -> int:
        rc = self.process.wait(timeout=timeout)
        self.exited = time.monotonic()
        for t in self.threads:
            t.join(timeout=10)
        return rc


@dataclass
class RunningPod:
    directory: Path
    volumes: dict[str, Path]
    containers: dict[str, Container]

    def host_path(self, container: Mapping[str, Any], path: str) -> Path | None:
        return _map_path(path, self._mounts(container))

    def _mounts(self, container: Mapping[str, Any]) -> dict[str, Path]:
        return {m["mountPath"]: self.volumes[m["name"]] for m in container.get("volumeMounts") or []}

    def exec_in(self, name: str, argv: list[str]) -> subprocess.CompletedProcess[bytes]:
        """Run `argv` inside container `name`'s PID and mount namespaces (`kubectl exec`)."""
        ctr = self.containers[name]
        if ctr.ns_pid is None:
            raise RuntimeError(f"{name} has no PID namespace of its own")
        command = list(argv)
        if command[0] == "elyra-sidecar":
            command[0] = str(Path(sys.executable).parent / "elyra-sidecar")
        return subprocess.run(
            ["nsenter", "--target", str(ctr.ns_pid), "--pid", "--mount", *command],
            capture_output=True,
            check=False,
            timeout=60,
        )

    def cleanup(self) -> None:
        for ctr in self.containers.values():
            if ctr.process.poll() is None:
                os.killpg(ctr.process.pid, signal.SIGKILL)  # its own session: the whole process tree
                ctr.process.wait(timeout=10)
        shutil.rmtree(self.directory, ignore_errors=True)


def pid_namespaces_available() -> str:
    """Empty when `unshare --pid` works here, else why not."""
    if shutil.which("unshare") is None or shutil.which("nsenter") is None:
        return "unshare/nsenter are not installed"
    probe = subprocess.run(
        ["unshare", "--pid", "--fork", "--mount-proc", "true"], capture_output=True, check=False, timeout=30
    )
    if probe.returncode != 0:
        return f"unshare --pid is not permitted here: {probe.stderr.decode(errors='replace').strip()}"
    return ""


def _env(
    container: Mapping[str, Any], *, secrets: Mapping[tuple[str, str], str], fields: Mapping[str, str]
) -> dict[str, str]:
    env: dict[str, str] = {}
    for entry in container.get("env") or []:
        if "value" in entry:
            env[entry["name"]] = expand(str(entry["value"]), env)
            continue
        source = entry.get("valueFrom") or {}
        if "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            env[entry["name"]] = secrets[(ref["name"], ref["key"])]
        elif "fieldRef" in source:
            env[entry["name"]] = fields[source["fieldRef"]["fieldPath"]]
        else:
            raise ValueError(f"unsupported env source in {container['name']}: {entry}")
    return env


def _argv(container: Mapping[str, Any], env: Mapping[str, str], mounts: Mapping[str, Path]) -> list[str]:
    argv = []
    for arg in [*(container.get("command") or []), *(container.get("args") or [])]:
        text = expand(str(arg), env)
        # A path alone, or as the value of `--name=/path` (how our containers' options are written).
        option, sep, value = text.partition("=") if text.startswith("--") else ("", "", text)
        mapped = _map_path(value, mounts) if value.startswith("/") and " " not in value else None
        argv.append(f"{option}{sep}{mapped}" if mapped is not None else text)
    if argv and argv[0] == "elyra-sidecar":
        argv[0] = str(Path(sys.executable).parent / "elyra-sidecar")
    return argv


def _start(name: str, argv: list[str], *, env: dict[str, str], cwd: Path, pid_namespace: bool) -> Container:
    prefix = ["unshare", "--pid", "--fork", "--mount-proc"] if pid_namespace else []
    process = subprocess.Popen(
        [*prefix, *argv],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    ctr = Container(name, process)
    ctr.threads = [
        threading.Thread(target=_pump, args=(process.stdout, ctr.stdout, None), daemon=True),
        threading.Thread(target=_pump, args=(process.stderr, ctr.stderr, None), daemon=True),
    ]
    for t in ctr.threads:
        t.start()
    if pid_namespace:
        # `unshare --fork` forks the command: that child is PID 1 of the new namespace.
        children = Path(f"/proc/{process.pid}/task/{process.pid}/children")
        deadline = time.monotonic() + 10
        while not children.read_text().split() and time.monotonic() < deadline:
            time.sleep(0.01)
        ctr.ns_pid = int(children.read_text().split()[0])
    return ctr


def start_pod(
    pod: Mapping[str, Any],
    *,
    secrets: Mapping[tuple[str, str], str] | None = None,
    isolate: tuple[str, ...] = (),
) -> RunningPod:
    """Run the init containers to completion, then start the containers (`isolate`: in own PID namespaces)."""
    spec = pod["spec"]
    directory = Path(tempfile.mkdtemp(prefix="elyra-pod-"))
    volumes = {}
    for volume in spec.get("volumes") or []:
        if set(volume) - {"name"} != {"emptyDir"}:
            raise ValueError(f"volume {volume['name']}: only emptyDir is supported here")
        path = directory / "volumes" / volume["name"]
        path.mkdir(parents=True)
        path.chmod(0o777)
        volumes[volume["name"]] = path
    running = RunningPod(directory, volumes, {})
    (directory / "tmp").mkdir()
    (directory / "home").mkdir()
    bin_dir = directory / "bin"
    bin_dir.mkdir()
    pins = directory / "requirements-elyra.txt"
    pins.write_bytes(elyra.image_pins())
    (bin_dir / "curl").write_text(CURL.format(python=sys.executable, cache=str(elyra.CACHE), pins=str(pins)))
    (bin_dir / "curl").chmod(0o755)
    fields = {"metadata.name": pod["metadata"]["name"], "metadata.uid": "pod-uid-0000"}
    secrets = dict(secrets or {})

    for init in spec.get("initContainers") or []:
        mounts = running._mounts(init)
        if init["name"] == "init":  # Argo's: copies argoexec into /var/run/argo
            target = _map_path("/var/run/argo/argoexec", mounts)
            assert target is not None
            target.write_text(EMISSARY.format(python=sys.executable))
            target.chmod(0o755)
        elif init["name"] == "kfp-launcher":  # KFP's: `launcher-v2 --copy /kfp-launcher/launch`
            argv = [*init.get("command", []), *init.get("args", [])]
            target = _map_path(argv[argv.index("--copy") + 1], mounts)
            assert target is not None
            target.write_text(LAUNCHER.format(python=sys.executable))
            target.chmod(0o755)
        else:
            env = _env(init, secrets=secrets, fields=fields)
            done = subprocess.run(
                _argv(init, env, mounts),
                env={**os.environ, **env},
                capture_output=True,
                check=False,
                timeout=60,
            )
            if done.returncode != 0:
                raise RuntimeError(f"init container {init['name']} failed: {done.stderr.decode()[-2000:]}")

    image_bin = elyra.image_python().parent
    for ctr in spec["containers"]:
        if ctr["name"] == "wait":
            continue  # Argo's: collects outputs; its job here is done by the test
        mounts = running._mounts(ctr)
        env = _env(ctr, secrets=secrets, fields=fields)
        if ctr["name"] == "main":
            if env.get("ELYRA_WRITABLE_CONTAINER_DIR") == "/tmp":
                env["ELYRA_WRITABLE_CONTAINER_DIR"] = str(directory / "tmp")
            _map_env_paths(env, mounts)
            env.update(
                {
                    "PATH": f"{bin_dir}:{image_bin}:/usr/bin:/bin",
                    "HOME": str(directory / "home"),
                    "TMPDIR": str(directory / "tmp"),
                    "LANG": "C.UTF-8",
                }
            )
            workdir = (
                _map_path(ctr["workingDir"], mounts) if ctr.get("workingDir") else directory / "image-workdir"
            )
            assert workdir is not None
            workdir.mkdir(parents=True, exist_ok=True)
        else:
            # Our own image is this checkout: its interpreter, and its PYTHONPATH when one is set.
            env.update({"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"})
            if os.environ.get("PYTHONPATH"):
                env["PYTHONPATH"] = os.environ["PYTHONPATH"]
            workdir = directory
        argv = _argv(ctr, env, mounts)
        if ctr["name"] != "main" and argv[1:2] == ["tail"]:
            argv += ["--diagnostics", "json"]
        running.containers[ctr["name"]] = _start(
            ctr["name"], argv, env=env, cwd=workdir, pid_namespace=ctr["name"] in isolate
        )
    return running


def argo_kill_command(pod: Mapping[str, Any], container: str, signum: int = signal.SIGTERM) -> list[str]:
    """The command Argo execs to signal `container` (signal.go: the kill-cmd annotation, `%d` replaced)."""
    annotation = pod["metadata"].get("annotations", {}).get(f"workflows.argoproj.io/kill-cmd-{container}")
    command = json.loads(annotation) if annotation else ["/bin/sh", "-c", "kill -%d 1"]
    return [part.replace("%d", str(int(signum))) if "%d" in part else part for part in command]
