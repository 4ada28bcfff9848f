"""Conformance of the sidecar with real processes: its stdout must equal the followed file, byte for byte."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from tests.support.procs import SidecarProcess, start_writer, wait_for


def sidecar(directory, *names, extra=()):
    args = ["--dir", str(directory)]
    for name in names:
        args += ["--file", name]
    return SidecarProcess(*args, *extra)


class TestFollowing:
    def test_file_absent_at_start_then_created(self, tmp_path):
        """A file that appears after start is read from its first byte."""
        sc = sidecar(tmp_path, "a.log")
        sc.wait_started()
        (tmp_path / "a.log").write_bytes(b"one\ntwo\n")
        assert wait_for(lambda: sc.out == b"one\ntwo\n")
        assert sc.terminate()[0] == 0

    @pytest.mark.slow
    def test_directory_created_late(self, tmp_path):
        """Elyra <= 3.13 creates jupyter-work-dir after the sidecar starts: it is found anyway."""
        work = tmp_path / "jupyter-work-dir"
        sc = sidecar(work, "a.log")
        sc.wait_started()
        time.sleep(0.2)
        work.mkdir()
        (work / "a.log").write_bytes(b"late\n")
        assert wait_for(lambda: sc.out == b"late\n", timeout=5)
        sc.terminate()

    def test_slow_writer_lines_arrive_while_written(self, tmp_path):
        """Each line of a slow writer is out before the writer has finished."""
        path = tmp_path / "a.log"
        sc = sidecar(tmp_path, "a.log")
        sc.wait_started()
        writer = start_writer(path, "slow", "20", "0.05")
        assert wait_for(lambda: b"slow line 0\n" in sc.out, timeout=5)
        assert writer.poll() is None, "first line should be out while the writer still runs"
        writer.wait(timeout=10)
        assert wait_for(lambda: sc.out == path.read_bytes())
        sc.terminate()

    def test_100k_line_burst(self, tmp_path):
        """A 100,000-line burst comes out complete and in order."""
        path = tmp_path / "a.log"
        sc = sidecar(tmp_path, "a.log")
        sc.wait_started()
        start_writer(path, "burst", "100000").wait(timeout=60)
        rc, _ = sc.terminate()
        assert rc == 0
        assert sc.out == path.read_bytes()
        assert sc.out.count(b"\n") == 100000

    def test_truncation_restarts_from_zero(self, tmp_path):
        """A retried bootstrapper reopens the log with mode "w": the new content follows the old."""
        path = tmp_path / "a.log"
        first = b"".join(b"first attempt %d\n" % i for i in range(100))
        path.write_bytes(first)
        sc = sidecar(tmp_path, "a.log")
        assert wait_for(lambda: sc.out == first)
        with path.open("wb") as f:  # truncate, like open(..., "w")
            f.write(b"second\n")
        assert wait_for(lambda: sc.out == first + b"second\n")
        sc.terminate()
        assert '"file_truncated"' in sc.err

    def test_rename_and_recreate(self, tmp_path):
        """A rotated file is drained, then the new file at the same name is followed from zero."""
        path = tmp_path / "a.log"
        path.write_bytes(b"old\n")
        sc = sidecar(tmp_path, "a.log")
        assert wait_for(lambda: sc.out == b"old\n")
        with path.open("ab") as f:
            f.write(b"old tail\n")
            path.rename(tmp_path / "a.log.1")
        path.write_bytes(b"new\n")
        assert wait_for(lambda: sc.out == b"old\nold tail\nnew\n"), sc.out
        sc.terminate()

    def test_deletion_drains_what_was_written(self, tmp_path):
        """Bytes written right before a delete still come out (the open descriptor is read to EOF)."""
        path = tmp_path / "a.log"
        path.write_bytes(b"a\n")
        sc = sidecar(tmp_path, "a.log")
        assert wait_for(lambda: sc.out == b"a\n")
        with path.open("ab") as f:
            f.write(b"b\n")
        path.unlink()
        assert wait_for(lambda: sc.out == b"a\nb\n")
        path.write_bytes(b"c\n")
        assert wait_for(lambda: sc.out == b"a\nb\nc\n")
        sc.terminate()
        assert '"file_deleted"' in sc.err

    def test_final_line_without_newline_after_idle(self, tmp_path):
        """A last line without newline is emitted within 1 s of the writer going idle."""
        path = tmp_path / "a.log"
        sc = sidecar(tmp_path, "a.log")
        sc.wait_started()
        path.write_bytes(b"done\nno newline")
        written = time.monotonic()
        assert wait_for(lambda: sc.out == b"done\nno newline", timeout=3)
        arrival = sc.first_arrival(b"no newline")
        assert arrival is not None and arrival - written < 1.0
        sc.terminate()

    @pytest.mark.slow
    def test_final_line_without_newline_at_shutdown(self, tmp_path):
        """With a long idle time, SIGTERM still flushes the unterminated last line."""
        path = tmp_path / "a.log"
        path.write_bytes(b"x\ntail")
        sc = sidecar(tmp_path, "a.log", extra=("--idle-flush", "60"))
        assert wait_for(lambda: sc.out == b"x\n")
        time.sleep(0.3)
        assert sc.out == b"x\n"
        rc, _ = sc.terminate()
        assert rc == 0 and sc.out == b"x\ntail"

    def test_invalid_utf8_nul_and_cr_pass_through(self, tmp_path):
        """Raw mode is bytes, not text: invalid UTF-8, NUL and CR are passed through unchanged."""
        data = b"\xff\xfe bad utf8\n\x00nul\x00\nprogress 10%\rprogress 100%\r\nend\n"
        (tmp_path / "a.log").write_bytes(data)
        sc = sidecar(tmp_path, "a.log")
        assert wait_for(lambda: sc.out == data)
        sc.terminate()

    def test_16_mib_line(self, tmp_path):
        """A 16 MiB line is split into 1 MiB pieces, never dropped: the bytes are all there."""
        data = b"start\n" + os.urandom(8 << 20).hex().encode() + b"\nend\n"
        sc = sidecar(tmp_path, "a.log")
        sc.wait_started()
        (tmp_path / "a.log").write_bytes(data)
        assert wait_for(lambda: len(sc.out) >= len(data), timeout=30)
        sc.terminate()
        assert sc.out == data

    def test_two_files_never_interleave_inside_a_line(self, tmp_path):
        """Two files at once: every output line is whole, and each file's lines keep their order."""
        a, b = tmp_path / "a.log", tmp_path / "b.log"
        sc = sidecar(tmp_path, "a.log", "b.log")
        sc.wait_started()
        wa = start_writer(a, "burst", "20000")
        wb = start_writer(b, "slow", "50", "0.001")
        wa.wait(timeout=60)
        wb.wait(timeout=60)
        assert wait_for(lambda: len(sc.out) == a.stat().st_size + b.stat().st_size, timeout=20)
        sc.terminate()
        lines = sc.out.splitlines(keepends=True)
        assert [ln for ln in lines if ln.startswith(b"burst")] == a.read_bytes().splitlines(keepends=True)
        assert [ln for ln in lines if ln.startswith(b"slow")] == b.read_bytes().splitlines(keepends=True)
        assert len(lines) == 20050

    @pytest.mark.slow
    def test_sigterm_mid_burst_loses_nothing_written_before(self, tmp_path):
        """SIGTERM while a writer is busy: everything in the file at the signal is on stdout."""
        path = tmp_path / "a.log"
        sc = sidecar(tmp_path, "a.log")
        sc.wait_started()
        writer = start_writer(path, "forever")
        assert wait_for(lambda: path.exists() and path.stat().st_size > 2_000_000, timeout=30)
        size_before_signal = path.stat().st_size
        rc, elapsed = sc.terminate()
        writer.kill()
        writer.wait()
        assert rc == 0 and elapsed < 10
        assert len(sc.out) >= size_before_signal
        assert path.read_bytes().startswith(sc.out)

    def test_polling_mode(self, tmp_path):
        """--poll follows without inotify and says so."""
        sc = sidecar(tmp_path, "a.log", extra=("--poll",))
        sc.wait_started()
        (tmp_path / "a.log").write_bytes(b"p1\n")
        assert wait_for(lambda: sc.out == b"p1\n")
        with (tmp_path / "a.log").open("ab") as f:
            f.write(b"p2\n")
        assert wait_for(lambda: sc.out == b"p1\np2\n")
        sc.terminate()
        assert '"mode": "polling"' in sc.err

    @pytest.mark.slow
    def test_file_never_appears_exits_zero(self, tmp_path):
        """A file that never appears is not an error: exit 0 on SIGTERM, quickly."""
        sc = sidecar(tmp_path, "never.log")
        sc.wait_started()
        rc, elapsed = sc.terminate()
        assert rc == 0 and elapsed < 2 and sc.out == b""
        summary = json.loads(sc.err.strip().splitlines()[-1])
        assert summary["event"] == "sidecar_stopped" and summary["found"] == []

    def test_json_format(self, tmp_path):
        """--format json: one record per line, text decoded with replacement."""
        (tmp_path / "a.log").write_bytes(b"hello\n\xff\n")
        sc = sidecar(tmp_path, "a.log", extra=("--format", "json"))
        assert wait_for(lambda: sc.out.count(b"\n") == 2)
        sc.terminate()
        records = [json.loads(x) for x in sc.out.splitlines()]
        assert records == [{"file": "a.log", "line": "hello"}, {"file": "a.log", "line": "\ufffd"}]

    @pytest.mark.skipif(shutil.which("unshare") is None, reason="util-linux unshare not available")
    def test_as_pid_1_sigterm_is_handled(self, tmp_path):
        """As PID 1 of its own PID namespace (Argo's docker executor) SIGTERM still drains and exits 0."""
        probe = subprocess.run(
            ["unshare", "--pid", "--fork", "--kill-child", "true"], capture_output=True, check=False
        )
        if probe.returncode != 0:
            pytest.skip(f"cannot create a PID namespace here: {probe.stderr.decode().strip()}")
        (tmp_path / "a.log").write_bytes(b"pid1\npartial")
        sc = SidecarProcess(
            "--dir",
            str(tmp_path),
            "--file",
            "a.log",
            "--idle-flush",
            "60",
            "--diagnostics",
            "json",
            prefix=["unshare", "--pid", "--fork", "--kill-child"],
        )
        assert wait_for(lambda: sc.out == b"pid1\n")
        assert wait_for(lambda: '"pid": 1' in sc.err), sc.err
        # Signal the namespace's PID 1 (the sidecar), not the unshare parent.
        child = subprocess.run(["pgrep", "-P", str(sc.proc.pid)], capture_output=True, text=True, check=False)
        pid = int(child.stdout.split()[0])
        os.kill(pid, signal.SIGTERM)
        assert sc.proc.wait(timeout=10) == 0
        assert wait_for(lambda: sc.out == b"pid1\npartial")


class TestNoWrites:
    def test_writes_nothing_into_the_shared_volume(self, tmp_path):
        """The sidecar only reads: the directory holds exactly what the writer put there."""
        (tmp_path / "a.log").write_bytes(b"r\n")
        before = sorted(p.name for p in tmp_path.iterdir())
        sc = sidecar(tmp_path, "a.log", "b.log")
        assert wait_for(lambda: sc.out == b"r\n")
        sc.terminate()
        assert sorted(p.name for p in tmp_path.iterdir()) == before


# Runs the dispatcher as `elyra-sidecar tail ...` does and, at exit, writes the modules it had loaded.
MODULES_AT_EXIT = r"""
import atexit, json, runpy, sys
out = sys.argv.pop(1)
atexit.register(lambda: open(out, "w").write(json.dumps(sorted(sys.modules))))
sys.argv[0] = "elyra-sidecar"
runpy.run_module("elyra_sidecar", run_name="__main__", alter_sys=True)
"""


class TestStartup:
    def test_without_a_mirror_no_logging_tls_or_s3_library_is_loaded(self, tmp_path):
        """A start without mirroring loads no structlog, watchdog, logging, ssl, minio or dataclasses."""
        (tmp_path / "a.log").write_bytes(b"x\n")
        dump = tmp_path / "modules.json"
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                MODULES_AT_EXIT,
                str(dump),
                "tail",
                "--dir",
                str(tmp_path),
                "--file",
                "a.log",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert proc.stdout is not None
        assert proc.stdout.read(2) == b"x\n"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        loaded = set(json.loads(dump.read_text()))
        assert "elyra_sidecar.sidecar.tail" in loaded
        heavy = {"structlog", "watchdog", "logging", "ssl", "minio", "urllib3", "dataclasses", "shutil"}
        assert not {m for m in loaded if m.split(".")[0] in heavy}
