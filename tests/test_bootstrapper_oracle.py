"""The node reader against the real Elyra bootstrapper (from the official wheel): how it reads its options,
which operation it runs for a file, and the log file that operation writes."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import posixpath
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from elyra_sidecar.transformer._elyra import ElyraNode, NodeParseError, _ArgError, _kind_of, _read_options
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
        read = _read_options([Word(a) for a in argv])
    except _ArgError:
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


FILES = [
    "load_data.py",
    "/home/jovyan/work/train.ipynb",
    "report.r",
    "lib.pytorch/fit.r",
    "nb.ipynb.py",
    "data.read.r",
    "x.py.r",
    "Report.R",
    "README.md",
    "notes.ipynb.r",
]


class TestNodeKindAndLogName:
    @pytest.mark.parametrize("path", FILES)
    def test_kind_is_the_operation_the_real_bootstrapper_picks(self, bootstrapper, monkeypatch, path):
        """Our kind is the class `FileOpBase.get_instance` creates (or both refuse the file)."""
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "a")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "b")
        params = {"filepath": path, "cos-endpoint": "http://127.0.0.1:1", "cos-bucket": "b"}
        try:
            real = type(bootstrapper.FileOpBase.get_instance(**params)).__name__
        except ValueError:
            real = None
        try:
            ours = _kind_of(path, "here")
        except NodeParseError:
            ours = None
        kinds = {"NotebookFileOp": "notebook", "PythonFileOp": "python", "RFileOp": "r", None: None}
        assert ours == kinds[real]

    @pytest.mark.parametrize("path", ["lib.pytorch/fit.r", "data.read.py", "a.py.py", "x.py.r"])
    def test_log_name_is_the_file_the_real_bootstrapper_writes(
        self, bootstrapper, s3, tmp_path, monkeypatch, path
    ):
        """Run the real PythonFileOp (python3 on the script, upload to S3): it writes our `log_file`."""
        name = posixpath.basename(path)
        (tmp_path / name).write_text("print('hello from the script')\n")
        monkeypatch.chdir(tmp_path)
        for key, value in s3.env.items():
            monkeypatch.setenv(key, value)
        s3.make_bucket("oracle")
        params = {"filepath": path, "cos-endpoint": s3.endpoint, "cos-bucket": "oracle", "cos-directory": "d"}
        op = bootstrapper.FileOpBase.get_instance(**params)
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            op.execute()
        node = ElyraNode(
            template_index=0,
            template_name="t",
            kind=_kind_of(path, "here"),
            file=path,
            run_dir=".",
            cos_endpoint=s3.endpoint,
            cos_bucket="oracle",
            cos_directory="d",
            inputs=(),
            outputs=(),
            elyra_version=(4, 0, 0),
            bootstrapper_source="elyra",
            bootstrapper_url="",
        )
        assert [p.name for p in tmp_path.glob("*.log")] == [node.log_file]
        assert (tmp_path / str(node.log_file)).read_text() == "hello from the script\n"
        assert s3.get("oracle", f"d/{node.log_file}") == b"hello from the script\n"
