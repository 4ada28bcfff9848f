"""Printing one step's lines: from its pod's log sidecar while the pod exists, else (or for the rest) from
the copy the sidecar mirrored to S3, each line once; and the step's label, fixed in start order."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
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
        shown = _Shown()
        reconnects = 0
        while not self._stop.is_set():
            pod = self.kube.pod(pod_name)
            if pod is None:
                return shown.lines, _gone(shown.lines)
            state = container_state(pod, container)
            stop = self._wait(label, pod, follow=follow) if state == "waiting" else None
            if stop is not None:
                return shown.lines, stop
            if state == "waiting":
                continue
            try:
                read = self._read_log(
                    step, label, pod_name, container, shown, follow=follow and state == "running"
                )
            except PodGone:
                return shown.lines, _gone(shown.lines)
            except PodNotReady:
                stop = self._wait(label, None, follow=follow)
                if stop is not None:
                    return shown.lines, stop
                continue
            if self._stop.is_set():
                break
            ended = self._ended(pod_name, container, state, follow=follow, printed=shown.lines)
            if ended is not None:
                if not ended:
                    self._print_tail(label, read, shown)
                return shown.lines, ended
            reconnects += 1
            if reconnects > _RECONNECTS:
                self.printer.note(f"[{label}] the log stream keeps breaking; stopped following this step")
                return shown.lines, ""
            # The kubelet may end the stream a moment before the pod's status says the container ended.
            self._stop.wait(self._poll)
        return shown.lines, ""

    def _wait(self, label: str, pod: dict[str, Any] | None, *, follow: bool) -> str | None:
        """The container has not started: why to stop ("" for no reason to read S3), or None once a poll
        interval has passed (follow: look again)."""
        if pod is not None and str((pod.get("status") or {}).get("phase")) in ("Succeeded", "Failed"):
            return "its log sidecar never ran"
        if not follow:
            self.printer.note(f"[{label}] has not started yet")
            return ""
        self._stop.wait(self._poll)
        return None

    def _read_log(
        self, step: Step, label: str, pod_name: str, container: str, shown: _Shown, *, follow: bool
    ) -> _Read:
        """One log request, printing the lines after the `shown.lines` already shown (after a reconnect the
        log starts again from its first line)."""
        log_format = step.template.log_format if step.template else "raw"
        read = _Read(
            LineSplitter(), LogDecoder(log_format=log_format, timestamps=self._timestamps), shown.lines
        )
        for chunk in self.kube.pod_log(pod_name, container, follow=follow, timestamps=self._timestamps):
            lines = []
            for raw in read.splitter.feed(chunk):
                line = read.decoder.decode(raw)
                if line is None:
                    continue
                if read.skip:
                    read.skip -= 1
                    continue
                lines.append(line)
            shown.lines += len(lines)
            self.printer.lines(label, lines)
        return read

    def _ended(self, pod_name: str, container: str, state: str, *, follow: bool, printed: int) -> str | None:
        """After a log stream ended: "" when the log is complete, why S3 must say the rest, or None when the
        stream broke while the container runs (read again)."""
        after = self.kube.pod(pod_name)  # a log that ended because its pod went is continued from S3
        if after is None:
            return _gone(printed)  # deleted mid-stream: the rest is in S3, if anywhere
        if not follow or state == "terminated" or container_state(after, container) == "terminated":
            return ""
        return None

    def _print_tail(self, label: str, read: _Read, shown: _Shown) -> None:
        """The last line, without a newline, once the log is complete."""
        if read.splitter.tail and read.skip == 0:
            tail = read.decoder.decode(read.splitter.tail)
            if tail is not None:
                self.printer.lines(label, [tail])
                shown.lines += 1

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


@dataclass
class _Shown:
    """How many of a step's lines are printed so far (kept across reconnects and failures)."""

    lines: int = 0


@dataclass
class _Read:
    """What one log request leaves: the unfinished last line, the decoder, and lines still to skip."""

    splitter: LineSplitter
    decoder: LogDecoder
    skip: int


def _gone(printed: int) -> str:
    return "its pod was deleted while being read" if printed else "its pod is gone"
