"""The demo: transform the bundled Elyra pipeline, then run its first step with the sidecar, live.

Run through `./scripts/demo.sh`. Everything runs on this machine: a real S3 server (SeaweedFS) on
127.0.0.1, the real Elyra 3.15.0 bootstrapper from the official wheel, the sidecar as its own process.
With `--pods` (root and podman needed, see docs/end-to-end.md): the step runs as the Pod Argo would
create, in real containers, the image built from sidecar/Dockerfile, and the log read with `podman logs`.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import yaml

from elyra_sidecar.transformer import transform
from elyra_sidecar.transformer.cli import _report_text
from tests.support import elyra, pods
from tests.support.runner import run_step
from tests.support.s3 import start_s3

ROOT = Path(__file__).resolve().parent.parent

EXAMPLE = ROOT / "examples" / "hello-progress"
WORKFLOW = EXAMPLE / "hello-progress.elyra-3.15.0.yaml"
BOLD, DIM, RESET = ("\033[1m", "\033[2m", "\033[0m") if sys.stdout.isatty() else ("", "", "")


def say(text: str) -> None:
    print(f"{BOLD}==> {text}{RESET}", flush=True)


def main() -> int:
    if "--pods" in sys.argv[1:]:
        return main_pods()
    say(f"Transforming {WORKFLOW.relative_to(ROOT)} (compiled by the real Elyra 3.15.0)")
    workflow = yaml.safe_load(WORKFLOW.read_text())
    result = transform(workflow)
    _report_text(result, sys.stdout)
    first = result.nodes[0].template  # Elyra's first node ("Train")
    step = next(t for t in result.workflow["spec"]["templates"] if t["name"] == first)
    sidecar = step["sidecars"][0]
    print(
        f"\nInjected into {step['name']!r}: sidecar {sidecar['name']!r} running "
        f"`{' '.join(sidecar['command'] + sidecar['args'])}`"
    )
    print(
        "Output artifacts: " + ", ".join(f"{a['name']} <- {a['path']}" for a in step["outputs"]["artifacts"])
    )

    say("Preparing the stand-in image and the real Elyra 3.15.0 bootstrapper (cached after the first run)")
    t0 = time.monotonic()
    elyra.image_python()
    elyra.bootstrapper("3.15.0")
    print(f"ready in {time.monotonic() - t0:.1f}s")

    node_endpoint_port = 9123  # the --cos-endpoint Elyra compiled into the step
    say(f"Starting an S3 server (SeaweedFS) on 127.0.0.1:{node_endpoint_port}")
    s3 = start_s3(port=node_endpoint_port)
    try:
        say(
            "Running step 'Train' (progress.py) with the sidecar; its stdout is what "
            "`kubectl logs <pod> -c elyra-log` shows:"
        )
        started = time.monotonic()

        def echo(data: bytes) -> None:
            for line in data.decode(errors="replace").splitlines(keepends=True):
                sys.stdout.write(f"  [elyra-log +{time.monotonic() - started:4.1f}s] {line}")
            sys.stdout.flush()

        files = {p.name: p.read_bytes() for p in (EXAMPLE / "progress.py",)}
        run = run_step(result.workflow, step["name"], s3=s3, files=files, echo=echo, keep=True)
        keep = "--keep" in sys.argv[1:]
        node = run.node
        key = f"{node.cos_directory}/{node.log_file}"
        obj = s3.get(node.cos_bucket, key)
        print()
        say("Done")
        chatter = run.main_out.data.count(b"\n")
        print(
            f"main (the bootstrapper) exited {run.main_rc}; it printed {chatter} lines of its own"
            " to the container log that KFP's Logs tab shows"
        )
        print(f"sidecar exited {run.sidecar_rc} {run.sidecar_exit_seconds:.2f}s after SIGTERM")
        same = obj == run.sidecar_out.data
        print(
            f"log in object storage: s3://{node.cos_bucket}/{key} ({len(obj or b'')} bytes, "
            f"{'identical to' if same else 'DIFFERENT from'} the streamed log)"
        )
        print("artifacts Argo's wait container would upload (listed in KFP's Input/Output tab):")
        for name, path, host in run.artifacts:
            state = "exists" if host.exists() else "missing"
            print(f"  {name:20} {path:45} {state}")
        if keep:
            print(f"{DIM}(pod directory kept at {run.pod_dir}){RESET}")
        else:
            shutil.rmtree(run.pod_dir, ignore_errors=True)
            print(f"{DIM}(run with --keep to look at the pod's directory afterwards){RESET}")
        return 0 if run.main_rc == 0 and run.sidecar_rc == 0 and same else 1
    finally:
        s3.stop()


def main_pods() -> int:
    """The same story with real containers: `podman kube play` of the step's Pod, `podman logs`."""
    reason = pods.unavailable()
    if reason is not None:
        print(f"Error: --pods: {reason}", file=sys.stderr)
        return 1
    say(f"Transforming {WORKFLOW.relative_to(ROOT)} (compiled by the real Elyra 3.15.0)")
    result = transform(yaml.safe_load(WORKFLOW.read_text()))
    _report_text(result, sys.stdout)
    step = next(t for t in result.workflow["spec"]["templates"] if t["name"] == result.nodes[0].template)
    say(
        "Building the image from sidecar/Dockerfile and the stand-in Elyra runtime image with podman "
        "(stand-in Debian bases; minutes the first time, cached after that)"
    )
    t0 = time.monotonic()
    pods.sidecar_image()
    pods.runtime_image()
    print(f"ready in {time.monotonic() - t0:.1f}s")
    s3 = start_s3()
    try:
        say(
            f"Playing step 'Train' as its Pod (podman kube play, host network, S3 on {s3.endpoint}); "
            "`podman logs -f <pod>-elyra-log`, i.e. `kubectl logs -f <pod> -c elyra-log`:"
        )
        started = time.monotonic()

        def echo(data: bytes) -> None:
            for line in data.decode(errors="replace").splitlines(keepends=True):
                sys.stdout.write(f"  [elyra-log +{time.monotonic() - started:4.1f}s] {line}")
            sys.stdout.flush()

        files = {"progress.py": (EXAMPLE / "progress.py").read_bytes()}
        run = pods.run_pod(result.workflow, step["name"], s3=s3, files=files, echo=echo)
        node = run.node
        key = f"{node.cos_directory}/{node.log_file}"
        obj = s3.get(node.cos_bucket, key)
        streamed = run.logs["elyra-log"].stdout
        print()
        say("Done")
        print(f"main (uid 1000, the bootstrapper) exited {run.main_rc}")
        for name, rc in run.sidecar_rcs.items():
            seconds = run.sidecar_exit_seconds[name]
            print(f"{name} (uid 65532, read-only root) exited {rc} {seconds:.2f}s after SIGTERM")
        same = obj == streamed
        print(
            f"log in object storage: s3://{node.cos_bucket}/{key} ({len(obj or b'')} bytes, "
            f"{'identical to' if same else 'DIFFERENT from'} `podman logs` of elyra-log)"
        )
        print("artifacts copied out of main, as Argo's wait does:")
        for name, path in run.artifacts.items():
            print(f"  {name:24} {'copied' if path else 'missing'}")
        shutil.rmtree(run.out_dir, ignore_errors=True)
        return 0 if run.main_rc == 0 and set(run.sidecar_rcs.values()) <= {0} and same else 1
    finally:
        s3.stop()


if __name__ == "__main__":
    sys.exit(main())
