"""The real Elyra bootstrapper, taken from the official wheels on the package index, and a stand-in image.

Nothing of Elyra is committed: `bootstrapper(version)` downloads `elyra-server==<version>` with pip (cached
under .cache/), and extracts `elyra/kfp/bootstrapper.py` from it unchanged.

`requirements-elyra.txt` is NOT shipped in any Elyra wheel or sdist (it lives only in the repository's
`etc/generic/`). The stand-in image is a virtualenv holding what Elyra's runtime images hold (minio,
packaging, papermill, ipykernel, nbconvert); the runner answers the requirements URL with that
image's own pins, so the bootstrapper's package_install finds everything installed, as in Elyra's
example images. Documented in docs/end-to-end.md.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("ELYRA_SIDECAR_CACHE", ROOT / ".cache"))
IMAGE_PACKAGES = ("minio", "packaging", "papermill", "ipykernel", "nbconvert", "nbformat")


class _Lock:
    """A file lock, so parallel test processes build the cache once."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)

    def __enter__(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)


def _pip(python: str | Path, *args: str) -> None:
    proc = subprocess.run([str(python), "-m", "pip", *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"pip {' '.join(args)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")


def bootstrapper(version: str) -> Path:
    """`elyra/kfp/bootstrapper.py` of elyra-server==`version`, extracted from the official wheel."""
    target = CACHE / "elyra" / version / "bootstrapper.py"
    if target.exists():
        return target
    with _Lock(CACHE / "elyra.lock"):
        if target.exists():
            return target
        wheels = CACHE / "elyra" / "wheels"
        wheels.mkdir(parents=True, exist_ok=True)
        _pip(
            sys.executable,
            "download",
            "--quiet",
            "--no-deps",
            "--only-binary",
            ":all:",
            "-d",
            str(wheels),
            f"elyra-server=={version}",
        )
        (wheel,) = wheels.glob(f"elyra_server-{version}-*.whl")
        with zipfile.ZipFile(wheel) as zf:
            data = zf.read("elyra/kfp/bootstrapper.py")
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(target)
    return target


def image_python() -> Path:
    """A virtualenv standing in for the step's container image (Elyra's runtime packages installed)."""
    venv = CACHE / "image-venv"
    python = venv / "bin" / "python3"
    stamp = venv / ".ready"
    if stamp.exists():
        return python
    with _Lock(CACHE / "image.lock"):
        if stamp.exists():
            return python
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        _pip(python, "install", "--quiet", *IMAGE_PACKAGES)
        _pip(python, "install", "--quiet", "--upgrade", "pip")
        stamp.touch()
    return python


def image_pins() -> bytes:
    """`pip freeze` of the stand-in image: what the runner serves as requirements-elyra.txt."""
    out = subprocess.run([str(image_python()), "-m", "pip", "freeze"], capture_output=True, check=True)
    return out.stdout
