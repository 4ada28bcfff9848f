"""The Helm chart, rendered by the real helm and validated offline against the Kubernetes schemas."""

from __future__ import annotations

import base64
import json
import re
import subprocess

import cel
import kubernetes_validate
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import padding

from elyra_sidecar.transformer import config_from_mapping
from tests.helpers import FIXTURES, ROOT, load_fixture
from tests.support.helm import helm_binary

CHART = ROOT / "charts" / "elyra-sidecar"
VALUES = ROOT / "tests" / "chart-values"
NAMESPACE = "elyra-system"
K8S = "1.30"
VARIANTS = {
    "default": ["-f", str(VALUES / "default.yaml")],
    "cert-manager": ["-f", str(VALUES / "default.yaml"), "-f", str(VALUES / "cert-manager.yaml")],
    "full": ["-f", str(VALUES / "full.yaml")],
}
BUILTIN_KINDS = {
    "Deployment",
    "Service",
    "ConfigMap",
    "Secret",
    "ServiceAccount",
    "PodDisruptionBudget",
    "NetworkPolicy",
    "MutatingWebhookConfiguration",
}


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(helm_binary()), *args], capture_output=True, text=True, check=False, timeout=120
    )


def render(variant: str) -> dict[str, dict]:
    return render_with(*VARIANTS[variant])


def render_with(*flags: str) -> dict[str, dict]:
    proc = helm("template", "rel", str(CHART), "-n", NAMESPACE, *flags)
    assert proc.returncode == 0, proc.stderr
    return {f"{d['kind']}/{d['metadata']['name']}": d for d in yaml.safe_load_all(proc.stdout) if d}


@pytest.fixture(scope="module", params=list(VARIANTS))
def rendered(request):
    return request.param, render(request.param)


class TestChart:
    @pytest.mark.parametrize("variant", list(VARIANTS))
    def test_lint(self, variant):
        """helm lint passes with each values file."""
        proc = helm("lint", str(CHART), *VARIANTS[variant])
        assert proc.returncode == 0, proc.stdout + proc.stderr

    def test_objects_validate_against_kubernetes_schemas(self, rendered):
        """Every built-in object validates (strict: unknown fields rejected) against Kubernetes 1.30."""
        _, objs = rendered
        for name, obj in objs.items():
            if obj["kind"] in BUILTIN_KINDS:
                kubernetes_validate.validate(obj, K8S, strict=True)
            else:
                assert obj["apiVersion"] == "cert-manager.io/v1", name

    def test_deployment(self, rendered):
        """Replicas, spread, probes, restricted security, no API token, graceful termination."""
        variant, objs = rendered
        dep = objs["Deployment/rel-elyra-sidecar"]
        pod = dep["spec"]["template"]["spec"]
        (c,) = pod["containers"]
        assert dep["spec"]["replicas"] == (3 if variant == "full" else 2)
        assert pod["automountServiceAccountToken"] is False
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert c["securityContext"]["readOnlyRootFilesystem"] is True
        assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
        assert c["securityContext"]["allowPrivilegeEscalation"] is False
        assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "https", "scheme": "HTTPS"}
        for probe in (c["livenessProbe"], c["readinessProbe"]):  # Kubernetes' default timeout is 1 s
            assert 2 <= probe["timeoutSeconds"] < probe["periodSeconds"]
        assert c["command"] == ["elyra-sidecar", "webhook"]
        mounts = {m["mountPath"] for m in c["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        (tmp,) = [m for m in c["volumeMounts"] if m["mountPath"] == "/tmp"]  # the workers' forkserver socket
        assert "emptyDir" in volumes[tmp["name"]] and not tmp.get("readOnly")
        for arg in c["args"]:
            if arg.startswith(("--config=", "--tls-cert=", "--tls-key=")):
                path = arg.split("=", 1)[1]
                assert any(path.startswith(m + "/") for m in mounts), arg
        assert pod["topologySpreadConstraints"][0]["topologyKey"] == "kubernetes.io/hostname"
        config = config_from_mapping(
            yaml.safe_load(objs["ConfigMap/rel-elyra-sidecar"]["data"]["config.yaml"])
        )
        assert (
            pod["terminationGracePeriodSeconds"]
            > config.webhook.drain_seconds + config.webhook.shutdown_grace_seconds
        )
        if variant == "full":
            assert c["image"] == "registry.example.com/ml/elyra-sidecar:0.1.0-rc1"
            assert dep["metadata"]["labels"]["team"] == "platform"

    def test_webhook_configuration(self, rendered):
        """Workflows CREATE only, Ignore, no side effects, 5 s, system and own namespaces excluded."""
        variant, objs = rendered
        (hook,) = objs["MutatingWebhookConfiguration/rel-elyra-sidecar"]["webhooks"]
        assert hook["rules"] == [
            {
                "apiGroups": ["argoproj.io"],
                "apiVersions": ["v1alpha1"],
                "resources": ["workflows"],
                "operations": ["CREATE"],
                "scope": "Namespaced",
            }
        ]
        assert (hook["failurePolicy"], hook["sideEffects"], hook["timeoutSeconds"]) == ("Ignore", "None", 5)
        assert hook["admissionReviewVersions"] == ["v1"]
        assert hook["clientConfig"]["service"] == {
            "name": "rel-elyra-sidecar",
            "namespace": NAMESPACE,
            "path": "/mutate",
            "port": 443,
        }
        (expr,) = hook["namespaceSelector"]["matchExpressions"]
        assert expr["operator"] == "NotIn" and {"kube-system", NAMESPACE} <= set(expr["values"])
        assert ("objectSelector" in hook) == (variant == "full")
        assert ("matchConditions" in hook) == (variant == "full")

    def test_generated_certificate_chain(self):
        """The caBundle is the CA that signed the served certificate, whose names cover the Service."""
        objs = render("default")
        secret = objs["Secret/rel-elyra-sidecar-tls"]["data"]
        (hook,) = objs["MutatingWebhookConfiguration/rel-elyra-sidecar"]["webhooks"]
        ca = x509.load_pem_x509_certificate(base64.b64decode(hook["clientConfig"]["caBundle"]))
        leaf = x509.load_pem_x509_certificate(base64.b64decode(secret["tls.crt"]))
        assert base64.b64decode(secret["ca.crt"]) == base64.b64decode(hook["clientConfig"]["caBundle"])
        ca.public_key().verify(
            leaf.signature, leaf.tbs_certificate_bytes, padding.PKCS1v15(), leaf.signature_hash_algorithm
        )
        names = leaf.extensions.get_extension_for_class(
            x509.SubjectAlternativeName
        ).value.get_values_for_type(x509.DNSName)
        assert f"rel-elyra-sidecar.{NAMESPACE}.svc" in names

    def test_cert_manager_mode(self):
        """cert-manager: a Certificate for the Service names, CA injected by annotation, no chart Secret."""
        objs = render("cert-manager")
        cert = objs["Certificate/rel-elyra-sidecar"]
        assert f"rel-elyra-sidecar.{NAMESPACE}.svc" in cert["spec"]["dnsNames"]
        assert cert["spec"]["secretName"] == "rel-elyra-sidecar-tls"
        hook = objs["MutatingWebhookConfiguration/rel-elyra-sidecar"]
        assert (
            hook["metadata"]["annotations"]["cert-manager.io/inject-ca-from"]
            == f"{NAMESPACE}/rel-elyra-sidecar"
        )
        assert "caBundle" not in hook["webhooks"][0]["clientConfig"]
        assert not any(k.startswith("Secret/") for k in objs)

    def test_least_privilege(self, rendered):
        """No Role or binding at all; the NetworkPolicy admits only the named sources, to the webhook port."""
        variant, objs = rendered
        assert not any(
            k.split("/")[0] in {"Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"} for k in objs
        )
        assert objs["ServiceAccount/rel-elyra-sidecar"]["automountServiceAccountToken"] is False
        policy = objs["NetworkPolicy/rel-elyra-sidecar"]["spec"]  # on in every variant
        assert policy["egress"] == [] and policy["policyTypes"] == ["Ingress", "Egress"]
        (rule,) = policy["ingress"]
        assert rule["ports"] == [{"port": 8443, "protocol": "TCP"}]
        named = yaml.safe_load((VALUES / ("full.yaml" if variant == "full" else "default.yaml")).read_text())
        assert rule["from"] == named["networkPolicy"]["ingressFrom"]

    @pytest.mark.parametrize(
        "flags", [[], ["--set-json", "networkPolicy.ingressFrom=[]"]], ids=["defaults", "explicit-empty"]
    )
    def test_network_policy_never_open_by_omission(self, flags):
        """On by default; no sources named (or an empty list) refuses to render, naming the value to set."""
        proc = helm("template", "rel", str(CHART), "-n", NAMESPACE, *flags)
        assert proc.returncode != 0 and "networkPolicy.ingressFrom is empty" in proc.stderr

    def test_network_policy_open_only_when_asked(self):
        """allowAllSources: any source, still only to the webhook port, no egress; disabled: no policy."""
        objs = render_with("--set", "networkPolicy.allowAllSources=true")
        policy = objs["NetworkPolicy/rel-elyra-sidecar"]["spec"]
        assert (
            policy["ingress"] == [{"ports": [{"port": 8443, "protocol": "TCP"}]}] and policy["egress"] == []
        )
        assert "NetworkPolicy/rel-elyra-sidecar" not in render_with("--set", "networkPolicy.enabled=false")

    def test_time_budget_below_the_api_server_timeout(self, rendered):
        """The webhook's budget (and its probes' timeout) is below the API server's timeoutSeconds; a budget
        at or above it refuses to render."""
        _, objs = rendered
        (hook,) = objs["MutatingWebhookConfiguration/rel-elyra-sidecar"]["webhooks"]
        config = config_from_mapping(
            yaml.safe_load(objs["ConfigMap/rel-elyra-sidecar"]["data"]["config.yaml"])
        )
        assert config.webhook.request_budget_seconds < hook["timeoutSeconds"]
        assert config.webhook.workers == 2

    def test_memory_limit_covers_the_connection_limits(self, rendered):
        """The container's memory limit holds the processes plus every allowed connection with a full body."""
        _, objs = rendered
        (c,) = objs["Deployment/rel-elyra-sidecar"]["spec"]["template"]["spec"]["containers"]
        config = config_from_mapping(
            yaml.safe_load(objs["ConfigMap/rel-elyra-sidecar"]["data"]["config.yaml"])
        )
        mib = 1 << 20
        limit = int(c["resources"]["limits"]["memory"].removesuffix("Mi")) * mib
        processes = 60 * mib + (config.webhook.workers or 2) * 45 * mib  # server + forkserver, workers
        connections = config.webhook.max_connections * (config.webhook.max_request_bytes + mib * 3 // 10)
        reviews = (config.webhook.workers or 2) * config.webhook.max_review_memory_bytes
        assert processes + connections + reviews < limit
        proc = helm(
            "template",
            "rel",
            str(CHART),
            *VARIANTS["default"],
            "--set",
            "config.webhook.request_budget_seconds=5",
        )
        assert proc.returncode != 0 and "request_budget_seconds (5) must be below" in proc.stderr

    def test_config_map_is_a_valid_transform_config(self, rendered):
        """The ConfigMap's config.yaml is accepted by the same loader the CLI uses."""
        variant, objs = rendered
        config = config_from_mapping(
            yaml.safe_load(objs["ConfigMap/rel-elyra-sidecar"]["data"]["config.yaml"])
        )
        if variant == "full":
            assert config.lineage.enabled and config.webhook.inject_all_in_namespaces == ["ml-team"]
            assert config.sidecar.image == "registry.example.com/ml/elyra-sidecar:0.1.0-rc1"

    def test_match_condition_selects_opted_in_workflows(self):
        """The CEL matchCondition, evaluated by a CEL engine, is true exactly for opted-in Workflows."""
        (hook,) = render("full")["MutatingWebhookConfiguration/rel-elyra-sidecar"]["webhooks"]
        (condition,) = hook["matchConditions"]
        program = condition["expression"]
        base = load_fixture(FIXTURES / "elyra-4.0.0-three-node.yaml")
        assert cel.evaluate(program, {"object": base}) is False
        wf = json.loads(json.dumps(base))
        wf["metadata"]["annotations"]["elyra-sidecar/inject"] = "true"
        assert cel.evaluate(program, {"object": wf}) is True
        wf = json.loads(json.dumps(base))
        wf["spec"]["templates"][1]["metadata"]["annotations"]["elyra-sidecar/inject"] = "true"
        assert cel.evaluate(program, {"object": wf}) is True
        wf = json.loads(json.dumps(base))
        wf["spec"]["podMetadata"] = {"annotations": {"elyra-sidecar/inject": "true"}}
        assert cel.evaluate(program, {"object": wf}) is True
        wf["spec"]["podMetadata"]["annotations"]["elyra-sidecar/inject"] = "false"
        assert cel.evaluate(program, {"object": wf}) is False

    @pytest.mark.parametrize(
        ("flag", "message"),
        [
            ("replicaCont=3", "replicaCont"),
            ("config.sidecar.imagee=x", "imagee"),
            ("webhook.failurePolicy=Sometimes", "failurePolicy"),
        ],
    )
    def test_schema_rejects_misspelt_or_wrong_values(self, flag, message):
        """values.schema.json rejects unknown keys, also inside `config`, and wrong enums."""
        proc = helm("template", "rel", str(CHART), "--set", flag)
        assert proc.returncode != 0 and message in proc.stderr

    def test_schema_file_is_generated_from_the_code(self):
        """The committed values.schema.json equals scripts/gen_chart_schema.py's output."""
        import importlib.util

        spec = importlib.util.spec_from_file_location("gen", ROOT / "scripts" / "gen_chart_schema.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        assert json.loads((CHART / "values.schema.json").read_text()) == module.schema()

    def test_every_value_has_a_doc_comment(self):
        """Every value in values.yaml has a `# --` comment on itself or on an enclosing key (helm-docs)."""
        lines = (CHART / "values.yaml").read_text().splitlines()
        missing = []
        stack: list[tuple[int, bool]] = []  # (indent, documented) of enclosing keys
        for i, line in enumerate(lines):
            m = re.match(r"^(\s*)([A-Za-z][\w-]*):\s*(.*)$", line)
            if not m:
                continue
            indent = len(m.group(1))
            while stack and stack[-1][0] >= indent:
                stack.pop()
            j = i - 1
            while j >= 0 and lines[j].strip().startswith("#") and not lines[j].strip().startswith("# --"):
                j -= 1
            documented = j >= 0 and lines[j].strip().startswith("# --")
            inherited = any(doc for _, doc in stack)
            if m.group(3) != "" and not (documented or inherited):
                missing.append(m.group(2))
            stack.append((indent, documented or inherited))
        assert missing == []

    def test_notes_tell_how_to_opt_in_and_read_logs(self):
        """NOTES.txt (rendered by helm install --dry-run=client) names the annotation and the log command."""
        proc = helm("install", "rel", str(CHART), "-n", NAMESPACE, "--dry-run=client", *VARIANTS["full"])
        assert proc.returncode == 0, proc.stderr
        notes = proc.stdout.split("NOTES:", 1)[1]
        assert "elyra-sidecar/inject" in notes and "kubectl logs" in notes and "-c elyra-log" in notes
        assert "ml-team" in notes
