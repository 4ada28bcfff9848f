"""Structural mutations of the real fixtures through the real `transform` entry point, in process (issue 10).

Fields anywhere in a fixture are set to null, a string, a number, a list or a mapping, a few at a time, and
the result is run through `cli.main` with the options that reach the most code, and through the library's
`transform()` alone (what the README offers). Whatever the input, the command answers: exit 0 with the
Workflow written and every main container's command and args as they were, or exit 1 with one `Error:`
line and nothing written; the library returns a result or raises WorkflowError/NodeParseError with a
one-line message, never a TypeError or AttributeError. Derandomized and bounded, so CI is repeatable.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from elyra_sidecar.transformer import (
    NodeParseError,
    TransformResult,
    WorkflowError,
    cli,
    config_from_mapping,
    transform,
)
from tests.helpers import ARGO_FIXTURES, load_fixture

_FIXTURES = [load_fixture(p) for p in ARGO_FIXTURES]


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*prefix, index))
    return found


_PATHS = [_paths(f) for f in _FIXTURES]
_VALUES = st.sampled_from([None, "x", "", 0, 7, -1, 1.5, True, [], [None], ["x"], [1], {}, {"x": None}])
_OPTIONS = st.sampled_from(
    [
        [],
        ["--promote-env", "all"],
        ["--only-annotated"],
        ["--strict"],
        ["--config", "LINEAGE"],
        ["--report", "json"],
    ]
)


def _set(document: Any, path: tuple[Any, ...], value: Any) -> None:
    target = document
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value


@st.composite
def mutated(draw: st.DrawFn) -> Any:
    """A fixture with one to three fields replaced."""
    index = draw(st.integers(0, len(_FIXTURES) - 1))
    document = yaml.safe_load(yaml.safe_dump(_FIXTURES[index]))  # a private deep copy
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(document) or _PATHS[index]
        path = draw(st.sampled_from(paths))
        try:
            _set(document, path, draw(_VALUES))
        except (KeyError, IndexError, TypeError):  # an earlier mutation removed the path
            continue
    return document


def _commands(document: Any) -> dict[int, tuple[Any, Any]]:
    """Each container template's command and args, by template index."""
    spec = document.get("spec") if isinstance(document, dict) else None
    templates = spec.get("templates") if isinstance(spec, dict) else None
    found = {}
    for index, template in enumerate(templates if isinstance(templates, list) else []):
        container = template.get("container") if isinstance(template, dict) else None
        if isinstance(container, dict):
            found[index] = (container.get("command"), container.get("args"))
    return found


class TestFuzzedWorkflows:
    @settings(
        max_examples=100,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(document=mutated(), options=_OPTIONS)
    def test_every_mutation_is_answered(self, capsys, document, options):
        """Exit 0 with main's command and args unchanged, or 1 with one Error line and nothing written."""
        with tempfile.TemporaryDirectory() as folder:
            src = Path(folder) / "in.yaml"
            src.write_text(yaml.safe_dump(document, sort_keys=False))
            out = Path(folder) / "out.yaml"
            config = Path(folder) / "config.yaml"
            config.write_text("lineage: {enabled: true}\nparameters: {promote_env: [all]}\n")
            args = [str(config) if o == "LINEAGE" else o for o in options]
            capsys.readouterr()
            code = cli.main([str(src), "-o", str(out), *args])
            stderr = capsys.readouterr().err
            assert code in (0, 1), stderr
            assert "Traceback" not in stderr
            if code == 1:
                lines = stderr.splitlines()
                assert len(lines) == 1 and lines[0].startswith("Error: "), stderr
                assert sorted(p.name for p in Path(folder).iterdir()) == ["config.yaml", "in.yaml"]
                return
            written = yaml.safe_load(out.read_bytes())
            assert _commands(written) == _commands(document)


_LIBRARY_CONFIGS = [
    config_from_mapping({}),
    config_from_mapping({"strict": True, "selection": {"only_annotated": True}}),
    config_from_mapping({"lineage": {"enabled": True}, "parameters": {"promote_env": ["all"]}}),
]


def _call(document: Any, config: Any) -> TransformResult | str:
    """`transform()`'s result, or the message of the error it raised (any other exception escapes)."""
    try:
        return transform(document, config)
    except (WorkflowError, NodeParseError) as exc:
        return str(exc)


class TestFuzzedLibraryCalls:
    @settings(max_examples=100, derandomize=True, deadline=None, database=None)
    @given(document=mutated(), config=st.sampled_from(_LIBRARY_CONFIGS))
    def test_transform_alone_answers_in_one_line(self, document, config):
        """`transform(workflow)` as the README shows it, with no CLI around it: a result with main's
        command and args as they were, or a WorkflowError/NodeParseError in one line, nothing else."""
        before = yaml.safe_dump(document)
        outcome = _call(document, config)
        if isinstance(outcome, TransformResult):
            assert _commands(outcome.workflow) == _commands(document)
        else:
            assert outcome and "\n" not in outcome
        assert yaml.safe_dump(document) == before  # the input is never mutated

    def test_empty_and_wrong_typed_env(self):
        """The two shapes the README's library call once crashed on: `env: null` reads as absent (the
        template is rewritten, and given back as it was where nothing changed), `env: "x"` is an error
        naming the place."""
        document = load_fixture(ARGO_FIXTURES[0])
        templates = document["spec"]["templates"]
        index = next(i for i, t in enumerate(templates) if "bootstrapper.py" in str(t.get("container")))
        templates[index]["container"]["env"] = None
        result = transform(document)
        assert result.changed
        templates[index]["container"]["env"] = "x"
        with pytest.raises(
            WorkflowError, match=rf"templates\[{index}\]\.container\.env: must be a list, got str"
        ):
            transform(document)
