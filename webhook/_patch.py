"""RFC 6902 JSON Patch from two plain JSON values: the smallest obvious edit script, never clever.

Mappings are compared key by key (remove, add, recurse); lists of the same length element by element;
lists whose length changed are appended to when the old list is a prefix of the new one, else replaced.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["make_patch", "pointer"]


def pointer(parts: list[str | int]) -> str:
    """An RFC 6901 JSON Pointer (`~` as `~0`, `/` as `~1`)."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def _diff(old: Any, new: Any, path: list[str | int], ops: list[dict[str, Any]]) -> None:
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        ops.extend({"op": "remove", "path": pointer([*path, key])} for key in old if key not in new)
        for key, value in new.items():
            if key not in old:
                ops.append({"op": "add", "path": pointer([*path, key]), "value": value})
            else:
                _diff(old[key], value, [*path, key], ops)
        return
    if isinstance(old, list) and isinstance(new, list):
        if len(old) == len(new):
            for index, (a, b) in enumerate(zip(old, new, strict=True)):
                _diff(a, b, [*path, index], ops)
            return
        if len(new) > len(old) and new[: len(old)] == old:
            ops.extend({"op": "add", "path": pointer([*path, "-"]), "value": v} for v in new[len(old) :])
            return
    if type(old) is not type(new) or old != new:
        ops.append({"op": "replace", "path": pointer(path), "value": new})


def make_patch(old: Any, new: Any) -> list[dict[str, Any]]:
    """Operations that turn `old` into `new` (empty when they are equal)."""
    ops: list[dict[str, Any]] = []
    _diff(old, new, [], ops)
    return ops
