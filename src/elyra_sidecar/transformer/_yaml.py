"""YAML in and out, bounded: the documents of a stream built from libyaml's events, without recursion.

PyYAML's safe loader composes a node graph recursively (in C: a 100,000-deep input crashes the process),
keeps the last of two equal keys silently, and shares aliased objects, so that a few kilobytes of
anchors become gigabytes once the Workflow is copied or written out. `load_documents` builds the same
Python data (the safe loader's resolver and scalar constructors, merge keys included) from the parser's
events with an explicit stack, and refuses, naming the line: nesting deeper than `MAX_DEPTH`, aliases that
expand the document past `MAX_EXPANDED_NODES` and `MAX_ALIAS_RATIO` times its own size, recursive
aliases, duplicate keys, integers too long for Python to read, and impossible dates. Skipping PyYAML's
node graph also makes it several times faster than `yaml.load` with the C loader.
"""

from __future__ import annotations

import functools
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.events import (
    AliasEvent,
    DocumentEndEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
    StreamStartEvent,
)
from yaml.nodes import ScalarNode
from yaml.resolver import Resolver

__all__ = [
    "MAX_ALIAS_RATIO",
    "MAX_DEPTH",
    "MAX_EXPANDED_NODES",
    "UnusualValueError",
    "YamlLimitError",
    "emit_document",
    "load_documents",
]

#: Deepest nesting of mappings and sequences (aliases expanded). Argo Workflows nest about 10 deep; the
#: limit keeps every later recursive walk (copy, dump) far from Python's recursion limit.
MAX_DEPTH = 100
#: Aliases may expand a document to this many nodes whatever its size...
MAX_EXPANDED_NODES = 100_000
#: ...and beyond that to this many times the nodes actually written in it.
MAX_ALIAS_RATIO = 10

# The event source: libyaml's parser when PyYAML was built with it, else PyYAML's own (same events).
_Events: Any = getattr(yaml, "CBaseLoader", yaml.BaseLoader)
_STR = "tag:yaml.org,2002:str"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_NULL = "tag:yaml.org,2002:null"
_BOOL = "tag:yaml.org,2002:bool"
_MERGE = "tag:yaml.org,2002:merge"
_VALUE = "tag:yaml.org,2002:value"
_IMPLICIT: dict[str, list[tuple[str, Any]]] = Resolver.yaml_implicit_resolvers
_WILDCARD = _IMPLICIT.get(None, [])  # type: ignore[call-overload]


class YamlLimitError(ValueError):
    """The YAML is well-formed but refused: the message says why and at which line."""


def _at(event: Any) -> str:
    mark = event.start_mark
    return f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "an unknown line"


def _resolve(value: str, implicit: tuple[bool, bool]) -> str:
    """The tag of an untagged scalar, exactly as PyYAML's safe resolver decides it."""
    return _resolve_plain(value) if implicit[0] else _STR


@functools.lru_cache(maxsize=4096)  # keys, names and small values repeat throughout a Workflow
def _resolve_plain(value: str) -> str:
    for tag, regexp in _IMPLICIT.get(value[:1], []) + _WILDCARD:
        if regexp.match(value):
            return str(tag)
    return _STR


class _Scalars(SafeConstructor):
    """PyYAML's safe constructors for scalars (int, float, timestamp, binary), called one node at a time."""


_SCALARS = _Scalars()
_CONSTRUCTORS: dict[str, Any] = dict(SafeConstructor.yaml_constructors)  # type: ignore[arg-type]


def _scalar(event: Any) -> Any:
    tag = event.tag
    value: str = event.value
    if tag is None or tag == "!":
        tag = _resolve(value, event.implicit)
    if tag == _STR:
        return value
    if tag == _NULL:
        return None
    if tag == _BOOL:
        return SafeConstructor.bool_values[value.lower()]
    if tag == _MERGE:
        return _MERGE_KEY
    if tag == _VALUE:  # PyYAML reads a `=` key as the string "=" (and refuses it as a value; we need not)
        return value
    constructor = _CONSTRUCTORS.get(tag)
    if constructor is None or tag not in _SCALAR_TAGS:
        raise YamlLimitError(f"{_at(event)}: the tag {tag!r} is not supported (plain YAML data only)")
    try:
        return constructor(_SCALARS, ScalarNode(tag, value, event.start_mark, event.end_mark))
    except (ValueError, OverflowError) as exc:
        raise YamlLimitError(f"{_at(event)}: cannot read {value[:40]!r}: {exc}") from exc


_SCALAR_TAGS = frozenset(
    f"tag:yaml.org,2002:{name}" for name in ("str", "null", "bool", "int", "float", "binary", "timestamp")
)


class _Merge:
    """The `<<` key of a merge (a marker: PyYAML's safe loader merges the mappings given as its value)."""


_MERGE_KEY = _Merge()


@dataclass
class _Frame:
    """A mapping or sequence being read."""

    event: Any
    is_map: bool
    anchor: str | None
    items: list[Any] = field(default_factory=list)
    #: Expanded size (nodes, aliases counted with what they stand for) and height of what was read.
    size: int = 1
    height: int = 0
    #: Mapping only: keys read so far (their line), mappings merged in with `<<`.
    seen: dict[Hashable, int] = field(default_factory=dict)
    merged: list[tuple[Any, Any]] = field(default_factory=list)
    merge_next: bool = False


@dataclass
class _Anchor:
    value: Any
    size: int
    height: int
    done: bool


def _finish_map(frame: _Frame) -> dict[Any, Any]:
    if frame.merged:
        # As PyYAML: merged pairs first (an explicit key then overrides them), earlier merges winning.
        return dict([*frame.merged, *zip(frame.items[::2], frame.items[1::2], strict=True)])
    return dict(zip(frame.items[::2], frame.items[1::2], strict=True))


def _merge_pairs(value: Any, event: Any) -> list[tuple[Any, Any]]:
    if isinstance(value, dict):
        return list(value.items())
    if isinstance(value, list) and all(isinstance(v, dict) for v in value):
        return [pair for mapping in reversed(value) for pair in mapping.items()]
    raise YamlLimitError(f"{_at(event)}: `<<` takes a mapping or a list of mappings")


class _Builder:
    """One document's data, built from its events with an explicit stack."""

    def __init__(self) -> None:
        self.stack: list[_Frame] = []
        self.anchors: dict[str, _Anchor] = {}
        self.nodes = 0  # nodes written in the document
        self.root: Any = None

    def add(self, value: Any, size: int, height: int, event: Any) -> None:
        """Give a finished node to the collection being read (or make it the document)."""
        if not self.stack:
            self.root = value
            self._check_expansion(size, event)
            return
        frame = self.stack[-1]
        frame.size += size
        frame.height = max(frame.height, height)
        if len(self.stack) + height > MAX_DEPTH:
            raise YamlLimitError(f"{_at(event)}: nested more than {MAX_DEPTH} levels deep")
        is_key = frame.is_map and len(frame.items) % 2 == 0
        if value is _MERGE_KEY and not is_key:
            raise YamlLimitError(f"{_at(event)}: `<<` is a merge key; it cannot be a value")
        if not frame.is_map:
            frame.items.append(value)
            return
        if is_key:
            if value is _MERGE_KEY:
                frame.merge_next = True
                frame.items.append(value)
                return
            if not isinstance(value, Hashable) or isinstance(value, (dict, list)):
                raise YamlLimitError(f"{_at(event)}: a mapping key must be a scalar")
            first = frame.seen.get(value)
            if first is not None:
                raise YamlLimitError(
                    f"{_at(event)}: duplicate key {str(value)[:80]!r} (first at line {first}); "
                    "YAML keeps only one of them"
                )
            frame.seen[value] = event.start_mark.line + 1 if event.start_mark is not None else 0
            frame.items.append(value)
            return
        if frame.merge_next:
            frame.merge_next = False
            frame.items.pop()
            frame.merged += _merge_pairs(value, event)
            return
        frame.items.append(value)

    def _check_expansion(self, size: int, event: Any) -> None:
        if size > MAX_EXPANDED_NODES and size > MAX_ALIAS_RATIO * self.nodes:
            raise YamlLimitError(
                f"{_at(event)}: aliases expand {self.nodes} nodes to {size}; refusing more than "
                f"{max(MAX_EXPANDED_NODES, MAX_ALIAS_RATIO * self.nodes)}"
            )

    def event(self, event: Any) -> None:
        kind = type(event)
        if kind is ScalarEvent:
            self.nodes += 1
            value = _scalar(event)
            if event.anchor is not None:
                self._anchor(event, _Anchor(value, 1, 0, done=True))
            self.add(value, 1, 0, event)
        elif kind is MappingStartEvent or kind is SequenceStartEvent:
            self.nodes += 1
            if len(self.stack) >= MAX_DEPTH:
                raise YamlLimitError(f"{_at(event)}: nested more than {MAX_DEPTH} levels deep")
            tag = event.tag
            is_map = kind is MappingStartEvent
            if tag not in {None, "!", _MAP if is_map else _SEQ}:
                raise YamlLimitError(f"{_at(event)}: the tag {tag!r} is not supported (plain YAML data only)")
            frame = _Frame(event, is_map, event.anchor)
            if event.anchor is not None:
                self._anchor(event, _Anchor(None, 0, 0, done=False))
            self.stack.append(frame)
        elif kind is MappingEndEvent or kind is SequenceEndEvent:
            frame = self.stack.pop()
            built: Any = _finish_map(frame) if frame.is_map else frame.items
            if frame.anchor is not None:
                self.anchors[frame.anchor] = _Anchor(built, frame.size, frame.height + 1, done=True)
            self.add(built, frame.size, frame.height + 1, frame.event)
        elif kind is AliasEvent:
            anchor = self.anchors.get(event.anchor)
            if anchor is None:
                raise YamlLimitError(f"{_at(event)}: alias *{event.anchor} names no anchor before it")
            if not anchor.done:
                raise YamlLimitError(f"{_at(event)}: alias *{event.anchor} refers to itself")
            self.add(anchor.value, anchor.size, anchor.height, event)

    def _anchor(self, event: Any, anchor: _Anchor) -> None:
        if event.anchor in self.anchors:
            raise YamlLimitError(f"{_at(event)}: anchor &{event.anchor} is defined twice")
        self.anchors[event.anchor] = anchor


def load_documents(text: str) -> list[Any]:
    """Every document of a YAML stream as plain data (what `yaml.safe_load_all` gives), within the limits.

    Raises yaml.YAMLError for text that is not YAML, YamlLimitError for the refusals above.
    """
    source = _Events(text)
    documents: list[Any] = []
    builder = _Builder()
    try:
        while True:
            event = source.get_event()
            kind = type(event)
            if kind is DocumentStartEvent:
                builder = _Builder()
            elif kind is DocumentEndEvent:
                documents.append(builder.root)
            elif kind is StreamEndEvent:
                return documents
            elif kind is not StreamStartEvent:
                builder.event(event)
    finally:
        source.dispose()


class UnusualValueError(Exception):
    """A value the fast writer does not handle (a date, bytes, a set): the caller uses PyYAML's path."""


_MAP_START: Any = MappingStartEvent
_SEQ_START: Any = SequenceStartEvent
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"


def _float_text(value: float) -> str:
    """SafeRepresenter.represent_float's text for `value`."""
    if value != value:  # noqa: PLR0124 - NaN
        return ".nan"
    if value in {float("inf"), float("-inf")}:
        return ".inf" if value > 0 else "-.inf"
    text = repr(value).lower()
    if "." not in text and "e" in text:
        text = text.replace("e", ".0e", 1)
    return text


def emit_document(emitter: Any, data: Any) -> None:
    """Send `data` to a PyYAML emitter as the events PyYAML's safe representer and serializer would send
    with block style everywhere, `|` for multi-line strings and no aliases; without building its node graph.

    Raises UnusualValueError (before emitting it) for a type other than dict, list, str, int, float, bool
    and None.
    """
    plain: dict[str, bool] = {}  # string -> may it be written unquoted (it reads back as a string)?
    emit = emitter.emit
    emit(DocumentStartEvent(explicit=False))
    stack: list[tuple[Any, Any]] = []
    value = data
    while True:
        kind = type(value)
        if kind is str:
            ok = plain.get(value)
            if ok is None:
                ok = plain[value] = _resolve(value, (True, False)) == _STR
            emit(ScalarEvent(None, _STR, (ok, True), value, style="|" if "\n" in value else None))
        elif kind is dict:
            emit(_MAP_START(None, _MAP, implicit=True, flow_style=False))
            stack.append((iter([x for pair in value.items() for x in pair]), MappingEndEvent))
        elif kind is list:
            emit(_SEQ_START(None, _SEQ, implicit=True, flow_style=False))
            stack.append((iter(value), SequenceEndEvent))
        else:
            if value is None:
                tag, text = _NULL, "null"
            elif kind is bool:
                tag, text = _BOOL, "true" if value else "false"
            elif kind is int:
                tag, text = _INT, str(value)
            elif kind is float:
                tag, text = _FLOAT, _float_text(value)
            else:
                raise UnusualValueError(kind.__name__)
            emit(ScalarEvent(None, tag, (_resolve(text, (True, False)) == tag, tag == _STR), text))
        while stack:
            items, end = stack[-1]
            value = next(items, _END)
            if value is not _END:
                break
            stack.pop()
            emit(end())
        else:
            break
    emit(DocumentEndEvent(explicit=False))


_END = object()
