"""Real containers for the Pod mode: a (mutated) KFP v2 step Pod played with `podman kube play`.

The Pod is taken as the webhook's JSON Patch leaves it; every container keeps its command, args, env,
workingDir, mounts, securityContext and resources. Substituted (see docs/end-to-end.md, "Pod mode under
podman"):
- the images: the image built from sidecar/Dockerfile (`sidecar_image`) for ours, and one
  STAND-IN image (`step_image`) for Argo's `argoexec` (init, wait), KFP's `launcher-v2` and Elyra's
  runtime: the v1 tests' stand-in runtime image plus the real 4.1.1 bootstrapper and the stand-in
  `argoexec` and `launcher-v2` below;
- the S3 endpoint (done by the test before mutating, as if Elyra had compiled against this run's server);
- added as in tests/support/pods.py: the EMULATION init container that makes every emptyDir 0777 (first),
  `hostNetwork: true`, and `imagePullPolicy` left off (no registry here). podman 4.3 refuses annotation
  values over 63 characters: such annotations are left off (the reconstructed 2.17 Pod has none).

The stand-ins run the process harness's own scripts (tests/support/pod.py, following shared/docs/KFP-V2.md),
with the image's `/usr/bin/python3`: `argoexec init` copies the emissary stand-in to /var/run/argo/argoexec
(what the real `argoexec init` does with its own binary), `launcher-v2 --copy DEST` copies the launcher
stand-in to DEST, and `argoexec wait` only waits for main's exit-code file (Elyra declares no outputs to
collect; Argo's part of signalling sidecars is played by the test).
"""

from __future__ import annotations

import copy
import functools
import hashlib
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tests.support import elyra, pods
from tests.support.elyra import ROOT, _Lock
from tests.support.pod import EMISSARY, LAUNCHER

STEP_IMAGE = "localhost/elyra-sidecar-standin/kfp-v2-step:bookworm"
STEP_IMAGE_R = "localhost/elyra-sidecar-standin/kfp-v2-step:bookworm-r"
# The image from sidecar/Dockerfile under a tag of its own: another checkout's test run may be using
# pods.SIDECAR_IMAGE at the same time, built from its own sources (same layers when the sources agree).
SIDECAR_IMAGE = "localhost/elyra-sidecar:test-pod-mode"
BOOTSTRAPPER_VERSION = "4.1.1"
# Containers Argo and KFP add to the Pod: all run from the stand-in step image here.
STANDIN_CONTAINERS = ("init", "kfp-launcher", "wait", "main")

ARGOEXEC = """#!/bin/sh
# STAND-IN for Argo's argoexec (tests/support/kfp_pods.py): `init` places the emissary stand-in, `wait`
# waits for main's exit code. Test use only.
case "$1" in
    init) cp /opt/kfp-v2-standin/emissary /var/run/argo/argoexec && chmod 0755 /var/run/argo/argoexec ;;
    wait) until [ -f /var/run/argo/ctr/main/exitcode ]; do sleep 0.2; done ;;
    *) echo "argoexec stand-in: only init and wait run from the image" >&2; exit 64 ;;
esac
"""
LAUNCHER_V2 = """#!/bin/sh
# STAND-IN for KFP's launcher-v2 (tests/support/kfp_pods.py): only `--copy DEST`. Test use only.
[ "$1" = "--copy" ] && [ -n "$2" ] || { echo "launcher-v2 stand-in: only --copy DEST" >&2; exit 64; }
cp /opt/kfp-v2-standin/launch "$2" && chmod 0755 "$2"
"""
STEP_CONTAINERFILE = """\
# STAND-IN for Argo's argoexec image, KFP's kfp-launcher image and an Elyra 4.1 runtime image, in one:
# the stand-in Elyra runtime image (tests/support/pods.py) plus the real bootstrapper of Elyra 4.1.1 (from
# the official wheel) and the stand-in argoexec and launcher-v2 (tests/support/kfp_pods.py). Test use only.
FROM {runtime}
USER 0
COPY bootstrapper.py /opt/elyra-standin/elyra/{version}/bootstrapper.py
COPY emissary launch /opt/kfp-v2-standin/
COPY argoexec launcher-v2 /usr/local/bin/
RUN chmod 0755 /opt/kfp-v2-standin/emissary /opt/kfp-v2-standin/launch /usr/local/bin/argoexec \\
    /usr/local/bin/launcher-v2
USER 1000:100
"""


@functools.cache
def sidecar_image() -> str:
    """The image built from the unchanged sidecar/Dockerfile on the stand-in base (podman's layer cache)."""
    with _Lock(pods.PODS_CACHE / "build.lock"):
        pods.base_image("bookworm")
        pods.build(ROOT / "sidecar" / "Dockerfile", SIDECAR_IMAGE)
    return SIDECAR_IMAGE


@functools.cache
def step_image(*, with_r: bool = False) -> str:
    """The STAND-IN step image, built once on the v1 tests' stand-in runtime image (keyed by its recipe).

    `with_r`: on the runtime image with Debian's r-base-core (the v1 R tests' one), for R steps."""
    runtime = pods.runtime_image("bookworm", with_r=with_r)
    tag = STEP_IMAGE_R if with_r else STEP_IMAGE
    files = {
        "Containerfile": STEP_CONTAINERFILE.format(runtime=runtime, version=BOOTSTRAPPER_VERSION).encode(),
        "bootstrapper.py": elyra.bootstrapper(BOOTSTRAPPER_VERSION).read_bytes(),
        "emissary": EMISSARY.format(python="/usr/bin/python3").encode(),
        "launch": LAUNCHER.format(python="/usr/bin/python3").encode(),
        "argoexec": ARGOEXEC.encode(),
        "launcher-v2": LAUNCHER_V2.encode(),
    }
    digest = hashlib.sha256()
    for name, data in sorted(files.items()):
        digest.update(name.encode() + b"\0" + data)
    fmt = f'{{{{index .Labels "{pods.LABEL}"}}}}'
    digest.update(pods.podman("image", "inspect", "--format", fmt, runtime).stdout)
    key = digest.hexdigest()[:16]
    with _Lock(pods.PODS_CACHE / f"kfp-v2-step{'-r' if with_r else ''}.lock"):
        have = pods.podman("image", "inspect", "--format", fmt, tag, check=False)
        if have.returncode == 0 and have.stdout.decode().strip() == key:
            return tag
        with tempfile.TemporaryDirectory(prefix="elyra-kfp-v2-standin-") as tmp:
            context = Path(tmp)
            for name, data in files.items():
                (context / name).write_bytes(data)
            with (context / "Containerfile").open("a") as f:
                f.write(f"LABEL {pods.LABEL}={key}\n")
            pods.build(context / "Containerfile", tag, context)
    return tag


def podman_pod(
    pod: Mapping[str, Any], *, name: str, sidecar_ref: str, step: str = STEP_IMAGE
) -> dict[str, Any]:
    """The mutated Pod as podman plays it: images substituted, the emptyDir emulation, host network."""
    manifest = copy.deepcopy(dict(pod))
    spec = manifest["spec"]
    main_image = next(c["image"] for c in spec["containers"] if c["name"] == "main")
    for ctr in [*spec.get("initContainers", []), *spec["containers"]]:
        # The live hook's elyra-live-env runs main's own image: the step stand-in too.
        if ctr["name"] in STANDIN_CONTAINERS or ctr["image"] == main_image:
            ctr["image"] = step
        elif ctr["image"] == sidecar_ref:
            ctr["image"] = SIDECAR_IMAGE
        else:
            raise ValueError(f"container {ctr['name']}: no local image for {ctr['image']}")
        ctr.pop("imagePullPolicy", None)
    empty_dirs = [v["name"] for v in spec.get("volumes") or [] if "emptyDir" in v]
    # EMULATION of the kubelet: an emptyDir is 0777 in Kubernetes; podman makes it root-owned 0755.
    spec["initContainers"].insert(
        0,
        {
            "name": pods.EMPTYDIR_INIT,
            "image": step,
            "command": ["chmod", "0777", *(f"/emulated/{v}" for v in empty_dirs)],
            "securityContext": {"runAsUser": 0, "runAsGroup": 0},
            "volumeMounts": [{"name": v, "mountPath": f"/emulated/{v}"} for v in empty_dirs],
        },
    )
    spec["hostNetwork"] = True
    metadata = manifest["metadata"]
    metadata["name"] = name
    metadata["annotations"] = {
        k: str(v) for k, v in (metadata.get("annotations") or {}).items() if len(str(v)) <= 63
    }
    return manifest
