"""transform(): golden files on every real fixture, and the behaviours the issue asks for."""

from __future__ import annotations

import copy
import json
import re
from dataclasses import asdict
from typing import Any, get_args

import pytest
import yaml

from elyra_sidecar.transformer import Config, NodeParseError, WorkflowError, config_from_mapping, transform
from elyra_sidecar.transformer._io import dump_yaml
from elyra_sidecar.transformer._registry import STEPS, WorkflowStep
from elyra_sidecar.transformer._steps import Change, ChangeKind, Names, artifact_name
from elyra_sidecar.transformer.cli import _summary
from tests.helpers import (
    ARGO_FIXTURES,
    FIXTURES,
    GOLDEN,
    ROOT,
    SCHEMA_FILES,
    compiled,
    load_fixture,
    schema_errors,
)

GOLDEN_CASES = [(p, "default", {}) for p in ARGO_FIXTURES] + [
    (FIXTURES / "elyra-4.0.0-three-node.yaml", "lineage", {"lineage": {"enabled": True}}),
    (FIXTURES / "elyra-3.12.0-three-node.yaml", "lineage", {"lineage": {"enabled": True}}),
    (FIXTURES / "elyra-4.0.0-three-node.yaml", "promote-all", {"parameters": {"promote_env": ["all"]}}),
    (FIXTURES / "elyra-2.2.4-three-node.yaml", "promote-all", {"parameters": {"promote_env": ["all"]}}),
]


def _templates(workflow: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in workflow["spec"]["templates"]}


class TestGolden:
    @pytest.mark.parametrize(
        ("path", "variant", "config"), GOLDEN_CASES, ids=[f"{p.stem}-{v}" for p, v, _ in GOLDEN_CASES]
    )
    def test_matches_reviewed_golden_file(self, request, path, variant, config):
        """The output equals the committed, reviewed file (regenerate: pytest --update-golden)."""
        result = transform(load_fixture(path), config_from_mapping(config))
        text = dump_yaml(result.workflow)
        report = json.dumps([asdict(n) for n in result.nodes], indent=2) + "\n"
        out = GOLDEN / f"{path.stem}.{variant}.yaml"
        out_report = GOLDEN / f"{path.stem}.{variant}.report.json"
        if request.config.getoption("--update-golden"):
            out.write_text(text)
            out_report.write_text(report)
        assert out.exists(), f"no golden file {out.name}: run pytest --update-golden and review the diff"
        assert text == out.read_text()
        assert report == out_report.read_text()

    def test_plain_kfp_pipeline_is_unchanged(self):
        """A pipeline with no Elyra node comes back equal and reports nothing."""
        workflow = load_fixture(FIXTURES / "kfp-1.8.24-plain-two-step.yaml")
        result = transform(workflow)
        assert result.workflow == workflow and not result.changed and result.nodes == ()

    def test_v2_ir_gets_the_clear_error(self):
        """Elyra 4.1's KFP v2 IR is refused with what the Pod mode does and how to enable it."""
        ir = next(yaml.safe_load_all((FIXTURES / "elyra-4.1.1-three-node-kfp-v2-ir.yaml").read_text()))
        with pytest.raises(WorkflowError, match=r"KFP v2 .*webhook.pods.enabled=true.*inject"):
            transform(ir)


class TestRewrite:
    def setup_method(self):
        self.workflow = load_fixture(FIXTURES / "elyra-4.0.0-three-node.yaml")

    def test_main_command_and_args_are_byte_identical(self):
        """Only workingDir, one volumeMount and one env entry change in main."""
        before = _templates(self.workflow)
        after = _templates(transform(self.workflow).workflow)
        for name in ("run-a-file", "run-a-file-2", "run-a-file-3"):
            b, a = before[name]["container"], after[name]["container"]
            assert a["command"] == b["command"] and a["args"] == b["args"]
            assert {k for k in a if a[k] != b.get(k)} == {"workingDir", "volumeMounts", "env"}
            assert a["env"][: len(b["env"])] == b["env"]  # existing entries untouched, in order
            added = a["env"][len(b["env"]) :]
            assert added[0] == {"name": "PYTHONUNBUFFERED", "value": "1"}
            # The Elyra 4.0 Python node also gets the live-output entries; notebook and R nodes do not.
            live = [
                "PYTHONPATH",
                "ELYRA_SIDECAR_LIVE_IMAGE_PYTHONPATH",
                "ELYRA_SIDECAR_LIVE_SCRIPT",
                "ELYRA_SIDECAR_LIVE_LOG",
                "ELYRA_SIDECAR_LIVE_MAIN",
            ]
            expected = live if name == "run-a-file" else []
            assert [e["name"] for e in added[1:]] == expected

    def test_existing_pythonunbuffered_is_kept(self):
        """A node that sets PYTHONUNBUFFERED itself keeps its value."""
        self.workflow["spec"]["templates"][0]["container"]["env"].append(
            {"name": "PYTHONUNBUFFERED", "value": "0"}
        )
        env = transform(self.workflow).workflow["spec"]["templates"][0]["container"]["env"]
        assert [e for e in env if e["name"] == "PYTHONUNBUFFERED"] == [
            {"name": "PYTHONUNBUFFERED", "value": "0"}
        ]

    def test_sidecar_gets_credentials_and_nothing_else_of_main_env(self):
        """secretKeyRef credentials are copied as they are; DB_PASSWORD or DATASET_URL never reach it."""
        workflow = load_fixture(FIXTURES / "elyra-4.0.0-three-node-cos-secret.yaml")
        templates = _templates(transform(workflow).workflow)
        (sidecar,) = templates["run-a-file"]["sidecars"]
        main_env = {e["name"]: e for e in templates["run-a-file"]["container"]["env"]}
        assert sidecar["env"] == [main_env["AWS_ACCESS_KEY_ID"], main_env["AWS_SECRET_ACCESS_KEY"]]
        assert "secretKeyRef" in sidecar["env"][0]["valueFrom"]
        assert sidecar["command"] == ["elyra-sidecar", "tail"]
        assert sidecar["volumeMounts"] == [
            {"name": "elyra-sidecar-work", "mountPath": "/elyra-sidecar/work", "readOnly": True}
        ]
        ctx = sidecar["securityContext"]
        assert (
            ctx["runAsNonRoot"] and ctx["readOnlyRootFilesystem"] and ctx["capabilities"] == {"drop": ["ALL"]}
        )
        assert ctx["allowPrivilegeEscalation"] is False and ctx["seccompProfile"] == {
            "type": "RuntimeDefault"
        }

    def test_sidecar_args_name_dir_file_and_key_like_the_bootstrapper(self):
        """<= 3.13 runs in jupyter-work-dir; the key is <cos-directory>/<name>.log."""
        workflow = load_fixture(FIXTURES / "elyra-3.13.0-three-node.yaml")
        (sidecar,) = _templates(transform(workflow).workflow)["run-a-file"]["sidecars"]
        pairs = dict(arg.split("=", 1) for arg in sidecar["args"])
        assert pairs["--dir"] == "/elyra-sidecar/work/jupyter-work-dir"
        assert pairs["--file"] == "load_data.log"
        assert pairs["--key"] == "my/project/three-node-1121215526/load_data.log"
        assert pairs["--endpoint"] == "http://127.0.0.1:9123" and pairs["--bucket"] == "elyra-bucket"

    def test_empty_cos_directory_gives_a_bare_key(self):
        """Elyra 2.2.4 exports --cos-directory "": the bootstrapper uploads to `<name>.log`."""
        workflow = load_fixture(FIXTURES / "elyra-2.2.4-three-node.yaml")
        (sidecar,) = _templates(transform(workflow).workflow)["load-data"]["sidecars"]
        assert "--key=load_data.log" in sidecar["args"]

    def test_crio_mode_keeps_elyra_workspace_and_adds_ours(self):
        """CRI-O mode: Elyra's `workspace` emptyDir and PYTHONPATH stay; the bootstrapper runs in ours."""
        workflow = load_fixture(FIXTURES / "elyra-4.0.0-three-node-crio.yaml")
        t = _templates(transform(workflow).workflow)["run-a-file"]
        assert [v["name"] for v in t["volumes"]] == ["workspace", "elyra-sidecar-work"]
        assert t["container"]["workingDir"] == "/elyra-sidecar/work"
        assert any(e["name"] == "PYTHONPATH" for e in t["container"]["env"])

    def test_output_artifacts_optional_tar_and_kfp_ones_kept(self):
        """Every added artifact is optional tar; mlpipeline-* stay first and unchanged."""
        t = _templates(transform(self.workflow).workflow)["run-a-file-2"]
        artifacts = t["outputs"]["artifacts"]
        assert artifacts[:2] == self.workflow["spec"]["templates"][1]["outputs"]["artifacts"]
        added = artifacts[2:]
        assert [(a["name"], a["path"]) for a in added] == [
            ("notebook-output", "/elyra-sidecar/work/train-output.ipynb"),
            ("notebook-html", "/elyra-sidecar/work/train.html"),
            ("model-pkl", "/elyra-sidecar/work/model.pkl"),
            ("metrics", "/elyra-sidecar/work/metrics"),
        ]
        assert all(a["optional"] is True and a["archive"] == {"tar": {}} for a in added)

    def test_wildcards_can_be_skipped_with_a_warning(self):
        """artifacts.wildcards: skip drops `metrics/*.json` and says so."""
        result = transform(self.workflow, config_from_mapping({"artifacts": {"wildcards": "skip"}}))
        report = next(n for n in result.nodes if n.template == "run-a-file-2")
        assert any("metrics/*.json" in w and "wildcard" in w for w in report.warnings)
        names = [a["name"] for a in _templates(result.workflow)["run-a-file-2"]["outputs"]["artifacts"]]
        assert "metrics" not in names

    def test_wildcard_over_the_whole_directory_is_never_archived(self):
        """`*.csv` would archive the bootstrapper's whole directory: skipped with a warning."""
        t = self.workflow["spec"]["templates"][0]
        t["container"]["args"][0] = t["container"]["args"][0].replace(
            "--outputs 'data.csv'", "--outputs '*.csv;../up.txt'"
        )
        result = transform(self.workflow)
        report = result.nodes[0]
        assert len(report.warnings) == 2
        paths = [a["path"] for a in _templates(result.workflow)["run-a-file"]["outputs"]["artifacts"]]
        assert paths[2:] == ["/elyra-sidecar/work/.elyra-sidecar-live/load_data.log"]  # 4.0: the live copy

    def test_artifact_names_stay_unique(self):
        """Outputs that sanitise to the same name get suffixes, never duplicates."""
        t = self.workflow["spec"]["templates"][0]
        t["container"]["args"][0] = t["container"]["args"][0].replace(
            "--outputs 'data.csv'", "--outputs 'data.csv;data-csv;script-log'"
        )
        artifacts = _templates(transform(self.workflow).workflow)["run-a-file"]["outputs"]["artifacts"]
        names = [a["name"] for a in artifacts]
        assert len(names) == len(set(names)) == 6

    def test_every_step_can_be_switched_off(self):
        """With every switch off only the marker annotation is added."""
        config = config_from_mapping(
            {
                "work_dir": {"enabled": False},
                "unbuffered": False,
                "sidecar": {"enabled": False},
                "artifacts": {"enabled": False},
            }
        )
        result = transform(self.workflow, config)
        for before, after in zip(
            self.workflow["spec"]["templates"][:3], result.workflow["spec"]["templates"][:3], strict=True
        ):
            stripped = copy.deepcopy(after)
            del stripped["metadata"]["annotations"]["elyra-sidecar/transformed"]
            assert stripped == before

    def test_steps_off_without_workdir_warn_instead_of_guessing(self):
        """Without the work dir the image WORKDIR is unknown: no sidecar, no artifacts, a warning."""
        result = transform(self.workflow, config_from_mapping({"work_dir": {"enabled": False}}))
        assert all(any("WORKDIR" in w for w in n.warnings) for n in result.nodes)
        assert all("sidecars" not in t for t in result.workflow["spec"]["templates"])

    def test_config_changes_sidecar_name_image_and_resources(self):
        """Sidecar name, image and resources come from the config."""
        config = config_from_mapping(
            {
                "sidecar": {
                    "name": "logs",
                    "image": "registry.local/s:1",
                    "resources": {"requests": {"cpu": "5m"}},
                }
            }
        )
        (sidecar,) = _templates(transform(self.workflow, config).workflow)["run-a-file"]["sidecars"]
        assert (sidecar["name"], sidecar["image"], sidecar["resources"]) == (
            "logs",
            "registry.local/s:1",
            {"requests": {"cpu": "5m"}},
        )


class TestSelection:
    def setup_method(self):
        self.workflow = load_fixture(FIXTURES / "elyra-4.0.0-three-node.yaml")

    def _annotate(self, index: int, value: str) -> None:
        self.workflow["spec"]["templates"][index]["metadata"]["annotations"]["elyra-sidecar/inject"] = value

    def test_false_on_a_template_opts_it_out(self):
        """`elyra-sidecar/inject: "false"` always wins."""
        self._annotate(1, "false")
        result = transform(self.workflow)
        assert [n.status for n in result.nodes] == ["transformed", "opted-out", "transformed"]
        assert result.workflow["spec"]["templates"][1] is self.workflow["spec"]["templates"][1]

    def test_only_annotated_takes_annotated_templates(self):
        """--only-annotated: only templates with "true" (or a workflow-wide "true")."""
        self._annotate(2, "true")
        config = config_from_mapping({"selection": {"only_annotated": True}})
        assert [n.status for n in transform(self.workflow, config).nodes] == [
            "not-selected",
            "not-selected",
            "transformed",
        ]
        self.workflow["metadata"]["annotations"]["elyra-sidecar/inject"] = "true"
        self._annotate(0, "false")
        assert [n.status for n in transform(self.workflow, config).nodes] == [
            "opted-out",
            "transformed",
            "transformed",
        ]

    def test_pod_metadata_annotation_selects_all(self):
        """spec.podMetadata annotations count as workflow-wide opt-in."""
        self.workflow["spec"]["podMetadata"] = {"annotations": {"elyra-sidecar/inject": "true"}}
        config = config_from_mapping({"selection": {"only_annotated": True}})
        assert all(n.status == "transformed" for n in transform(self.workflow, config).nodes)

    def test_unreadable_node_is_left_alone_or_strict_error(self):
        """An Elyra node whose script cannot be read: untouched with a warning; strict raises."""
        t = self.workflow["spec"]["templates"][0]
        t["container"]["args"][0] = t["container"]["args"][0].replace("--file '", "--file '\"")[:-3]
        result = transform(self.workflow)
        assert result.nodes[0].status == "unreadable" and "left untouched" in result.nodes[0].warnings[0]
        assert result.workflow["spec"]["templates"][0] == t
        with pytest.raises(NodeParseError):
            transform(self.workflow, config_from_mapping({"strict": True}))


class TestLineage:
    def test_inputs_come_from_the_nearest_producing_ancestor(self):
        """Report's inputs are wired to Train's and Load data's artifacts, outside the run dir."""
        workflow = load_fixture(FIXTURES / "elyra-4.0.0-three-node.yaml")
        result = transform(workflow, config_from_mapping({"lineage": {"enabled": True}}))
        templates = _templates(result.workflow)
        inputs = templates["run-a-file-3"]["inputs"]["artifacts"]
        assert {a["path"] for a in inputs} == {
            "/elyra-sidecar/inputs/run-a-file-2/model.pkl",
            "/elyra-sidecar/inputs/run-a-file-2/metrics",
            "/elyra-sidecar/inputs/run-a-file/data.csv",
        }
        task = next(t for t in templates["three-node"]["dag"]["tasks"] if t["name"] == "run-a-file-3")
        froms = {a["from"] for a in task["arguments"]["artifacts"]}
        assert froms == {
            "{{tasks.run-a-file-2.outputs.artifacts.model-pkl}}",
            "{{tasks.run-a-file-2.outputs.artifacts.metrics}}",
            "{{tasks.run-a-file.outputs.artifacts.data-csv}}",
        }
        assert all(a["optional"] for a in inputs)
        # The input workflow's DAG is untouched.
        assert "artifacts" not in str(workflow["spec"]["templates"][3])


class TestSchemas:
    @pytest.mark.parametrize("schema", SCHEMA_FILES, ids=lambda p: p.stem)
    @pytest.mark.parametrize("path", ARGO_FIXTURES, ids=lambda p: p.stem)
    def test_output_validates_strictly(self, schema, path):
        """Every output validates against each Argo schema, with unknown keys rejected."""
        for config in (Config(), config_from_mapping({"lineage": {"enabled": True}})):
            assert schema_errors(transform(load_fixture(path), config).workflow, schema) == []

    def test_strict_validation_catches_a_misspelt_key(self):
        """The oracle can fail: `mirrorVolumeMount` is rejected."""
        workflow = transform(load_fixture(FIXTURES / "elyra-4.0.0-three-node.yaml")).workflow
        workflow["spec"]["templates"][0]["sidecars"][0]["mirrorVolumeMount"] = True
        assert any("mirrorVolumeMount" in e for e in schema_errors(workflow, SCHEMA_FILES[0]))


class TestIndependence:
    def test_no_two_templates_share_an_object(self):
        """Added objects are never shared between templates (no YAML aliases, no action at a distance)."""
        result = transform(load_fixture(FIXTURES / "elyra-4.0.0-three-node.yaml"))
        sidecars = [t["sidecars"][0] for t in result.workflow["spec"]["templates"] if "sidecars" in t]
        assert sidecars[0]["resources"] is not sidecars[1]["resources"]
        assert sidecars[0]["securityContext"] is not Config().sidecar.security_context
        assert "&id" not in dump_yaml(result.workflow)


def _argo_env(workflow: dict[str, Any], template: str, run_values: dict[str, str]) -> dict[str, str]:
    """The env values main would get: Argo substitutes {{workflow.parameters.x}} with the run's value
    (KFP's Create-run form) or the workflow's default."""
    values = {
        p["name"]: str(p.get("value", ""))
        for p in workflow["spec"].get("arguments", {}).get("parameters", [])
    }
    values.update(run_values)
    env = {}
    for entry in _templates(workflow)[template]["container"].get("env", []):
        if "value" in entry:
            value = str(entry["value"])
            for name, v in values.items():
                value = value.replace(f"{{{{workflow.parameters.{name}}}}}", v)
            env[entry["name"]] = value
    return env


PROMOTE_ALL = config_from_mapping({"parameters": {"promote_env": ["all"]}})


class TestPromotion:
    @pytest.mark.parametrize("path", ARGO_FIXTURES, ids=lambda p: p.stem)
    def test_every_fixture_validates_and_substitution_reaches_main(self, path):
        """--promote-env all: schema-valid; a changed run value is what main gets; defaults unchanged."""
        workflow = load_fixture(path)
        out = transform(workflow, PROMOTE_ALL).workflow
        for schema in SCHEMA_FILES:
            assert schema_errors(out, schema) == []
        reference = transform(workflow).workflow  # the same transform without promotion
        for name, template in _templates(out).items():
            if "container" not in template:
                continue
            # With the run's defaults, main gets exactly the values it gets without promotion.
            assert _argo_env(out, name, {}) == _argo_env(reference, name, {})
            promoted = [
                e["name"]
                for e in template["container"].get("env", [])
                if "workflow.parameters" in str(e.get("value"))
            ]
            for env_name in promoted:
                param = template["container"]["env"][
                    [e["name"] for e in template["container"]["env"]].index(env_name)
                ]["value"]
                param = param.removeprefix("{{workflow.parameters.").removesuffix("}}")
                assert _argo_env(out, name, {param: "changed"})[env_name] == "changed"

    def test_what_is_promoted_and_what_never_is(self):
        """User env is promoted; secret-backed, ELYRA_*/AWS_* and Elyra's parameters are not."""
        workflow = load_fixture(FIXTURES / "elyra-4.0.0-three-node-cos-secret.yaml")
        out = transform(workflow, PROMOTE_ALL).workflow
        params = [p["name"] for p in out["spec"]["arguments"]["parameters"]]
        assert params == ["learning_rate", "epochs", "report_title", "publish", "DATASET_URL"]
        env = {e["name"]: e for e in _templates(out)["run-a-file-2"]["container"]["env"]}
        assert "secretKeyRef" in env["DB_PASSWORD"]["valueFrom"]
        assert env["ELYRA_RUNTIME_ENV"] == {"name": "ELYRA_RUNTIME_ENV", "value": "kfp"}
        # Elyra's positional "$N" wiring is untouched.
        assert (
            _templates(out)["run-a-file"]["container"]["args"]
            == _templates(workflow)["run-a-file"]["container"]["args"]
        )

    def test_pipeline_spec_annotation_stays_consistent(self):
        """The SDK's pipeline_spec inputs list the promoted parameter with its default."""
        out = transform(load_fixture(FIXTURES / "elyra-4.0.0-three-node.yaml"), PROMOTE_ALL).workflow
        spec = json.loads(out["metadata"]["annotations"]["pipelines.kubeflow.org/pipeline_spec"])
        assert {
            "default": "https://example.com/data.csv",
            "name": "DATASET_URL",
            "optional": True,
            "type": "String",
        } in spec["inputs"]
        assert [i["name"] for i in spec["inputs"]][:4] == [
            "learning_rate",
            "epochs",
            "report_title",
            "publish",
        ]

    def test_differing_values_get_one_parameter_per_node(self):
        """The same variable with different values on two nodes never collapses into one value."""
        workflow = load_fixture(FIXTURES / "elyra-4.0.0-three-node.yaml")
        workflow["spec"]["templates"][1]["container"]["env"].insert(
            0, {"name": "DATASET_URL", "value": "other"}
        )
        out = transform(workflow, PROMOTE_ALL).workflow
        params = {p["name"]: p["value"] for p in out["spec"]["arguments"]["parameters"]}
        assert params["DATASET_URL-run-a-file"] == "https://example.com/data.csv"
        assert params["DATASET_URL-run-a-file-2"] == "other"
        assert _argo_env(out, "run-a-file", {})["DATASET_URL"] == "https://example.com/data.csv"
        assert _argo_env(out, "run-a-file-2", {})["DATASET_URL"] == "other"

    def test_name_clash_with_an_existing_parameter(self):
        """An env variable named like an Elyra parameter becomes `<name>-env`; the parameter is kept."""
        workflow = load_fixture(FIXTURES / "elyra-4.0.0-three-node.yaml")
        workflow["spec"]["templates"][0]["container"]["env"].insert(0, {"name": "epochs", "value": "99"})
        out = transform(workflow, PROMOTE_ALL).workflow
        params = {p["name"]: p["value"] for p in out["spec"]["arguments"]["parameters"]}
        assert params["epochs"] == "3" and params["epochs-env"] == "99"
        assert _argo_env(out, "run-a-file", {})["epochs"] == "99"

    def test_only_named_variables_and_unknown_names_warn(self):
        """--promote-env NAME promotes just that; a name no node has is a warning."""
        config = config_from_mapping({"parameters": {"promote_env": ["DATASET_URL", "NOPE"]}})
        result = transform(load_fixture(FIXTURES / "elyra-3.13.0-three-node.yaml"), config)
        params = [p["name"] for p in result.workflow["spec"]["arguments"].get("parameters", [])]
        assert params == ["DATASET_URL"]
        assert any("NOPE" in w for w in result.warnings)

    def test_unpromoted_and_unselected_nodes_untouched(self):
        """A node opted out keeps its literal env even when its variable is promoted elsewhere."""
        workflow = load_fixture(FIXTURES / "elyra-4.0.0-three-node.yaml")
        workflow["spec"]["templates"][0]["metadata"]["annotations"]["elyra-sidecar/inject"] = "false"
        out = transform(workflow, PROMOTE_ALL).workflow
        assert out["spec"]["templates"][0] is workflow["spec"]["templates"][0]
        assert "arguments" in out["spec"] and [p["name"] for p in out["spec"]["arguments"]["parameters"]] == [
            "learning_rate",
            "epochs",
            "report_title",
            "publish",
        ]


def _live_env(template):
    return [e["name"] for e in template["container"]["env"] if e["name"].startswith("ELYRA_SIDECAR_LIVE_")]


class TestLiveMode:
    @pytest.mark.parametrize(
        ("fixture", "live"),
        [
            ("elyra-3.15.0-three-node.yaml", False),
            ("elyra-4.0.0-three-node.yaml", True),
            ("elyra-4.0.0-three-node-crio.yaml", True),
            ("elyra-2.2.4-three-node.yaml", False),
        ],
    )
    def test_auto_mode_follows_the_elyra_version(self, fixture, live):
        """auto: the live copy for Elyra >= 4.0 Python nodes only; the hook (main's log) for every one."""
        out = transform(load_fixture(FIXTURES / fixture)).workflow
        python_node = next(t for t in out["spec"]["templates"] if "sidecars" in t)
        assert "initContainers" in python_node
        assert ("ELYRA_SIDECAR_LIVE_LOG" in _live_env(python_node)) is live
        assert "ELYRA_SIDECAR_LIVE_MAIN" in _live_env(python_node)

    def test_on_forces_it_and_off_disables_it(self):
        """mode on: the live copy also for 3.15; mode off and main_log off: no hook at all."""
        on = transform(
            load_fixture(FIXTURES / "elyra-3.15.0-three-node.yaml"),
            config_from_mapping({"live": {"mode": "on"}}),
        )
        assert "ELYRA_SIDECAR_LIVE_LOG" in _live_env(_templates(on.workflow)["run-a-file"])
        off = transform(
            load_fixture(FIXTURES / "elyra-4.0.0-three-node.yaml"),
            config_from_mapping({"live": {"mode": "off", "main_log": False}}),
        )
        assert all("initContainers" not in t for t in off.workflow["spec"]["templates"])

    @pytest.mark.parametrize("fixture", ["elyra-2.2.4-three-node.yaml", "elyra-3.15.0-three-node.yaml"])
    def test_main_log_off_leaves_2x_3x_as_before(self, fixture):
        """live.main_log false: Elyra 2.x-3.x nodes get no hook, exactly as before the switch existed."""
        out = transform(load_fixture(FIXTURES / fixture), config_from_mapping({"live": {"main_log": False}}))
        assert all("initContainers" not in t for t in out.workflow["spec"]["templates"])
        assert all(not _live_env(t) for t in out.workflow["spec"]["templates"] if "container" in t)

    def test_main_log_off_keeps_the_live_copy_on_4x(self):
        """live.main_log false on Elyra 4.0: the live copy as before, no main's-log entry."""
        out = transform(
            load_fixture(FIXTURES / "elyra-4.0.0-three-node.yaml"),
            config_from_mapping({"live": {"main_log": False}}),
        )
        node = _templates(out.workflow)["run-a-file"]
        assert _live_env(node) == [
            "ELYRA_SIDECAR_LIVE_IMAGE_PYTHONPATH",
            "ELYRA_SIDECAR_LIVE_SCRIPT",
            "ELYRA_SIDECAR_LIVE_LOG",
        ]

    def test_main_log_only_on_3x_the_sidecar_follows_the_real_log(self):
        """3.15, the hook for main's log only: the sidecar and the artifact keep the bootstrapper's log."""
        node = _templates(transform(load_fixture(FIXTURES / "elyra-3.15.0-three-node.yaml")).workflow)[
            "run-a-file"
        ]
        assert node["sidecars"][0]["args"][:2] == ["--dir=/elyra-sidecar/work", "--file=load_data.log"]
        log = next(a for a in node["outputs"]["artifacts"] if a["name"] == "script-log")
        assert log["path"] == "/elyra-sidecar/work/load_data.log"

    def test_hook_directory_is_at_the_volume_root_on_313(self):
        """3.13 runs in jupyter-work-dir, which main creates: the hook lives at the volume's root instead."""
        node = _templates(transform(load_fixture(FIXTURES / "elyra-3.13.0-three-node.yaml")).workflow)[
            "run-a-file"
        ]
        init, recorder = node["initContainers"]
        assert init["args"] == ["--dest", "/elyra-sidecar/work/.elyra-sidecar-live"]
        assert recorder["name"] == "elyra-live-env"
        env = {e["name"]: e.get("value") for e in node["container"]["env"]}
        assert env["PYTHONPATH"] == "/elyra-sidecar/work/.elyra-sidecar-live"
        assert env["ELYRA_SIDECAR_LIVE_IMAGE_PYTHONPATH"] == (
            "/elyra-sidecar/work/.elyra-sidecar-live/image-pythonpath"
        )

    def test_crio_pythonpath_is_kept_after_ours(self):
        """CRI-O mode sets PYTHONPATH for --user-volume-path installs: kept, after the live directory."""
        out = transform(load_fixture(FIXTURES / "elyra-4.0.0-three-node-crio.yaml")).workflow
        env = {
            e["name"]: e["value"] for e in _templates(out)["run-a-file"]["container"]["env"] if "value" in e
        }
        assert (
            env["PYTHONPATH"]
            == "/elyra-sidecar/work/.elyra-sidecar-live:/opt/app-root/src/jupyter-work-dir/python3"
        )


class TestStepRegistry:
    def test_docs_step_table_lists_the_registry_in_order(self):
        """docs/how-it-works.md's step table names exactly the registered steps, in their order."""
        text = (ROOT / "docs" / "how-it-works.md").read_text()
        documented = re.findall(r"^\| `([a-z_]+)`", text, flags=re.MULTILINE)
        assert documented == [step.name for step in STEPS]

    def test_node_steps_come_before_workflow_steps(self):
        """The table's order is the run order: node steps on each node, then workflow steps once."""
        kinds = [isinstance(step, WorkflowStep) for step in STEPS]
        assert kinds == sorted(kinds)
        assert len({step.name for step in STEPS}) == len(STEPS)

    def test_every_change_is_typed_and_reads_as_its_text(self):
        """Each added entry carries a kind; the JSON report still holds the plain texts."""
        config = config_from_mapping({"lineage": {"enabled": True}, "parameters": {"promote_env": ["all"]}})
        result = transform(load_fixture(FIXTURES / "elyra-4.0.0-three-node.yaml"), config)
        kinds = {change.kind for node in result.nodes for change in node.added}
        assert kinds == set(get_args(ChangeKind))  # every kind the table counts is produced somewhere
        report = json.loads(json.dumps([asdict(n) for n in result.nodes]))
        assert report[0]["added"] == [str(change) for change in result.nodes[0].added]
        assert all(type(text) is str for node in report for text in node["added"])

    def test_a_disabled_step_does_not_run(self):
        """A step whose predicate is false for the config leaves no trace."""
        result = transform(
            load_fixture(FIXTURES / "elyra-4.0.0-three-node.yaml"), config_from_mapping({"unbuffered": False})
        )
        assert all(change.kind != "unbuffered" for node in result.nodes for change in node.added)


class TestReportTable:
    def test_added_column_counts_by_kind_not_by_wording(self):
        """The ADDED column counts typed changes; rewording a change's text does not change the table."""
        reworded = (
            Change("sidecar", "a log follower"),
            Change("output_artifact", "x"),
            Change("output_artifact", "y"),
            Change("input_artifact", "z"),
            Change("run_parameter", "p"),
            Change("unbuffered", "u"),
            Change("live_output", "l"),
            Change("note", "no sidecar: notebooks write no .log"),
        )
        assert _summary(reworded) == (
            "log sidecar, 2 output artifacts, 1 input artifact, live output, 1 run parameter, unbuffered"
        )
        assert _summary(()) == "-"


class _CountingNames(Names):
    """Names that count membership checks and stop the test once more than `budget` were made."""

    def __init__(self, budget: int) -> None:
        super().__init__()
        self.budget = budget
        self.checks = 0

    def __contains__(self, name: object) -> bool:
        self.checks += 1
        if self.checks > self.budget:
            raise AssertionError(f"more than {self.budget} membership checks: naming is not linear")
        return super().__contains__(name)


class TestNaming:
    @pytest.mark.skipif(
        compiled(Names),
        reason="counts membership checks by subclassing Names: the pure-Python run checks it",
    )
    def test_many_names_from_one_base_cost_linear_checks(self):
        """15,000 names from one base (outputs that all sanitise alike) take O(n) checks, not O(n^2)."""
        n = 15_000
        names = _CountingNames(budget=3 * n)  # quadratic naming would need ~n^2/2 = 112 million
        got = [artifact_name(f"out{'.' * (i % 3 + 1)}csv", names) for i in range(n)]
        assert got[:3] == ["out-csv", "out-csv-2", "out-csv-3"] and got[-1] == f"out-csv-{n}"
        assert len(set(got)) == n and names.checks <= 3 * n

    def test_names_skip_the_ones_already_taken(self):
        """Existing names (`x-2`) are skipped; the result is what the first-free rule gives."""
        names = Names({"x", "x-2", "x-4"})
        assert [names.unique("x") for _ in range(3)] == ["x-3", "x-5", "x-6"]

    def test_fifteen_thousand_outputs_with_one_name_give_unique_artifacts(self):
        """A node whose 15,000 `--outputs` all sanitise to one name gets 15,000 distinct, valid names."""
        workflow = load_fixture(FIXTURES / "elyra-4.0.0-three-node.yaml")
        t = workflow["spec"]["templates"][0]
        seps = [""]
        while len(seps) < 15_001:  # "", ".", ",", ..., "..", ".,", ...: every one sanitises to "-"
            seps += [sep + c for sep in seps[-(8 ** (len(seps[-1]))) :] for c in ".,~+:@%^"]
        outputs = [f"o{sep}x" for sep in seps[1:15_001]]
        t["container"]["args"][0] = t["container"]["args"][0].replace(
            "--outputs 'data.csv'", f"--outputs '{';'.join(outputs)}'"
        )
        artifacts = transform(workflow).workflow["spec"]["templates"][0]["outputs"]["artifacts"]
        names = [a["name"] for a in artifacts]
        assert len(names) == len(set(names)) == 2 + 1 + 15_000
        assert names[3:6] == ["o-x", "o-x-2", "o-x-3"]
        assert all(re.fullmatch(r"[-a-zA-Z0-9_]+", name) for name in names)


class TestSecretLookingNames:
    def _workflow(self) -> dict[str, Any]:
        workflow = load_fixture(FIXTURES / "elyra-4.0.0-three-node.yaml")
        workflow["spec"]["templates"][0]["container"]["env"] += [
            {"name": "DB_PASSWORD", "value": "hunter2"},
            {"name": "API_TOKEN", "value": "t0k3n"},
            {"name": "ssh_key", "value": "k"},
            {"name": "AWS_CREDENTIALS_FILE", "value": "/x"},
        ]
        return workflow

    def test_all_skips_secret_looking_names_with_a_warning(self):
        """`--promote-env all`: DB_PASSWORD=hunter2 never reaches the Create-run form; each skip is said."""
        result = transform(self._workflow(), PROMOTE_ALL)
        params = {p["name"]: p["value"] for p in result.workflow["spec"]["arguments"]["parameters"]}
        assert "DATASET_URL" in params
        assert not {"DB_PASSWORD", "API_TOKEN", "ssh_key"} & set(params)
        assert "hunter2" not in json.dumps(result.workflow["spec"]["arguments"])
        assert (
            "hunter2"
            not in result.workflow["metadata"]["annotations"]["pipelines.kubeflow.org/pipeline_spec"]
        )
        skipped = [w for w in result.warnings if "looks like a secret" in w]
        assert [w.split(":")[1].split()[0] for w in skipped] == ["API_TOKEN", "DB_PASSWORD", "ssh_key"]

    def test_a_secret_looking_name_named_explicitly_is_promoted(self):
        """Naming it is the way to promote it anyway."""
        config = config_from_mapping({"parameters": {"promote_env": ["all", "API_TOKEN"]}})
        result = transform(self._workflow(), config)
        params = {p["name"]: p["value"] for p in result.workflow["spec"]["arguments"]["parameters"]}
        assert params["API_TOKEN"] == "t0k3n" and "DB_PASSWORD" not in params  # noqa: S105 - test data


def _pod_problems(template: dict[str, Any]) -> list[str]:
    """What would make the step's Pod invalid: duplicate container names, mount paths or env names."""
    problems = []
    containers = [template["container"], *template.get("initContainers", []), *template.get("sidecars", [])]
    names = ["main", "wait", "init"] + [c["name"] for c in containers[1:]]
    if len(names) != len(set(names)):
        problems.append(f"container names {names}")
    for c in containers:
        paths = [m["mountPath"] for m in c.get("volumeMounts", [])]
        env = [e["name"] for e in c.get("env", [])]
        if len(paths) != len(set(paths)) or len(env) != len(set(env)):
            problems.append(f"{c.get('name', 'main')}: mounts {paths}, env {env}")
    return problems


class TestValidPods:
    def _check(self, workflow: dict[str, Any], config: Config | None = None) -> tuple[dict[str, Any], Any]:
        result = transform(workflow, config)
        for schema in SCHEMA_FILES:
            assert schema_errors(result.workflow, schema) == []
        for template in result.workflow["spec"]["templates"]:
            if "container" in template:
                assert _pod_problems(template) == []
        return _templates(result.workflow), result.nodes[0]

    def setup_method(self):
        self.workflow = load_fixture(FIXTURES / "elyra-4.0.0-three-node.yaml")
        self.node = self.workflow["spec"]["templates"][0]

    def test_an_existing_init_container_of_our_name_is_kept_alone(self):
        """A second `elyra-live-setup` would be an invalid Pod: live output is skipped with a warning."""
        self.node["initContainers"] = [{"name": "elyra-live-setup", "image": "theirs"}]
        templates, report = self._check(self.workflow)
        assert templates["run-a-file"]["initContainers"] == [{"name": "elyra-live-setup", "image": "theirs"}]
        assert "no live output: a container named 'elyra-live-setup' already exists" in report.warnings
        assert "ELYRA_SIDECAR_LIVE_LOG" not in str(templates["run-a-file"]["container"]["env"])

    def test_sidecar_name_taken_by_an_init_container(self):
        """A sidecar named like one of the template's init containers is not added: a warning."""
        self.workflow["spec"]["templates"][2]["initContainers"] = [{"name": "elyra-log", "image": "theirs"}]
        templates, _ = self._check(self.workflow)
        report = next(n for n in transform(self.workflow).nodes if n.template == "run-a-file-3")
        assert "sidecars" not in templates["run-a-file-3"]
        assert "a container named 'elyra-log' already exists; not adding the sidecar" in report.warnings

    def test_a_volume_already_at_the_work_path_gets_no_second_mount(self):
        """main mounting something at /elyra-sidecar/work already: no work dir added, a warning."""
        self.node["volumes"] = [{"name": "data", "emptyDir": {}}]
        self.node["container"]["volumeMounts"] = [{"name": "data", "mountPath": "/elyra-sidecar/work/"}]
        templates, report = self._check(self.workflow)
        assert templates["run-a-file"]["container"]["volumeMounts"] == self.node["container"]["volumeMounts"]
        assert "volume 'data' is already mounted at /elyra-sidecar/work; not adding the work dir" in (
            report.warnings
        )

    def test_live_env_already_set_is_not_duplicated(self):
        """main already has ELYRA_SIDECAR_LIVE_LOG: no second entry, live output skipped with a warning."""
        self.node["container"]["env"].append({"name": "ELYRA_SIDECAR_LIVE_LOG", "value": "/x"})
        templates, report = self._check(self.workflow)
        assert "no live output: main already sets ELYRA_SIDECAR_LIVE_*" in report.warnings
        assert "initContainers" not in templates["run-a-file"]

    def test_mount_copies_keep_subpathexpr_and_read_only_skips_live(self):
        """The sidecar's copy of main's mount keeps subPathExpr; a read-only work volume gets no live hook."""
        workflow = load_fixture(FIXTURES / "elyra-3.13.0-three-node.yaml")
        node = workflow["spec"]["templates"][0]
        node["container"]["args"][0] = node["container"]["args"][0].replace(
            "mkdir -p ./jupyter-work-dir && cd ./jupyter-work-dir",
            "mkdir -p /opt/app-root/src/jupyter-work-dir && cd /opt/app-root/src/jupyter-work-dir",
        )
        node["volumes"] = [{"name": "workspace", "emptyDir": {}}]
        mount = {"name": "workspace", "mountPath": "/opt/app-root/src", "subPathExpr": "$(POD_NAME)"}
        node["container"]["volumeMounts"] = [mount]
        templates, _ = self._check(workflow)
        (sidecar,) = templates[node["name"]]["sidecars"]
        assert sidecar["volumeMounts"] == [{**mount, "readOnly": True}]
        node["container"]["volumeMounts"] = [{**mount, "readOnly": True}]
        templates, report = self._check(workflow, config_from_mapping({"live": {"mode": "on"}}))
        assert "no live output: the work directory's volume is mounted read-only" in report.warnings

    def test_outputs_dot_is_not_the_whole_work_dir(self):
        """`--outputs .` (or `./`, `a/..`) would archive the bootstrapper's whole directory: a warning."""
        self.node["container"]["args"][0] = self.node["container"]["args"][0].replace(
            "--outputs 'data.csv'", "--outputs '.;./;a/..;data.csv'"
        )
        templates, report = self._check(self.workflow)
        paths = [a["path"] for a in templates["run-a-file"]["outputs"]["artifacts"]]
        assert "/elyra-sidecar/work" not in paths and "/elyra-sidecar/work/data.csv" in paths
        assert sum("is the working directory itself" in w for w in report.warnings) == 3

    def test_node_kind_by_substring_like_the_bootstrapper(self):
        """`lib.pytorch/fit.r` is a Python node writing `fit.r.log`; `Report.R` is no node it runs."""
        self.node["container"]["args"][0] = self.node["container"]["args"][0].replace(
            "three-node/load_data.py", "lib.pytorch/fit.r"
        )
        templates, report = self._check(copy.deepcopy(self.workflow))
        assert (report.kind, report.status) == ("python", "transformed")
        assert "--file=fit.r.log" in templates["run-a-file"]["sidecars"][0]["args"]
        self.node["container"]["args"][0] = self.node["container"]["args"][0].replace(
            "lib.pytorch/fit.r", "Report.R"
        )
        result = transform(self.workflow)
        assert result.nodes[0].status == "unreadable"
        assert "looks for .ipynb, .py or .r" in result.nodes[0].warnings[0]
