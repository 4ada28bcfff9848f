"""The node reader against the real Elyra bootstrapper (from the official wheel): how it reads its options."""

from __future__ import annotations

import contextlib
import importlib.util
import io
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from elyra_sidecar.transformer._elyra import NodeParseError, _parse_bootstrapper_args
from elyra_sidecar.transformer._shell import Word
from tests.support import elyra

# The real parser's dests -> our keys (4.0's option table is the union over every Elyra version).
_DESTS = {
    "cos-endpoint": "cos_endpoint",
    "cos-bucket": "cos_bucket",
    "cos-directory": "cos_directory",
    "cos-dependencies-archive": "cos_dependencies_archive",
    "filepath": "file",
    "outputs": "outputs",
    "inputs": "inputs",
    "user-volume-path": "user_volume_path",
    "pipeline-name": "pipeline_name",
    "pipeline_parameters": "pipeline_parameters",
    "parameter_pass_method": "parameter_pass_method",
}
_REQUIRED = [
    "--cos-endpoint",
    "http://e:9000",
    "--cos-bucket",
    "b",
    "--cos-directory",
    "d",
    "--cos-dependencies-archive",
    "a.tar.gz",
    "--file",
    "f.py",
    "--pipeline-name",
    "p",
]
_SHORTS = ["-e", "-b", "-d", "-t", "-f", "-o", "-i", "-p", "-n", "-r", "-m", "-h", "-x"]
_LONGS = [
    "--cos-endpoint",
    "--cos-bucket",
    "--cos-directory",
    "--cos-dependencies-archive",
    "--file",
    "--outputs",
    "--inputs",
    "--user-volume-path",
    "--pipeline-name",
    "--pipeline-parameters",
    "--parameter-pass-method",
    "--help",
]
_VALUES = ["x.py", "a;b", "-x.py", "--x", "-1", "-.5", "-", "--", "a b", "-a b", "", "env", "=", "k=v", "-f="]


@st.composite
def _words(draw: st.DrawFn) -> str:
    """One command-line word: an option in some spelling (full, abbreviated, value attached) or a value."""
    value = draw(st.sampled_from(_VALUES))
    long = draw(st.sampled_from(_LONGS))
    prefix = long[: draw(st.integers(2, len(long)))]
    short = draw(st.sampled_from(_SHORTS))
    return draw(
        st.sampled_from(
            [long, prefix, f"{prefix}={value}", short, f"{short}{value}", f"{short}={value}", value]
        )
    )


@pytest.fixture(scope="module")
def bootstrapper() -> ModuleType:
    """elyra/kfp/bootstrapper.py of elyra-server 4.0.0, imported as a module (its main() is not run)."""
    path = elyra.bootstrapper("4.0.0")
    spec = importlib.util.spec_from_file_location("elyra_bootstrapper_4_0_0", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _real(module: ModuleType, argv: list[str]) -> dict[str, Any] | None:
    """What the real bootstrapper reads from argv, or None when it would stop (usage error or help)."""
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        try:
            parsed = module.OpUtil.parse_arguments(argv)
        except SystemExit:
            return None
        except TypeError:  # `-f--`: its own splitext() of the empty list argparse stored fails
            return None
    if any(v is not None and not isinstance(v, str) for v in parsed.values()):
        return (
            None  # `-e--`: argparse strips the `--` and stores an empty list; no file operation runs on that
        )
    return {_DESTS[k]: v for k, v in parsed.items() if v is not None}


def _ours(argv: list[str]) -> dict[str, Any] | None:
    try:
        read = _parse_bootstrapper_args([Word(a) for a in argv], "here")
    except NodeParseError:
        return None
    return {k: w.value for k, w in read.items()}


class TestOptionsAsTheBootstrapperReadsThem:
    @settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(extra=st.lists(_words(), max_size=5), first=st.booleans())
    def test_same_values_and_same_refusals_as_the_real_argparse(self, bootstrapper, extra, first):
        """On any mix of spellings (abbreviations, `=`, attached short values, `--`, dash values), our
        reader accepts exactly what the real bootstrapper accepts, with the same values."""
        argv = [*extra, *_REQUIRED] if first else [*_REQUIRED, *extra]
        assert _ours(argv) == _real(bootstrapper, argv)

    @pytest.mark.parametrize(
        "extra",
        [
            ["--co", "x"],
            ["--cos-dir", "x"],
            ["-fx.py"],
            ["-f=x.py"],
            ["--file=-x.py"],
            ["--file", "-x.py"],
            ["--file", "-1"],
            ["--file", "-x y.py"],
            ["--", "x"],
            ["--he"],
            ["-m", "file"],
            ["--pipeline-p", "a=1"],
            ["--pipeline", "x"],
        ],
    )
    def test_edge_spellings(self, bootstrapper, extra):
        """Hand-picked spellings agree with the real parser too (kept as named cases)."""
        argv = [*_REQUIRED, *extra]
        assert _ours(argv) == _real(bootstrapper, argv)
