"""The live hook (sidecar/live_sitecustomize.py) against hostile starts and endings, with real processes.

"Main's log" is the stand-in bootstrapper's stdout, a pipe read here, as the container runtime reads it.
A container's end is modelled as the kernel does it when PID 1 of a PID namespace exits: every process
left in it is killed with SIGKILL (here: the bootstrapper's process group, right after it exits).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import ClassVar

import pytest

from elyra_sidecar.sidecar.live import install
from elyra_sidecar.transformer import Config
from elyra_sidecar.transformer._steps import live_hook

# Elyra 2.x-3.x: the script writes into <name>.log; Elyra 4.x: through a pipe, logged at the end. Their
# records go to stdout here, as main's log shows them (the Logs tab merges stdout and stderr).
BOOT_3X = r"""
import subprocess, sys
with open("job.log", "w") as log_file:
    r = subprocess.run([sys.executable, "job.py"], stdout=log_file, stderr=subprocess.STDOUT, preexec_fn=PRE)
sys.stdout.write("[I] python script execution completed\n")
sys.stdout.flush()
sys.exit(r.returncode)
"""
BOOT_4X = r"""
import subprocess, sys
p = subprocess.Popen(
    [sys.executable, "job.py"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, preexec_fn=PRE
)
out = p.communicate()[0]
with open("captured.bin", "wb") as f:
    f.write(out)
sys.stdout.write("[I] Output: %d bytes\n" % len(out))
sys.stdout.flush()
sys.exit(p.returncode)
"""
# How the script is started: nothing special, or with fd 0 and/or fd 2 closed and/or SIGCHLD ignored
# (a bootstrapper, a shell or a supervisor can hand any of these down).
PREEXEC = r"""
import os, signal
CLOSE = {close!r}
def PRE():
    for fd in CLOSE:
        os.close(fd)
    if {sigchld_ignored!r}:
        signal.signal(signal.SIGCHLD, signal.SIG_IGN)
"""


@pytest.fixture
def work():
    d = Path(tempfile.mkdtemp(prefix="elyra-live-hard-"))
    live = install(d / "live").parent
    yield d, live
    shutil.rmtree(d, ignore_errors=True)


def boot(
    work: Path,
    live: Path,
    script: str,
    *,
    shape: str,
    close: tuple[int, ...] = (),
    sigchld_ignored: bool = False,
    hook: bool = True,
    teardown: bool = False,
    env_extra: dict[str, str] | None = None,
    prelude: str = "",
) -> tuple[int, bytes]:
    """Run the script under the stand-in bootstrapper; (exit code, main's log).

    teardown: when the bootstrapper exits, everything else in its process group is SIGKILLed (the
    container ends), and main's log is what had arrived by then."""
    (work / "job.py").write_text(script)
    for stale in ("job.log", "captured.bin"):
        (work / stale).unlink(missing_ok=True)
    env = {"PATH": os.environ["PATH"], "PYTHONUNBUFFERED": "1", "LANG": "C.UTF-8"}
    if hook:
        env.update(
            {"PYTHONPATH": str(live), "ELYRA_SIDECAR_LIVE_SCRIPT": "job.py", "ELYRA_SIDECAR_LIVE_MAIN": "1"}
        )
    env.update(env_extra or {})
    code = (
        prelude
        + PREEXEC.format(close=close, sigchld_ignored=sigchld_ignored)
        + (BOOT_3X if shape == "3.x" else BOOT_4X)
    )
    read_end, write_end = os.pipe()
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=work,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=write_end,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    os.close(write_end)
    try:
        if teardown:
            rc = proc.wait(timeout=60)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        out = bytearray()
        with os.fdopen(read_end, "rb", buffering=0) as f:
            # Without teardown: read to end-of-file (the helper holds main's log until the script is done).
            while chunk := f.read(65536):
                out += chunk
        rc = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    return rc, bytes(out)


FAILING = """import sys
print("working")
raise RuntimeError("boom")
"""
NO_NEWLINE = """import sys
sys.stdout.write("partial")
"""


class TestContainerEnd:
    """Item: on Elyra 2.x-3.x the follower was killed with the container before it had copied the end."""

    RUNS = 200

    def test_a_failing_scripts_traceback_is_in_mains_log_before_the_container_ends(self, work):
        d, live = work
        lost = 0
        for _ in range(self.RUNS):
            rc, log = boot(d, live, FAILING, shape="3.x", teardown=True)
            assert rc == 1
            assert (d / "job.log").read_bytes().endswith(b"RuntimeError: boom\n")
            record = log.find(b"[I] python script execution completed")
            traceback = log.find(b"RuntimeError: boom\n")
            if traceback < 0 or not 0 <= log.find(b"working\n") < traceback < record:
                lost += 1
        assert lost == 0, f"{lost} of {self.RUNS} runs lost the traceback from main's log"

    @pytest.mark.parametrize("shape", ["3.x", "4.x"])
    def test_a_last_line_without_newline_ends_before_the_next_record(self, work, shape):
        d, live = work
        rc, log = boot(d, live, NO_NEWLINE, shape=shape, teardown=True)
        assert rc == 0
        record = b"[I] python script execution completed\n" if shape == "3.x" else b"[I] Output: 7 bytes\n"
        assert log == b"partial\n" + record
        # The script's bytes elsewhere are its own.
        assert (d / ("job.log" if shape == "3.x" else "captured.bin")).read_bytes() == b"partial"


LINES = """import os, sys
for n in range(1, 4):
    sys.stdout.write("line %d\\n" % n)
sys.stdout.flush()
os.system("echo from a shell child")
"""


class TestHostileStart:
    """Item: the hook was silently empty with fd 0 or 2 closed, or SIGCHLD ignored, at the script's start."""

    MATRIX: ClassVar[list[tuple[tuple[int, ...], bool]]] = [
        (close, ignored)
        for close in [(), (0,), (2,), (0, 2)]
        for ignored in (False, True)
        if close or ignored
    ]

    @pytest.mark.parametrize("shape", ["3.x", "4.x"])
    @pytest.mark.parametrize(("close", "sigchld_ignored"), MATRIX)
    def test_every_line_reaches_mains_log(self, work, shape, close, sigchld_ignored):
        d, live = work
        kw = {"shape": shape, "close": close, "sigchld_ignored": sigchld_ignored}
        rc, log = boot(d, live, LINES, **kw)
        assert b"line 1\nline 2\nline 3\nfrom a shell child\n" in log, log
        # Everything else as without the hook.
        off_rc, _ = boot(d, live, LINES, hook=False, **kw)
        assert rc == off_rc == 0


PURGE = """import os, signal
# Kill every other process with this very command line (a common "single instance" guard).
me = open("/proc/self/cmdline", "rb").read()
for name in os.listdir("/proc"):
    if name.isdigit() and int(name) != os.getpid():
        try:
            with open("/proc/%s/cmdline" % name, "rb") as f:
                if f.read() == me:
                    os.kill(int(name), signal.SIGKILL)
        except OSError:
            pass
print("after the purge", flush=True)
"""


class TestHelperName:
    """Item: the helper had the script's exact command line, so the script's own purge killed it."""

    @pytest.mark.parametrize("shape", ["3.x", "4.x"])
    def test_a_script_killing_its_other_copies_leaves_the_helper(self, work, shape):
        d, live = work
        rc, log = boot(d, live, PURGE, shape=shape)
        assert rc == 0
        assert b"after the purge\n" in log

    def test_the_helper_names_itself(self, work):
        d, live = work
        script = """import os
for name in os.listdir("/proc"):
    if name.isdigit():
        try:
            with open("/proc/%s/cmdline" % name, "rb") as f:
                cmdline = f.read()
            with open("/proc/%s/comm" % name, "rb") as f:
                comm = f.read()
        except OSError:
            continue
        if cmdline.startswith(b"elyra-sidecar-live\\0"):
            print("helper", comm.strip().decode(), cmdline.rstrip(b"\\0").decode())
"""
        rc, log = boot(d, live, script, shape="4.x")
        assert rc == 0
        assert b"helper elyra-sidecar-l elyra-sidecar-live\n" in log


def test_matrix_is_what_the_item_names():
    """Fd 0 closed, fd 2 closed, both, and each with SIGCHLD ignored or not, less the plain start."""
    assert len(TestHostileStart.MATRIX) == len(list(itertools.product(range(4), range(2)))) - 1


COMPANY = """import os, subprocess, sys
import companylib
print("script:", companylib.GREETING)
print("order:", [p for p in sys.path if "/opt/" in p or p.endswith("/live")])
out = subprocess.run([sys.executable, "-c", "import companylib, os; print(os.environ['PYTHONPATH'])"],
                     stdout=subprocess.PIPE, check=True).stdout.decode()
print("child PYTHONPATH:", out.strip())
"""


class TestImagePythonpath:
    """Item: main's PYTHONPATH entry (the hook's directory) replaced the image's own `ENV PYTHONPATH`.

    The wiring is the transformer's own (`live_hook`): its elyra-live-env command runs here with the
    "image's" environment, then the bootstrapper and the script with main's env as Kubernetes gives it."""

    def _wired(self, live: Path, image_env: dict[str, str]) -> dict[str, str]:
        main: dict = {"name": "main", "image": "company/runtime:1", "command": ["sh", "-c", "true"]}
        containers = live_hook(
            main,
            live_dir=str(live),
            script="job.py",
            live_log=None,
            main_log=True,
            mount={"name": "w", "mountPath": "/w"},
            config=Config(),
        )
        assert not isinstance(containers, str)
        setup, recorder = containers
        assert setup["name"] == "elyra-live-setup" and recorder["name"] == "elyra-live-env"
        assert recorder["image"] == main["image"] and main["command"] == ["sh", "-c", "true"]
        subprocess.run(
            recorder["command"] + recorder["args"], env={"PATH": os.environ["PATH"], **image_env}, check=True
        )
        return {e["name"]: e["value"] for e in main["env"]}

    @pytest.fixture
    def company(self, work):
        d, _ = work
        lib = d / "opt" / "company-lib"
        lib.mkdir(parents=True)
        (lib / "companylib.py").write_text('GREETING = "hello from the image"\n')
        return lib

    @pytest.mark.parametrize("shape", ["3.x", "4.x"])
    def test_the_images_entries_come_back_after_the_hooks(self, work, company, shape):
        d, live = work
        other = d / "opt" / "other"
        image_value = f"{company}:{other}"
        env = self._wired(live, {"PYTHONPATH": image_value})
        assert env["PYTHONPATH"] == str(live)  # what Kubernetes gives main: the image's value is gone
        # The bootstrapper itself (any Python process in main) imports it too.
        rc, log = boot(d, live, COMPANY, shape=shape, env_extra=env, prelude="import companylib\n")
        assert rc == 0, log
        assert b"script: hello from the image\n" in log
        assert f"order: {[str(live), str(company), str(other)]}\n".encode() in log
        assert f"child PYTHONPATH: {live}:{image_value}\n".encode() in log

    def test_an_image_without_pythonpath_gets_only_the_hook(self, work):
        d, live = work
        env = self._wired(live, {})
        assert (live / "image-pythonpath").read_bytes() == b"unset"
        rc, log = boot(d, live, "import os\nprint(os.environ['PYTHONPATH'])\n", shape="4.x", env_extra=env)
        assert rc == 0
        assert log.startswith(f"{live}\n".encode())

    def test_the_images_own_sitecustomize_on_its_pythonpath_still_runs(self, work, company):
        d, live = work
        (company / "sitecustomize.py").write_text("import builtins\nbuiltins.COMPANY_SITE = True\n")
        env = self._wired(live, {"PYTHONPATH": str(company)})
        rc, log = boot(d, live, "print('site', COMPANY_SITE)\n", shape="4.x", env_extra=env)
        assert rc == 0, log
        assert b"site True\n" in log
