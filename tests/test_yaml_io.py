"""The bounded YAML loader and the fast writer: PyYAML's data and text, within stated limits (issue 10)."""

from __future__ import annotations

import datetime as dt

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from elyra_sidecar.transformer._io import _Dumper, dump_yaml
from elyra_sidecar.transformer._yaml import (
    MAX_ALIAS_RATIO,
    MAX_DEPTH,
    MAX_EXPANDED_NODES,
    YamlLimitError,
    load_documents,
)
from tests.helpers import FIXTURES, GOLDEN, ROOT

_FILES = sorted(
    [*FIXTURES.glob("*.yaml"), *GOLDEN.rglob("*.yaml"), *(ROOT / "examples").rglob("*.yaml")],
)


def pyyaml(text: str) -> list[object]:
    return list(yaml.load_all(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)))


_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**30), 10**30),
    st.floats(allow_nan=False),
    st.text(max_size=12),
    st.sampled_from(
        ["yes", "No", "on", "~", "null", "0x1F", "0o17", "1_000", "1:30", "1e3", "=", "<<", ".inf"]
    ),
    st.dates(),
    st.datetimes(timezones=st.just(dt.timezone.utc)),
)
_KEYS = st.one_of(st.text(max_size=8), st.integers(-5, 5), st.sampled_from(["y", "n", "~", "1.0"]))
_DATA = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_KEYS, inner, max_size=4),
    max_leaves=30,
)


class TestSameDataAsPyYAML:
    @pytest.mark.parametrize("path", _FILES, ids=lambda p: p.name)
    def test_every_fixture_and_golden_file(self, path):
        """Every stored Workflow reads exactly as with yaml.safe_load_all."""
        text = path.read_text()
        assert load_documents(text) == pyyaml(text)

    @settings(max_examples=200, derandomize=True, database=None, deadline=None)
    @given(data=_DATA, flow=st.booleans())
    def test_generated_data(self, data, flow):
        """Any plain data written by yaml.safe_dump, block or flow style, reads back the same both ways."""
        text = yaml.safe_dump(data, default_flow_style=flow, allow_unicode=True)
        assert load_documents(text) == pyyaml(text)

    @pytest.mark.parametrize(
        "text",
        [
            "a: &a {x: 1, y: 2}\nb: {<<: *a, y: 3, z: 4}\n",
            "a: &a {x: 1}\nb: &b {x: 2, w: 0}\nc: {<<: [*a, *b], v: 5}\n",
            "a: &a {x: 1}\nb: &b {<<: *a, y: 2}\nc:\n  <<: *b\n  x: 9\n",
            "a: &s hello\nb: [*s, *s]\n",
            "=: 1\n",
            "! 12\n",
            "a: !!str 12\nb: !!int '7'\nc: !!float '1'\nd: !!binary aGVsbG8=\ne: !!null ''\n",
            "--- 1\n--- [2]\n...\n",
            "a: 0b101\nb: 0x_1F\nc: 1:30:00\nd: -.INF\ne: 2001-12-14t21:59:43.10-05:00\n",
        ],
    )
    def test_anchors_merges_tags_and_streams(self, text):
        """Anchors, merge keys (in PyYAML's order), explicit scalar tags and several documents."""
        assert load_documents(text) == pyyaml(text)

    def test_aliases_share_one_object(self):
        """An alias gives the anchored object itself, as PyYAML does (no copy)."""
        data = load_documents("a: &a [1]\nb: *a\n")[0]
        assert data["a"] is data["b"]


def pyyaml_dump(data: object) -> str:
    """What dump_yaml wrote before its fast path: yaml.dump with the same dumper and options."""
    return str(
        yaml.dump(
            data, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True, width=100
        )
    )


_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=30) | st.sampled_from(
    ["a\nb", "multi\nline\n", " lead", "trail ", "- x", "a: b", "#c", "'q'", '"d"', "\t", "x" * 150]
)
_WRITTEN = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | _TEXT | _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_KEYS | _TEXT, inner, max_size=4),
    max_leaves=40,
)


class TestSameTextAsPyYAML:
    @pytest.mark.parametrize("path", _FILES, ids=lambda p: p.name)
    def test_every_fixture_and_golden_file(self, path):
        """dump_yaml writes every stored Workflow byte for byte as yaml.dump does."""
        for document in pyyaml(path.read_text()):
            assert dump_yaml(document) == pyyaml_dump(document)

    @settings(max_examples=300, derandomize=True, database=None, deadline=None)
    @given(data=_WRITTEN)
    def test_generated_data(self, data):
        """Any plain data (odd strings, floats, unicode; dates by PyYAML's path) is written identically."""
        assert dump_yaml(data) == pyyaml_dump(data)


class TestRefusals:
    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("a: 1\nb: 2\na: 3\n", "line 3, column 1: duplicate key 'a' (first at line 1)"),
            ("{x: 1, x: 2}", "duplicate key 'x'"),
            ("a: &a [*a]\n", "alias *a refers to itself"),
            ("a: *nope\n", "alias *nope names no anchor before it"),
            ("a: &x 1\nb: &x 2\n", "anchor &x is defined twice"),
            ("a: !!set {x}\n", "the tag 'tag:yaml.org,2002:set' is not supported"),
            ("a: !!python/name:os.system x\n", "is not supported"),
            ("a: <<\n", "`<<` is a merge key; it cannot be a value"),
            ("a: {<<: 1}\n", "`<<` takes a mapping or a list of mappings"),
            ("? [a]\n: 1\n", "a mapping key must be a scalar"),
            ("a: " + "1" * 4301 + "\n", "line 1, column 4: cannot read '1111"),
            ("a: 2001-02-30\n", "cannot read '2001-02-30'"),
        ],
    )
    def test_refused_with_the_line(self, text, message):
        """Each refusal says what and where."""
        with pytest.raises(
            YamlLimitError, match=message.replace("*", r"\*").replace("(", r"\(").replace(")", r"\)")
        ):
            load_documents(text)

    def test_depth_limit(self):
        """MAX_DEPTH nested collections are read; one more is refused, aliases included."""
        assert load_documents("[" * MAX_DEPTH + "]" * MAX_DEPTH)
        with pytest.raises(YamlLimitError, match=f"nested more than {MAX_DEPTH} levels deep"):
            load_documents("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1))
        half = MAX_DEPTH // 2 + 1
        with pytest.raises(YamlLimitError, match="nested more than"):
            load_documents("a: &a " + "[" * half + "]" * half + "\nb: " + "[" * half + "*a" + "]" * half)

    def test_expansion_limit(self):
        """Aliases may expand a document up to the limit, not past it."""
        width = 10

        def levels(count: int) -> str:
            lines = [f"l0: &l0 [{', '.join(['x'] * width)}]"]
            lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]" for i in range(1, count)]
            return "\n".join(lines) + "\n"

        assert width**4 < MAX_EXPANDED_NODES < width**5 * MAX_ALIAS_RATIO
        assert load_documents(levels(4))
        with pytest.raises(YamlLimitError, match="aliases expand"):
            load_documents(levels(5))
