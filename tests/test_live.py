"""The live-output hook (the sidecar room's live_sitecustomize.py) with real interpreters and processes.

A "bootstrapper" here is what Elyra 4.0 does: subprocess.run(["python3", script], stdout=PIPE,
stderr=STDOUT) from the script's directory. Its captured bytes and exit code must be exactly what they
are without the hook, and the live file must hold the same bytes.
"""

from __future__ import annotations

import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from elyra_sidecar.sidecar.live import install
from tests.helpers import ROOT

PYTHONS = {
    v: Path(f"/root/.pyenv/versions/{v}/bin/python3")
    for v in ("3.8.18", "3.9.18", "3.10.13", "3.11.7", "3.12.1", "3.13.0")
}
PYTHONS = {v: p for v, p in PYTHONS.items() if p.exists()} or {"current": Path(sys.executable)}

BOOTSTRAPPER = r"""
import subprocess, sys
r = subprocess.run([sys.argv[1], sys.argv[2]], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
sys.stdout.buffer.write(r.stdout)
sys.stdout.flush()
sys.exit(r.returncode)
"""

SCRIPT = r"""
import os, subprocess, sys
print("first", flush=True)
sys.stderr.write("to stderr\n")
subprocess.run([sys.executable, "-c", "print('python child')"])
os.system("echo shell child")
sys.stdout.write("x" * 300000 + "\n")
print("last line")
sys.exit(7)
"""


@pytest.fixture
def work():
    """A world-readable directory (the unprivileged-user test needs to read it), with the hook installed."""
    d = Path(tempfile.mkdtemp(prefix="elyra-live-"))
    d.chmod(0o777)
    live = install(d / "live")
    yield d, live.parent
    shutil.rmtree(d, ignore_errors=True)


def run(
    python: Path,
    work: Path,
    live_dir: Path,
    script: str,
    *,
    name: str = "job.py",
    merged: bool = True,
    preexec=None,
    extra_path: str = "",
    node_script: str = "job.py",
):
    (work / name).write_text(script)
    (work / name).chmod(0o644)
    env = {
        "PATH": os.environ["PATH"],
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": str(live_dir) + (":" + extra_path if extra_path else ""),
        "ELYRA_SIDECAR_LIVE_SCRIPT": node_script,
        "ELYRA_SIDECAR_LIVE_LOG": str(live_dir / "job.log"),
    }
    if merged:
        return subprocess.run(
            [str(python), "-c", BOOTSTRAPPER, str(python), name],
            cwd=work,
            env=env,
            capture_output=True,
            timeout=60,
            preexec_fn=preexec,
            check=False,
        )
    return subprocess.run(
        [str(python), name],
        cwd=work,
        env=env,
        capture_output=True,
        timeout=60,
        preexec_fn=preexec,
        check=False,
    )


def plain(python: Path, work: Path, script: str, *, name: str = "job.py"):
    """The same run without the hook: the reference."""
    (work / name).write_text(script)
    env = {"PATH": os.environ["PATH"], "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [str(python), "-c", BOOTSTRAPPER, str(python), name],
        cwd=work,
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )


class TestLiveHook:
    @pytest.mark.parametrize("version", list(PYTHONS))
    def test_bootstrapper_sees_the_same_bytes_and_exit_code(self, work, version):
        """Parent's bytes and exit status equal a run without the hook; the live file holds them too."""
        d, live = work
        python = PYTHONS[version]
        reference = plain(python, d, SCRIPT)
        hooked = run(python, d, live, SCRIPT)
        assert (
            (hooked.returncode, hooked.stdout)
            == (reference.returncode, reference.stdout)
            == (7, reference.stdout)
        )
        assert b"python child" in hooked.stdout and b"shell child" in hooked.stdout
        assert (live / "job.log").read_bytes() == hooked.stdout

    def test_exec_replaces_the_script(self, work):
        """A script that execs another program: that program's output is copied too."""
        d, live = work
        hooked = run(
            Path(sys.executable),
            d,
            live,
            "import os\nprint('before', flush=True)\nos.execv('/bin/echo', ['echo', 'after exec'])\n",
        )
        assert hooked.stdout == b"before\nafter exec\n" and hooked.returncode == 0
        assert (live / "job.log").read_bytes() == hooked.stdout

    def test_very_fast_exit(self, work):
        """os._exit right after a write: nothing lost, exit code kept."""
        d, live = work
        hooked = run(Path(sys.executable), d, live, "import os\nos.write(1, b'quick\\n')\nos._exit(5)\n")
        assert (hooked.returncode, hooked.stdout) == (5, b"quick\n")
        assert (live / "job.log").read_bytes() == b"quick\n"

    def test_fork_failure_leaves_the_script_alone(self, work):
        """No process may be created (RLIMIT_NPROC, unprivileged user): the script still runs normally."""
        d, live = work
        system_python = Path("/usr/bin/python3")  # executable by `nobody`, unlike interpreters under /root
        if not system_python.exists() or os.geteuid() != 0:
            pytest.skip("needs root (to drop to nobody) and /usr/bin/python3")

        def limited() -> None:
            os.setgid(65534)
            os.setuid(65534)
            resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))

        script = "print('still runs')\nimport sys; sys.exit(3)\n"
        hooked = run(system_python, d, live, script, merged=False, preexec=limited)
        assert (hooked.returncode, hooked.stdout) == (3, b"still runs\n")
        assert (live / "job.log").read_bytes() == b""  # opened, but the tee could not start

    def test_closed_stdout(self, work):
        """fd 1 closed at start: the hook does nothing and the script is unaffected."""
        d, live = work
        hooked = run(
            Path(sys.executable),
            d,
            live,
            "import sys\nsys.stderr.write('only stderr\\n')\n",
            merged=False,
            preexec=lambda: os.close(1),
        )
        assert hooked.returncode == 0 and hooked.stderr == b"only stderr\n"
        assert not (live / "job.log").exists()

    def test_separate_stdout_and_stderr_stay_separate(self, work):
        """Run outside the bootstrapper (fds 1 and 2 differ): each keeps its own bytes; the log has both."""
        d, live = work
        hooked = run(
            Path(sys.executable),
            d,
            live,
            "import sys\nprint('out')\nsys.stderr.write('err\\n')\n",
            merged=False,
        )
        assert (hooked.stdout, hooked.stderr) == (b"out\n", b"err\n")
        assert sorted((live / "job.log").read_bytes().splitlines()) == [b"err", b"out"]

    def test_only_the_node_script_is_hooked(self, work):
        """Other Python processes (the bootstrapper, pip, other scripts) are left alone."""
        d, live = work
        hooked = run(Path(sys.executable), d, live, "print('other')\n", name="other.py")
        assert hooked.stdout == b"other\n"
        assert not (live / "job.log").exists()

    def test_the_images_own_sitecustomize_still_runs(self, work):
        """A sitecustomize later on sys.path (the image's) runs after ours."""
        d, live = work
        image = d / "image-site"
        image.mkdir()
        (image / "sitecustomize.py").write_text("import builtins\nbuiltins.IMAGE_SITE = 'ran'\n")
        hooked = run(
            Path(sys.executable),
            d,
            live,
            "import builtins\nprint(builtins.IMAGE_SITE)\n",
            extra_path=str(image),
        )
        assert hooked.stdout == b"ran\n" and (live / "job.log").read_bytes() == b"ran\n"

    def test_install_makes_a_world_writable_directory(self, work):
        """The init container's install: sitecustomize.py readable, directory writable by all (sticky)."""
        _, live = work
        assert (live.stat().st_mode & 0o7777) == 0o1777
        assert ((live / "sitecustomize.py").stat().st_mode & 0o777) == 0o644


# --- main's log (ELYRA_SIDECAR_LIVE_MAIN=1): the parent bootstrapper's stdout, the KFP Logs tab -----------

ALL_PYTHONS = {
    v: Path(f"/root/.pyenv/versions/{v}/bin/python3")
    for v in ("3.6.15", "3.7.16", "3.8.18", "3.9.18", "3.10.13", "3.11.7", "3.12.1", "3.13.0")
}
ALL_PYTHONS = {v: p for v, p in ALL_PYTHONS.items() if p.exists()} or {"current": Path(sys.executable)}

# The two ways Elyra's bootstrapper runs a Python node's script. Its own records go to stderr (logging's
# default), so in these stand-ins too; its stdout is main's log as the Logs tab shows it.
_AS_NOBODY = r"""
import os
def child_user():
    if os.environ.get("BOOT_SCRIPT_AS_NOBODY"):  # the script runs as another user than the bootstrapper
        os.setgid(65534)
        os.setuid(65534)
"""
BOOTSTRAPPERS = {
    # Elyra 4.x: the output is captured through a pipe and logged once at the end.
    "4.x": _AS_NOBODY
    + r"""
import os, subprocess, sys
p = subprocess.Popen(
    [sys.argv[1], sys.argv[2]], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, preexec_fn=child_user
)
with open("boot-pipe.txt", "w") as f:
    f.write(os.readlink("/proc/self/fd/%d" % p.stdout.fileno()))
out = p.communicate()[0]
with open("captured.bin", "wb") as f:
    f.write(out)
sys.stderr.buffer.write(b"[I] Output: " + out + b"\n[I] Return code: %d\n" % p.returncode)
sys.exit(p.returncode)
""",
    # Elyra 2.x-3.x: the script writes straight into <name>.log, opened by the bootstrapper.
    "3.x": _AS_NOBODY
    + r"""
import subprocess, sys
with open("job.log", "w") as log_file:
    r = subprocess.run(
        [sys.argv[1], sys.argv[2]], stdout=log_file, stderr=subprocess.STDOUT, preexec_fn=child_user
    )
sys.stderr.write("[I] Return code: %d\n" % r.returncode)
sys.exit(r.returncode)
""",
    # Not Elyra: the script inherits the bootstrapper's stdout and stderr (both already main's log).
    "inherit": r"""
import subprocess, sys
sys.exit(subprocess.run([sys.argv[1], sys.argv[2]]).returncode)
""",
    # Not Elyra: stdout captured, stderr inherited (stderr already in main's log, stdout not).
    "stdout-only": r"""
import subprocess, sys
r = subprocess.run([sys.argv[1], sys.argv[2]], stdout=subprocess.PIPE)
sys.stderr.buffer.write(b"[I] Output: " + r.stdout + b"\n")
sys.exit(r.returncode)
""",
}

# Each step waits for the test (a line on stdin), which first checks that main's log already shows it.
STEPPED = rb"""import sys
out, err = sys.stdout.buffer, sys.stderr.buffer
out.write("line 1: caf\u00e9 \u2713\n".encode()); out.flush(); sys.stdin.readline()
err.write(b"line 2, on stderr\n"); err.flush(); sys.stdin.readline()
out.write(b"line 3: " + b"y" * 10000 + b"\n"); out.flush(); sys.stdin.readline()
out.write(b"no newline at the end"); out.flush()
sys.exit(3)
"""
STEPPED_OUTPUT = (
    "line 1: caf\u00e9 \u2713\n".encode()
    + b"line 2, on stderr\nline 3: "
    + b"y" * 10000
    + b"\nno newline at the end"
)
STEPS = [b"line 1: caf\xc3\xa9 \xe2\x9c\x93\n", b"line 2, on stderr\n", b"y" * 10000 + b"\n"]

# Probes the script's own file descriptors into fds.txt (pipe names are normalised by `Container`).
FDS_PROBE = r"""
import os
def _fds():
    names = sorted(os.listdir("/proc/self/fd"), key=int)
    return " ".join(n + "=" + os.readlink("/proc/self/fd/" + n) for n in names if n in ("0", "1", "2"))
with open("fds.txt", "w") as f:
    f.write(_fds() + " count=%d" % len(os.listdir("/proc/self/fd")))
"""


class Container:
    """Main as Kubernetes sees it: the bootstrapper's stdout and stderr are two pipes read here, in order.

    The test keeps a write end of the stdout pipe, so it can write "the bootstrapper's own line" there."""

    def __init__(
        self,
        python: Path,
        work: Path,
        live_dir: Path,
        script: bytes,
        *,
        shape: str = "4.x",
        main: bool = True,
        log: bool = False,
        hook: bool = True,
        stdout=None,
        preexec=None,
        script_as_nobody: bool = False,
    ) -> None:
        import threading

        self.work, self.live_dir = work, live_dir
        (work / "job.py").write_bytes(script)
        (work / "job.py").chmod(0o644)
        for stale in ("job.log", "captured.bin", "fds.txt", "boot-pipe.txt"):
            (work / stale).unlink(missing_ok=True)
        (live_dir / "job.log").unlink(missing_ok=True)
        env = {"PATH": os.environ["PATH"], "PYTHONUNBUFFERED": "1", "LANG": "C.UTF-8"}
        if script_as_nobody:
            env["BOOT_SCRIPT_AS_NOBODY"] = "1"
        if hook:
            env.update({"PYTHONPATH": str(live_dir), "ELYRA_SIDECAR_LIVE_SCRIPT": "job.py"})
            if main:
                env["ELYRA_SIDECAR_LIVE_MAIN"] = "1"
            if log:
                env["ELYRA_SIDECAR_LIVE_LOG"] = str(live_dir / "job.log")
        self.out_r, self.out_w = os.pipe()
        err_r, err_w = os.pipe()
        self.out, self.err = bytearray(), bytearray()
        self._changed = threading.Condition()
        self._stop_out = threading.Event()
        self.proc = subprocess.Popen(
            [str(python), "-c", BOOTSTRAPPERS[shape], str(python), "job.py"],
            cwd=work,
            env=env,
            stdin=subprocess.PIPE,
            stdout=self.out_w if stdout is None else stdout,
            stderr=err_w,
            preexec_fn=preexec,  # noqa: PLW1509 - this container's reader threads start after it
        )
        os.close(err_w)
        if stdout is not None:
            os.close(self.out_w)
            self.out_w = -1
        self._readers = [
            threading.Thread(target=self._pump, args=(self.out_r, self.out, self._stop_out), daemon=True),
            threading.Thread(target=self._pump, args=(err_r, self.err, threading.Event()), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _pump(self, fd: int, into: bytearray, stop) -> None:
        import select

        try:
            while not stop.is_set():
                if not select.select([fd], [], [], 0.05)[0]:
                    continue
                data = os.read(fd, 65536)
                if not data:
                    return
                with self._changed:
                    into.extend(data)
                    self._changed.notify_all()
        finally:
            os.close(fd)

    def wait_for(self, needle: bytes, where: str = "out") -> None:
        """Block until main's stdout (or stderr) holds `needle`; the script is blocked meanwhile."""
        stream = self.out if where == "out" else self.err
        with self._changed:
            # A liveness bound, not a timing claim: the script waits for us, so without a live copy this
            # would wait for ever.
            if not self._changed.wait_for(lambda: needle in stream, timeout=60):
                pytest.fail(f"{needle[:40]!r} never reached main's {where} while the script ran")

    def wait_for_file(self, path: Path, content: bytes) -> None:
        """Block until `path` holds `content` (the live log: the hook has handled those bytes)."""
        import time

        for _ in range(6000):  # a liveness bound (60 s), as in wait_for
            if path.exists() and content in path.read_bytes():
                return
            time.sleep(0.01)
        pytest.fail(f"{content[:40]!r} never reached {path}")

    def go(self) -> None:
        """Let the script take its next step."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"\n")
        self.proc.stdin.flush()

    def inject(self, data: bytes) -> None:
        """A line of the bootstrapper's own, written to main's stdout now."""
        os.write(self.out_w, data)

    def close_reader(self) -> None:
        """Main's log goes away (nobody reads the container's stdout any more)."""
        self._stop_out.set()
        self._readers[0].join(timeout=10)
        assert not self._readers[0].is_alive()

    def finish(self) -> Container:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.rc = self.proc.wait(timeout=60)
        if self.out_w >= 0:
            os.close(self.out_w)
        for reader in self._readers:
            reader.join(timeout=30)  # the helper process ends right after the script
            assert not reader.is_alive(), "main's log was still held open after the script ended"
        return self

    def file(self, name: str) -> bytes | None:
        path = self.work / name
        if not path.exists():
            return None
        data = path.read_bytes()
        pipe = self.work / "boot-pipe.txt"
        if name == "fds.txt" and pipe.exists():
            data = data.replace(pipe.read_bytes(), b"bootstrapper-pipe")
        return data

    def outcome(self) -> tuple:
        """What the bootstrapper sees and leaves: exit code, its records, the .log and the captured bytes."""
        return (self.rc, bytes(self.err), self.file("job.log"), self.file("captured.bin"))


def ended(data: bytes) -> bytes:
    """What main's log shows of `data`: a last line without newline gets one there (never elsewhere)."""
    return data + b"\n" if data and not data.endswith(b"\n") else data


def stepped(container: Container) -> Container:
    for step in STEPS:
        container.wait_for(step, where="out")
        container.go()
    return container.finish()


class TestMainLog:
    @pytest.mark.parametrize("version", list(ALL_PYTHONS))
    @pytest.mark.parametrize("shape", ["4.x", "3.x"])
    def test_every_line_reaches_main_before_the_script_ends(self, work, version, shape):
        """Each line is in main's stdout while the script still runs, in order; at the end byte for byte."""
        d, live = work
        python = ALL_PYTHONS[version]
        on = stepped(Container(python, d, live, STEPPED, shape=shape, log=shape == "4.x"))
        # The partial last line too, ended in main's log so the next record starts on a line of its own.
        assert bytes(on.out) == STEPPED_OUTPUT + b"\n"
        assert on.rc == 3
        if shape == "3.x":
            assert on.file("job.log") == STEPPED_OUTPUT
        else:
            assert on.file("captured.bin") == STEPPED_OUTPUT == (live / "job.log").read_bytes()
        # Everything else is as without the hook: exit code, the records, the .log, the captured bytes.
        off = Container(python, d, live, STEPPED, shape=shape, hook=False).finish()
        assert on.outcome() == off.outcome()
        assert bytes(off.out) == b""

    @pytest.mark.parametrize("shape", ["4.x", "3.x"])
    def test_the_bootstrappers_line_never_lands_inside_a_script_line(self, work, shape):
        """A half-written script line is held back while the bootstrapper writes a line of its own."""
        d, live = work
        script = (
            b"import sys\nsys.stdout.write('part one, '); sys.stdout.flush(); sys.stdin.readline()\n"
            b"print('part two')\n"
        )
        c = Container(Path(sys.executable), d, live, script, shape=shape, log=True)
        # The hook writes main's log before the live log: once the live log has the bytes, main had its turn.
        c.wait_for_file(live / "job.log", b"part one, ")
        c.inject(b"the bootstrapper's own line\n")
        c.go()
        c.finish()
        assert bytes(c.out) == b"the bootstrapper's own line\npart one, part two\n"

    @pytest.mark.parametrize("shape", ["4.x", "3.x"])
    def test_a_line_longer_than_the_bound_is_split(self, work, shape):
        """A line without end is written in pieces of at most 4096 bytes (PIPE_BUF: atomic on a pipe)."""
        d, live = work
        script = (
            b"import sys\nsys.stdout.write('x' * 5000); sys.stdout.flush(); sys.stdin.readline()\nprint()\n"
        )
        c = Container(Path(sys.executable), d, live, script, shape=shape, log=True)
        c.wait_for_file(live / "job.log", b"x" * 5000)
        c.inject(b"between\n")
        c.go()
        c.finish()
        assert bytes(c.out) == b"x" * 4096 + b"between\n" + b"x" * 904 + b"\n"

    def test_output_already_in_mains_log_is_not_copied(self, work):
        """A script that writes to the bootstrapper's own stdout and stderr: each line once, no hook."""
        d, live = work
        script = b"import sys\nprint('out')\nsys.stderr.write('err\\n')\n" + FDS_PROBE.encode()
        on = Container(Path(sys.executable), d, live, script, shape="inherit").finish()
        off = Container(Path(sys.executable), d, live, script, shape="inherit", hook=False).finish()
        assert (bytes(on.out), bytes(on.err)) == (b"out\n", b"err\n")
        assert on.file("fds.txt") == off.file("fds.txt")  # not even a pipe put in between

    def test_stderr_already_in_mains_log_only_stdout_is_copied(self, work):
        """stdout captured, stderr inherited: main's stdout gets the stdout lines, stderr stays once."""
        d, live = work
        script = b"import sys\nprint('out')\nsys.stderr.write('err\\n')\n"
        on = Container(Path(sys.executable), d, live, script, shape="stdout-only").finish()
        assert bytes(on.out) == b"out\n"
        assert bytes(on.err) == b"err\n[I] Output: out\n\n"


class TestMainLogUnavailable:
    """Main's log cannot be opened, or fails later: the hook drops it and nothing else changes."""

    @pytest.mark.parametrize("shape", ["4.x", "3.x"])
    @pytest.mark.parametrize("how", ["closed", "fifo-no-reader", "pipe-no-reader", "socket", "other-user"])
    def test_cannot_be_opened(self, work, shape, how):
        """Exit code, records, .log, captured bytes and the script's fds equal a run without the hook."""
        d, live = work
        python = Path(sys.executable)
        if how == "other-user":
            python = Path("/usr/bin/python3")  # executable by `nobody`, unlike interpreters under /root
            if not python.exists() or os.geteuid() != 0:
                pytest.skip("needs root (to run the script as nobody) and /usr/bin/python3")
        on, off = (self._run(python, d, live, shape, how, hook=hook) for hook in (True, False))
        assert on.outcome() == off.outcome()
        assert on.rc == 4 and on.file("fds.txt") is not None
        assert on.file("fds.txt") == off.file("fds.txt")
        assert bytes(on.out) == bytes(off.out) == b""

    @pytest.mark.parametrize("shape", ["4.x", "3.x"])
    def test_writes_fail(self, work, shape):
        """Main's stdout is /dev/full (ENOSPC on every write): the copy is dropped, the rest unchanged."""
        d, live = work
        on, off = (
            self._run(Path(sys.executable), d, live, shape, "full", hook=hook, log=shape == "4.x")
            for hook in (True, False)
        )
        assert on.outcome() == off.outcome()
        assert on.rc == 4

    @staticmethod
    def _run(python, d, live, shape, how, *, hook, log=False):
        script = b"import sys\nprint('out ' * 50)\nsys.stderr.write('err\\n')\n" + FDS_PROBE.encode()
        script += b"sys.exit(4)\n"
        kwargs = {}
        if how == "closed":
            kwargs["preexec"] = lambda: os.close(1)
        elif how == "other-user":
            kwargs["script_as_nobody"] = True
        elif how == "fifo-no-reader":  # a blocking open would wait for ever
            fifo = d / "main.fifo"
            fifo.unlink(missing_ok=True)
            os.mkfifo(fifo)
            r = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
            kwargs["stdout"] = os.open(fifo, os.O_WRONLY)
            os.close(r)
        elif how == "pipe-no-reader":
            r, w = os.pipe()
            os.close(r)
            kwargs["stdout"] = w
        elif how == "socket":
            a, b = socket.socketpair()
            b.close()
            kwargs["stdout"] = os.dup(a.fileno())
            a.close()
        elif how == "full":
            kwargs["stdout"] = os.open("/dev/full", os.O_WRONLY)
        container = Container(python, d, live, script, shape=shape, hook=hook, log=log, **kwargs)
        if "stdout" in kwargs:
            os.close(kwargs["stdout"])
        return container.finish()

    @pytest.mark.parametrize("shape", ["4.x", "3.x"])
    def test_main_going_away_midway(self, work, shape):
        """Nobody reads main's stdout any more (EPIPE): the script goes on, the rest is unchanged."""
        d, live = work
        script = (
            b"import sys\nprint('first', flush=True)\nsys.stdin.readline()\n"
            b"for i in range(3000):\n    print('after the reader left', i)\nsys.exit(6)\n"
        )
        outcomes = []
        for hook in (True, False):
            c = Container(Path(sys.executable), d, live, script, shape=shape, log=shape == "4.x", hook=hook)
            if hook:
                c.wait_for(b"first\n")
            c.close_reader()
            c.go()
            outcomes.append(c.finish().outcome())
        assert outcomes[0] == outcomes[1]
        assert outcomes[0][0] == 6


# What a script may do to its own process; each must behave exactly as without the hook.
BEHAVIOURS = {
    "closes-stdout": b"""import os, sys
print("before", flush=True)
os.close(1)
sys.stderr.write("after\\n")
""",
    "redirects-stdout": b"""import os, sys
print("before", flush=True)
os.dup2(os.open("elsewhere.txt", os.O_WRONLY | os.O_CREAT), 1)
print("hidden", flush=True)
sys.stderr.write("after\\n")
""",
    # Waits for every child it has: the hook's helper must not be one of them.
    "forks": b"""import os
print("parent", flush=True)
if os.fork() == 0:
    print("child", flush=True)
    os._exit(0)
while True:
    try:
        os.wait()
    except ChildProcessError:
        break
print("all children done", flush=True)
""",
    "execs": b"""import os
print("before", flush=True)
os.execv("/bin/sh", ["sh", "-c", "echo from exec; exit 9"])
""",
    "os-exit": b"""import os
os.write(1, b"quick\\n")
os.write(2, b"partial")
os._exit(5)
""",
}


class TestScriptBehaviours:
    @pytest.mark.parametrize("shape", ["4.x", "3.x"])
    @pytest.mark.parametrize("behaviour", list(BEHAVIOURS))
    def test_as_without_the_hook(self, work, shape, behaviour):
        """Exit code, records, .log and captured bytes equal a run without the hook; main shows them."""
        d, live = work
        script = BEHAVIOURS[behaviour]
        on = Container(Path(sys.executable), d, live, script, shape=shape, log=shape == "4.x").finish()
        elsewhere = (d / "elsewhere.txt").read_bytes() if behaviour == "redirects-stdout" else None
        (d / "elsewhere.txt").unlink(missing_ok=True)
        off = Container(Path(sys.executable), d, live, script, shape=shape, hook=False).finish()
        assert on.outcome() == off.outcome()
        if elsewhere is not None:
            assert elsewhere == (d / "elsewhere.txt").read_bytes() == b"hidden\n"
        # Main's log shows what the bootstrapper received, in the same order (a last line ended).
        received = on.file("job.log") if shape == "3.x" else on.file("captured.bin")
        assert received is not None
        assert bytes(on.out) == ended(received)


class TestMainLogKinds:
    """What a container runtime may give main as its stdout, besides an anonymous pipe."""

    def test_named_fifo(self, work):
        """containerd's kind: a named FIFO with a reader gets the lines."""
        d, live = work
        fifo = d / "main.fifo"
        os.mkfifo(fifo)
        r = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        w = os.open(fifo, os.O_WRONLY)
        try:
            c = Container(Path(sys.executable), d, live, b"print('through a fifo')\n", stdout=w)
        finally:
            os.close(w)
        c.finish()
        os.set_blocking(r, True)
        assert os.read(r, 65536) == b"through a fifo\n"
        os.close(r)

    def test_tty(self, work):
        """A terminal gets the lines, as a terminal shows them (it turns \\n into \\r\\n)."""
        d, live = work
        controller, terminal = os.openpty()
        try:
            c = Container(Path(sys.executable), d, live, b"print('on a tty')\n", stdout=terminal)
        finally:
            os.close(terminal)
        c.finish()
        assert os.read(controller, 65536) == b"on a tty\r\n"
        os.close(controller)


class TestMainLogIsAFile:
    def test_appended_never_overwritten(self, work):
        """Main's stdout is a regular file (opened for appending): ours go to its end, nothing is lost."""
        d, live = work
        main = d / "main.txt"
        main.write_bytes(b"already there\n")
        fd = os.open(main, os.O_WRONLY | os.O_APPEND)
        try:
            c = Container(Path(sys.executable), d, live, b"print('from the script')\n", stdout=fd)
        finally:
            os.close(fd)
        c.finish()
        assert main.read_bytes() == b"already there\nfrom the script\n"


class TestInstallLive:
    def test_the_command_works_outside_the_source_tree(self, tmp_path):
        """`elyra-sidecar install-live` as the init container runs it: installed package, any directory."""
        cli = Path(sys.executable).parent / "elyra-sidecar"
        done = subprocess.run(
            [str(cli), "install-live", "--dest", str(tmp_path / "live")],
            cwd=tmp_path,
            env={"PATH": os.environ["PATH"]},
            capture_output=True,
            check=False,
        )
        assert (done.returncode, done.stderr.startswith(b"installed ")) == (0, True), done.stderr
        shipped = ROOT / "src" / "elyra_sidecar" / "sidecar" / "live_sitecustomize.py"
        assert (tmp_path / "live" / "sitecustomize.py").read_bytes() == shipped.read_bytes()
