"""Shared test helpers: where the shared fixtures live, strict Argo schema validation."""

from __future__ import annotations

import ast
import base64
import copy
import functools
import json
import os
import sys
import types
from pathlib import Path
from typing import Any

import jsonpatch
import jsonschema
import yaml

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("ELYRA_SIDECAR_SHARED", ROOT.parent / "shared"))
FIXTURES = SHARED / "fixtures" / "elyra"
SCHEMAS = SHARED / "schemas"
GOLDEN = Path(__file__).resolve().parent / "golden"

ARGO_FIXTURES = sorted(p for p in FIXTURES.glob("*.yaml") if "kfp-v2-ir" not in p.name)
ELYRA_FIXTURES = [p for p in ARGO_FIXTURES if p.name.startswith("elyra-")]
SCHEMA_FILES = sorted(SCHEMAS.glob("argo-workflows-*.schema.json"))


def load_fixture(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict)
    return data


def _close(node: Any) -> None:
    """additionalProperties: false on every object definition with properties (the published schemas
    leave it open, so a misspelt key would pass: see shared/schemas/README.md)."""
    if isinstance(node, dict):
        if node.get("type") == "object" and "properties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        for value in node.values():
            _close(value)
    elif isinstance(node, list):
        for value in node:
            _close(value)


def _widen(definitions: dict[str, Any]) -> None:
    """Argo's Go types take numbers where the schema says string (README: known false positives)."""
    for name in (
        "io.k8s.apimachinery.pkg.util.intstr.IntOrString",
        "io.k8s.apimachinery.pkg.api.resource.Quantity",
    ):
        if name in definitions:
            definitions[name] = {"type": ["string", "integer", "number"]}


@functools.cache
def validator(schema_file: Path, *, strict: bool = True) -> jsonschema.Draft7Validator:
    schema = json.loads(schema_file.read_text())
    definitions = copy.deepcopy(schema["definitions"])
    _widen(definitions)
    if strict:
        _close(definitions)
    return jsonschema.Draft7Validator(
        {"$ref": "#/definitions/io.argoproj.workflow.v1alpha1.Workflow", "definitions": definitions}
    )


def schema_errors(workflow: dict[str, Any], schema_file: Path, *, strict: bool = True) -> list[str]:
    errors = validator(schema_file, strict=strict).iter_errors(workflow)
    return [f"{'/'.join(str(p) for p in e.absolute_path)}: {e.message}" for e in errors]


def patched(obj: Any, response: dict[str, Any]) -> Any:
    """`obj` with an AdmissionReview response's JSON Patch applied (as the API server does), if it has one."""
    if "patch" not in response:
        return obj
    assert response["patchType"] == "JSONPatch"
    return jsonpatch.apply_patch(obj, json.loads(base64.b64decode(response["patch"])))


def compiled(module: Any) -> bool:
    """Whether `module` (or the module of a class given) is the mypyc-compiled build (setup.py): a C
    extension, whose calls to functions of its own module are bound when compiled, so replacing one with
    monkeypatch does not reach them, and whose set subclasses check membership in C."""
    if not isinstance(module, types.ModuleType):
        module = sys.modules[module.__module__]
    return str(module.__file__).endswith(".so")


def compiled_modules() -> list[str]:
    """The module names setup.py compiles with mypyc (its COMPILED list, read without running it)."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    (paths,) = [
        ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["COMPILED"]
    ]
    return [p.removeprefix("src/").removesuffix(".py").replace("/", ".") for p in paths]
