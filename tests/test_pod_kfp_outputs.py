"""Pod mode, opt-in KFP v2 artifacts (config `artifacts.kfp_v2`): the log and the declared outputs named in
the launcher's `--executor_input`, and the init container that links them to where the launcher uploads from.

The Pods are the reconstructed ones of tests/fixtures/kfp-v2 (executor input as each KFP release's driver
writes it, cited in reconstruct.py). KFP's launcher is Go and cannot be built here (docs/pod-mode.md says
why), so the mutated `--executor_input` is checked against the same proto with the protobuf JSON mapping
the launcher's `protojson.Unmarshal` implements: the real `kfp-pipeline-spec` wheel's `ExecutorInput`, parsed
strictly (unknown fields rejected). Local paths are checked against LocalPathForURI as written out below
from launcher_v2.go@2.17.0:1239-1253.
"""

from __future__ import annotations

import json
import os
import posixpath
import shutil
import stat
import tempfile
from dataclasses import replace
from pathlib import Path

import jsonpatch
import kubernetes_validate
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from elyra_sidecar import contract
from elyra_sidecar.sidecar import links
from elyra_sidecar.transformer import Config, config_from_mapping
from elyra_sidecar.transformer._kfp_outputs import (
    EXECUTOR_LOGS,
    LINK_CONTAINER,
    LauncherInputError,
    find_executor_input,
)
from elyra_sidecar.webhook._pod import mutate_pod
from tests.test_pod_mode import restricted_violations

pipeline_spec_pb2 = pytest.importorskip(
    "kfp.pipeline_spec.pipeline_spec_pb2", reason="kfp-pipeline-spec (a dev dependency) is not installed"
)
from google.protobuf import json_format  # noqa: E402 - after the importorskip that brings it

HERE = Path(__file__).resolve().parent / "fixtures" / "kfp-v2"
ON = config_from_mapping({"artifacts": {"kfp_v2": True}, "webhook": {"inject_all_in_namespaces": ["team-a"]}})
OFF = config_from_mapping({"webhook": {"inject_all_in_namespaces": ["team-a"]}})
# Pods the Pod mode patches, and whether their KFP release provisions `executor-logs` (2.5+).
REACHED = [
    "pod-2.5-elyra-step-cos-secret",
    "pod-2.14-elyra-step",
    "pod-2.14-elyra-r-step",
    "pod-2.17-elyra-step",
    "pod-2.17-retry-elyra-step",
]
NOT_REACHED = ["pod-2.0-elyra-step", "pod-2.2-elyra-step"]


def load(name: str) -> dict:
    return yaml.safe_load((HERE / f"{name}.reconstructed.yaml").read_text())


def container(pod, name, key="containers"):
    return next((c for c in pod["spec"].get(key) or [] if c["name"] == name), None)


def mutate(pod, config=ON):
    outcome = mutate_pod(pod, config, namespace_opted_in=True)
    assert outcome.result == "patched", outcome.reason
    return jsonpatch.apply_patch(pod, outcome.patch), outcome


def executor_input(pod) -> tuple[int, str]:
    command = container(pod, "main")["command"]
    index, prefix = find_executor_input(command)
    return index, command[index][len(prefix) :]


def local_path_for_uri(uri: str) -> str:
    """LocalPathForURI, launcher_v2.go@2.17.0:1239-1253 (the same at 2.5.0:882-897), written out."""
    for scheme, root in (("gs://", "/gcs/"), ("minio://", "/minio/"), ("s3://", "/s3/")):
        if uri.startswith(scheme):
            return root + uri.removeprefix(scheme)
    raise AssertionError(f"no local path for {uri}")


def parse_strictly(text: str):
    message = pipeline_spec_pb2.ExecutorInput()
    json_format.Parse(text, message, ignore_unknown_fields=False)
    return message


def added_entries(before: str, after: str) -> dict:
    old = json.loads(before)["outputs"].get("artifacts", {})
    new = json.loads(after)["outputs"]["artifacts"]
    assert set(old) <= set(new)
    return {k: v for k, v in new.items() if k not in old}


class TestOffByDefault:
    def test_the_switch_is_off_by_default(self):
        assert Config().artifacts.kfp_v2 is False

    @pytest.mark.parametrize("name", REACHED + NOT_REACHED)
    def test_off_leaves_the_launcher_command_and_adds_no_init_container(self, name):
        pod = load(name)
        new, outcome = mutate(pod, OFF)
        assert container(new, "main")["command"] == container(pod, "main")["command"]
        assert container(new, LINK_CONTAINER, "initContainers") is None
        assert not any("KFP" in w for w in outcome.warnings)


class TestReachedVersions:
    @pytest.mark.parametrize("name", REACHED)
    def test_only_the_executor_input_changes_in_main(self, name):
        pod = load(name)
        new, outcome = mutate(pod)
        old_cmd, new_cmd = container(pod, "main")["command"], container(new, "main")["command"]
        index, _ = executor_input(pod)
        assert len(old_cmd) == len(new_cmd)
        assert [a for i, a in enumerate(old_cmd) if i != index] == [
            a for i, a in enumerate(new_cmd) if i != index
        ]
        assert container(new, "main")["args"] == container(pod, "main")["args"]
        assert any(a.startswith("KFP output artifact script-log <- ") for a in outcome.added)

    @pytest.mark.parametrize("name", REACHED)
    def test_the_new_executor_input_is_a_strict_executor_input(self, name):
        """Parsed by the proto's JSON mapping, unknown fields rejected; equal to the driver's but for ours."""
        pod = load(name)
        new, _ = mutate(pod)
        _, before = executor_input(pod)
        _, after = executor_input(new)
        original, mutated = parse_strictly(before), parse_strictly(after)
        ours = added_entries(before, after)
        assert ours
        for key in ours:
            del mutated.outputs.artifacts[key]
        assert mutated == original

    @pytest.mark.parametrize("name", REACHED)
    def test_entries_are_copies_of_executor_logs_beside_it(self, name):
        pod = load(name)
        new, _ = mutate(pod)
        _, before = executor_input(pod)
        _, after = executor_input(new)
        logs = json.loads(before)["outputs"]["artifacts"][EXECUTOR_LOGS]["artifacts"][0]
        for key, entry in added_entries(before, after).items():
            (runtime,) = entry["artifacts"]
            assert runtime["uri"] == posixpath.dirname(logs["uri"]) + "/" + key
            assert runtime["type"] == logs["type"] == {"schemaTitle": "system.Artifact"}
            assert set(runtime) == set(logs)  # `name` only where the driver writes one (2.15+)
            if "name" in runtime:
                assert runtime["name"] == key

    @pytest.mark.parametrize("name", REACHED)
    def test_links_point_from_the_launcher_paths_to_the_work_dir(self, name):
        pod = load(name)
        new, _ = mutate(pod)
        _, before = executor_input(pod)
        _, after = executor_input(new)
        init = container(new, LINK_CONTAINER, "initContainers")
        assert init is not None
        assert init["command"] == [Config().sidecar.command[0], contract.LINK_OUTPUTS_COMMAND]
        paths = [a.removeprefix("--link=") for a in init["args"] if a.startswith("--link=")]
        targets = [a.removeprefix("--to=") for a in init["args"] if a.startswith("--to=")]
        assert len(paths) + len(targets) == len(init["args"])
        ours = added_entries(before, after)
        assert sorted(paths) == sorted(local_path_for_uri(e["artifacts"][0]["uri"]) for e in ours.values())
        main = container(new, "main")
        scratch = next(m for m in main["volumeMounts"] if m["mountPath"] == "/minio")
        assert init["volumeMounts"] == [{"name": scratch["name"], "mountPath": "/minio"}]
        links_by_name = dict(zip([p.rsplit("/", 1)[1] for p in paths], targets, strict=True))
        work = Config().work_dir.mount_path
        if "r-step" in name:
            assert links_by_name["script-log"] == f"{work}/report.log"
            assert links_by_name["report-txt"] == f"{work}/report.txt"
        else:  # Elyra 4.1 Python node: the live copy of the log, which exists on failure too
            assert links_by_name["script-log"] == f"{work}/{Config().live.dir_name}/load_data.log"
            assert links_by_name["data-csv"] == f"{work}/data.csv"
        # After KFP's kfp-launcher: the order of init containers is the order they run in.
        names = [c["name"] for c in new["spec"]["initContainers"]]
        assert names.index(LINK_CONTAINER) > names.index("kfp-launcher")

    @pytest.mark.parametrize("name", REACHED)
    def test_mutated_pod_is_valid_and_the_init_container_restricted(self, name):
        new, _ = mutate(load(name))
        kubernetes_validate.validate(new, "1.30", strict=True)
        init = container(new, LINK_CONTAINER, "initContainers")
        assert restricted_violations(init, new["spec"]) == []

    @pytest.mark.parametrize("name", REACHED)
    def test_idempotent(self, name):
        new, _ = mutate(load(name))
        again = mutate_pod(new, ON, namespace_opted_in=True)
        assert again.result == "unchanged" and again.patch == []


class TestNotReached:
    @pytest.mark.parametrize("name", NOT_REACHED)
    def test_kfp_before_2_5_gets_the_sidecar_and_a_warning_only(self, name):
        pod = load(name)
        new, outcome = mutate(pod)
        assert container(new, "main")["command"] == container(pod, "main")["command"]
        assert container(new, LINK_CONTAINER, "initContainers") is None
        assert container(new, Config().sidecar.name) is not None
        assert any("no KFP artifacts" in w and EXECUTOR_LOGS in w for w in outcome.warnings), outcome.warnings

    def test_publish_logs_false_on_2_17(self):
        pod = load("pod-2.17-elyra-step")
        main = container(pod, "main")
        index, text = executor_input(pod)
        doc = json.loads(text)
        del doc["outputs"]["artifacts"]
        main["command"][index] = json.dumps(doc)
        new, outcome = mutate(pod)
        assert container(new, "main")["command"] == main["command"]
        assert any("PUBLISH_LOGS" in w for w in outcome.warnings)


def with_executor_input(pod, text: str):
    index, _ = executor_input(pod)
    container(pod, "main")["command"][index] = text
    return pod


class TestRefusals:
    """Whatever cannot be edited safely is left as it is, with a warning; the sidecar is still added."""

    def refused(self, pod, fragment: str):
        new, outcome = mutate(pod)
        before = [c for c in pod["spec"]["initContainers"] if c["name"] == LINK_CONTAINER]
        assert [c for c in new["spec"]["initContainers"] if c["name"] == LINK_CONTAINER] == before
        assert container(new, "main")["command"] == container(pod, "main")["command"]
        assert any(w.startswith("no KFP artifacts:") and fragment in w for w in outcome.warnings), (
            outcome.warnings
        )

    def test_unknown_launcher_flag(self):
        pod = load("pod-2.17-elyra-step")
        command = container(pod, "main")["command"]
        command.insert(command.index("--executor_input"), "--some_new_flag")
        self.refused(pod, "unknown launcher flag '--some_new_flag'")

    def test_executor_input_twice(self):
        pod = load("pod-2.17-elyra-step")
        command = container(pod, "main")["command"]
        index, text = executor_input(pod)
        command[index + 1 : index + 1] = ["--executor_input", text]
        self.refused(pod, "given twice")

    @pytest.mark.parametrize(
        ("mutation", "fragment"),
        [
            (lambda t: t[:-1], "not JSON"),
            (lambda t: t.replace('"inputs"', '"outputs":{},"inputs"', 1), "repeats a key"),
            (lambda t: t.replace("0.1", "NaN", 1), "NaN"),
            (lambda t: t.replace("0.1", "1e999", 1), "out of range"),
            (lambda t: t.replace("learning_rate", "\\u0024(HOME)", 1), "`$`"),
            (lambda t: t.replace("/executor-logs", "/../executor-logs", 1), "not a plain path"),
            (lambda t: t.replace("minio://", "file://", 1), "no launcher path"),
            (lambda t: t.replace('"uri"', '"customPath":"/x","uri"', 1), "customPath"),
            (lambda _: "[]", "not a JSON object"),
        ],
    )
    def test_unexpected_executor_input(self, mutation, fragment):
        pod = load("pod-2.17-elyra-step")
        _, text = executor_input(pod)
        self.refused(with_executor_input(pod, mutation(text)), fragment)

    def test_no_scratch_volume_at_minio(self):
        pod = load("pod-2.17-elyra-step")
        main = container(pod, "main")
        main["volumeMounts"] = [m for m in main["volumeMounts"] if m["mountPath"] != "/minio"]
        self.refused(pod, "no volume at /minio")

    def test_our_init_container_already_there(self):
        pod = load("pod-2.17-elyra-step")
        pod["spec"]["initContainers"].append({"name": LINK_CONTAINER, "image": "x"})
        self.refused(pod, "already has a container")


class TestLauncherFlags:
    def test_a_value_that_looks_like_a_flag_is_a_value(self):
        """Go's flag package gives a string flag the next argument whatever it is: so do we."""
        pod = load("pod-2.17-elyra-step")
        command = container(pod, "main")["command"]
        command[command.index("--pipeline_name") + 1] = "--executor_input"
        real, _ = executor_input(load("pod-2.17-elyra-step"))
        assert find_executor_input(command)[0] == real
        new, _ = mutate(pod)
        assert container(new, "main")["command"][real] != command[real]

    def test_equals_form(self):
        pod = load("pod-2.17-elyra-step")
        command = container(pod, "main")["command"]
        at = command.index("--executor_input")
        command[at : at + 2] = [f"--executor_input={command[at + 1]}"]
        assert find_executor_input(command) == (at, "--executor_input=")
        new, _ = mutate(pod)
        value = container(new, "main")["command"][at]
        assert value.startswith("--executor_input={") and "script-log" in value

    def test_not_the_launcher(self):
        with pytest.raises(LauncherInputError, match="does not run /kfp-launcher/launch"):
            find_executor_input(["/var/run/argo/argoexec", "emissary", "--", "driver", "--type", "CONTAINER"])

    def test_positional_argument_before_the_separator(self):
        with pytest.raises(LauncherInputError, match="not a flag"):
            find_executor_input(["/kfp-launcher/launch", "--executor_input", "{}", "sh", "--", "x"])


class TestDeclaredOutputs:
    def pod_with_outputs(self, outputs: str):
        pod = load("pod-2.17-elyra-step")
        args = container(pod, "main")["args"]
        args[2] = (
            args[2]
            .replace("--outputs ''data.csv''", f"--outputs ''{outputs}''")
            .replace("--outputs 'data.csv'", f"--outputs '{outputs}'")
        )
        assert outputs in args[2]
        return pod

    def links(self, pod):
        init = container(pod, LINK_CONTAINER, "initContainers")
        paths = [a.removeprefix("--link=").rsplit("/", 1)[1] for a in init["args"] if a.startswith("--link=")]
        targets = [a.removeprefix("--to=") for a in init["args"] if a.startswith("--to=")]
        return dict(zip(paths, targets, strict=True))

    def test_wildcards_become_their_directory_and_escapes_are_refused(self):
        pod = self.pod_with_outputs("model.pkl;metrics/*.json;*.csv;../../etc/passwd;/var/run/secrets/x")
        new, outcome = mutate(pod)
        work = Config().work_dir.mount_path
        got = self.links(new)
        assert got["model-pkl"] == f"{work}/model.pkl"
        assert got["metrics"] == f"{work}/metrics"
        assert all(t.startswith(work + "/") for t in got.values())
        assert len(got) == 3  # the log, model.pkl, metrics
        joined = " ".join(outcome.warnings)
        assert "'*.csv' is a wildcard" in joined
        assert "'../../etc/passwd' lies outside" in joined and "'/var/run/secrets/x' lies outside" in joined

    def test_names_never_collide(self):
        pod = self.pod_with_outputs("executor-logs;script-log;script_log")
        new, _ = mutate(pod)
        _, after = executor_input(new)
        names = set(json.loads(after)["outputs"]["artifacts"])
        assert names == {"executor-logs", "script-log", "executor-logs-2", "script-log-2", "script_log"}

    def test_outputs_switched_off(self):
        config = replace(ON, artifacts=replace(ON.artifacts, outputs=False))
        new, _ = mutate(load("pod-2.17-elyra-step"), config)
        assert set(self.links(new)) == {"script-log"}

    def test_log_and_outputs_off_adds_nothing(self):
        config = replace(ON, artifacts=replace(ON.artifacts, outputs=False, log=False))
        pod = load("pod-2.17-elyra-step")
        new, _ = mutate(pod, config)
        assert container(new, LINK_CONTAINER, "initContainers") is None
        assert container(new, "main")["command"] == container(pod, "main")["command"]


class TestLinkOutputs:
    """`elyra-sidecar link-outputs`, run for real on this machine's filesystem."""

    def paths(self, tmp_path):
        scratch = tmp_path / "minio"
        scratch.mkdir()
        scratch.chmod(0o777)  # an emptyDir
        task_root = scratch / "mlpipeline" / "v2" / "artifacts" / "p" / "run" / "task" / "salt"
        work = tmp_path / "work"
        work.mkdir()
        return scratch, task_root, work

    def test_links_resolve_once_the_file_exists(self, tmp_path, capsys):
        scratch, task_root, work = self.paths(tmp_path)
        link, target = task_root / "script-log", work / "load_data.log"
        assert links.main([f"--link={link}", f"--to={target}"]) == 0
        assert link.is_symlink() and not link.exists()  # dangling until the script writes the file
        target.write_text("the script's output\n")
        assert link.read_text() == "the script's output\n"  # os.Stat/os.Open follow it, as Go's do
        for directory in [task_root, *task_root.parents]:
            if directory == scratch:
                break
            assert stat.S_IMODE(directory.stat().st_mode) == 0o1777, directory
        assert stat.S_IMODE(scratch.stat().st_mode) == 0o777  # existing directories are not touched
        assert "linked " in capsys.readouterr().err

    def test_again_is_harmless_and_a_foreign_entry_is_kept(self, tmp_path, capsys):
        _, task_root, work = self.paths(tmp_path)
        link = task_root / "script-log"
        argv = [f"--link={link}", f"--to={work / 'a.log'}"]
        assert links.main(argv) == 0
        assert links.main(argv) == 0
        assert "already there" in capsys.readouterr().err
        assert links.main([f"--link={link}", f"--to={work / 'other.log'}"]) == 0
        assert "Error: cannot link" in capsys.readouterr().err
        assert str(link.readlink()) == str(work / "a.log")

    @pytest.mark.parametrize(
        "argv",
        [
            ["--link=relative/path", "--to=/x"],
            ["--link=/a/../b", "--to=/x"],
            ["--link=/a/b", "--to=/x", "--to=/y"],
        ],
    )
    def test_bad_arguments_never_fail_the_step(self, argv, capsys):
        assert links.main(argv) == 0
        assert "Error:" in capsys.readouterr().err

    @pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as two users")
    def test_main_as_another_user_writes_beside_the_links(self):
        """The launcher (main's user, 1000) creates executor-logs in the task root our init container (65532)
        made, and reads through our link the file main's user wrote."""
        # Not pytest's tmp_path: its parent is 0700, which other users cannot pass.
        tmp_path = Path(tempfile.mkdtemp(prefix="elyra-links-"))
        tmp_path.chmod(0o755)
        try:
            self.two_users(tmp_path)
        finally:
            shutil.rmtree(tmp_path)

    def two_users(self, tmp_path):
        _, task_root, work = self.paths(tmp_path)
        work.chmod(0o777)
        link, target = task_root / "script-log", work / "load_data.log"

        def as_user(uid: int, action) -> None:
            pid = os.fork()
            if pid == 0:  # the child: drop to `uid`, act, report by exit status only
                code = 1
                try:
                    os.setgroups([])
                    os.setgid(uid)
                    os.setuid(uid)
                    action()
                    code = 0
                finally:
                    os._exit(code)
            _, status = os.waitpid(pid, 0)
            assert os.waitstatus_to_exitcode(status) == 0, f"as uid {uid}"

        as_user(65532, lambda: links.link(str(link), str(target)))
        assert link.lstat().st_uid == 65532

        def launcher() -> None:
            (task_root / "executor-logs").write_text("log")
            target.write_text("out")
            if link.read_text() != "out":
                raise AssertionError("the link does not resolve")

        as_user(1000, launcher)
        assert (task_root / "executor-logs").stat().st_uid == 1000


class TestProperties:
    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(
        values=st.dictionaries(
            st.text(min_size=1, max_size=12),
            st.one_of(
                st.text(max_size=40),
                st.floats(allow_nan=False, allow_infinity=False),
                st.integers(min_value=-(2**53), max_value=2**53),
                st.booleans(),
            ),
            max_size=4,
        )
    )
    def test_any_parameter_values_are_kept_or_the_pod_left_alone(self, values):
        """Whatever the run's parameter values (quotes, `$(VAR)`, unicode, numbers), the mutated executor
        input is the driver's plus ours, or the command is left exactly as it was."""
        pod = load("pod-2.17-elyra-step")
        index, text = executor_input(pod)
        doc = json.loads(text)
        doc["inputs"]["parameterValues"] = values
        # As protojson writes it: no HTML escaping, non-ASCII as is.
        container(pod, "main")["command"][index] = json.dumps(doc, ensure_ascii=False, separators=(",", ":"))
        before = container(pod, "main")["command"][index]
        new, _ = mutate(pod)
        after = container(new, "main")["command"][index]
        if after == before:
            return
        mutated = parse_strictly(after)
        for key in added_entries(before, after):
            del mutated.outputs.artifacts[key]
        assert mutated == parse_strictly(before)
        assert after.count("$") == before.count("$")
