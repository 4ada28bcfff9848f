"""Printing one step's lines: from its pod's log sidecar while the pod exists, else (or for the rest) from
the copy the sidecar mirrored to S3, each line once; and the step's label, fixed in start order."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from elyra_sidecar.logs._output import LineSplitter, LogDecoder, Printer, sanitize
from elyra_sidecar.logs._sources import Kube, PodGone, PodNotReady, S3Reader
from elyra_sidecar.logs._workflow import Step, container_state, pod_container

__all__ = ["StepReader"]

_RECONNECTS = 5  # a log stream that breaks while its container still runs is resumed this often
#: An object written this long after its step ended was probably written by a later run.
_LATER_RUN_SLACK = timedelta(minutes=2)


class StepReader:
    """Reads and prints steps; the run's current pods and node end times come from the caller."""

    def __init__(
        self,
        kube: Kube,
        s3: S3Reader,
        printer: Printer,
        *,
        timestamps: bool,
        poll_interval: float,
        stop: threading.Event,
        pod_of: Callable[[str], dict[str, Any] | None],
        finished_at: Callable[[str], datetime | None],
    ) -> None:
        self.kube = kube
        self.s3 = s3
        self.printer = printer
        self._timestamps = timestamps
        self._poll = poll_interval
        self._stop = stop
        self._pod_of = pod_of
        self._finished_at = finished_at
        self._labels: dict[str, str] = {}

    def label(self, step: Step) -> str:
        if step.key not in self._labels:
            label = sanitize(step.display)
            if label in self._labels.values():  # a retry or a loop: the same node name twice
                label = f"{label} ({sanitize(step.key.rsplit('.', 1)[-1], limit=40)})"
            self._labels[step.key] = label
        return self._labels[step.key]

    def handle(self, step: Step, *, follow: bool) -> None:
        """Print the step's lines: from its pod's log sidecar, else (or for the rest) from S3."""
        pod = self._pod_of(step.pod or "")
        if pod is None:
            if step.phase in ("Pending", ""):
                if not follow:
                    self.printer.note(f"[{self.label(step)}] has not started yet")
                return
            self.from_s3(step, skip=0, reason="its pod is gone")
            return
        container = pod_container(pod)
        if container is None:
            self.from_s3(
                step, skip=0, reason=f"pod {sanitize(str(step.pod))} has no log sidecar (a KFP cache hit?)"
            )
            return
        printed, gone = self.from_pod(step, str(step.pod), str(container.get("name")), follow=follow)
        if gone:
            self.from_s3(step, skip=printed, reason=gone)

    def from_pod(self, step: Step, pod_name: str, container: str, *, follow: bool) -> tuple[int, str]:
        """Stream the container's log; returns the lines printed, and why S3 must say the rest (or "")."""
        label = self.label(step)
        log_format = step.template.log_format if step.template else "raw"
        printed = 0
        reconnects = 0
        while not self._stop.is_set():
            pod = self.kube.pod(pod_name)
            if pod is None:
                return printed, _gone(printed)
            state = container_state(pod, container)
            if state == "waiting":
                if str((pod.get("status") or {}).get("phase")) in ("Succeeded", "Failed"):
                    return printed, "its log sidecar never ran"
                if not follow:
                    self.printer.note(f"[{label}] has not started yet")
                    return printed, ""
                self._stop.wait(self._poll)
                continue
            decoder = LogDecoder(log_format=log_format, timestamps=self._timestamps)
            splitter = LineSplitter()
            skip = printed  # after a reconnect the log starts again from its first line
            try:
                chunks = self.kube.pod_log(
                    pod_name, container, follow=follow and state == "running", timestamps=self._timestamps
                )
                for chunk in chunks:
                    lines = []
                    for raw in splitter.feed(chunk):
                        line = decoder.decode(raw)
                        if line is None:
                            continue
                        if skip:
                            skip -= 1
                            continue
                        lines.append(line)
                    printed += len(lines)
                    self.printer.lines(label, lines)
            except PodGone:
                return printed, _gone(printed)
            except PodNotReady:
                if not follow:
                    self.printer.note(f"[{label}] has not started yet")
                    return printed, ""
                self._stop.wait(self._poll)
                continue
            if self._stop.is_set():
                break
            after = self.kube.pod(pod_name)  # a log that ended because its pod went is continued from S3
            if after is None:
                return printed, _gone(printed)  # deleted mid-stream: the rest is in S3, if anywhere
            if not follow or state == "terminated" or container_state(after, container) == "terminated":
                if splitter.tail and skip == 0:
                    tail = decoder.decode(splitter.tail)
                    if tail is not None:
                        self.printer.lines(label, [tail])
                        printed += 1
                return printed, ""
            reconnects += 1
            if reconnects > _RECONNECTS:
                self.printer.note(f"[{label}] the log stream keeps breaking; stopped following this step")
                return printed, ""
            # The kubelet may end the stream a moment before the pod's status says the container ended.
            self._stop.wait(self._poll)
        return printed, ""

    def from_s3(self, step: Step, *, skip: int, reason: str) -> None:
        label = self.label(step)
        template = step.template
        if template is None or template.location is None:
            self.printer.note(f"[{label}] no log: {reason}, and its sidecar mirrors to no S3 object")
            return
        location = template.location
        for key in location.keys:
            where = f"s3://{sanitize(location.bucket)}/{sanitize(key, limit=300)}"
            found = self.s3.open(location.endpoint, location.bucket, key, template=template)
            if found.chunks is None:
                self.printer.note(
                    f"[{label}] no log: {reason}, and {where} at {found.endpoint} does not exist"
                )
                continue
            rest = f" after the {skip} lines shown" if skip else ""
            stamps = " (it has no timestamps)" if self._timestamps else ""
            self.printer.note(f"[{label}] {reason}: lines{rest} from {where} at {found.endpoint}{stamps}")
            self._warn_other_run(label, step, found.last_modified)
            # As it arrives, line by line: memory stays a chunk and the longest line, whatever the object.
            splitter = LineSplitter()
            left = skip
            for chunk in found.chunks:
                lines = splitter.feed(chunk)
                if left:
                    dropped = min(left, len(lines))
                    lines, left = lines[dropped:], left - dropped
                self.printer.lines(label, lines)
            tail = splitter.tail
            if tail and not left:
                self.printer.lines(label, [tail])

    def _warn_other_run(self, label: str, step: Step, written: Any) -> None:
        # Elyra fixes --cos-directory when the pipeline is compiled: every run of it writes the same keys.
        finished = self._finished_at(step.key)
        if written is None:
            return
        if step.started and written < step.started:
            self.printer.note(
                f"[{label}] note: that object was written before this step started: it is another run's log "
                "(runs of one pipeline share the key)"
            )
        elif finished and written > finished + _LATER_RUN_SLACK:
            self.printer.note(
                f"[{label}] note: that object was written after this step ended: a later run of the same "
                "pipeline may have replaced it (runs of one pipeline share the key)"
            )


def _gone(printed: int) -> str:
    return "its pod was deleted while being read" if printed else "its pod is gone"
