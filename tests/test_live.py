"""The Elyra 4.x live-output hook (sidecar/live_sitecustomize.py) with real interpreters and processes.

A "bootstrapper" here is what Elyra 4.0 does: subprocess.run(["python3", script], stdout=PIPE,
stderr=STDOUT) from the script's directory. Its captured bytes and exit code must be exactly what they
are without the hook, and the live file must hold the same bytes.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from elyra_sidecar.sidecar.live import install

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
