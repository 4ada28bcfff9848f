"""Build hook: compile the admission hot paths with mypyc when it can, else install pure Python.

The Python sources stay the one source: mypyc compiles the same files (they pass `mypy --strict`) to C
extension modules that sit beside them and take precedence on import. Chosen by ELYRA_SIDECAR_COMPILE:
  "auto" (default)  compile when mypyc and a working C compiler and the Python headers are there, else
                    build a pure-Python (py3-none-any) package and say why on stderr
An editable install (`pip install -e .`) is always pure Python, so that edits to the sources take effect.
  "1"               compile, and fail the build if that cannot be done
  "0"               never compile (pure Python)
Everything else (name, version, dependencies, packages) is in pyproject.toml.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

from setuptools import setup

# The modules a review runs through (README: Development, "The compiled build"). Each must stay free of
# what mypyc treats differently from CPython: monkeypatched module functions, `__code__`, and so on.
COMPILED = [
    "src/elyra_sidecar/transformer/_shell.py",
    "src/elyra_sidecar/transformer/_elyra.py",
    "src/elyra_sidecar/transformer/_steps.py",
    "src/elyra_sidecar/transformer/_argo.py",
    "src/elyra_sidecar/transformer/_shape.py",
    "src/elyra_sidecar/transformer/_transform.py",
    "src/elyra_sidecar/webhook/_patch.py",
    "src/elyra_sidecar/webhook/_admission.py",
]
SWITCH = "ELYRA_SIDECAR_COMPILE"
BUILD = ".cache/build"
# The setuptools commands that build extension modules; pip's metadata and editable hooks run none of them.
BUILDS = {"bdist_wheel", "build", "build_ext", "install"}


def say(message: str) -> None:
    print(f"elyra-sidecar build: {message}", file=sys.stderr)


def why_not_compile() -> str | None:
    """None when a C extension can be built here, else the reason it cannot."""
    include = sysconfig.get_path("include")
    if not (Path(include) / "Python.h").is_file():
        return f"no Python headers ({include}/Python.h)"
    compiler = (os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc").split()
    if not compiler or shutil.which(compiler[0]) is None:
        return f"no C compiler ({compiler[0] if compiler else 'CC is empty'} is not on PATH)"
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "probe.c"
        source.write_text("#include <Python.h>\nint probe(void) { return 0; }\n")
        try:
            done = subprocess.run(
                [*compiler, "-c", str(source), "-I", include, "-o", str(Path(tmp) / "probe.o")],
                capture_output=True,
                check=False,
                timeout=120,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"the C compiler {compiler[0]} did not run ({exc})"
        if done.returncode != 0:
            error = done.stderr.decode(errors="replace")[:200]
            return f"the C compiler {compiler[0]} failed on a probe: {error}"
    try:
        import mypyc.build  # noqa: F401, PLC0415
    except ImportError:
        return "mypyc is not installed (pip install mypy)"
    return None


def ext_modules() -> list[object]:
    mode = os.environ.get(SWITCH, "auto").strip().lower() or "auto"
    if mode not in {"auto", "0", "1"}:
        sys.exit(f"elyra-sidecar build: {SWITCH}={mode!r}: expected auto, 0 or 1")
    if mode == "0":
        say(f"{SWITCH}=0: pure Python")
        return []
    if not BUILDS & set(sys.argv[1:]):
        # Metadata, sdist, or an editable install (`pip install -e .`): nothing to compile. An editable
        # install stays pure Python, so that edits to the sources take effect.
        return []
    reason = why_not_compile()
    if reason is not None:
        if mode == "1":
            sys.exit(f"elyra-sidecar build: {SWITCH}=1 but cannot compile: {reason}")
        say(f"pure Python: {reason}")
        return []
    from mypyc.build import mypycify  # noqa: PLC0415

    say(f"compiling {len(COMPILED)} modules with mypyc")
    return list(mypycify(COMPILED, opt_level="3", debug_level="0", target_dir=f"{BUILD}/compiled/mypyc"))


MODULES = ext_modules()
# setuptools' build tree (and mypyc's generated C) under the project's caches, one per kind: a pure build
# after a compiled one must not pick up the compiled build's extension modules left in build/lib.
setup(ext_modules=MODULES, options={"build": {"build_base": f"{BUILD}/{'compiled' if MODULES else 'pure'}"}})
