"""Reading Elyra nodes from every fixture shape."""

from __future__ import annotations

import contextlib
import copy
import shlex
from collections.abc import Callable

import pytest

from elyra_sidecar.transformer import _shell
from elyra_sidecar.transformer._elyra import NodeParseError, _scan_script, read_elyra_node
from tests.helpers import FIXTURES, load_fixture
from tests.support import work

# (fixture, template) -> (kind, run dir, log file, outputs, version label)
EXPECTED = {
    ("elyra-2.0.0-three-node.yaml", "load-data"): (
        "python",
        "jupyter-work-dir",
        "load_data.log",
        ("data.csv",),
        "2.x (kfp-notebook 0.18.0)",
    ),
    ("elyra-2.2.4-three-node.yaml", "report"): (
        "r",
        "jupyter-work-dir",
        "report.log",
        ("report.txt",),
        "2.x (kfp-notebook 0.23.0)",
    ),
    ("elyra-3.12.0-three-node.yaml", "train"): (
        "notebook",
        "jupyter-work-dir",
        None,
        ("model.pkl", "metrics/*.json"),
        "3.12.0",
    ),
    ("elyra-3.13.0-three-node.yaml", "run-a-file"): (
        "python",
        "jupyter-work-dir",
        "load_data.log",
        ("data.csv",),
        "3.13.0",
    ),
    ("elyra-3.15.0-three-node.yaml", "run-a-file-3"): ("r", ".", "report.log", ("report.txt",), "3.15.0"),
    ("elyra-4.0.0-three-node.yaml", "run-a-file"): ("python", ".", "load_data.log", ("data.csv",), "4.0.0"),
    ("elyra-4.0.0-three-node-crio.yaml", "run-a-file-2"): (
        "notebook",
        ".",
        None,
        ("model.pkl", "metrics/*.json"),
        "4.0.0",
    ),
    ("elyra-4.0.0-three-node-cos-secret.yaml", "run-a-file"): (
        "python",
        ".",
        "load_data.log",
        ("data.csv",),
        "4.0.0",
    ),
}


def _template(fixture: str, name: str):
    workflow = load_fixture(FIXTURES / fixture)
    for index, template in enumerate(workflow["spec"]["templates"]):
        if template["name"] == name:
            return index, template
    raise AssertionError(name)


class TestReadElyraNode:
    @pytest.mark.parametrize(("fixture", "name"), list(EXPECTED))
    def test_reads_what_the_bootstrapper_will_do(self, fixture, name):
        """Kind, run directory (<= 3.13: jupyter-work-dir; >= 3.14: the initial directory), log, outputs."""
        index, template = _template(fixture, name)
        node = read_elyra_node(template, index)
        assert node is not None
        kind, run_dir, log, outputs, version = EXPECTED[(fixture, name)]
        assert (node.kind, node.run_dir, node.log_file, node.outputs, node.version_label) == (
            kind,
            run_dir,
            log,
            outputs,
            version,
        )
        assert node.cos_bucket == "elyra-bucket"
        assert node.cos_endpoint == "http://127.0.0.1:9123"

    def test_log_name_uses_str_replace_like_the_bootstrapper(self):
        """`data.read.r` -> `dataead.log`: str.replace removes every `.r`, as Elyra does."""
        index, template = _template("elyra-4.0.0-three-node.yaml", "run-a-file-3")
        template = copy.deepcopy(template)
        template["container"]["args"][0] = template["container"]["args"][0].replace("report.r", "data.read.r")
        node = read_elyra_node(template, index)
        assert node is not None and node.log_file == "dataead.log"

    def test_plain_kfp_templates_are_not_elyra_nodes(self):
        """Templates without Elyra marks or a bootstrapper call are not read at all."""
        workflow = load_fixture(FIXTURES / "kfp-1.8.24-plain-two-step.yaml")
        assert all(read_elyra_node(t, i) is None for i, t in enumerate(workflow["spec"]["templates"]))

    def test_unparseable_command_names_the_place(self):
        """A labelled node whose script has an unterminated quote is an error naming the template."""
        index, template = _template("elyra-4.0.0-three-node.yaml", "run-a-file")
        template = copy.deepcopy(template)
        template["container"]["args"][0] = template["container"]["args"][0].replace(
            "--outputs 'data.csv'", "--outputs 'data.csv"
        )
        with pytest.raises(NodeParseError, match=r"spec\.templates\[0\]\.container\.args: .*quote"):
            read_elyra_node(template, index)

    def test_runtime_only_outputs_are_refused(self):
        """An --outputs value that needs a shell expansion is not guessed."""
        index, template = _template("elyra-3.13.0-three-node.yaml", "run-a-file")
        template = copy.deepcopy(template)
        template["container"]["args"][0] = template["container"]["args"][0].replace(
            "--outputs 'data.csv'", '--outputs "$OUT"'
        )
        with pytest.raises(NodeParseError, match="only known at run time"):
            read_elyra_node(template, index)

    def test_absolute_cd_is_followed(self):
        """`cd /abs` before the bootstrapper (CRI-O <= 3.13) gives an absolute run directory."""
        index, template = _template("elyra-3.13.0-three-node.yaml", "run-a-file")
        template = copy.deepcopy(template)
        args = template["container"]["args"][0]
        template["container"]["args"][0] = args.replace(
            "mkdir -p ./jupyter-work-dir && cd ./jupyter-work-dir",
            "mkdir -p /opt/app-root/src/jupyter-work-dir && cd /opt/app-root/src/jupyter-work-dir",
        )
        node = read_elyra_node(template, index)
        assert node is not None and node.run_dir == "/opt/app-root/src/jupyter-work-dir"

    def test_values_are_read_by_position_not_by_value(self):
        """`--pipeline-name '$D' --cos-directory "$D"`: the directory is the dynamic word, not the literal."""
        index, template = _template("elyra-3.13.0-three-node.yaml", "run-a-file")
        template = copy.deepcopy(template)
        args = template["container"]["args"][0]
        args = args.replace("--pipeline-name 'three-node'", "--pipeline-name '$D'")
        args = args.replace("--cos-directory 'my/project/three-node-1121215526'", '--cos-directory "$D"')
        template["container"]["args"][0] = args
        with pytest.raises(NodeParseError, match=r"--cos-directory is only known at run time"):
            read_elyra_node(template, index)

    def test_option_spellings_the_bootstrapper_accepts(self):
        """`--file=x`, `-fx` and a unique prefix (`--cos-dir`) read as the bootstrapper's argparse does."""
        index, template = _template("elyra-3.13.0-three-node.yaml", "run-a-file")
        template = copy.deepcopy(template)
        args = template["container"]["args"][0]
        args = args.replace("--file '/home/jovyan/work/three-node/load_data.py'", "-f'other.py'")
        args = args.replace("--cos-directory 'my/project", "--cos-dir='my/project")
        args = args.replace("--outputs 'data.csv'", "--outputs=a.csv --out b.csv")
        template["container"]["args"][0] = args
        node = read_elyra_node(template, index)
        assert node is not None
        assert (node.file, node.cos_directory, node.outputs) == (
            "other.py",
            "my/project/three-node-1121215526",
            ("b.csv",),
        )

    @pytest.mark.parametrize(
        ("spelling", "reason"),
        [
            ("--co x", "ambiguous option '--co'"),
            ("--help", "help"),
            ("-h", "help"),
            ("--nope x", "unknown option '--nope'"),
            ("--parameter-pass-method file", "must be one of env"),
            ("-- x", "unexpected argument '--'"),
            ("--inputs", "--inputs expects a value"),
            ("--inputs -x.csv", "--inputs expects a value"),
        ],
    )
    def test_what_the_bootstrapper_would_refuse_is_an_error_and_nothing_is_printed(
        self, capsys, spelling, reason
    ):
        """Ambiguous, unknown or help options: one NodeParseError naming the place; no library prints."""
        index, template = _template("elyra-3.13.0-three-node.yaml", "run-a-file")
        template = copy.deepcopy(template)
        template["container"]["args"][0] = template["container"]["args"][0].rstrip() + f" {spelling}"
        with pytest.raises(NodeParseError, match=r"spec\.templates\[0\]\.container\.args: .*") as info:
            read_elyra_node(template, index)
        assert reason in str(info.value)
        assert capsys.readouterr() == ("", "")

    def test_outer_expansions_reach_the_child_script(self):
        """4.0: `sh -c "... --cos-directory '$D'"` is filled in by the outer shell: not a literal `$D`."""
        index, template = _template("elyra-4.0.0-three-node.yaml", "run-a-file")
        template = copy.deepcopy(template)
        args = template["container"]["args"][0]
        template["container"]["args"][0] = args.replace(
            "--cos-directory 'my/project/three-node-1121214047'", "--cos-directory '$D'"
        )
        with pytest.raises(NodeParseError, match=r"--cos-directory is only known at run time"):
            read_elyra_node(template, index)

    def test_child_scripts_without_the_bootstrapper_are_not_read(self):
        """A child `sh -c` that neither fetches nor runs the bootstrapper cannot change where it runs."""
        index, template = _template("elyra-4.0.0-three-node.yaml", "run-a-file")
        template = copy.deepcopy(template)
        args = template["container"]["args"][0]
        template["container"]["args"][0] = args.replace(
            'sh -c "mkdir -p ./jupyter-work-dir && cd ./jupyter-work-dir"', "sh -c 'cd \"$HOME\" && ls'"
        )
        node = read_elyra_node(template, index)
        assert node is not None and node.run_dir == "."

    def test_a_script_seen_before_is_not_read_again_and_the_memory_is_bounded(self):
        """Every run of a pipeline carries the same scripts: the second read is remembered (256 at most)."""
        index, template = _template("elyra-4.0.0-three-node.yaml", "run-a-file")
        _scan_script.cache_clear()
        first = read_elyra_node(template, index)
        second = read_elyra_node(copy.deepcopy(template), index)
        info = _scan_script.cache_info()
        assert (info.hits, info.misses, info.maxsize) == (1, 1, 256)
        assert first == second

    def test_an_unreadable_script_names_each_place_it_appears(self):
        """Errors are not remembered: the same broken script in two templates names each one."""
        index, template = _template("elyra-4.0.0-three-node.yaml", "run-a-file")
        template = copy.deepcopy(template)
        template["container"]["args"][0] = template["container"]["args"][0].replace(
            "--outputs 'data.csv'", "'"
        )
        for i in (index, 7):
            with pytest.raises(NodeParseError, match=rf"spec\.templates\[{i}\]\.container\.args: "):
                read_elyra_node(template, i)

    def test_an_unusually_long_script_is_not_remembered(self):
        """A script far longer than Elyra's (a hostile review) is read but never kept in memory."""
        index, template = _template("elyra-4.0.0-three-node.yaml", "run-a-file")
        template = copy.deepcopy(template)
        outputs = ";".join(f"out{i}.csv" for i in range(3000))
        template["container"]["args"][0] = template["container"]["args"][0].replace(
            "--outputs 'data.csv'", f"--outputs '{outputs}'"
        )
        _scan_script.cache_clear()
        node = read_elyra_node(template, index)
        assert node is not None and len(node.outputs) == 3000
        assert _scan_script.cache_info().currsize == 0


_CALL = "python3 bootstrapper.py --cos-endpoint http://s3 --cos-bucket b --cos-directory d --file a.py"


class TestOnlyACallThatRuns:
    @pytest.mark.parametrize(
        "script",
        [
            f"false && {_CALL}",
            f"exit 0; {_CALL}",
            f"bash -n -c '{_CALL}'",
            f"true || {_CALL}",
            f"set -n\n{_CALL}",
        ],
    )
    def test_a_call_the_shell_never_runs_is_no_node(self, script):
        """Mentioned but never run (an and-or list that skips it, `exit` before it, a shell that only reads
        it): an error saying so, in the Workflow mode as in the Pod mode (one reader)."""
        template = {"name": "t", "container": {"command": ["sh", "-c"], "args": [script]}}
        with pytest.raises(
            NodeParseError, match=r"^spec\.templates\[0\]\.container\.args: .* call never runs"
        ):
            read_elyra_node(template, 0)

    @pytest.mark.parametrize(
        "script",
        [f"true && {_CALL}", f"false || {_CALL}", f"mkdir -p w && cd w && {_CALL}", f"a || exit 1; {_CALL}"],
    )
    def test_a_call_that_runs_or_may_is_read(self, script):
        template = {"name": "t", "container": {"command": ["sh", "-c"], "args": [script]}}
        node = read_elyra_node(template, 0)
        assert node is not None and node.file == "a.py"


_LINEAR_CALL = (
    "python3 bootstrapper.py --cos-endpoint http://s3 --cos-bucket b --cos-directory d --file x.py "
)


def _nested(script: str, depth: int = 3) -> str:
    """`script` run by `depth` more shells, each `sh -c '<the one inside>'`."""
    for _ in range(depth):
        script = f"sh -c {shlex.quote(script)}"
    return script


def _node_reading(script: str) -> Callable[[], object]:
    template = {"name": "t", "container": {"command": ["sh", "-c"], "args": [script]}}

    def run() -> object:
        _scan_script.cache_clear()
        _shell._remembered.cache_clear()
        with contextlib.suppress(NodeParseError):
            return read_elyra_node(template, 0)
        return None

    return run


#: Hostile node scripts by their size n (each about 5n-20n characters).
_HOSTILE_NODES: dict[str, Callable[[int], Callable[[], object]]] = {
    "an option repeated": lambda n: _node_reading(_LINEAR_CALL + "--outputs o " * n),
    "abbreviated long options": lambda n: _node_reading(_LINEAR_CALL + "--out=o --cos-b=b " * n),
    "short options with their values attached": lambda n: _node_reading(_LINEAR_CALL + "-oo -bb " * n),
    "a long option word": lambda n: _node_reading(_LINEAR_CALL + "--" + "o" * (8 * n)),
    "an ambiguous option last": lambda n: _node_reading(_LINEAR_CALL + "-o o " * n + "--cos"),
    "a value of many $": lambda n: _node_reading(_LINEAR_CALL + '--outputs "' + "$x" * n + '"'),
    "a child shell with many filled-in values": lambda n: _node_reading(
        'sh -c "' + _LINEAR_CALL + "--outputs $o " * n + '"'
    ),
    "child shells nested four deep": lambda n: _node_reading(
        _nested('sh -c "' + _LINEAR_CALL + "--outputs $o " * n + '"')
    ),
    "many child shells without the call": lambda n: _node_reading(
        "sh -c 'echo bootstrapper.py $x' && " * n + _LINEAR_CALL
    ),
    "many skipped commands": lambda n: _node_reading("false && echo bootstrapper.py\n" * n + _LINEAR_CALL),
    "many set commands": lambda n: _node_reading("set -e -u -o pipefail\n" * n + _LINEAR_CALL),
    "many cd, each one deeper": lambda n: _node_reading("cd a && " * (4 * n) + _LINEAR_CALL),
    "many cd and curl": lambda n: _node_reading(
        "cd a && curl -O http://h/v4.0.0/bootstrapper.py && " * n + _LINEAR_CALL
    ),
}


class TestLinearNodeReading:
    @pytest.mark.parametrize("shape", list(_HOSTILE_NODES))
    def test_the_work_grows_linearly_with_the_script(self, shape):
        """8 times the node's script costs at most ~8 times the work of reading it, whatever its shape
        (the options reader included: every word is classified once, against a fixed table)."""
        grown = work.growth(_HOSTILE_NODES[shape], 1_000)
        assert grown.is_linear(), grown
