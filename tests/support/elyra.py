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
import shutil
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


class NoInterpreterError(RuntimeError):
    """No Python of the version a step's Elyra release supports is installed here."""


def find_interpreter(version: str) -> str | None:
    """A Python `version` ("3.10") that really runs here: on PATH, or installed by pyenv, or Debian's."""
    candidates = [shutil.which(f"python{version}")]
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates += [str(p) for p in sorted(pyenv_root.glob(f"versions/{version}.*/bin/python{version}"))]
    candidates.append(f"/usr/bin/python{version}")
    for candidate in candidates:
        if candidate and Path(candidate).exists():
            probe = subprocess.run([candidate, "-c", "pass"], capture_output=True, check=False)
            if probe.returncode == 0:  # a pyenv shim of an inactive version fails here
                return candidate
    return None


def _interpreter(version: str | None) -> str:
    if version is None:
        return sys.executable
    found = find_interpreter(version)
    if found is None:
        raise NoInterpreterError(
            f"python{version} is not installed (this Elyra release's bootstrapper needs it)"
        )
    return found


def image_python(version: str | None = None) -> Path:
    """A virtualenv standing in for the step's container image (Elyra's runtime packages installed).

    `version` ("3.10") picks the image's Python; None is this interpreter's."""
    venv = CACHE / (f"image-venv-{version}" if version else "image-venv")
    python = venv / "bin" / "python3"
    stamp = venv / ".ready"
    if stamp.exists():
        return python
    with _Lock(CACHE / "image.lock"):
        if stamp.exists():
            return python
        subprocess.run([_interpreter(version), "-m", "venv", "--clear", str(venv)], check=True)
        # Elyra <= 3.13's bootstrapper uses packaging.version.LegacyVersion (gone in packaging 22);
        # the images of its time (and its own requirements) had an older packaging.
        extra = ["packaging<22"] if version == "3.10" else []
        _pip(python, "install", "--quiet", *IMAGE_PACKAGES, *extra)
        _pip(python, "install", "--quiet", "--upgrade", "pip")
        stamp.touch()
    return python


def image_pins(version: str | None = None) -> bytes:
    """`pip freeze` of the stand-in image: what the runner serves as requirements-elyra.txt."""
    out = subprocess.run([str(image_python(version)), "-m", "pip", "freeze"], capture_output=True, check=True)
    return out.stdout
