"""The `elyra-sidecar transform` command, run as a real process."""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
import yaml

from tests.helpers import FIXTURES

FIXTURE = FIXTURES / "elyra-4.0.0-three-node.yaml"


def run(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "elyra_sidecar", "transform", *args],
        input=stdin,
        capture_output=True,
        check=False,
        timeout=60,
    )


def _package(tmp_path: Path, fmt: str) -> Path:
    data = FIXTURE.read_bytes()
    if fmt == "tar":
        path = tmp_path / "pipeline.tar.gz"
        with tarfile.open(path, "w:gz") as tar:
            info = tarfile.TarInfo("pipeline.yaml")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    else:
        path = tmp_path / "pipeline.zip"
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("pipeline.yaml", data)
            zf.writestr("README.txt", "kept")
    return path


class TestTransformCommand:
    def test_yaml_to_stdout_with_a_table_on_stderr(self):
        """YAML on stdout, block literals kept; one table row per node on stderr."""
        proc = run(str(FIXTURE))
        assert proc.returncode == 0, proc.stderr
        out = yaml.safe_load(proc.stdout)
        assert out["spec"]["templates"][0]["sidecars"][0]["name"] == "elyra-log"
        assert b"args:\n      - |\n" in proc.stdout
        table = proc.stderr.decode().splitlines()
        assert table[0].split()[:5] == ["TEMPLATE", "NODE", "ELYRA", "KIND", "STATUS"]
        assert len(table) == 4 and all("transformed" in row for row in table[1:])

    def test_json_report(self):
        """--report json gives a machine-readable report on stderr."""
        proc = run(str(FIXTURE), "--report", "json", "-o", "/dev/null")
        assert proc.returncode == 0
        report = yaml.safe_load(proc.stderr)
        assert report["changed"] is True and len(report["nodes"]) == 3

    def test_check_exit_codes(self, tmp_path):
        """--check: 1 when the input would change, 0 when already transformed; writes nothing."""
        out = tmp_path / "out.yaml"
        assert run(str(FIXTURE), "--check", "-o", str(out)).returncode == 1
        assert not out.exists()
        assert run(str(FIXTURE), "-o", str(out)).returncode == 0
        assert run(str(out), "--check").returncode == 0

    def test_unchanged_input_is_written_back_byte_for_byte(self):
        """A pipeline with no Elyra node is written back exactly as read."""
        plain = FIXTURES / "kfp-1.8.24-plain-two-step.yaml"
        proc = run(str(plain))
        assert proc.returncode == 0 and proc.stdout == plain.read_bytes()

    @pytest.mark.parametrize("fmt", ["tar", "zip"])
    def test_kfp_packages_round_trip(self, tmp_path, fmt):
        """A KFP package comes back as the same kind of package, other members kept."""
        package = _package(tmp_path, fmt)
        out = tmp_path / ("out.tar.gz" if fmt == "tar" else "out.zip")
        proc = run(str(package), "-o", str(out))
        assert proc.returncode == 0, proc.stderr
        if fmt == "tar":
            with tarfile.open(out) as tar:
                handle = tar.extractfile("pipeline.yaml")
                assert handle is not None
                text = handle.read()
        else:
            with zipfile.ZipFile(out) as zf:
                text = zf.read("pipeline.yaml")
                assert zf.read("README.txt") == b"kept"
        assert yaml.safe_load(text)["spec"]["templates"][0]["sidecars"]

    def test_stdin_dash(self):
        """`-` reads standard input."""
        proc = run("-", stdin=FIXTURE.read_bytes())
        assert proc.returncode == 0 and b"elyra-log" in proc.stdout


class TestBadInput:
    @pytest.mark.parametrize(
        ("content", "message"),
        [
            (b"spec: [unclosed\n", b"not valid YAML at line"),
            (FIXTURE.read_bytes()[:2500], b"not valid YAML at line"),
            (b"apiVersion: v1\nkind: ConfigMap\n", b"expected argoproj.io Workflow, got v1/ConfigMap"),
            (b"", b"empty, expected a Workflow"),
            (b"- a\n- b\n", b"not a Workflow mapping"),
            ((FIXTURES / "elyra-4.1.1-three-node-kfp-v2-ir.yaml").read_bytes(), b"KFP v2 pipeline spec"),
            (b"\xff\xfe", b"not UTF-8"),
        ],
        ids=["not-yaml", "truncated", "not-workflow", "empty", "list", "v2-ir", "binary"],
    )
    def test_one_line_error_exit_1_nothing_written(self, tmp_path, content, message):
        """Each bad input: one `Error:` line naming the problem, exit 1, no traceback, no output file."""
        src = tmp_path / "in.yaml"
        src.write_bytes(content)
        out = tmp_path / "out.yaml"
        proc = run(str(src), "-o", str(out))
        assert proc.returncode == 1
        lines = proc.stderr.decode().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: ") and message.decode() in lines[0]
        assert b"Traceback" not in proc.stderr and not out.exists()

    def test_unparseable_node_warns_or_strict_fails(self, tmp_path):
        """An unreadable Elyra node is left alone with a warning; --strict makes it exit 1."""
        data = yaml.safe_load(FIXTURE.read_text())
        data["spec"]["templates"][0]["container"]["args"][0] += "'"
        src = tmp_path / "in.yaml"
        src.write_text(yaml.safe_dump(data))
        proc = run(str(src), "-o", str(tmp_path / "out.yaml"))
        assert proc.returncode == 0 and b"warning: run-a-file: left untouched" in proc.stderr
        proc = run(str(src), "--strict", "-o", str(tmp_path / "strict.yaml"))
        assert proc.returncode == 1 and proc.stderr.startswith(b"Error: spec.templates[0].container.args")
        assert not (tmp_path / "strict.yaml").exists()

    def test_output_collisions_are_refused(self, tmp_path):
        """-o onto the input, onto a directory, or in another format: refused, input intact."""
        src = tmp_path / "in.yaml"
        src.write_bytes(FIXTURE.read_bytes())
        for target, message in (
            (src, b"is the input file"),
            (tmp_path, b"is a directory"),
            (tmp_path / "x.zip", b"keep the input's format"),
            (tmp_path / "no" / "x.yaml", b"does not exist"),
        ):
            proc = run(str(src), "-o", str(target))
            assert proc.returncode == 1 and message in proc.stderr, proc.stderr
        assert src.read_bytes() == FIXTURE.read_bytes()

    def test_bad_config_names_the_key(self, tmp_path):
        """A config error says which key is wrong."""
        cfg = tmp_path / "c.yaml"
        cfg.write_text("sidecar:\n  imagee: x\n")
        proc = run(str(FIXTURE), "--config", str(cfg))
        assert proc.returncode == 1 and b"sidecar.imagee: unknown key" in proc.stderr

    def test_usage_error_exit_2(self):
        """Unknown options are usage errors (exit 2)."""
        assert run("--nope").returncode == 2


class TestAddedColumn:
    @pytest.mark.parametrize(
        ("fixture", "config", "added"),
        [
            # 2.x-3.x write <name>.log as the script runs: the sidecar is live without the hook, which only
            # copies the lines into main's log.
            ("elyra-2.0.0-three-node.yaml", "", "log sidecar, 2 output artifacts, Logs tab, unbuffered"),
            ("elyra-3.15.0-three-node.yaml", "", "log sidecar, 2 output artifacts, Logs tab, unbuffered"),
            (
                "elyra-4.0.0-three-node.yaml",
                "",
                "log sidecar, 2 output artifacts, live output, Logs tab, unbuffered",
            ),
            (
                "elyra-3.15.0-three-node.yaml",
                "live: {mode: 'on'}",
                "log sidecar, 2 output artifacts, live output, Logs tab, unbuffered",
            ),
            (
                "elyra-4.0.0-three-node.yaml",
                "live: {main_log: false}",
                "log sidecar, 2 output artifacts, live output, unbuffered",
            ),
            (
                "elyra-3.15.0-three-node.yaml",
                "live: {main_log: false}",
                "log sidecar, 2 output artifacts, unbuffered",
            ),
        ],
    )
    def test_python_node_says_what_its_version_gets(self, tmp_path, fixture, config, added):
        """A Python node's row says "live output" only where the hook gives the sidecar a live copy of the
        `.log` (4.x, or `live.mode: on`), and "Logs tab" where it copies the lines into main's log."""
        config_file = tmp_path / "config.yaml"
        config_file.write_text(config)
        proc = run(str(FIXTURES / fixture), "--config", str(config_file), "-o", "/dev/null")
        assert proc.returncode == 0, proc.stderr
        row = next(line for line in proc.stderr.decode().splitlines() if " python " in line)
        assert row.split("  ")[-1] == added


class TestReportEscaping:
    def test_escaped_changes_are_still_counted_by_kind(self):
        """An output path with a control character is escaped in the table, still counted as an artifact."""
        from elyra_sidecar.transformer import transform
        from elyra_sidecar.transformer.cli import _printable_report, _report_text

        workflow = yaml.safe_load((FIXTURES / "elyra-3.15.0-three-node.yaml").read_text())
        template = next(t for t in workflow["spec"]["templates"] if "--outputs" in str(t.get("container")))
        args = template["container"]["args"]
        index = next(i for i, a in enumerate(args) if "--outputs" in a)
        args[index] = args[index].replace("--outputs '", "--outputs 'evil\x1bc\x07.csv;", 1)
        out = io.StringIO()
        _report_text(_printable_report(transform(workflow)), out)
        text = out.getvalue()
        assert "\x1b" not in text and "\x07" not in text
        row = next(line for line in text.splitlines() if line.startswith(template["name"] + " "))
        assert "3 output artifacts" in row
