"""`elyra-sidecar transform` against hostile and broken input, run as a real process (issue 10)."""

from __future__ import annotations

import copy
import io
import os
import stat
import subprocess
import sys
import tarfile
import zipfile
import zlib
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import FIXTURES

#: `transformer._io.MAX_INPUT_BYTES`, the documented limit (written out: these tests also run on old code).
MAX_INPUT_BYTES = 64 << 20

FIXTURE = FIXTURES / "elyra-4.0.0-three-node.yaml"


def run(*args: str, stdin: bytes | None = b"", **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "elyra_sidecar", "transform", *args],
        input=stdin,
        capture_output=True,
        check=False,
        timeout=120,
        **kwargs,
    )


def fixture() -> dict[str, Any]:
    data = yaml.safe_load(FIXTURE.read_text())
    assert isinstance(data, dict)
    return data


def assert_refused(proc: subprocess.CompletedProcess[bytes], message: str, out: Path | None = None) -> None:
    """One `Error:` line holding `message`, exit 1, no traceback, nothing written."""
    lines = proc.stderr.decode().splitlines()
    assert proc.returncode == 1, proc.stderr
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("Error: ") and message in lines[0], lines[0]
    assert proc.stdout == b""
    if out is not None:
        assert not out.exists()
        assert [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")] == []


def write_yaml(path: Path, data: Any) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


class TestEmptyAndMistypedFields:
    @pytest.mark.parametrize("field", ["env", "volumeMounts"])
    def test_an_empty_container_list_is_extended(self, tmp_path, field):
        """`env:` or `volumeMounts:` with nothing after it (YAML null) is read as absent, like Kubernetes."""
        data = fixture()
        data["spec"]["templates"][0]["container"][field] = None
        src = write_yaml(tmp_path / "in.yaml", data)
        proc = run(str(src))
        assert proc.returncode == 0, proc.stderr
        main = yaml.safe_load(proc.stdout)["spec"]["templates"][0]["container"]
        assert isinstance(main[field], list) and main[field]

    @pytest.mark.parametrize("field", ["outputs", "metadata", "volumes", "sidecars"])
    def test_an_empty_template_field_is_read_as_absent(self, tmp_path, field):
        """`outputs:` (and the template's other fields the rewrite extends) empty: the node is transformed."""
        data = fixture()
        data["spec"]["templates"][0][field] = None
        src = write_yaml(tmp_path / "in.yaml", data)
        proc = run(str(src), "--config", str(write_yaml(tmp_path / "c.yaml", {"lineage": {"enabled": True}})))
        assert proc.returncode == 0, proc.stderr
        template = yaml.safe_load(proc.stdout)["spec"]["templates"][0]
        assert template["sidecars"][0]["name"] == "elyra-log"
        assert template["outputs"]["artifacts"]

    def test_an_untouched_template_keeps_its_empty_field(self, tmp_path):
        """A template the rewrite leaves alone is written back with its null field, as it was."""
        data = fixture()
        data["spec"]["templates"][1]["outputs"] = None
        data["spec"]["templates"][1]["metadata"]["annotations"]["elyra-sidecar/inject"] = "false"
        src = write_yaml(tmp_path / "in.yaml", data)
        proc = run(str(src))
        assert proc.returncode == 0, proc.stderr
        out = yaml.safe_load(proc.stdout)["spec"]["templates"]
        assert out[1] == data["spec"]["templates"][1]
        assert out[0]["sidecars"]

    @pytest.mark.parametrize(
        ("path", "value", "message"),
        [
            (("container", "env"), "x", "spec.templates[0].container.env: must be a list, got str"),
            (("container", "env"), [None], "spec.templates[0].container.env[0]: must be a mapping, got null"),
            (("outputs",), 3, "spec.templates[0].outputs: must be a mapping, got int"),
            (("outputs", "artifacts"), "x", "spec.templates[0].outputs.artifacts: must be a list, got str"),
            (("metadata", "labels"), "x", "spec.templates[0].metadata.labels: must be a mapping, got str"),
            (("volumes",), [{}], "spec.templates[0].volumes[0]: no 'name'"),
            (("name",), ["a"], "spec.templates[0].name: must be a string, got list"),
        ],
    )
    def test_a_mistyped_field_is_one_error_naming_it(self, tmp_path, path, value, message):
        """A field of the wrong type: one Error line with its place, exit 1, nothing written."""
        data = fixture()
        target = data["spec"]["templates"][0]
        for key in path[:-1]:
            target = target.setdefault(key, {})
        target[path[-1]] = value
        src = write_yaml(tmp_path / "in.yaml", data)
        out = tmp_path / "out.yaml"
        assert_refused(run(str(src), "-o", str(out)), message, out)

    def test_a_dependency_on_no_task_is_refused(self, tmp_path):
        """A DAG task depending on a task that does not exist (Argo refuses it too) is one Error line."""
        data = fixture()
        dag = next(t for t in data["spec"]["templates"] if "dag" in t)
        dag["dag"]["tasks"][1]["dependencies"] = ["nope"]
        src = write_yaml(tmp_path / "in.yaml", data)
        proc = run(str(src), "--config", str(write_yaml(tmp_path / "c.yaml", {"lineage": {"enabled": True}})))
        assert_refused(proc, "dependencies: 'nope' is no task of this DAG")


class TestHostileYaml:
    def test_an_alias_bomb_is_refused(self, tmp_path):
        """Nine aliases per level over nine levels (a few kB, 10^9 nodes expanded): refused, quickly read."""
        lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
        lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
        data = fixture()
        text = yaml.safe_dump(data, sort_keys=False).replace(
            "metadata:\n", "\n".join(lines) + "\nmetadata:\n", 1
        )
        src = tmp_path / "in.yaml"
        src.write_text(text)
        assert_refused(run(str(src)), "aliases expand")

    def test_ordinary_anchors_are_read(self, tmp_path):
        """A few anchors and merge keys, as people write them, are read as PyYAML reads them."""
        text = FIXTURE.read_text().replace(
            "spec:\n", "x-defaults: &d {a: 1}\nx-use: {<<: *d, b: *d}\nspec:\n", 1
        )
        src = tmp_path / "in.yaml"
        src.write_text(text)
        proc = run(str(src))
        assert proc.returncode == 0, proc.stderr
        assert yaml.safe_load(proc.stdout)["x-use"] == {"a": 1, "b": {"a": 1}}

    def test_a_duplicate_key_names_the_key_and_line(self, tmp_path):
        """Two equal keys in one mapping: refused with the key and both lines (PyYAML keeps the last)."""
        text = FIXTURE.read_text().replace("kind: Workflow\n", "kind: Workflow\nkind: Workflow\n", 1)
        src = tmp_path / "in.yaml"
        src.write_text(text)
        line = text.splitlines().index("kind: Workflow") + 1
        assert_refused(
            run(str(src)), f"line {line + 1}, column 1: duplicate key 'kind' (first at line {line})"
        )

    def test_a_deep_mapping_is_refused(self, tmp_path):
        """5000 nested mappings (and 100,000, which crashed libyaml's composer) are one Error line."""
        for depth in (5000, 100_000):
            src = tmp_path / "in.yaml"
            src.write_text("a: " + "{b: " * depth + "1" + "}" * depth + "\n")
            assert_refused(run(str(src)), "nested more than 100 levels deep")

    def test_a_long_integer_is_refused(self, tmp_path):
        """An integer of 5000 digits (more than Python reads by default) is one Error line with its line."""
        text = FIXTURE.read_text().replace(
            "kind: Workflow\n", "kind: Workflow\nx-big: " + "9" * 5000 + "\n", 1
        )
        src = tmp_path / "in.yaml"
        src.write_text(text)
        assert_refused(run(str(src)), "line 3, column 8: cannot read '9999")

    def test_an_impossible_date_is_refused(self, tmp_path):
        """A date PyYAML matches but Python cannot build (month 13) is one Error line."""
        text = FIXTURE.read_text().replace("kind: Workflow\n", "kind: Workflow\nx-date: 2001-13-45\n", 1)
        src = tmp_path / "in.yaml"
        src.write_text(text)
        assert_refused(run(str(src)), "cannot read '2001-13-45'")

    def test_a_recursive_alias_is_refused(self, tmp_path):
        """A collection holding an alias to itself cannot be written out: refused."""
        src = tmp_path / "in.yaml"
        src.write_text(FIXTURE.read_text() + "x-loop: &l [*l]\n")
        assert_refused(run(str(src)), "alias *l refers to itself")


def _tar(tmp_path: Path, member: tarfile.TarInfo, data: bytes | None = None) -> Path:
    path = tmp_path / "pipeline.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        tar.addfile(member, io.BytesIO(data) if data is not None else None)
    return path


class TestHostilePackages:
    @pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE])
    def test_a_linked_pipeline_member_is_refused(self, tmp_path, kind):
        """pipeline.yaml as a symbolic or hard link in the tar: one Error line, nothing followed."""
        info = tarfile.TarInfo("pipeline.yaml")
        info.type = kind
        info.linkname = "/etc/passwd"
        package = _tar(tmp_path, info)
        out = tmp_path / "out.tar.gz"
        assert_refused(
            run(str(package), "-o", str(out)), "pipeline.yaml in the package is not a regular file", out
        )

    def test_a_gzip_bomb_is_refused(self, tmp_path):
        """A 1 MiB package that unpacks to 1 GiB: unpacking stops at the limit, one Error line."""
        chunk = zlib.compressobj(9, zlib.DEFLATED, 31)
        member = chunk.compress(b"\0" * (1 << 20)) + chunk.flush()
        package = tmp_path / "bomb.tar.gz"
        package.write_bytes(member * 1024)  # 1024 gzip members of 1 MiB of zeros
        assert_refused(run(str(package)), f"unpacked, larger than {MAX_INPUT_BYTES >> 20} MiB")

    def test_a_zip_bomb_is_refused(self, tmp_path):
        """A zip whose members unpack past the limit is refused before any is unpacked."""
        package = tmp_path / "pipeline.zip"
        with zipfile.ZipFile(package, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("pipeline.yaml", FIXTURE.read_bytes())
            zf.writestr("big.bin", b"\0" * (MAX_INPUT_BYTES + 1))
        assert_refused(run(str(package), "-o", str(tmp_path / "out.zip")), "unpacked, larger than")

    def test_an_encrypted_zip_member_is_refused(self, tmp_path):
        """pipeline.yaml marked encrypted: one Error line (zipfile raised RuntimeError)."""
        package = tmp_path / "pipeline.zip"
        with zipfile.ZipFile(package, "w") as zf:
            zf.writestr("pipeline.yaml", FIXTURE.read_bytes())
        raw = bytearray(package.read_bytes())  # zipfile writes no encrypted member: set the flag bit
        raw[raw.index(b"PK\x03\x04") + 6] |= 0x1
        raw[raw.index(b"PK\x01\x02") + 8] |= 0x1
        package.write_bytes(bytes(raw))
        assert_refused(run(str(package)), "pipeline.yaml in the package is encrypted")

    def test_an_unsupported_zip_method_is_refused(self, tmp_path):
        """A member compressed with a method Python cannot read (99, AES): one Error line."""
        package = tmp_path / "pipeline.zip"
        with zipfile.ZipFile(package, "w") as zf:
            zf.writestr("pipeline.yaml", FIXTURE.read_bytes())
        raw = bytearray(package.read_bytes())
        local = raw.index(b"PK\x03\x04")
        central = raw.index(b"PK\x01\x02")
        raw[local + 8 : local + 10] = (99).to_bytes(2, "little")
        raw[central + 10 : central + 12] = (99).to_bytes(2, "little")
        package.write_bytes(bytes(raw))
        assert_refused(run(str(package)), "pipeline.yaml in the package uses compression method 99")

    def test_a_large_plain_input_is_refused(self):
        """More than the input limit on standard input: refused without reading it all into a Workflow."""
        assert_refused(run("-", stdin=b"#" * (MAX_INPUT_BYTES + 1)), "larger than 64 MiB")


class TestStandardStreams:
    def test_closed_stdin(self):
        """Standard input closed (fd 0 not open): one Error line instead of a traceback."""
        proc = run("-", stdin=None, preexec_fn=lambda: os.close(0))
        assert_refused(proc, "no standard input")

    def test_full_disk_on_stdout(self):
        """stdout on /dev/full, unbuffered as in the image: exit 1 with an Error line, not 0 with 64 KiB."""
        with Path("/dev/full").open("wb") as full:
            proc = subprocess.run(
                [sys.executable, "-m", "elyra_sidecar", "transform", str(FIXTURE), "-q"],
                stdout=full,
                stderr=subprocess.PIPE,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                check=False,
                timeout=60,
            )
        lines = proc.stderr.decode().splitlines()
        assert proc.returncode == 1 and lines == [
            "Error: standard output: cannot write: No space left on device"
        ]

    def test_closed_pipe_on_stdout(self):
        """The reader of stdout gone before the write: exit 1 with one Error line, no traceback."""
        read_end, write_end = os.pipe()
        os.close(read_end)
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "elyra_sidecar", "transform", str(FIXTURE), "-q"],
                stdout=write_end,
                stderr=subprocess.PIPE,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                check=False,
                timeout=60,
            )
        finally:
            os.close(write_end)
        lines = proc.stderr.decode().splitlines()
        assert proc.returncode == 1 and lines == [
            "Error: standard output: the reader closed it before the end (broken pipe)"
        ]


class TestOutputFile:
    def test_a_new_file_follows_the_umask(self, tmp_path):
        """-o creates the file as a shell redirection would: 0666 less the umask (0644 under 022)."""
        out = tmp_path / "out.yaml"
        proc = run(str(FIXTURE), "-o", str(out), preexec_fn=lambda: os.umask(0o022))
        assert proc.returncode == 0, proc.stderr
        assert stat.S_IMODE(out.stat().st_mode) == 0o644

    def test_an_existing_file_keeps_its_mode(self, tmp_path):
        """Replacing an existing output keeps its mode."""
        out = tmp_path / "out.yaml"
        out.write_text("old")
        out.chmod(0o640)
        assert run(str(FIXTURE), "-o", str(out)).returncode == 0
        assert stat.S_IMODE(out.stat().st_mode) == 0o640 and out.read_text() != "old"

    def test_a_symlink_is_written_through(self, tmp_path):
        """-o naming a symbolic link updates the file it points to; the link stays a link."""
        target = tmp_path / "real.yaml"
        target.write_text("old")
        link = tmp_path / "link.yaml"
        link.symlink_to(target)
        proc = run(str(FIXTURE), "-o", str(link))
        assert proc.returncode == 0, proc.stderr
        assert link.is_symlink() and yaml.safe_load(target.read_text())["spec"]["templates"][0]["sidecars"]

    def test_a_fifo_is_written_into_not_replaced(self, tmp_path):
        """-o naming a FIFO (like /dev/null, not a regular file) writes into it; it is never renamed over."""
        fifo = tmp_path / "out.fifo"
        os.mkfifo(fifo)
        reader = subprocess.Popen(["cat", str(fifo)], stdout=subprocess.PIPE)
        try:
            proc = run(str(FIXTURE), "-q", "-o", str(fifo))
            assert proc.returncode == 0, proc.stderr
            assert stat.S_ISFIFO(fifo.stat().st_mode)
            received, _ = reader.communicate(timeout=60)
        finally:
            reader.kill()
            reader.wait()
        assert yaml.safe_load(received)["spec"]["templates"][0]["sidecars"]

    def test_an_unwritable_directory_names_the_output_path(self):
        """The error names the -o path, not the temporary file next to it (sysfs refuses even root)."""
        out = Path("/sys/kernel/elyra-sidecar-out.yaml")
        assert_refused(
            run(str(FIXTURE), "-q", "-o", str(out)), f"Error: {out}: cannot write: Permission denied", out
        )


class TestTerminalEscapes:
    def test_control_characters_from_the_input_are_escaped(self, tmp_path):
        """A display name holding an ANSI escape is shown escaped in the table, never raw."""
        data = copy.deepcopy(fixture())
        template = data["spec"]["templates"][0]
        template["metadata"]["annotations"]["pipelines.kubeflow.org/task_display_name"] = (
            "\x1b[2J\x1b]0;x\x07n"
        )
        src = write_yaml(tmp_path / "in.yaml", data)
        proc = run(str(src), "-o", str(tmp_path / "out.yaml"))
        assert proc.returncode == 0, proc.stderr
        assert b"\x1b" not in proc.stderr and b"\x07" not in proc.stderr
        assert b"\\x1b[2J\\x1b]0;x\\x07n" in proc.stderr

    def test_control_characters_in_an_error_are_escaped(self, tmp_path):
        """An error quoting the input (a duplicate key) escapes it too."""
        src = tmp_path / "in.yaml"
        src.write_text('"\\e[31mk": 1\n"\\e[31mk": 2\n')
        proc = run(str(src))
        assert proc.returncode == 1 and b"\x1b" not in proc.stderr and b"\\x1b[31mk" in proc.stderr
