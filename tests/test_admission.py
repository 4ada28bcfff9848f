"""admit(): AdmissionReviews built from every fixture; the patch must reproduce the CLI's output exactly."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import tracemalloc
from dataclasses import replace

import jsonpatch
import pytest
import yaml

from elyra_sidecar.transformer import Config, config_from_mapping, transform
from elyra_sidecar.webhook._admission import admit, admit_body, not_injected, parsed_size_bound
from elyra_sidecar.webhook._patch import make_patch, pointer
from tests.helpers import ARGO_FIXTURES, ELYRA_FIXTURES, FIXTURES, load_fixture, patched

OPTED_IN = Config()
OPTED_IN = replace(OPTED_IN, selection=replace(OPTED_IN.selection, only_annotated=True))


def review(obj, *, uid="uid-1", namespace="team-a", kind="Workflow", operation="CREATE"):
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "argoproj.io", "version": "v1alpha1", "kind": kind},
            "resource": {"group": "argoproj.io", "version": "v1alpha1", "resource": "workflows"},
            "operation": operation,
            "namespace": namespace,
            "object": obj,
        },
    }


def annotate(workflow, where, value="true", index=0):
    if where == "workflow":
        workflow["metadata"].setdefault("annotations", {})["elyra-sidecar/inject"] = value
    elif where == "podMetadata":
        workflow["spec"]["podMetadata"] = {"annotations": {"elyra-sidecar/inject": value}}
    else:
        elyra = [t for t in workflow["spec"]["templates"] if "container" in t]
        elyra[index].setdefault("metadata", {}).setdefault("annotations", {})["elyra-sidecar/inject"] = value
    return workflow


class TestAdmit:
    @pytest.mark.parametrize("where", ["workflow", "podMetadata", "template"])
    @pytest.mark.parametrize("path", ARGO_FIXTURES, ids=lambda p: p.stem)
    def test_patch_gives_exactly_the_cli_output(self, path, where):
        """Opted in (three ways): uid echoed; the patched object equals transform --only-annotated."""
        workflow = annotate(load_fixture(path), where)
        before = copy.deepcopy(workflow)
        outcome = admit(review(workflow), Config())
        response = outcome.review["response"]
        assert response["uid"] == "uid-1" and response["allowed"] is True
        assert workflow == before
        assert patched(workflow, response) == transform(workflow, OPTED_IN).workflow
        expected = "patched" if path in ELYRA_FIXTURES else "unchanged"
        assert outcome.result == expected

    @pytest.mark.parametrize("path", ELYRA_FIXTURES, ids=lambda p: p.stem)
    def test_mixed_opt_in_and_opt_out(self, path):
        """Workflow opted in, one template opted out: that template is untouched, the others patched."""
        workflow = annotate(annotate(load_fixture(path), "workflow"), "template", "false", index=1)
        outcome = admit(review(workflow), Config())
        result = patched(workflow, outcome.review["response"])
        assert result == transform(workflow, OPTED_IN).workflow
        opted_out = [t for t in workflow["spec"]["templates"] if "container" in t][1]
        assert next(t for t in result["spec"]["templates"] if t["name"] == opted_out["name"]) == opted_out

    @pytest.mark.parametrize("path", ELYRA_FIXTURES, ids=lambda p: p.stem)
    def test_not_opted_in_and_already_transformed_get_no_patch(self, path):
        """No annotation: no patch. Already transformed: no patch."""
        workflow = load_fixture(path)
        assert "patch" not in admit(review(workflow), Config()).review["response"]
        done = transform(annotate(workflow, "workflow")).workflow
        outcome = admit(review(done), Config())
        assert "patch" not in outcome.review["response"] and outcome.result == "unchanged"

    def test_namespace_wide_switch(self):
        """In a namespace listed in webhook.inject_all_in_namespaces, no annotation is needed."""
        workflow = load_fixture(FIXTURES / "elyra-4.0.0-three-node.yaml")
        config = config_from_mapping({"webhook": {"inject_all_in_namespaces": ["ml"]}})
        assert admit(review(workflow, namespace="ml"), config).result == "patched"
        assert admit(review(workflow, namespace="other"), config).result == "unchanged"

    @pytest.mark.parametrize(
        ("body", "result"),
        [
            (review({"kind": "Pod"}, kind="Pod"), "skipped"),
            (review(load_fixture(FIXTURES / "elyra-4.0.0-three-node.yaml"), operation="UPDATE"), "skipped"),
            (
                {
                    "apiVersion": "admission.k8s.io/v1beta1",
                    "kind": "AdmissionReview",
                    "request": {"uid": "x"},
                },
                "error",
            ),
            ({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}, "error"),
            ([1, 2], "error"),
            (review(None), "error"),
            (
                review(
                    next(yaml.safe_load_all((FIXTURES / "elyra-4.1.1-three-node-kfp-v2-ir.yaml").read_text()))
                ),
                "error",
            ),
            (review({"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "spec": "broken"}), "error"),
        ],
        ids=[
            "pod",
            "update",
            "v1beta1",
            "no-request",
            "not-a-mapping",
            "no-object",
            "kfp-v2-ir",
            "broken-spec",
        ],
    )
    def test_never_blocks(self, body, result):
        """Anything else is allowed unchanged; internal problems say why in a warning."""
        outcome = admit(body, Config())
        response = outcome.review["response"]
        assert response["allowed"] is True and "patch" not in response
        assert outcome.result == result
        if result == "error":
            assert response["warnings"] and all(len(w) <= 120 for w in response["warnings"])

    def test_agrees_with_the_cli_process(self, tmp_path):
        """The patched object equals what `elyra-sidecar transform --only-annotated` writes."""
        workflow = annotate(load_fixture(FIXTURES / "elyra-3.13.0-three-node.yaml"), "workflow")
        src = tmp_path / "in.yaml"
        src.write_text(yaml.safe_dump(workflow))
        proc = subprocess.run(
            [sys.executable, "-m", "elyra_sidecar", "transform", "--only-annotated", "-q", str(src)],
            capture_output=True,
            check=True,
        )
        assert patched(workflow, admit(review(workflow), Config()).review["response"]) == yaml.safe_load(
            proc.stdout
        )


class TestEmptyFields:
    def test_null_env_and_outputs_are_injected_like_the_cli(self):
        """An empty `env:`/`outputs:` (YAML null) does not stop injection; the patch gives the CLI result."""
        workflow = annotate(load_fixture(FIXTURES / "elyra-3.15.0-three-node.yaml"), "workflow")
        template = next(t for t in workflow["spec"]["templates"] if "container" in t)
        template["container"]["env"] = None
        template["outputs"] = None
        outcome = admit(review(workflow), Config())
        assert outcome.result == "patched", outcome.reason
        result = patched(copy.deepcopy(workflow), outcome.review["response"])
        cli = subprocess.run(
            [sys.executable, "-m", "elyra_sidecar", "transform", "--only-annotated", "-q", "-"],
            input=yaml.safe_dump(workflow).encode(),
            capture_output=True,
            check=True,
            timeout=120,
        )
        assert result == yaml.safe_load(cli.stdout)


class TestMalformedShapes:
    """All of admit() is under its never-block guard: any shape of review is allowed."""

    @staticmethod
    def _kind_not_a_mapping():
        body = review({}, uid="u")
        body["request"]["kind"] = "Workflow"
        return body

    @staticmethod
    def _metadata_not_a_mapping():
        return review(
            {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": "x"}, uid="u", namespace=""
        )

    @pytest.mark.parametrize("make", [_kind_not_a_mapping, _metadata_not_a_mapping], ids=["kind", "metadata"])
    def test_wrong_shapes_are_allowed_with_their_uid(self, make):
        """request.kind not a mapping; object.metadata not a mapping, no namespace: allowed, uid echoed."""
        outcome = admit(make.__func__(), Config())
        assert outcome.review is not None
        response = outcome.review["response"]
        assert response == {**response, "uid": "u", "allowed": True} and "patch" not in response
        assert outcome.result in {"error", "unchanged"} and outcome.uid == "u"

    def test_identity_of_the_request_for_the_log(self):
        """uid, namespace and name (or generateName) are in the outcome, only when they are strings."""
        workflow = load_fixture(FIXTURES / "elyra-4.0.0-three-node.yaml")
        outcome = admit(review(workflow, uid="u1", namespace="ns"), Config())
        assert (outcome.uid, outcome.namespace, outcome.name) == (
            "u1",
            "ns",
            workflow["metadata"]["generateName"],
        )
        odd = review({"metadata": {"name": ["x"], "namespace": {"a": 1}}}, uid="u2", namespace="")
        assert (admit(odd, Config()).namespace, admit(odd, Config()).name) == ("", "")


class TestAdmitBody:
    DEEP = 100_000

    def test_same_answer_as_admit(self):
        """admit_body() on the JSON of a review gives admit()'s outcome."""
        body = review(annotate(load_fixture(FIXTURES / "elyra-4.0.0-three-node.yaml"), "workflow"))
        assert admit_body(json.dumps(body).encode(), Config()) == admit(body, Config())

    def test_nested_deeper_than_the_parser_allows_is_allowed(self):
        """An object nested deeper than json can parse: allowed with its uid and a warning."""
        body = b'{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"d\\"1",'
        body += b'"object":' + b"[" * self.DEEP + b"]" * self.DEEP + b"}}"
        outcome = admit_body(body, Config())
        assert outcome.review is not None and outcome.result == "error"
        assert outcome.review["response"]["uid"] == 'd"1'
        assert "nested deeper" in outcome.review["response"]["warnings"][0]

    @pytest.mark.parametrize(
        "body",
        [b"{not json", b"\xff\xfe", b"[" * DEEP + b"]" * DEEP],
        ids=["syntax", "utf8", "deep-no-review"],
    )
    def test_not_an_admission_review_is_refused(self, body):
        """Not JSON, not UTF-8, or too deep and naming no AdmissionReview: review None (the server's 400)."""
        outcome = admit_body(body, Config())
        assert outcome.review is None and outcome.result == "bad_request"

    def test_not_injected_names_the_reason(self):
        """The answer for a review the server could not decide: allowed, its uid, the reason as warning."""
        body = json.dumps(review({"metadata": {"name": "wf"}}, uid="u", namespace="ns")).encode()
        outcome = not_injected(body, result="over_budget", reason="too slow")
        assert outcome.review["response"] == {
            "uid": "u",
            "allowed": True,
            "warnings": ["elyra-sidecar: not injected: too slow"],
        }
        assert (outcome.result, outcome.uid, outcome.namespace, outcome.name) == (
            "over_budget",
            "u",
            "ns",
            "wf",
        )


class TestMakePatch:
    @pytest.mark.parametrize(
        ("old", "new"),
        [
            ({"a": 1}, {"a": 2}),
            ({"a": [1]}, {"a": [1, 2, 3]}),
            ({"a": [1, 2]}, {"a": [2]}),
            ({"a/b~": 1}, {}),
            ({}, {"x": {"y": None}}),
            ({"a": 1}, {"a": "1"}),
            ([{"k": 1}], [{"k": 1, "j": 2}]),
            ({"a": True}, {"a": 1}),
        ],
    )
    def test_round_trips_through_an_independent_applier(self, old, new):
        """jsonpatch (an independent RFC 6902 implementation) turns old into new with our operations."""
        assert jsonpatch.apply_patch(old, make_patch(old, new)) == new

    def test_pointer_escapes(self):
        """RFC 6901: `~` and `/` are escaped."""
        assert (
            pointer(["metadata", "annotations", "elyra-sidecar/transformed", "a~b"])
            == "/metadata/annotations/elyra-sidecar~1transformed/a~0b"
        )


#: JSON shapes that take the most memory for their size once parsed, and a few ordinary ones.
_SHAPES = {
    "tiny objects": "[" + ",".join(["{}"] * 5000) + "]",
    "tiny arrays": "[" + ",".join(["[]"] * 5000) + "]",
    "one-key objects": "[" + ",".join(['{"a":1}'] * 5000) + "]",
    "nested arrays": "[" * 900 + "]" * 900,
    "nested objects": '{"a":' * 900 + "1" + "}" * 900,
    "many keys": "{" + ",".join(f'"k{i}":0' for i in range(5000)) + "}",
    "short strings": "[" + ",".join(['"ab"'] * 5000) + "]",
    "escaped wide strings": "[" + ",".join(['"\\ud83d\\ude00"'] * 5000) + "]",
    "one wide character among ascii": '["\\ud83d\\ude00' + "a" * 50_000 + '"]',
    "utf-8 wide characters": '["' + "😀" * 5000 + '"]',
    "numbers": "[" + ",".join(["1234.5", "123456"] * 2500) + "]",
}


class TestParsedSizeBound:
    @pytest.mark.parametrize("shape", list(_SHAPES))
    def test_the_bound_covers_what_parsing_takes(self, shape):
        """`parsed_size_bound` is at least the memory `json.loads` allocates (peak, tracemalloc)."""
        body = _SHAPES[shape].encode()
        tracemalloc.start()
        try:
            json.loads(body)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert parsed_size_bound(body) >= peak

    def test_a_real_review_is_bounded_near_its_size(self):
        """A real opted-in review's bound is under 10x its body: a 3 MiB review fits the chart's 40 MiB."""
        body = json.dumps(
            review(annotate(load_fixture(FIXTURES / "elyra-4.0.0-three-node.yaml"), "workflow"))
        )
        assert parsed_size_bound(body.encode()) < 10 * len(body)

    def test_a_review_over_the_memory_limit_is_not_parsed(self):
        """Over webhook.max_review_memory_bytes: allowed, no patch, a warning, `too_large`; the uid,
        namespace and name come from the body's head."""
        workflow = {
            "metadata": {"annotations": {"a": "b"}, "generateName": "w-"},
            "spec": {"x": [{"name": "t"}] * 9},
        }
        body = json.dumps(review(workflow, uid="u-1"))
        config = replace(OPTED_IN, webhook=replace(OPTED_IN.webhook, max_review_memory_bytes=1024))
        outcome = admit_body(body.encode(), config)
        assert (outcome.result, outcome.uid, outcome.namespace, outcome.name) == (
            "too_large",
            "u-1",
            "team-a",
            "w-",
        )
        assert outcome.review is not None and "patch" not in outcome.review["response"]
        assert "too large to read" in outcome.review["response"]["warnings"][0]

    def test_not_injected_reads_only_the_head_of_the_body(self):
        """The answer built without parsing: the uid from the first 64 kB (as the API server writes it);
        a uid further in is not looked for (answered 400: failurePolicy applies)."""
        first = review({"spec": {"x": "y" * 100_000}}, uid="early")
        outcome = not_injected(json.dumps(first).encode(), result="over_budget", reason="slow")
        assert outcome.review is not None and outcome.review["response"]["uid"] == "early"
        late = {
            "apiVersion": "admission.k8s.io/v1",
            "request": {"object": {"x": "y" * 100_000}, "uid": "late"},
        }
        outcome = not_injected(json.dumps(late).encode(), result="over_budget", reason="slow")
        assert outcome.review is None and outcome.result == "over_budget"
