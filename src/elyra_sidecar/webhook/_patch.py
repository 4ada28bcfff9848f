"""RFC 6902 JSON Patch from two plain JSON values: the smallest obvious edit script, never clever.

Mappings are compared key by key (remove, add, recurse); lists of the same length element by element;
lists whose length changed are appended to when the old list is a prefix of the new one, else replaced.
A value that is the very same object on both sides is equal without a look inside: the transform shares
every part it did not change with its input, so only the changed parts of a review are walked.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["make_patch", "pointer"]


def _token(key: str | int) -> str:
    """One RFC 6901 reference token (`~` as `~0`, `/` as `~1`), with its leading `/`."""
    text = str(key)
    if "~" in text or "/" in text:
        text = text.replace("~", "~0").replace("/", "~1")
    return "/" + text


def pointer(parts: list[str | int]) -> str:
    """An RFC 6901 JSON Pointer."""
    return "".join(map(_token, parts))


def _diff(old: Any, new: Any, path: str, ops: list[dict[str, Any]]) -> None:
    # `path` is the JSON Pointer of `old`/`new`, built one token per level (not from a list per operation).
    # dict first: a type check (compiled, or CPython's exact-type path) before the ABC check's call
    if isinstance(old, (dict, Mapping)) and isinstance(new, (dict, Mapping)):
        ops.extend({"op": "remove", "path": path + _token(key)} for key in old if key not in new)
        for key, value in new.items():
            if key not in old:
                ops.append({"op": "add", "path": path + _token(key), "value": value})
            elif old[key] is not value:
                _diff(old[key], value, path + _token(key), ops)
        return
    if isinstance(old, list) and isinstance(new, list):
        if len(old) == len(new):
            for index, (a, b) in enumerate(zip(old, new, strict=True)):
                if a is not b:
                    _diff(a, b, f"{path}/{index}", ops)
            return
        if len(new) > len(old) and new[: len(old)] == old:
            ops.extend({"op": "add", "path": path + "/-", "value": v} for v in new[len(old) :])
            return
    if type(old) is not type(new) or old != new:
        ops.append({"op": "replace", "path": path, "value": new})


def make_patch(old: Any, new: Any) -> list[dict[str, Any]]:
    """Operations that turn `old` into `new` (empty when they are equal)."""
    ops: list[dict[str, Any]] = []
    if old is not new:
        _diff(old, new, "", ops)
    return ops
