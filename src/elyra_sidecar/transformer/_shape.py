"""The shape check in front of `transform()`: the Argo fields the steps read or extend must have their types.

A fuzzer found the steps crashing on Workflows whose fields had the wrong type (`env: "x"`, `outputs: 3`)
or were empty (`env:` with nothing after it is YAML null). Argo and the API server treat a null field as
absent, so an empty one is dropped here (in a copy of the template only: the input is never mutated) and
`restore_untouched` puts the original back in every template the transform left alone (`transform()` runs
both itself: the library, the CLI and the webhook get the same checked rewrite). Any other wrong
type is an error naming the place, as Argo itself would refuse the Workflow. Fields the steps never look
at are not checked: they are kept as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["WorkflowError", "check_shape", "restore_untouched"]


class WorkflowError(ValueError):
    """The input is not a Workflow this tool can rewrite; the message says what and where."""


# What a field must be, keyed by name, for each object the steps read. A nested spec checks the value
# (a mapping) or each item (a list of mappings); "str" a string. None of these may be null after the check.
_Spec = dict[str, Any]
_NAMED: _Spec = {"name": "str"}
_MOUNT: _Spec = {"name": "str", "mountPath": "str"}
_ARTIFACTS: _Spec = {"artifacts": ("list", _NAMED)}
_METADATA: _Spec = {"annotations": ("map", {}), "labels": ("map", {})}
_CONTAINER: _Spec = {
    "env": ("list", _NAMED),
    "volumeMounts": ("list", _MOUNT),
    "workingDir": "str",
}
_TASK: _Spec = {
    "name": "str",
    "dependencies": ("list", None),
    "arguments": ("map", _ARTIFACTS),
}
_TEMPLATE: _Spec = {
    "name": "str",
    "metadata": ("map", _METADATA),
    "container": ("map", _CONTAINER),
    "volumes": ("list", _NAMED),
    "sidecars": ("list", _NAMED),
    "initContainers": ("list", _NAMED),
    "inputs": ("map", _ARTIFACTS),
    "outputs": ("map", _ARTIFACTS),
    "dag": ("map", {"tasks": ("list", _TASK)}),
}
_REQUIRED = {
    id(_NAMED): ("name",),
    id(_TEMPLATE): ("name",),
    id(_TASK): ("name",),
    id(_MOUNT): ("name", "mountPath"),
}


def _type(value: Any) -> str:
    return "null" if value is None else type(value).__name__


#: Where a field is, built only when an error names it: a dotted path as nested tuples (parent, key),
#: an int key an index. Formatting the place of every field up front cost more than the check itself.
_Where = tuple[Any, ...] | str


def _place(where: _Where) -> str:
    if isinstance(where, str):
        return where
    parent, key = where
    return f"{_place(parent)}[{key}]" if isinstance(key, int) else f"{_place(parent)}.{key}"


def _checked(obj: Mapping[str, Any], spec: _Spec, where: _Where) -> Mapping[str, Any]:  # noqa: C901 - the hot path: one loop over a spec, a branch per field kind
    """`obj` when fine as it is, else a copy with its null fields dropped; raises WorkflowError."""
    required = _REQUIRED.get(id(spec), ())
    for key in required:
        if key not in obj:
            raise WorkflowError(f"{_place(where)}: no {key!r}")
    out: dict[str, Any] | None = None
    for key, rule in spec.items():
        if key not in obj:
            continue
        value = obj[key]
        if value is None and key not in required:
            out = dict(obj) if out is None else out
            del out[key]
            continue
        if rule == "str":
            if not isinstance(value, str):
                raise WorkflowError(f"{_place((where, key))}: must be a string, got {_type(value)}")
            continue
        kind, inner = rule
        new: Any = value
        if kind == "map":
            if not isinstance(value, (dict, Mapping)):  # dict first: a type check before the ABC check
                raise WorkflowError(f"{_place((where, key))}: must be a mapping, got {_type(value)}")
            new = _checked(value, inner, (where, key))
        else:
            if not isinstance(value, list):
                raise WorkflowError(f"{_place((where, key))}: must be a list, got {_type(value)}")
            if inner is not None and not _plainly_fine(value, inner):
                place = (where, key)
                items = [_item(item, inner, (place, i)) for i, item in enumerate(value)]
                if any(a is not b for a, b in zip(items, value, strict=True)):
                    new = items
        if new is not value:
            out = dict(obj) if out is None else out
            out[key] = new
    return obj if out is None else out


def _plainly_fine(items: list[Any], spec: _Spec) -> bool:
    """True when every item is a dict whose fields of `spec` are all present strings (env entries, volumes,
    mounts, containers by name): what `_item` would accept unchanged, without a call per item."""
    if spec is _NAMED:
        return all(type(i) is dict and type(i.get("name")) is str for i in items)
    if spec is _MOUNT:
        return all(
            type(i) is dict and type(i.get("name")) is str and type(i.get("mountPath")) is str for i in items
        )
    return False


def _item(item: Any, spec: _Spec, where: _Where) -> Mapping[str, Any]:
    if not isinstance(item, (dict, Mapping)):  # dict first: a type check before the ABC check
        raise WorkflowError(f"{_place(where)}: must be a mapping, got {_type(item)}")
    return _checked(item, spec, where)


def _spec_path(workflow: Mapping[str, Any]) -> tuple[str, ...]:
    return ("spec", "workflowSpec") if workflow.get("kind") == "CronWorkflow" else ("spec",)


def _replace_in(
    obj: Mapping[str, Any], path: tuple[str, ...], update: Callable[[Any], Any]
) -> dict[str, Any]:
    """A copy of `obj` with the value at `path` replaced by `update(old)`, copying only along the path."""
    out = dict(obj)
    out[path[0]] = update(obj[path[0]]) if len(path) == 1 else _replace_in(obj[path[0]], path[1:], update)
    return out


def _get(obj: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        obj = obj.get(key) if isinstance(obj, Mapping) else None
    return obj


def check_shape(workflow: Any) -> Any:  # noqa: C901 - the hot path: the checks inline, no call per template field
    """The workflow with every empty field the steps extend dropped; raises WorkflowError naming a bad field.

    Only Workflow-like mappings with a list of templates are looked at; anything else is left for
    `transform()` to refuse with its own message.
    """
    if not isinstance(workflow, Mapping):
        return workflow
    path = _spec_path(workflow)
    spec = _get(workflow, path)
    if not isinstance(spec, Mapping):
        return workflow
    where = ".".join(path)
    out: Any = workflow
    arguments = spec.get("arguments")
    if isinstance(arguments, Mapping) and "parameters" in arguments:
        parameters = arguments["parameters"]
        place = f"{where}.arguments.parameters"
        if parameters is None:
            args = {k: v for k, v in arguments.items() if k != "parameters"}
            out = _replace_in(out, (*path, "arguments"), lambda _: args)
        elif not isinstance(parameters, list):
            raise WorkflowError(f"{place}: must be a list, got {_type(parameters)}")
        else:
            for i, parameter in enumerate(parameters):
                _item(parameter, _NAMED, f"{place}[{i}]")
    elif arguments is not None and not isinstance(arguments, Mapping):
        raise WorkflowError(f"{where}.arguments: must be a mapping, got {_type(arguments)}")
    templates = spec.get("templates")
    if not isinstance(templates, list):
        return out
    checked = []
    names: dict[str, int] = {}
    for i, template in enumerate(templates):
        if not isinstance(template, Mapping):
            checked.append(template)  # transform() refuses it with its own message
            continue
        new = _checked(template, _TEMPLATE, ((where, "templates"), i))
        name = new["name"]
        place = f"{where}.templates[{i}]"
        if name in names:
            first = f"{where}.templates[{names[name]}]"
            raise WorkflowError(f"{place}.name: {name!r} is also the name of {first}")
        names[name] = i
        _check_dag(new, place)
        checked.append(new)
    if any(a is not b for a, b in zip(checked, templates, strict=True)):
        out = _replace_in(out, (*path, "templates"), lambda _: checked)
    return out


def _check_dag(template: Mapping[str, Any], where: str) -> None:
    """Every task named once, every dependency a task of the same DAG (Argo refuses anything else)."""
    tasks = _get(template, ("dag", "tasks")) or []
    known: dict[str, int] = {}
    for i, task in enumerate(tasks):
        if task["name"] in known:
            raise WorkflowError(f"{where}.dag.tasks[{i}].name: {task['name']!r} names two tasks")
        known[task["name"]] = i
    for i, task in enumerate(tasks):
        for dependency in task.get("dependencies") or []:
            if not isinstance(dependency, str) or dependency not in known:
                raise WorkflowError(
                    f"{where}.dag.tasks[{i}].dependencies: {dependency!r} is no task of this DAG"
                )


def restore_untouched(result: Any, checked: Any, original: Any) -> Any:
    """`result` with the original of every template the transform left as `check_shape` gave it."""
    if checked is original or not isinstance(result, Mapping):
        return result
    path = _spec_path(original)
    before, given, after = (_get(w, (*path, "templates")) for w in (original, checked, result))
    if not (isinstance(before, list) and isinstance(given, list) and isinstance(after, list)):
        return result
    if len(before) != len(given) or len(given) != len(after):  # pragma: no cover - transform keeps the count
        return result
    restored = [
        old if new is mine and mine is not old else new
        for old, mine, new in zip(before, given, after, strict=True)
    ]
    if all(a is b for a, b in zip(restored, after, strict=True)):
        return result
    return _replace_in(result, (*path, "templates"), lambda _: restored)
