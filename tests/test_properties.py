"""Properties of transform() over workflows assembled from real fixture templates."""

from __future__ import annotations

import copy
import re
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from elyra_sidecar.transformer import config_from_mapping, transform
from elyra_sidecar.transformer._elyra import read_elyra_node
from tests.helpers import ARGO_FIXTURES, SCHEMA_FILES, load_fixture, schema_errors

_NAME = re.compile(r"^[-a-zA-Z0-9_]+$")
# Every container template of every real fixture (Elyra nodes of every version, and plain KFP ones).
_POOL: list[dict[str, Any]] = [
    t for p in ARGO_FIXTURES for t in load_fixture(p)["spec"]["templates"] if "container" in t
]

configs = st.fixed_dictionaries(
    {},
    optional={
        "unbuffered": st.booleans(),
        "work_dir": st.fixed_dictionaries(
            {}, optional={"enabled": st.booleans(), "mount_path": st.sampled_from(["/w", "/a/b/c"])}
        ),
        "sidecar": st.fixed_dictionaries({}, optional={"enabled": st.booleans(), "mirror": st.booleans()}),
        "artifacts": st.fixed_dictionaries(
            {},
            optional={
                "wildcards": st.sampled_from(["directory", "skip"]),
                "log": st.booleans(),
                "outputs": st.booleans(),
            },
        ),
        "lineage": st.fixed_dictionaries({}, optional={"enabled": st.booleans()}),
        "live": st.fixed_dictionaries({}, optional={"mode": st.sampled_from(["auto", "on", "off"])}),
        "parameters": st.fixed_dictionaries(
            {}, optional={"promote_env": st.sampled_from([[], ["all"], ["DATASET_URL"]])}
        ),
    },
)


@st.composite
def workflows(draw: st.DrawFn, *, unknown_keys: bool) -> dict[str, Any]:
    picks = draw(st.lists(st.integers(0, len(_POOL) - 1), min_size=1, max_size=6))
    templates = []
    for n, index in enumerate(picks):
        template = copy.deepcopy(_POOL[index])
        template["name"] = f"{template['name']}-{n}"
        inject = draw(st.sampled_from([None, "true", "false"]))
        if inject is not None:
            template.setdefault("metadata", {}).setdefault("annotations", {})["elyra-sidecar/inject"] = inject
        if unknown_keys:
            template["x-unknown"] = {"keep": n}
            template["container"]["x-unknown"] = [n]
        templates.append(template)
    chain = draw(st.booleans())
    tasks = [
        {
            "name": t["name"],
            "template": t["name"],
            **({"dependencies": [templates[i - 1]["name"]]} if chain and i else {}),
        }
        for i, t in enumerate(templates)
    ]
    workflow: dict[str, Any] = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "p-"},
        "spec": {"entrypoint": "dag", "templates": [*templates, {"name": "dag", "dag": {"tasks": tasks}}]},
    }
    if unknown_keys:
        workflow["x-top"] = "kept"
        workflow["spec"]["x-spec"] = {"a": [1, 2]}
    return workflow


_SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class TestProperties:
    @_SETTINGS
    @given(workflows(unknown_keys=True), configs)
    def test_input_never_mutated_and_idempotent(self, workflow, config_data):
        """transform() leaves its input alone, and a second run changes nothing."""
        config = config_from_mapping(config_data)
        before = copy.deepcopy(workflow)
        once = transform(workflow, config)
        assert workflow == before
        twice = transform(once.workflow, config)
        assert twice.workflow == once.workflow and not twice.changed

    @_SETTINGS
    @given(workflows(unknown_keys=True), configs)
    def test_unknown_keys_and_main_command_preserved(self, workflow, config_data):
        """Keys the tool does not know survive; main's command and args stay byte-identical."""
        out = transform(workflow, config_from_mapping(config_data)).workflow
        assert out["x-top"] == "kept" and out["spec"]["x-spec"] == {"a": [1, 2]}
        for before, after in zip(workflow["spec"]["templates"], out["spec"]["templates"], strict=True):
            if "container" not in before:
                continue
            assert after["x-unknown"] == before["x-unknown"]
            assert after["container"]["x-unknown"] == before["container"]["x-unknown"]
            assert after["container"].get("command") == before["container"].get("command")
            assert after["container"].get("args") == before["container"].get("args")

    @_SETTINGS
    @given(workflows(unknown_keys=False), configs)
    def test_output_valid_and_artifacts_sane(self, workflow, config_data):
        """Valid against all four schemas (strict); artifact names valid, unique, under the run dir."""
        result = transform(workflow, config_from_mapping(config_data))
        for schema in SCHEMA_FILES:
            assert schema_errors(result.workflow, schema) == []
        run_dirs = {n.template: n.run_dir for n in result.nodes if n.status == "transformed"}
        for index, template in enumerate(result.workflow["spec"]["templates"]):
            for kind in ("inputs", "outputs"):
                names = [a["name"] for a in (template.get(kind) or {}).get("artifacts") or []]
                assert len(names) == len(set(names))
                assert all(_NAME.match(n) for n in names)
            original = workflow["spec"]["templates"][index]
            if template["name"] in run_dirs and run_dirs[template["name"]]:
                run_dir = run_dirs[template["name"]]
                added = template["outputs"]["artifacts"][len(original["outputs"]["artifacts"]) :]
                # The live copy of the log sits at the work volume's root, which can be above the run dir.
                live = tuple(
                    m["mountPath"].rstrip("/") + "/.elyra-sidecar-live/"
                    for m in template["container"].get("volumeMounts") or []
                )
                inside = (run_dir.rstrip("/") + "/", *live)
                assert all(a["path"].startswith(inside) for a in added)
            elif template["name"] not in run_dirs and "dag" not in template:
                assert template == original  # not transformed: byte-for-byte the same object content

    @_SETTINGS
    @given(workflows(unknown_keys=False))
    def test_every_elyra_node_is_found(self, workflow):
        """Each template that reads as an Elyra node appears in the report exactly once."""
        result = transform(workflow)
        expected = sorted(
            t["name"]
            for i, t in enumerate(workflow["spec"]["templates"])
            if "container" in t and read_elyra_node(t, i) is not None
        )
        assert sorted(n.template for n in result.nodes) == expected
