"""Pod mode: AdmissionReviews of KFP v2 step Pods reconstructed from source (tests/fixtures/kfp-v2/README.md).

Every patch is applied with `jsonpatch`, every result validated against the Kubernetes 1.30 Pod schema
(kubernetes-validate, unknown fields rejected), and the added containers checked against the rules of the
"restricted" Pod Security Standard, written out below from the Kubernetes documentation.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import posixpath
from dataclasses import replace
from pathlib import Path

import jsonpatch
import kubernetes_validate
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from elyra_sidecar import contract
from elyra_sidecar.transformer import (
    KILL_CMD_ANNOTATION_PREFIX,
    MAIN_EXIT_FILE,
    Config,
    PodError,
    config_from_mapping,
    instrument_pod,
    kill_command,
    transform,
)
from elyra_sidecar.webhook._admission import admit, admit_pod
from elyra_sidecar.webhook._pod import POD_MODE_NOTE, mutate_pod, read_step
from tests.helpers import patched

HERE = Path(__file__).resolve().parent / "fixtures" / "kfp-v2"
PODS = {p.name.removesuffix(".reconstructed.yaml"): p for p in sorted(HERE.glob("*.reconstructed.yaml"))}
K8S = "1.30"
NS_OPTED_IN = config_from_mapping({"webhook": {"inject_all_in_namespaces": ["team-a"]}})
# name -> (result without the namespace opt-in, result with it)
EXPECTED = {
    "pod-2.0-elyra-step": ("unchanged", "patched"),
    "pod-2.2-elyra-step": ("patched", "patched"),
    "pod-2.2-driver": ("unchanged", "unchanged"),
    "pod-2.5-custom-component-wrong-labels": ("unchanged", "unchanged"),
    "pod-2.5-elyra-step-cos-secret": ("unchanged", "patched"),
    "pod-2.14-elyra-step": ("patched", "patched"),
    "pod-2.14-elyra-r-step": ("patched", "patched"),
    "pod-2.17-elyra-step": ("patched", "patched"),
    "pod-2.17-retry-elyra-step": ("patched", "patched"),
    "pod-2.17-elyra-notebook-step": ("unchanged", "unchanged"),
    "pod-2.17-driver": ("unchanged", "unchanged"),
}
PATCHED = [name for name, (_, with_ns) in EXPECTED.items() if with_ns == "patched"]


def options(args: list[str]) -> dict[str, str]:
    """The sidecar's `--name=value` arguments as a mapping (every option is written in that form)."""
    pairs = [a.split("=", 1) for a in args]
    assert all(len(p) == 2 for p in pairs), args
    return dict(pairs)  # type: ignore[arg-type]


def load(name):
    return yaml.safe_load(PODS[name].read_text())


def review(obj, *, uid="uid-7", namespace="team-a", kind="Pod", group="", operation="CREATE"):
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": group, "version": "v1", "kind": kind},
            "resource": {"group": group, "version": "v1", "resource": "pods"},
            "operation": operation,
            "namespace": namespace,
            "object": obj,
        },
    }


def admitted(name, config=NS_OPTED_IN):
    pod = load(name)
    outcome = admit_pod(review(pod), config)
    return pod, outcome, patched(pod, outcome.review["response"])


def container(pod, name, key="containers"):
    return next(c for c in pod["spec"].get(key) or [] if c["name"] == name)


# The "restricted" Pod Security Standard (https://kubernetes.io/docs/concepts/security/pod-security-standards/,
# v1.30), the rules that apply to one container and the volumes of its Pod, baseline rules included.
BASELINE_CAPABILITIES = {
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
}
RESTRICTED_VOLUME_TYPES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}


def restricted_violations(ctr, pod_spec):
    """Every rule of the restricted profile that `ctr` (in a Pod with `pod_spec`) breaks."""
    sc = ctr.get("securityContext") or {}
    pod_sc = pod_spec.get("securityContext") or {}
    problems = []
    if sc.get("privileged"):
        problems.append("privileged")
    if (sc.get("windowsOptions") or {}).get("hostProcess"):
        problems.append("hostProcess")
    if any(p.get("hostPort") for p in ctr.get("ports") or []):
        problems.append("hostPort")
    if sc.get("procMount", "Default") != "Default":
        problems.append("procMount")
    if (sc.get("seLinuxOptions") or {}).get("type", "") not in (
        "",
        "container_t",
        "container_init_t",
        "container_kvm_t",
    ):
        problems.append("seLinuxOptions.type")
    if (sc.get("appArmorProfile") or {}).get("type") == "Unconfined":
        problems.append("appArmorProfile")
    if sc.get("allowPrivilegeEscalation") is not False:
        problems.append("allowPrivilegeEscalation must be false")
    if sc.get("runAsNonRoot") is False or not (sc.get("runAsNonRoot") or pod_sc.get("runAsNonRoot")):
        problems.append("runAsNonRoot must be true")
    if sc.get("runAsUser", pod_sc.get("runAsUser")) == 0:
        problems.append("runAsUser 0")
    seccomp = (sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}).get("type")
    if seccomp not in ("RuntimeDefault", "Localhost"):
        problems.append("seccompProfile must be RuntimeDefault or Localhost")
    capabilities = sc.get("capabilities") or {}
    if "ALL" not in (capabilities.get("drop") or []):
        problems.append("capabilities.drop must include ALL")
    added = set(capabilities.get("add") or [])
    if added - {"NET_BIND_SERVICE"}:
        problems.append(f"capabilities.add {sorted(added)}")
    if added - BASELINE_CAPABILITIES:
        problems.append("capabilities.add beyond baseline")
    volumes = {v["name"]: v for v in pod_spec.get("volumes") or []}
    for mount in ctr.get("volumeMounts") or []:
        source = set(volumes[mount["name"]]) - {"name"}
        if not source <= RESTRICTED_VOLUME_TYPES:
            problems.append(f"volume {mount['name']} of type {sorted(source)}")
    return problems


class TestReconstructedFixtures:
    def test_files_are_the_generators_output(self):
        """Each *.reconstructed.yaml is exactly what reconstruct.py builds from the cited sources."""
        spec = importlib.util.spec_from_file_location("reconstruct", HERE / "reconstruct.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        cases = module.cases()
        assert sorted(cases) == sorted(PODS) == sorted(EXPECTED)
        for name, pod in cases.items():
            assert module.render(pod) == PODS[name].read_text(), name

    @pytest.mark.parametrize("name", list(PODS))
    def test_fixture_is_a_valid_pod(self, name):
        """The reconstructed Pods themselves validate against the Kubernetes schema (strict)."""
        kubernetes_validate.validate(load(name), K8S, strict=True)


class TestAdmitPod:
    def test_admit_dispatches_pod_reviews(self):
        """The one /mutate decision (`admit`) sends a Pod review to the Pod mode: same answer as admit_pod."""
        pod = load("pod-2.17-elyra-step")
        via_admit = admit(review(pod), NS_OPTED_IN)
        assert via_admit.result == "patched"
        assert via_admit.review == admit_pod(review(pod), NS_OPTED_IN).review

    @pytest.mark.parametrize("namespace_opt_in", [False, True])
    @pytest.mark.parametrize("name", list(EXPECTED))
    def test_result_per_shape(self, name, namespace_opt_in):
        """Uid echoed, always allowed, input untouched, patched exactly the Elyra steps that opted in."""
        pod = load(name)
        before = copy.deepcopy(pod)
        outcome = admit_pod(review(pod), NS_OPTED_IN if namespace_opt_in else Config())
        response = outcome.review["response"]
        assert response["uid"] == "uid-7" and response["allowed"] is True
        assert pod == before
        assert outcome.result == EXPECTED[name][namespace_opt_in], outcome.reason
        assert ("patch" in response) == (outcome.result == "patched")
        assert outcome.nodes_transformed == (outcome.result == "patched")

    @pytest.mark.parametrize("name", PATCHED)
    def test_patched_pod_is_valid_and_main_unchanged(self, name):
        """The patched Pod validates (strict); main's image, command and args are byte-identical."""
        pod, _, result = admitted(name)
        kubernetes_validate.validate(result, K8S, strict=True)
        for key in ("image", "command", "args"):
            assert container(result, "main")[key] == container(pod, "main")[key]
        names = [c["name"] for key in ("initContainers", "containers") for c in result["spec"][key]]
        assert len(names) == len(set(names))
        volumes = {v["name"] for v in result["spec"]["volumes"]}
        for ctr in result["spec"]["initContainers"] + result["spec"]["containers"]:
            for mount in ctr.get("volumeMounts") or []:
                assert mount["name"] in volumes and mount["mountPath"].startswith("/")

    @pytest.mark.parametrize("name", PATCHED)
    def test_what_a_matched_pod_gets(self, name):
        """Work dir as main's workingDir; elyra-log with an explicit command, exit-file and kill command."""
        pod, _, result = admitted(name)
        main = container(result, "main")
        assert main["workingDir"] == "/elyra-sidecar/work"
        assert {"name": "elyra-sidecar-work", "mountPath": "/elyra-sidecar/work"} in main["volumeMounts"]
        assert {"name": "elyra-sidecar-work", "emptyDir": {}} in result["spec"]["volumes"]
        side = container(result, "elyra-log")
        assert side["command"] == ["elyra-sidecar", "tail"]
        args = options(side["args"])
        assert args[contract.ARG_MAIN_EXIT_FILE] == MAIN_EXIT_FILE
        assert args[contract.ARG_ENDPOINT] == "http://127.0.0.1:9123"
        assert args[contract.ARG_KEY].startswith("my/project/three-node-1121214050/")
        assert {"name": "var-run-argo", "mountPath": "/var/run/argo", "readOnly": True} in side[
            "volumeMounts"
        ]
        assert all(m["readOnly"] for m in side["volumeMounts"])
        assert side["resources"]["requests"] and side["resources"]["limits"]
        annotations = result["metadata"]["annotations"]
        kill = json.loads(annotations[KILL_CMD_ANNOTATION_PREFIX + "elyra-log"])
        assert kill == ["elyra-sidecar", contract.STOP_COMMAND, contract.ARG_STOP_SIGNAL, "%d"]
        assert annotations[contract.ANNOTATION_TRANSFORMED]
        # The credentials are main's own entries, value or secretKeyRef, and nothing else of main's env.
        wanted = [e for e in container(pod, "main")["env"] if e["name"] in contract.CREDENTIAL_ENV]
        assert side["env"] == wanted and wanted

    def test_cos_secret_credentials_are_references(self):
        """KFP 2.5 with a COS Secret: elyra-log gets the same secretKeyRef entries, never a value."""
        _, _, result = admitted("pod-2.5-elyra-step-cos-secret")
        env = container(result, "elyra-log")["env"]
        assert [e["valueFrom"]["secretKeyRef"]["name"] for e in env] == ["cos-credentials"] * 2
        assert all("value" not in e for e in env)

    @pytest.mark.parametrize("name", ["pod-2.17-elyra-step", "pod-2.2-elyra-step"])
    def test_python_node_live_mode(self, name):
        """Python, Elyra 4.1: init container after kfp-launcher, PYTHONPATH; elyra-log follows live file."""
        _, _, result = admitted(name)
        inits = [c["name"] for c in result["spec"]["initContainers"]]
        assert inits[-2:] == ["kfp-launcher", "elyra-live-setup"]
        live = container(result, "elyra-live-setup", "initContainers")
        assert live["command"] == ["elyra-sidecar", contract.INSTALL_LIVE_COMMAND]
        env = {e["name"]: e.get("value") for e in container(result, "main")["env"]}
        assert env["PYTHONPATH"] == "/elyra-sidecar/work/.elyra-sidecar-live"
        assert env[contract.LIVE_SCRIPT_ENV] == "load_data.py"
        assert env[contract.LIVE_LOG_ENV] == "/elyra-sidecar/work/.elyra-sidecar-live/load_data.log"
        assert env["PYTHONUNBUFFERED"] == "1"
        args = container(result, "elyra-log")["args"]
        assert args[:2] == [
            f"{contract.ARG_DIR}=/elyra-sidecar/work/.elyra-sidecar-live",
            f"{contract.ARG_FILE}=load_data.log",
        ]

    def test_r_node_follows_the_log_in_the_work_dir(self):
        """R: no live mode (the bootstrapper writes the log at the end); the sidecar follows report.log."""
        _, _, result = admitted("pod-2.14-elyra-r-step")
        assert "elyra-live-setup" not in [c["name"] for c in result["spec"]["initContainers"]]
        args = container(result, "elyra-log")["args"]
        assert args[:2] == [f"{contract.ARG_DIR}=/elyra-sidecar/work", f"{contract.ARG_FILE}=report.log"]

    @pytest.mark.parametrize("name", PATCHED)
    def test_idempotent(self, name):
        """An already patched Pod (a reinvocation, or a retry of the same spec) is left unchanged."""
        _, _, result = admitted(name)
        again = admit_pod(review(result), NS_OPTED_IN)
        assert again.result == "unchanged" and "patch" not in again.review["response"]
        assert "already instrumented" in again.reason

    def test_explicit_opt_out_beats_the_namespace(self):
        """`elyra-sidecar/inject: "false"` on the Pod wins over the namespace opt-in."""
        pod = load("pod-2.17-elyra-step")
        pod["metadata"]["annotations"][contract.ANNOTATION_INJECT] = "false"
        outcome = admit_pod(review(pod), NS_OPTED_IN)
        assert outcome.result == "unchanged" and "opted out" in outcome.reason

    def test_labels_are_hints_only(self):
        """An Elyra step without any elyra/* label or annotation is still recognised from its command."""
        pod = load("pod-2.17-elyra-step")
        meta = pod["metadata"]
        meta["labels"] = {k: v for k, v in meta["labels"].items() if not k.startswith("elyra/")}
        meta["annotations"] = {k: v for k, v in meta["annotations"].items() if not k.startswith("elyra/")}
        assert admit_pod(review(pod), Config()).result == "patched"

    def test_existing_working_dir_is_refused_with_a_warning(self):
        """main already has a workingDir: nothing is added and the warning says why."""
        pod = load("pod-2.17-elyra-step")
        container(pod, "main")["workingDir"] = "/home/jovyan"
        outcome = admit_pod(review(pod), Config())
        assert outcome.result == "unchanged"
        assert "patch" not in outcome.review["response"]
        assert any("workingDir" in w for w in outcome.review["response"]["warnings"])

    def test_existing_mount_at_the_work_dir_is_refused(self):
        """main already mounts something at the work dir: refused with a warning naming the mount."""
        pod = load("pod-2.17-elyra-step")
        container(pod, "main")["volumeMounts"].append(
            {"name": "dot-cache-scratch", "mountPath": "/elyra-sidecar/work/x"}
        )
        outcome = mutate_pod(pod, Config())
        assert outcome.result == "unchanged" and not outcome.patch
        assert "dot-cache-scratch" in outcome.warnings[0]

    def test_existing_pythonpath_is_extended(self):
        """A literal PYTHONPATH keeps its value after the live directory; a reference disables live mode."""
        pod = load("pod-2.17-elyra-step")
        container(pod, "main")["env"].append({"name": "PYTHONPATH", "value": "/opt/lib"})
        result = jsonpatch.apply_patch(pod, mutate_pod(pod, Config()).patch)
        env = {e["name"]: e.get("value") for e in container(result, "main")["env"]}
        assert env["PYTHONPATH"] == "/elyra-sidecar/work/.elyra-sidecar-live:/opt/lib"
        pod = load("pod-2.17-elyra-step")
        ref = {"name": "PYTHONPATH", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}}
        container(pod, "main")["env"].append(ref)
        outcome = mutate_pod(pod, Config())
        assert outcome.result == "patched"
        assert any("no live output" in w for w in outcome.warnings)
        result = jsonpatch.apply_patch(pod, outcome.patch)
        assert container(result, "elyra-log")["args"][0] == f"{contract.ARG_DIR}=/elyra-sidecar/work"

    @pytest.mark.parametrize(
        "settings",
        [
            {"sidecar": {"enabled": False}},
            {"work_dir": {"enabled": False}},
            {"work_dir": {"set_working_dir": False}},
        ],
    )
    def test_switched_off_by_config(self, settings):
        """Pod mode needs the sidecar and the work dir: either off, nothing added, a warning says why."""
        outcome = mutate_pod(load("pod-2.17-elyra-step"), config_from_mapping(settings))
        assert outcome.result == "unchanged" and not outcome.patch
        assert outcome.warnings

    def test_no_credentials_warns(self):
        """No AWS_* entries in main: the sidecar still follows the log; a warning says it is not mirrored."""
        pod = load("pod-2.17-elyra-step")
        main = container(pod, "main")
        main["env"] = [e for e in main["env"] if not e["name"].startswith("AWS_")]
        outcome = mutate_pod(pod, Config())
        assert outcome.result == "patched"
        assert any("not mirrored" in w for w in outcome.warnings)
        assert "env" not in jsonpatch.apply_patch(pod, outcome.patch)["spec"]["containers"][-1]

    def test_without_argo_var_run_no_exit_file(self):
        """A main without /var/run/argo (not emissary's layout): no --main-exit-file, and a warning."""
        pod = load("pod-2.17-elyra-step")
        main = container(pod, "main")
        main["volumeMounts"] = [m for m in main["volumeMounts"] if m["name"] != "var-run-argo"]
        outcome = mutate_pod(pod, Config())
        side = jsonpatch.apply_patch(pod, outcome.patch)["spec"]["containers"][-1]
        assert contract.ARG_MAIN_EXIT_FILE not in options(side["args"])
        assert any("/var/run/argo" in w for w in outcome.warnings)

    def test_unreadable_bootstrapper_call_warns(self):
        """A script that runs bootstrapper.py without --file: unchanged, the warning names the container."""
        pod = load("pod-2.17-elyra-step")
        main = container(pod, "main")
        main["args"] = [main["args"][0], main["args"][1], main["args"][2].replace("--file", "--fyle")]
        outcome = mutate_pod(pod, Config())
        assert outcome.result == "unchanged"
        assert outcome.warnings and "spec.containers[1]" in outcome.warnings[0]

    @pytest.mark.parametrize(
        ("kind", "group", "operation"),
        [("Pod", "", "UPDATE"), ("Workflow", "argoproj.io", "CREATE"), ("Pod", "", "DELETE")],
    )
    def test_not_a_pod_create_is_skipped(self, kind, group, operation):
        """Only Pod CREATE is considered; anything else is allowed untouched."""
        outcome = admit_pod(
            review(load("pod-2.17-elyra-step"), kind=kind, group=group, operation=operation), Config()
        )
        assert outcome.result == "skipped" and outcome.review["response"] == {"uid": "uid-7", "allowed": True}

    @pytest.mark.parametrize(
        "bad",
        [
            None,
            [],
            {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"},
            {"request": {"uid": "x"}},
        ],
    )
    def test_malformed_review(self, bad):
        """Not an AdmissionReview v1: allowed, with a warning, result error."""
        outcome = admit_pod(bad, Config())
        assert outcome.result == "error" and outcome.review["response"]["allowed"] is True

    @pytest.mark.parametrize(
        "pod",
        [
            None,
            "text",
            {"spec": None},
            {"spec": {"containers": "main"}},
            {
                "metadata": {"annotations": {contract.ANNOTATION_INJECT: "true"}},
                "spec": {"containers": [{"name": "main", "command": 5}]},
            },
            {
                "metadata": {"annotations": {contract.ANNOTATION_INJECT: "true"}},
                "spec": {"containers": [None]},
            },
        ],
    )
    def test_never_raises(self, pod):
        """Garbage in: no exception, no patch (the API server must never see a 500 from us)."""
        outcome = mutate_pod(pod, NS_OPTED_IN, namespace_opted_in=True)
        assert outcome.patch == [] and outcome.result in ("error", "unchanged")

    def test_warnings_are_short_and_prefixed(self):
        """Warnings reach kubectl/Argo as short `elyra-sidecar: ...` lines."""
        pod = load("pod-2.17-elyra-step")
        container(pod, "main")["workingDir"] = "/" + "x" * 300
        warnings = admit_pod(review(pod), Config()).review["response"]["warnings"]
        assert all(w.startswith("elyra-sidecar: ") and len(w) <= 120 for w in warnings)


CALL_LINE = 'sh -c "python3 -m pip install'


def _with_last_line(pod, change):
    """`pod` with the line of main's script that runs the bootstrapper (its last) rewritten by `change`."""
    main = container(pod, "main")
    script = main["args"][2]
    start = script.index(CALL_LINE)
    main["args"][2] = script[:start] + change(script[start:])
    return pod


# Each shape mentions the bootstrapper call, and the shell never runs it.
NEVER_RUNS = {
    "false && CALL": lambda line: "false && " + line,
    "true || CALL": lambda line: "true || " + line,
    "exit 0; CALL": lambda line: "exit 0; " + line,
    "exit, then CALL": lambda line: "exit 3\n" + line,
    "set -n, then CALL": lambda line: "set -n\n" + line,
    "bash -n -c CALL": lambda line: "bash -n -c " + line.removeprefix("sh -c "),
    "sh -xn -c CALL": lambda line: "sh -xn -c " + line.removeprefix("sh -c "),
    "false && CALL, inside": lambda line: line.replace(
        "python3 bootstrapper.py", "false && python3 bootstrapper.py"
    ),
    "exit; CALL, inside": lambda line: line.replace('sh -c "', 'sh -c "exit; ', 1),
}
# ... and each of these runs it (or may: a status the text does not tell).
RUNS = {
    "true && CALL": lambda line: "true && " + line,
    "false || CALL": lambda line: "false || " + line,
    "false; CALL": lambda line: "false; " + line,
    "exit | cat; CALL": lambda line: "exit | cat; " + line,
    "test -d x || exit 1; CALL": lambda line: "test -d x || exit 1; " + line,
    "mkdir x && CALL": lambda line: "mkdir x && " + line,
    "pip && exit; CALL, inside": lambda line: line.replace(
        "python3 bootstrapper.py", "exit; python3 bootstrapper.py"
    ),
    "bash -x -c CALL": lambda line: "bash -x -c " + line.removeprefix("sh -c "),
}


class TestOnlyWhenTheCallRuns:
    @pytest.mark.parametrize("shape", list(NEVER_RUNS))
    def test_a_call_that_never_runs_is_not_instrumented(self, shape):
        """The bootstrapper call is there but the shell never runs it: no patch, a warning that says so."""
        pod = _with_last_line(load("pod-2.17-elyra-step"), NEVER_RUNS[shape])
        outcome = mutate_pod(pod, Config())
        assert outcome.result == "unchanged" and not outcome.patch, outcome.reason
        assert "call never runs" in outcome.reason
        assert any(w.startswith("not injected: spec.containers[1].args:") for w in outcome.warnings)

    @pytest.mark.parametrize("shape", list(RUNS))
    def test_a_call_that_runs_is_instrumented(self, shape):
        """The same shapes with a call that runs (or may): instrumented as before."""
        pod = _with_last_line(load("pod-2.17-elyra-step"), RUNS[shape])
        assert mutate_pod(pod, Config()).result == "patched"


class TestReadStep:
    @pytest.mark.parametrize(
        ("prefix", "found"),
        [
            ([], True),
            (["/var/run/argo/argoexec", "emissary", "--"], True),
            (["/argo-bin/bin/argoexec", "emissary", "--loglevel", "debug", "--"], True),
            (["/var/run/argo/argoexec", "emissary", "--"] * 3, True),
            (["/var/run/argo/argoexec", "emissary", "--"] * 4, False),
            (["/var/run/argo/argoexec", "emissary", "--loglevel", "info"], False),
            (["/bin/sh", "-c"], False),
        ],
    )
    def test_emissary_prefixes(self, prefix, found):
        """Up to three `argoexec emissary ... --` prefixes (any argoexec path) in front of the launcher."""
        main = container(load("pod-2.17-elyra-step"), "main")
        launcher = main["command"][main["command"].index("/kfp-launcher/launch") :]
        node, why_not = read_step({**main, "command": prefix + launcher}, "main")
        assert (node is not None) is found, why_not

    def test_user_command_is_read_like_the_transformer(self):
        """The node read from the Pod is the one Elyra compiled: file, storage target, Elyra version."""
        node, _ = read_step(container(load("pod-2.2-elyra-step"), "main"), "main")
        assert node is not None
        assert (node.kind, node.file, node.log_file) == (
            "python",
            "/home/jovyan/work/three-node/load_data.py",
            "load_data.log",
        )
        assert (node.cos_bucket, node.cos_directory) == ("elyra-bucket", "my/project/three-node-1121214050")
        assert (node.elyra_version, node.run_dir) == ((4, 1, 1), ".")


class TestRestrictedPodSecurity:
    @pytest.mark.parametrize("name", PATCHED)
    def test_added_containers_pass_the_restricted_profile(self, name):
        """elyra-log and elyra-live-setup satisfy every restricted rule, whatever the Pod's own context."""
        _, _, result = admitted(name)
        added = [container(result, "elyra-log")]
        if any(c["name"] == "elyra-live-setup" for c in result["spec"]["initContainers"]):
            added.append(container(result, "elyra-live-setup", "initContainers"))
        for ctr in added:
            assert restricted_violations(ctr, result["spec"]) == [], ctr["name"]

    def test_the_checker_is_not_vacuous(self):
        """The same rules reject KFP 2.2's main (no securityContext) and a hostPath volume."""
        pod = load("pod-2.2-elyra-step")
        problems = restricted_violations(container(pod, "main"), pod["spec"])
        assert "allowPrivilegeEscalation must be false" in problems
        assert "capabilities.drop must include ALL" in problems
        ctr = {
            "name": "x",
            "securityContext": {"privileged": True},
            "volumeMounts": [{"name": "h", "mountPath": "/h"}],
        }
        spec = {"volumes": [{"name": "h", "hostPath": {"path": "/"}}]}
        assert {"privileged", "volume h of type ['hostPath']"} <= set(restricted_violations(ctr, spec))


class TestKillCommand:
    def test_derived_from_the_sidecar_command(self):
        """`<command> tail` gives `<command> stop --signal %d`, for any prefix of the tail command."""
        assert kill_command(Config()) == ["elyra-sidecar", "stop", "--signal", "%d"]
        config = config_from_mapping({"sidecar": {"command": ["python3", "-m", "elyra_sidecar", "tail"]}})
        assert kill_command(config) == [
            "python3",
            "-m",
            "elyra_sidecar",
            "stop",
            "--signal",
            "%d",
        ]

    def test_underivable_command_falls_back_to_argo(self):
        """A sidecar.command not ending in `tail`: no annotation (Argo's argoexec kill applies), a warning."""
        config = config_from_mapping({"sidecar": {"command": ["python3", "-m", "elyra_sidecar.sidecar"]}})
        pod = load("pod-2.17-elyra-step")
        outcome = mutate_pod(pod, config)
        result = jsonpatch.apply_patch(pod, outcome.patch)
        assert KILL_CMD_ANNOTATION_PREFIX + "elyra-log" not in result["metadata"]["annotations"]
        assert any("argoexec kill" in w for w in outcome.warnings)

    def test_sidecar_name_follows_the_config(self):
        """The kill-cmd annotation is keyed by the configured container name."""
        config = replace(Config(), sidecar=replace(Config().sidecar, name="script-log"))
        pod = load("pod-2.17-elyra-step")
        annotations = jsonpatch.apply_patch(pod, mutate_pod(pod, config).patch)["metadata"]["annotations"]
        assert KILL_CMD_ANNOTATION_PREFIX + "script-log" in annotations


class TestPodModeNote:
    def test_says_what_pod_mode_does_and_how_to_enable_it(self):
        """The text `transform` shows for a v2 IR names the switch, both opt-ins and the docs."""
        for needle in (
            "webhook.pods.enabled=true",
            'elyra-sidecar/inject: "true"',
            "config.webhook.inject_all_in_namespaces",
            "kubectl logs <pod> -c elyra-log",
            "docs/pod-mode.md",
        ):
            assert needle in POD_MODE_NOTE


_ENV = st.sampled_from(
    [
        {"name": "PYTHONPATH", "value": "/opt/lib"},
        {"name": "PYTHONPATH", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}},
        {"name": "PYTHONUNBUFFERED", "value": "0"},
        {"name": "AWS_SESSION_TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "t"}}},
        {"name": "EXTRA", "value": "$(KFP_POD_NAME)"},
    ]
)
_CONFIGS = st.fixed_dictionaries(
    {},
    optional={
        "unbuffered": st.booleans(),
        "work_dir": st.fixed_dictionaries({}, optional={"mount_path": st.sampled_from(["/w", "/a/b/c"])}),
        "sidecar": st.fixed_dictionaries(
            {}, optional={"mirror": st.booleans(), "name": st.just("script-log")}
        ),
        "live": st.fixed_dictionaries({}, optional={"mode": st.sampled_from(["auto", "on", "off"])}),
    },
)


class TestProperties:
    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        name=st.sampled_from(list(PODS)),
        env=st.lists(_ENV, max_size=3, unique_by=lambda e: e["name"]),
        inject=st.sampled_from([None, "true", "false", "yes"]),
        namespace_opted_in=st.booleans(),
        settings_=_CONFIGS,
    )
    def test_any_pod_any_config(self, name, env, inject, namespace_opted_in, settings_):
        """Never raises or mutates its input; a patched Pod is valid, keeps main's command and is final."""
        pod = load(name)
        main = container(pod, "main")
        main["env"] = [*main.get("env", []), *env]
        annotations = pod["metadata"]["annotations"]
        annotations.pop(contract.ANNOTATION_INJECT, None)
        if inject is not None:
            annotations[contract.ANNOTATION_INJECT] = inject
        config = config_from_mapping(settings_)
        before = copy.deepcopy(pod)
        outcome = mutate_pod(pod, config, namespace_opted_in=namespace_opted_in)
        assert pod == before
        assert outcome.result in ("patched", "unchanged")
        if outcome.result != "patched":
            assert outcome.patch == []
            return
        result = jsonpatch.apply_patch(pod, outcome.patch)
        kubernetes_validate.validate(result, K8S, strict=True)
        for key in ("image", "command", "args"):
            assert container(result, "main")[key] == main[key]
        assert mutate_pod(result, config, namespace_opted_in=namespace_opted_in).patch == []


def _as_workflow(pod):
    """A Workflow whose one template runs the Pod's Elyra node: main's user command (after the launcher's
    `--`), env and volume mounts, as Elyra would have compiled it for KFP v1."""
    main = container(pod, "main")
    user = main["command"][main["command"].index("--", main["command"].index("/kfp-launcher/launch")) + 1 :]
    argv = user + main["args"]
    template = {
        "name": "run-a-file",
        "container": {
            "image": main["image"],
            "command": argv[:2],
            "args": argv[2:],
            "env": copy.deepcopy(main["env"]),
            "volumeMounts": copy.deepcopy(main.get("volumeMounts", [])),
        },
    }
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "spec": {"templates": [template]}}


_SAME_CONFIGS = {
    "default": {},
    "live on": {"live": {"mode": "on"}},
    "live off": {"live": {"mode": "off"}},
    "no main log": {"live": {"main_log": False}},
    "no mirror": {"sidecar": {"mirror": False}},
    "unbuffered off": {"unbuffered": False},
    "own paths": {"work_dir": {"mount_path": "/w", "size_limit": "1Gi"}, "sidecar": {"name": "script-log"}},
}


class TestSameAsWorkflowMode:
    @pytest.mark.parametrize("settings", list(_SAME_CONFIGS))
    @pytest.mark.parametrize(
        "name", ["pod-2.17-elyra-step", "pod-2.14-elyra-r-step", "pod-2.5-elyra-step-cos-secret"]
    )
    def test_same_sidecar_env_and_live_hook(self, name, settings):
        """One Elyra node, one config: the Pod mode adds what `transform` adds to its Workflow template (the
        same main env, work dir, live-hook init container and sidecar), plus only what a Pod needs: the
        sidecar's `--main-exit-file` and its read-only mount of Argo's executor volume."""
        self._same(load(name), config_from_mapping(_SAME_CONFIGS[settings]))

    @pytest.mark.parametrize("settings", ["default", "live on", "own paths"])
    def test_same_live_directory_when_the_bootstrapper_runs_below_the_volume(self, settings):
        """A script that `cd`s into a subdirectory in the bootstrapper's own shell (the Elyra <= 3.13 shape):
        the live directory is at the work volume's root in both modes (the Workflow mode's rule)."""
        pod = _with_last_line(
            load("pod-2.17-elyra-step"),
            lambda line: line.replace(
                'sh -c "', 'sh -c "mkdir -p jupyter-work-dir && cd jupyter-work-dir && ', 1
            ),
        )
        config = config_from_mapping(_SAME_CONFIGS[settings])
        after = self._same(pod, config)
        side = options(container(after, config.sidecar.name)["args"])
        assert side[contract.ARG_DIR] == posixpath.join(config.work_dir.mount_path, config.live.dir_name)

    def _same(self, pod, config):
        outcome = mutate_pod(pod, config, namespace_opted_in=True)
        assert outcome.result == "patched", outcome.reason
        after = jsonpatch.apply_patch(pod, outcome.patch)
        [node] = transform(_as_workflow(pod), config).workflow["spec"]["templates"]
        main, v1_main = container(after, "main"), node["container"]
        for key in ("env", "workingDir", "volumeMounts"):
            assert main.get(key) == v1_main.get(key), key
        assert {v["name"]: v for v in after["spec"]["volumes"]}[config.work_dir.volume_name] == node[
            "volumes"
        ][0]
        ours = [c for c in after["spec"]["initContainers"] if c["name"] == config.live.init_container_name]
        assert ours == node.get("initContainers", [])
        side = container(after, config.sidecar.name)
        [v1_side] = node["sidecars"]
        assert side["args"][-1] == f"{contract.ARG_MAIN_EXIT_FILE}={MAIN_EXIT_FILE}"
        assert side["volumeMounts"][-1] == {
            "name": "var-run-argo",
            "mountPath": "/var/run/argo",
            "readOnly": True,
        }
        pod_only = {"args": side["args"][:-1], "volumeMounts": side["volumeMounts"][:-1]}
        assert {**side, **pod_only} == v1_side
        annotations = after["metadata"]["annotations"]
        assert (
            annotations[contract.ANNOTATION_TRANSFORMED]
            == node["metadata"]["annotations"][contract.ANNOTATION_TRANSFORMED]
        )
        return after


class TestInstrumentPod:
    """The transformer's public Pod-mode function, called as a library (no AdmissionReview around it)."""

    def node(self):
        node, _ = read_step(container(load("pod-2.17-elyra-step"), "main"), "main")
        return node

    def test_input_never_mutated_and_typed_changes(self):
        pod = load("pod-2.17-elyra-step")
        before = copy.deepcopy(pod)
        result = instrument_pod(pod, self.node())
        assert pod == before and result.changed
        assert [c.kind for c in result.added] == [
            "work_dir",
            "unbuffered",
            "live_output",
            "main_log",
            "sidecar",
            "annotation",
            "annotation",
        ]
        assert result.pod["spec"]["containers"][-1]["name"] == "elyra-log"

    def test_null_metadata_fields_read_as_absent(self):
        pod = load("pod-2.17-elyra-step")
        pod["metadata"]["annotations"] = None
        result = instrument_pod(pod, self.node())
        assert result.pod["metadata"]["annotations"][contract.ANNOTATION_TRANSFORMED]
        pod["metadata"] = None
        assert instrument_pod(pod, self.node()).changed

    @pytest.mark.parametrize(
        ("change", "place"),
        [
            (lambda p: p["spec"].pop("containers"), "spec.containers"),
            (lambda p: container(p, "main").update(env="x"), r"spec.containers\[1\].env"),
            (lambda p: p["spec"].update(volumes=[None]), "spec.volumes"),
            (lambda p: p.update(spec=[]), "not a Pod"),
        ],
    )
    def test_a_wrong_shape_is_one_error_naming_the_place(self, change, place):
        pod = load("pod-2.17-elyra-step")
        change(pod)
        with pytest.raises(PodError, match=place):
            instrument_pod(pod, self.node())
