"""Finding the run and following its pods: the Workflow by run id or name, and a pod watch thread that
reports changes to the main thread as typed events (the step followers report there too)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from elyra_sidecar.logs._output import sanitize
from elyra_sidecar.logs._sources import Kube, LogsError, WatchExpired
from elyra_sidecar.logs._workflow import ShapeError, check_workflow, is_label_value

__all__ = [
    "Event",
    "Failed",
    "PodChanged",
    "PodWatch",
    "PodsListed",
    "StepDone",
    "check_shape",
    "find_workflow",
    "pods_by_name",
]

_WATCH_SECONDS = 60  # one watch request's length; the watch is resumed from the last version seen


@dataclass(frozen=True)
class PodChanged:
    """A watch event for one of the run's pods: ADDED, MODIFIED or DELETED."""

    kind: str
    pod: dict[str, Any]


@dataclass(frozen=True)
class PodsListed:
    """The pods listed again after the watch expired: the list replaces what was known."""

    pods: list[dict[str, Any]]


@dataclass(frozen=True)
class StepDone:
    """A step's follower has printed all of it."""

    key: str


@dataclass(frozen=True)
class Failed:
    """A thread failed: the command ends with this error, raised from the main thread."""

    error: BaseException


Event = PodChanged | PodsListed | StepDone | Failed


def pods_by_name(pods: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {str(p["metadata"]["name"]): p for p in pods if (p.get("metadata") or {}).get("name")}


def find_workflow(kube: Kube, run: str) -> dict[str, Any]:
    """The run's Workflow, by KFP run id (label) or by name; its fields' types checked."""
    if is_label_value(run):
        found = kube.workflows_by_run_id(run)
        for candidate in found:
            check_shape(candidate, run)
        if found:
            # A run has one Workflow; should there be several, the newest is the run's current one.
            newest: dict[str, Any] = max(
                found, key=lambda w: str((w.get("metadata") or {}).get("creationTimestamp") or "")
            )
            return newest
    workflow = kube.workflow(run)
    if workflow is None:
        raise LogsError(
            f"no such run in namespace {kube.namespace!r}: no Workflow labelled "
            f"pipeline/runid={sanitize(run)} and none named {sanitize(run)!r} (wrong namespace? use -n)"
        )
    check_shape(workflow, run)
    return workflow


def check_shape(workflow: Any, fallback: str) -> None:
    """One `Error:` line naming the Workflow and the field, for a Workflow whose fields have wrong types."""
    try:
        check_workflow(workflow)
    except ShapeError as exc:
        name = (workflow.get("metadata") or {}).get("name") if isinstance(workflow, Mapping) else None
        shown = sanitize(str(name if isinstance(name, str) and name else fallback))
        raise LogsError(f"Workflow {shown} is malformed: {exc}") from None


class PodWatch:
    """A thread watching the run's pods from a resourceVersion on, resumed after each watch request ends
    and listed again after 410 Gone; every change goes to `events` as a PodChanged or PodsListed."""

    def __init__(self, kube: Kube, workflow: str, events: queue.Queue[Event], stop: threading.Event) -> None:
        self._kube = kube
        self._workflow = workflow
        self._events = events
        self._stop = stop
        self.thread: threading.Thread | None = None

    def start(self, version: str) -> threading.Thread:
        self.thread = threading.Thread(target=self._run, args=(version,), daemon=True, name="pod-watch")
        self.thread.start()
        return self.thread

    def _run(self, version: str) -> None:
        try:
            while not self._stop.is_set():
                try:
                    for event, obj in self._kube.watch_pods(self._workflow, version, _WATCH_SECONDS):
                        if event == "ERROR":
                            message = sanitize(str((obj or {}).get("message")), limit=200)
                            raise LogsError(f"the pod watch failed: {message}")
                        if isinstance(obj, Mapping):
                            version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
                            self._events.put(PodChanged(event, dict(obj)))
                except WatchExpired:
                    # 410 Gone: the events since `version` are no longer kept. List again and watch from
                    # the list's version; steps already followed are not started twice (Session.handled).
                    pods, version = self._kube.pods(self._workflow)
                    self._events.put(PodsListed(pods))
        except BaseException as exc:
            self._events.put(Failed(exc))
