"""The one import namespace: what the wheel installs, what each command imports, the dispatcher."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from elyra_sidecar import _cli, contract
from tests.helpers import ROOT
from tests.support.elyra import CACHE, _Lock

_PROBE = """
import json, sys
from elyra_sidecar._cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)), file=sys.stderr)
"""


def _modules_after(*argv: str) -> set[str]:
    """The modules a fresh interpreter has loaded after running `elyra-sidecar ARGV`."""
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, *argv], capture_output=True, check=False, timeout=60, cwd="/"
    )
    return set(json.loads(proc.stderr.decode().strip().splitlines()[-1]))


def _wheel(tmp_path: Path) -> Path:
    """Our wheel, built from a copy of the sources (an in-tree build would leave a stale build/ behind)."""
    src = tmp_path / "src"
    for name in ("pyproject.toml", "README.md"):
        src.mkdir(exist_ok=True)
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "src", src / "src", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(src)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("elyra_sidecar-*.whl")
    return wheel


class TestDispatcher:
    def test_tail_imports_no_other_room(self):
        """`elyra-sidecar tail --help` loads the pod room only: no transformer, PyYAML, webhook or aiohttp."""
        loaded = _modules_after(contract.TAIL_COMMAND, "--help")
        assert "elyra_sidecar.sidecar.tail" in loaded
        heavy = {"elyra_sidecar.transformer", "elyra_sidecar.webhook", "yaml", "aiohttp", "prometheus_client"}
        assert not {m for m in loaded if m.split(".")[0] in heavy or m in heavy or m.startswith(tuple(heavy))}

    def test_install_live_imports_no_other_room(self):
        """`elyra-sidecar install-live --help` loads neither the transformer nor PyYAML."""
        loaded = _modules_after(contract.INSTALL_LIVE_COMMAND, "--help")
        assert "elyra_sidecar.sidecar.live" in loaded
        assert not {m for m in loaded if m.startswith(("elyra_sidecar.transformer", "elyra_sidecar.webhook"))}
        assert "yaml" not in loaded

    def test_transform_imports_no_server(self):
        """`elyra-sidecar transform --help` loads neither the webhook server nor the pod room."""
        loaded = _modules_after("transform", "--help")
        assert "elyra_sidecar.transformer.cli" in loaded
        assert not {
            m for m in loaded if m.startswith(("elyra_sidecar.webhook", "elyra_sidecar.sidecar", "aiohttp"))
        }

    @pytest.mark.parametrize("command", list(_cli.COMMANDS))
    def test_every_command_has_a_main(self, command):
        """Each entry of the dispatch table names a module with `main(argv)` that answers `--help` with 0."""
        proc = subprocess.run(
            [sys.executable, "-m", "elyra_sidecar", command, "--help"],
            capture_output=True,
            check=False,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
        assert f"elyra-sidecar {command}" in proc.stdout.decode()

    @pytest.mark.parametrize(("argv", "code"), [([], 2), (["nope"], 2), (["--version"], 0), (["--help"], 0)])
    def test_top_level_exit_codes(self, argv, code):
        """No command or an unknown one is a usage error (2); --version and --help exit 0."""
        proc = subprocess.run(
            [sys.executable, "-m", "elyra_sidecar", *argv], capture_output=True, check=False, timeout=60
        )
        assert proc.returncode == code
        if argv == ["--version"]:
            assert proc.stdout.decode().strip() == f"elyra-sidecar {_version_from_pyproject()}"


def _version_from_pyproject() -> str:
    import tomllib

    return str(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"])


class TestWheel:
    def test_one_top_level_import_name(self, tmp_path):
        """The wheel installs `elyra_sidecar` only: no generic top-level `sidecar` or `transformer`."""
        with zipfile.ZipFile(_wheel(tmp_path)) as wheel:
            names = wheel.namelist()
        tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
        assert tops == {"elyra_sidecar"}
        for room in ("transformer", "sidecar", "webhook"):
            assert f"elyra_sidecar/{room}/__init__.py" in names
        assert "elyra_sidecar/sidecar/live_sitecustomize.py" in names
        assert "elyra_sidecar/py.typed" in names

    @pytest.mark.skipif(os.environ.get("ELYRA_SIDECAR_OFFLINE") == "1", reason="needs the package index")
    def test_coexists_with_jupyter_widgets_sidecar(self, tmp_path):
        """With jupyter-widgets' `sidecar` (the real package from the index) installed first, installing our
        wheel leaves `from sidecar import Sidecar` working, and ours importable as `elyra_sidecar`."""
        env_dir = tmp_path / "venv"
        venv.EnvBuilder(with_pip=True).create(env_dir)
        python = str(env_dir / "bin" / "python")
        pip_env = {**os.environ, "PIP_CACHE_DIR": str(CACHE / "pip")}
        with _Lock(CACHE / "pip.lock"):
            subprocess.run(
                [python, "-m", "pip", "install", "-q", "sidecar"], check=True, timeout=600, env=pip_env
            )
            subprocess.run(
                [python, "-m", "pip", "install", "-q", f"{_wheel(tmp_path)}[sidecar]"],
                check=True,
                timeout=600,
                env=pip_env,
            )
        probe = (
            "from sidecar import Sidecar; import elyra_sidecar.sidecar.tail as t; import elyra_sidecar;"
            "print(Sidecar.__module__, t.__name__, elyra_sidecar.__version__)"
        )
        proc = subprocess.run([python, "-c", probe], capture_output=True, check=False, timeout=120, cwd="/")
        assert proc.returncode == 0, proc.stderr.decode()
        module, tail, version = proc.stdout.decode().split()
        assert module.startswith("sidecar") and tail == "elyra_sidecar.sidecar.tail"
        assert version == _version_from_pyproject()


def _wheel_names(source: str, out: Path) -> list[str]:
    """The file names in the wheel pip builds from `source` (a folder or an archive), without deps."""
    out.mkdir()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "-q",
            "-w",
            str(out),
            source,
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = out.glob("elyra_sidecar-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return sorted(n for n in archive.namelist() if ".dist-info/" not in n)


@pytest.mark.skipif(not (ROOT / ".git").exists(), reason="needs a git checkout of the repository")
class TestSources:
    """The package builds from every way the repository reaches a user: no links, no path mapping."""

    def test_the_repository_tracks_no_links(self):
        """No symbolic link is tracked: a clone with core.symlinks=false (Windows' default) is the same."""
        staged = subprocess.run(
            ["git", "ls-files", "-s"], cwd=ROOT, capture_output=True, check=True, text=True
        )
        links = [line.split("\t", 1)[1] for line in staged.stdout.splitlines() if line.startswith("120000")]
        assert links == []

    def test_a_clone_without_links_a_zip_and_the_sdist_build_the_same_wheel(self, tmp_path):
        """`git -c core.symlinks=false clone`, `git archive --format=zip` and the sdist built from that clone
        each give the same wheel as the working tree, with every room inside."""
        clone = tmp_path / "clone"
        subprocess.run(
            ["git", "-c", "core.symlinks=false", "clone", "-q", "--no-hardlinks", str(ROOT), str(clone)],
            check=True,
            capture_output=True,
            timeout=120,
        )
        archive = tmp_path / "repo.zip"
        subprocess.run(
            ["git", "archive", "--format=zip", "-o", str(archive), "HEAD"], cwd=clone, check=True, timeout=120
        )
        sdist_dir = tmp_path / "sdist"
        subprocess.run(
            [sys.executable, "-m", "build", "--sdist", "--outdir", str(sdist_dir), str(clone)],
            check=True,
            capture_output=True,
            timeout=300,
        )
        (sdist,) = sdist_dir.glob("elyra_sidecar-*.tar.gz")
        from_clone = _wheel_names(str(clone), tmp_path / "w1")
        assert from_clone == _wheel_names(str(archive), tmp_path / "w2")
        assert from_clone == _wheel_names(str(sdist), tmp_path / "w3")
        for room in ("transformer", "sidecar", "webhook", "logs"):
            assert f"elyra_sidecar/{room}/__init__.py" in from_clone
        assert "elyra_sidecar/sidecar/live_sitecustomize.py" in from_clone


class TestComplexityBudget:
    """Ruff counts complexity in src/; the functions allowed over its limits are few, each with a reason."""

    RULES = ("C901", "PLR0911", "PLR0912", "PLR0913", "PLR0915")
    BUDGET = 12

    def _exceptions(self) -> dict[str, str]:
        found = {}
        for path in sorted((ROOT / "src").rglob("*.py")):
            for number, line in enumerate(path.read_text().splitlines(), 1):
                _, sep, noqa = line.partition("# noqa: ")
                if sep and any(rule in noqa.split(" - ", 1)[0] for rule in self.RULES):
                    found[f"{path.relative_to(ROOT)}:{number}"] = noqa
        return found

    def test_within_the_budget(self):
        """At most BUDGET functions are exempt from the complexity limits (pyproject's [tool.ruff.lint])."""
        exceptions = self._exceptions()
        assert 0 < len(exceptions) <= self.BUDGET, exceptions

    def test_each_exception_says_why(self):
        """Every exemption names its rules and then, after ' - ', why the function is better as one."""
        unexplained = {
            where: noqa for where, noqa in self._exceptions().items() if len(noqa.split(" - ", 1)) < 2
        }
        assert unexplained == {}
