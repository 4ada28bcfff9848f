"""Real containers (podman): KFP Elyra step Pods, mutated by the Pod mode, run by `podman kube play`.

The Pods are reconstructed (tests/fixtures/kfp-v2): the 2.17 and 2.2 (double emissary) Python steps, the 2.14
R step and the 2.17 notebook step, their --cos-endpoint pointed at this test's S3 server (as if Elyra had
compiled against it), mutated by `mutate_pod` and patched with `jsonpatch`. Every container
keeps the spec the patch leaves; the images are the sidecar image from sidecar/Dockerfile and one STAND-IN
image for Argo's argoexec, KFP's launcher and Elyra's runtime (the real 4.1.1 bootstrapper inside), whose
argoexec and launcher are stand-ins following shared/docs/KFP-V2.md (tests/support/kfp_pods.py). Argo's
controller is played by the test: `podman exec` of the kill-cmd annotation's command. See
docs/end-to-end.md ("Pod mode under podman").
"""

from __future__ import annotations

import contextlib
import io
import re
import shutil
import signal
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import jsonpatch
import pytest
import yaml

from elyra_sidecar import contract
from elyra_sidecar.webhook._pod import mutate_pod, read_step
from tests.support import kfp_pods, pods
from tests.support.pod import argo_kill_command
from tests.support.runner import dependency_archive
from tests.test_e2e import EXPECTED, NOTEBOOK, R_EXPECTED, R_INPUTS, R_SCRIPT, SCRIPT
from tests.test_pod_e2e import CONFIG, FAILING, FIXTURE, SLOW, STOP_BOUND

SHAPES = FIXTURE.parent
# KFP 2.0-2.2: main's command is the launcher behind TWO `argoexec emissary ... --` prefixes.
FIXTURE_22 = SHAPES / "pod-2.2-elyra-step.reconstructed.yaml"
FIXTURE_R = SHAPES / "pod-2.14-elyra-r-step.reconstructed.yaml"
FIXTURE_NOTEBOOK = SHAPES / "pod-2.17-elyra-notebook-step.reconstructed.yaml"

REASON = pods.unavailable()
# Cold, the first test also builds the images (debootstrap, pip): minutes, not the usual 300 s limit.
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(1800),
    pytest.mark.skipif(REASON is not None, reason=REASON or ""),
]


@pytest.fixture(scope="module")
def images():
    """The sidecar image and the stand-in step image, built once (cached after that)."""
    return kfp_pods.sidecar_image(), kfp_pods.step_image()


def _container(pod, name):
    return next(c for c in pod["spec"]["containers"] if c["name"] == name)


def _prepared(s3, fixture: Path, files: dict[str, bytes], inputs: dict[str, bytes] | None = None):
    """A reconstructed Pod, its storage prepared as Elyra's export (and upstream nodes) leave it."""
    pod = yaml.safe_load(fixture.read_text())
    main = _container(pod, "main")
    main["args"] = [a.replace("http://127.0.0.1:9123", s3.endpoint) for a in main["args"]]
    node, _ = read_step(main, "main")
    assert node is not None and node.elyra_version == (4, 1, 1)
    archive = re.search(r"--cos-dependencies-archive\s+'([^']+)'", main["args"][2])
    assert archive is not None
    data = dependency_archive(files)
    s3.make_bucket(node.cos_bucket)
    objects = {archive.group(1): data, **(inputs or {})}
    for name, body in objects.items():
        s3.client().put_object(node.cos_bucket, f"{node.cos_directory}/{name}", io.BytesIO(body), len(body))
    return pod, node


def _mutated_step(s3, script: bytes, fixture: Path = FIXTURE, **extra):
    """The reconstructed Pod (2.17 unless told), storage prepared, mutated by Pod mode."""
    pod, node = _prepared(s3, fixture, {"load_data.py": script}, **extra)
    outcome = mutate_pod(pod, CONFIG)
    assert outcome.result == "patched", outcome.reason
    return jsonpatch.apply_patch(pod, outcome.patch), node


class Played:
    """One mutated Pod under podman: its unique name, its manifest, its containers' names."""

    def __init__(self, pod, step: str) -> None:
        self.name = f"kfp-v2-pods-{uuid.uuid4().hex[:10]}"  # unique per run: never another run's pod
        self.manifest = kfp_pods.podman_pod(pod, name=self.name, sidecar_ref=CONFIG.sidecar.image, step=step)
        self.dir = Path(tempfile.mkdtemp(prefix="elyra-kfp-v2-pod-"))

    def start(self) -> None:
        path = self.dir / "pod.yaml"
        path.write_text(yaml.safe_dump(self.manifest, sort_keys=False))
        played = pods.podman("kube", "play", str(path), check=False)
        if played.returncode != 0:
            inits = [c["name"] for c in self.manifest["spec"]["initContainers"]]
            said = {n: pods.podman("logs", self.ctr(n), check=False) for n in inits}
            raise RuntimeError(
                played.stderr.decode(errors="replace")[-2000:]
                + "\n".join(
                    f"{n}: {p.stdout.decode()[-800:]}{p.stderr.decode()[-800:]}" for n, p in said.items()
                )
            )

    def remove(self) -> None:
        pods.remove_pod(self.name)
        shutil.rmtree(self.dir, ignore_errors=True)

    def ctr(self, container: str) -> str:
        return f"{self.name}-{container}"

    def logs(self, container: str) -> pods.Logs:
        return pods.container_logs(self.ctr(container))

    def main_text(self) -> str:
        logs = self.logs("main")
        return (logs.stdout + logs.stderr).decode(errors="replace")[-3000:]

    def exit_code_file(self) -> bytes:
        """What the stand-in emissary wrote to var-run-argo (`podman cp` out of main, exited or not)."""
        target = self.dir / "exitcode"
        pods.podman("cp", f"{self.ctr('main')}:{contract.ARGO_MAIN_EXIT_CODE_FILE}", str(target))
        return target.read_bytes()


@contextlib.contextmanager
def _play(pod, step: str = kfp_pods.STEP_IMAGE) -> Iterator[Played]:
    """`podman kube play` the Pod; remove it (and only it) afterwards."""
    played = Played(pod, step)
    try:
        played.start()
        yield played
    finally:
        played.remove()


def _lived(played: Played, main_finished, first: str, last: str, gap: float) -> None:
    """`first` was on elyra-log's stdout before main ended, and `gap` seconds before `last` (as printed)."""
    log = played.logs("elyra-log")
    t_first, t_last = log.first(first), log.first(last)
    assert t_first is not None and t_last is not None, log.timed
    assert t_first < main_finished
    assert (t_last - t_first).total_seconds() > gap


@pytest.mark.usefixtures("images")
class TestPodModeUnderPodman:
    """The mutated 2.17 Pod run by a real container runtime, read back with `podman logs`."""

    @pytest.mark.parametrize("fixture", [FIXTURE, FIXTURE_22], ids=["kfp-2.17", "kfp-2.2-double-emissary"])
    def test_success_live_log_object_and_self_exit(self, s3, fixture):
        """elyra-log: byte-exact, first line before main ends; S3 object; exits 0 on main's exit-code file.

        KFP 2.2 shape: both emissary prefixes run the stand-in emissary (the outer one runs the inner one,
        which runs the launcher; each writes main's exit-code file when its child ends, the inner one first).
        What differs from real 2.2: the stand-in launcher does not resolve `{{$.inputs.parameters[...]}}`
        placeholders (the 2.2 driver leaves them to the launcher), so the script sees the placeholder text
        as learning_rate (this script does not read it), and the stand-in emissaries do not read Argo's
        template or signal files."""
        pod, node = _mutated_step(s3, SCRIPT, fixture)
        with _play(pod) as played:
            assert pods.wait_exit(played.ctr("main"), 300) == 0, played.main_text()
            main_finished = pods.finished_at(played.ctr("main"))
            # Nobody signals elyra-log: it ends by itself once the emissary wrote main's exit code.
            assert pods.wait_exit(played.ctr("elyra-log"), STOP_BOUND) == 0, played.logs("elyra-log").stderr
            assert played.exit_code_file() == b"0"
            side = played.logs("elyra-log")
            assert side.stdout == EXPECTED
            _lived(played, main_finished, "progress 1/3", "progress 3/3", 2.0)
            assert s3.get(node.cos_bucket, f"{node.cos_directory}/load_data.log") == EXPECTED
            # The KFP Logs tab (main's log): the live hook's copy, every line in order, before main ended.
            main_log = played.logs("main")
            position = 0
            for line in EXPECTED.splitlines(keepends=True):
                position = main_log.stdout.index(line, position) + len(line)
            t_first = main_log.first("progress 1/3")
            assert t_first is not None and t_first < main_finished

    def test_failure_log_object(self, s3):
        """A failing script: main exits 1 (the launcher's rule); the log in podman logs and S3; sidecar 0."""
        pod, node = _mutated_step(s3, FAILING)
        with _play(pod) as played:
            assert pods.wait_exit(played.ctr("main"), 300) == 1, played.main_text()
            assert pods.wait_exit(played.ctr("elyra-log"), STOP_BOUND) == 0, played.logs("elyra-log").stderr
            assert played.exit_code_file() == b"1"
            expected = b"about to fail\nboom: the script failed\n"
            assert played.logs("elyra-log").stdout == expected
            # Elyra 4.1 never writes <name>.log on failure: this object exists only thanks to the sidecar.
            assert s3.get(node.cos_bucket, f"{node.cos_directory}/load_data.log") == expected

    def test_kill_cmd_stops_the_sidecar_within_the_grace_period(self, s3):
        """`podman exec` of the kill-cmd annotation's command: elyra-log exits 0, main still running."""
        pod, node = _mutated_step(s3, SLOW)
        with _play(pod) as played:
            side = played.ctr("elyra-log")
            assert pods.wait_for_log(side, b"started", 240), played.main_text()
            command = argo_kill_command(played.manifest, "elyra-log", signal.SIGTERM)
            assert command == ["elyra-sidecar", "stop", "--signal", "15"]
            started = time.monotonic()
            done = pods.podman("exec", side, *command, check=False)
            assert done.returncode == 0, done.stderr
            assert pods.wait_exit(side, STOP_BOUND) == 0, played.logs("elyra-log").stderr
            grace = played.manifest["spec"]["terminationGracePeriodSeconds"]
            assert time.monotonic() - started < grace
            running = pods.podman("inspect", "--format", "{{.State.Running}}", played.ctr("main"))
            assert running.stdout.decode().strip() == "true", "main is still running"
            expected = b"started, now working for a long time\n"
            assert played.logs("elyra-log").stdout == expected
            assert s3.get(node.cos_bucket, f"{node.cos_directory}/load_data.log") == expected


@pytest.fixture(scope="module")
def r_image(images):
    """The stand-in step image with Debian's r-base-core (built once, cached after that)."""
    del images
    return kfp_pods.step_image(with_r=True)


class TestOtherStepsUnderPodman:
    """An R step (KFP 2.14 shape) and a notebook step (KFP 2.17 shape) run by podman."""

    def test_r_step_log_at_the_end_and_mirrored(self, s3, r_image):
        """Elyra 4.1 R step: elyra-log prints the log byte-exact once the bootstrapper writes it; S3."""
        pod, node = _prepared(s3, FIXTURE_R, {"report.r": R_SCRIPT}, R_INPUTS)
        outcome = mutate_pod(pod, CONFIG)
        assert outcome.result == "patched", outcome.reason
        pod = jsonpatch.apply_patch(pod, outcome.patch)
        with _play(pod, r_image) as played:
            assert pods.wait_exit(played.ctr("main"), 300) == 0, played.main_text()
            main_finished = pods.finished_at(played.ctr("main"))
            assert pods.wait_exit(played.ctr("elyra-log"), STOP_BOUND) == 0, played.logs("elyra-log").stderr
            assert played.exit_code_file() == b"0"
            side = played.logs("elyra-log")
            assert side.stdout == R_EXPECTED
            # Elyra 4.x keeps R's output in memory: both lines reach elyra-log together, although the
            # script sleeps 2 s between them, and before main ended.
            t_first, t_last = side.first("report 1/2"), side.first("report 2/2")
            assert t_first is not None and t_last is not None, side.timed
            assert (t_last - t_first).total_seconds() < 2.0
            assert t_first < main_finished
            assert s3.get(node.cos_bucket, f"{node.cos_directory}/report.log") == R_EXPECTED

    def test_notebook_step_left_alone_and_succeeds(self, s3, images):
        """Notebook step: Pod mode leaves the Pod unchanged; under podman it succeeds, outputs in S3."""
        del images
        pod, node = _prepared(
            s3, FIXTURE_NOTEBOOK, {"train.ipynb": NOTEBOOK}, {"data.csv": b"a,b\n1,2\n3,4\n"}
        )
        outcome = mutate_pod(pod, CONFIG)
        assert (outcome.result, outcome.patch) == ("unchanged", [])
        assert outcome.reason.startswith("notebook node")
        with _play(pod) as played:
            names = [c["name"] for c in played.manifest["spec"]["containers"]]
            assert names == ["wait", "main"]
            assert pods.wait_exit(played.ctr("main"), 300) == 0, played.main_text()
            assert played.exit_code_file() == b"0"
            # Elyra 4.1 uploads papermill's output under the notebook's own name, and its HTML.
            output = s3.get(node.cos_bucket, f"{node.cos_directory}/train.ipynb")
            assert output is not None and b"rows: 3" in output
            assert s3.get(node.cos_bucket, f"{node.cos_directory}/train.html") is not None
            assert s3.get(node.cos_bucket, f"{node.cos_directory}/model.pkl") == b"model"
