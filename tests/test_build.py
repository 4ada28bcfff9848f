"""The compiled build (setup.py, mypyc): compiled where expected, pure Python where it cannot be."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.helpers import ROOT, compiled_modules


class TestWhatRuns:
    # scripts/test.sh says which build it runs the tests on: 1 the compiled one, 0 pure Python.
    EXPECTED = os.environ.get("ELYRA_SIDECAR_EXPECT_COMPILED")

    @pytest.mark.parametrize("name", compiled_modules())
    def test_the_build_is_the_expected_one(self, name):
        if self.EXPECTED is None:
            pytest.skip("ELYRA_SIDECAR_EXPECT_COMPILED is not set (scripts/test.sh sets it)")
        path = str(importlib.import_module(name).__file__)
        if self.EXPECTED == "1":
            assert path.endswith(".so"), f"{name} is not compiled: {path}"
        else:
            assert path.endswith(".py"), f"{name} is not pure Python: {path}"

    def test_the_list_names_every_module_once(self):
        names = compiled_modules()
        assert len(set(names)) == len(names) >= 8
        for name in names:
            assert (ROOT / "src" / (name.replace(".", "/") + ".py")).is_file()


def build_wheel(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`pip wheel` of a copy of this checkout's tracked files, with this venv's setuptools (no download)."""
    source = tmp_path / "source"
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "pyproject.toml", "setup.py", "README.md", "src"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for name in files:
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_bytes((ROOT / name).read_bytes())
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-v",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path / "out"),
            ".",
        ],
        cwd=source,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # with -v, pip passes on what setup.py says
        text=True,
        check=False,
        timeout=600,
    )


@pytest.fixture
def no_compiler(tmp_path) -> dict[str, str]:
    """An environment whose PATH has no C compiler (and no CC)."""
    empty = tmp_path / "bin"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in {"CC", "ELYRA_SIDECAR_COMPILE", "PYTHONPATH"}}
    return {**env, "PATH": str(empty)}


class TestWithoutACompiler:
    def test_the_build_falls_back_to_pure_python(self, tmp_path, no_compiler):
        done = build_wheel(tmp_path, no_compiler)
        assert done.returncode == 0, done.stdout[-2000:]
        assert "pure Python: no C compiler" in done.stdout
        (wheel,) = (tmp_path / "out").glob("*.whl")
        assert wheel.name.endswith("-py3-none-any.whl")
        names = zipfile.ZipFile(wheel).namelist()
        assert not [n for n in names if n.endswith(".so")]
        assert "elyra_sidecar/transformer/_shell.py" in names

    def test_asking_for_the_compiled_build_fails_clearly(self, tmp_path, no_compiler):
        done = build_wheel(tmp_path, {**no_compiler, "ELYRA_SIDECAR_COMPILE": "1"})
        assert done.returncode != 0
        assert "ELYRA_SIDECAR_COMPILE=1 but cannot compile: no C compiler" in done.stdout

    def test_a_wrong_switch_is_named(self, tmp_path, no_compiler):
        done = build_wheel(tmp_path, {**no_compiler, "ELYRA_SIDECAR_COMPILE": "yes"})
        assert done.returncode != 0
        assert "ELYRA_SIDECAR_COMPILE='yes': expected auto, 0 or 1" in done.stdout
