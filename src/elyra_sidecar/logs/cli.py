"""`elyra-sidecar logs RUN`: the script logs of a whole run's Elyra steps, in the order they started, live.

Each step's lines come from its pod's log sidecar while the pod exists, else from the object the sidecar
mirrored to S3 (stderr says so per step). With `-f` the run is followed until it ends: running steps are
streamed as they write, new steps are picked up as their pods appear (a pod watch), and the Workflow is
re-read every `--poll-interval` seconds to learn about finished steps and the end of the run.
Exit codes: 0 done, 1 one `Error:` line (no such run, permission denied, no Elyra steps, S3
unreachable, ...), 2 usage, 130 Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import queue
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from elyra_sidecar import contract
from elyra_sidecar._argtypes import positive_number
from elyra_sidecar.logs._output import LineSplitter, LogDecoder, Printer, sanitize
from elyra_sidecar.logs._sources import Kube, LogsError, PodGone, PodNotReady, S3Reader, WatchExpired, connect
from elyra_sidecar.logs._workflow import (
    DONE_PHASES,
    NEVER_RAN,
    ElyraTemplate,
    SecretRef,
    Step,
    container_state,
    elyra_templates,
    is_label_value,
    parse_time,
    pod_container,
    pod_display_name,
    pod_node_name,
    pod_started,
    sort_steps,
    steps_from_nodes,
    template_from_pod,
)

__all__ = ["main", "parser"]

_RUN_DONE = frozenset({"Succeeded", "Failed", "Error"})
_RECONNECTS = 5  # a log stream that breaks while its container still runs is resumed this often
_SHUTDOWN_SECONDS = 5.0  # at most this long to let the threads go at exit
_WATCH_SECONDS = 60  # one watch request's length; the watch is resumed from the last version seen
#: An object written this long after its step ended was probably written by a later run.
_LATER_RUN_SLACK = timedelta(minutes=2)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="elyra-sidecar logs",
        description="Print the script logs of a run's Elyra steps, prefixed with the node's name, in the "
        "order the steps started. Lines come from each step's elyra-log container while its pod exists, "
        "else from the copy the sidecar mirrored to S3.",
        allow_abbrev=False,
    )
    p.add_argument(
        "run", metavar="RUN", help="a KFP run id (Workflow label pipeline/runid) or a Workflow name"
    )
    p.add_argument(
        "-n", "--namespace", help="namespace of the run (default: the kubeconfig context's, or the pod's)"
    )
    p.add_argument("-f", "--follow", action="store_true", help="follow the run until it ends")
    p.add_argument(
        "--node",
        action="append",
        default=[],
        metavar="NAME",
        help="only this node (display name or template name; repeatable)",
    )
    p.add_argument("--timestamps", action="store_true", help="start each pod line with its time (kubelet's)")
    p.add_argument("--no-prefix", action="store_true", help="print lines without the [node name] prefix")
    p.add_argument(
        "--kubeconfig", metavar="FILE", help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config)"
    )
    p.add_argument("--context", help="kubeconfig context (default: the current one)")
    p.add_argument(
        "--s3-secret",
        metavar="NAME",
        help="Secret in the run's namespace holding AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (or "
        "accesskey/secretkey) for the S3 copies (default: the environment, then the step's own settings)",
    )
    p.add_argument(
        "--s3-endpoint", metavar="URL", help="reach S3 here instead of the endpoint the steps used"
    )
    p.add_argument("--s3-ca-bundle", metavar="FILE", help="PEM CAs to trust for an https S3 endpoint")
    p.add_argument(
        "--poll-interval",
        type=positive_number,
        default=5.0,
        metavar="SECONDS",
        help="with -f: how often to re-read the Workflow (default 5)",
    )
    return p


class Session:
    """One invocation: finds the run, then prints each step's lines from the pod or from S3."""

    def __init__(self, kube: Kube, s3: S3Reader, printer: Printer, args: argparse.Namespace) -> None:
        self.kube = kube
        self.s3 = s3
        self.printer = printer
        self.args = args
        self.events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.stop = threading.Event()
        self.pods: dict[str, dict[str, Any]] = {}
        self.templates: dict[str, ElyraTemplate] = {}
        self.workflow: dict[str, Any] = {}
        self.handled: set[str] = set()
        self.workers: list[threading.Thread] = []
        self.watchers: list[threading.Thread] = []
        self._labels: dict[str, str] = {}

    # -- finding the run -------------------------------------------------------------------------------

    def find_workflow(self, run: str) -> dict[str, Any]:
        if is_label_value(run):
            found = self.kube.workflows_by_run_id(run)
            if found:
                # A run has one Workflow; should there be several, the newest is the run's current one.
                newest: dict[str, Any] = max(
                    found, key=lambda w: str((w.get("metadata") or {}).get("creationTimestamp") or "")
                )
                return newest
        workflow = self.kube.workflow(run)
        if workflow is None:
            raise LogsError(
                f"no such run in namespace {self.kube.namespace!r}: no Workflow labelled "
                f"pipeline/runid={sanitize(run)} and none named {sanitize(run)!r} (wrong namespace? use -n)"
            )
        return workflow

    @property
    def name(self) -> str:
        return str((self.workflow.get("metadata") or {}).get("name") or "")

    def _run_done(self) -> bool:
        return str((self.workflow.get("status") or {}).get("phase") or "") in _RUN_DONE

    # -- steps -----------------------------------------------------------------------------------------

    def steps(self) -> list[Step]:
        """The run's Elyra steps from the Workflow's nodes, completed by its pods, filtered by --node."""
        steps = {s.key: s for s in steps_from_nodes(self.workflow, self.templates)}
        for pod_name, pod in self.pods.items():
            node = pod_node_name(pod)
            if node in steps:
                steps[node].pod = pod_name
                steps[node].started = steps[node].started or pod_started(pod)
                continue
            template = template_from_pod(pod)
            if template is None:
                continue
            # The node status may be offloaded to Argo's database, or not written yet: the pod alone names it.
            display = pod_display_name(pod)
            steps[node or pod_name] = Step(
                key=node or pod_name,
                display=display,
                template=template,
                started=pod_started(pod),
                phase=str((pod.get("status") or {}).get("phase") or ""),
                pod=pod_name,
                aliases=frozenset({display, pod_name}),
            )
        wanted = set(self.args.node)
        chosen = [s for s in steps.values() if not wanted or s.aliases & wanted]
        return sort_steps(chosen)

    def label(self, step: Step) -> str:
        if step.key not in self._labels:
            label = sanitize(step.display)
            if label in self._labels.values():  # a retry or a loop: the same node name twice
                label = f"{label} ({sanitize(step.key.rsplit('.', 1)[-1], limit=40)})"
            self._labels[step.key] = label
        return self._labels[step.key]

    def check_nodes(self) -> None:
        displays = {t.display for t in self.templates.values()}
        displays |= {pod_display_name(p) for p in self.pods.values() if pod_container(p)}
        unknown = [n for n in self.args.node if n not in displays | set(self.templates)]
        if unknown:
            names = ", ".join(sorted(sanitize(n) for n in displays))
            raise LogsError(
                f"--node {sanitize(unknown[0])!r}: no such Elyra step in Workflow {sanitize(self.name)} "
                f"(steps: {names})"
            )

    # -- one step --------------------------------------------------------------------------------------

    def handle(self, step: Step, *, follow: bool) -> None:
        """Print the step's lines: from its pod's log sidecar, else (or for the rest) from S3."""
        self.handled.add(step.key)
        pod = self.pods.get(step.pod or "")
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
        while not self.stop.is_set():
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
                self.stop.wait(self.args.poll_interval)
                continue
            decoder = LogDecoder(log_format=log_format, timestamps=self.args.timestamps)
            splitter = LineSplitter()
            skip = printed  # after a reconnect the log starts again from its first line
            try:
                chunks = self.kube.pod_log(
                    pod_name, container, follow=follow and state == "running", timestamps=self.args.timestamps
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
                self.stop.wait(self.args.poll_interval)
                continue
            if self.stop.is_set():
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
            self.stop.wait(self.args.poll_interval)
        return printed, ""

    def from_s3(self, step: Step, *, skip: int, reason: str) -> None:
        label = self.label(step)
        template = step.template
        if template is None or template.location is None:
            self.printer.note(f"[{label}] no log: {reason}, and its sidecar mirrors to no S3 object")
            return
        location = template.location
        endpoint = self.s3.endpoint(location.endpoint)
        for key in location.keys:
            where = f"s3://{sanitize(location.bucket)}/{sanitize(key, limit=300)}"
            found = self.s3.read(location.endpoint, location.bucket, key, template=template)
            if found is None:
                self.printer.note(
                    f"[{label}] no log: {reason}, and {where} at {sanitize(endpoint)} does not exist"
                )
                continue
            rest = f" after the {skip} lines shown" if skip else ""
            stamps = " (it has no timestamps)" if self.args.timestamps else ""
            self.printer.note(f"[{label}] {reason}: lines{rest} from {where} at {sanitize(endpoint)}{stamps}")
            self._warn_other_run(label, step, found.last_modified)
            lines = found.data.split(b"\n")
            if lines and lines[-1] == b"":
                lines.pop()
            self.printer.lines(label, lines[skip:])

    def _warn_other_run(self, label: str, step: Step, written: Any) -> None:
        # Elyra fixes --cos-directory when the pipeline is compiled: every run of it writes the same keys.
        node = ((self.workflow.get("status") or {}).get("nodes") or {}).values()
        finished = next(
            (
                parse_time(n.get("finishedAt"))
                for n in node
                if isinstance(n, Mapping) and n.get("name") == step.key
            ),
            None,
        )
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

    # -- the whole run ---------------------------------------------------------------------------------

    def run(self) -> int:
        self.workflow = self.find_workflow(self.args.run)
        self.templates = elyra_templates(self.workflow)
        pods, version = self.kube.pods(self.name)
        self.pods = {str(p["metadata"]["name"]): p for p in pods if p.get("metadata", {}).get("name")}
        # A pod-level injection (KFP v2 runs) leaves the Workflow's templates bare: its pods still tell.
        if not self.templates and not any(pod_container(p) for p in self.pods.values()):
            raise LogsError(
                f"Workflow {sanitize(self.name)} has no Elyra steps with a script log: none of its templates "
                "has the elyra-log sidecar (was the pipeline transformed by elyra-sidecar?)"
            )
        self.check_nodes()
        if not self.args.follow or self._run_done():
            steps = self.steps()
            for step in steps:
                if step.phase not in NEVER_RAN:
                    self.handle(step, follow=False)
            if not steps:
                self.printer.note(f"no Elyra step of Workflow {sanitize(self.name)} has started yet")
            return 0
        return self.follow(version)

    def follow(self, version: str) -> int:
        watcher = threading.Thread(target=self._watch, args=(version,), daemon=True, name="pod-watch")
        self.watchers.append(watcher)
        watcher.start()
        last_read = time.monotonic()
        self.reconcile(final=False)
        while True:
            if self._run_done():
                fresh, _ = self.kube.pods(self.name)
                self.pods.update({str(p["metadata"]["name"]): p for p in fresh})
                self.reconcile(final=True)
                for worker in self.workers:
                    while worker.is_alive():
                        worker.join(0.2)
                        self._raise_pending()
                self._raise_pending()
                return 0
            wait = max(0.0, self.args.poll_interval - (time.monotonic() - last_read))
            try:
                kind, payload = self.events.get(timeout=wait)
            except queue.Empty:
                kind, payload = "poll", None
            if kind == "fatal":
                raise payload
            if kind == "pod":
                event, pod = payload
                name = str((pod.get("metadata") or {}).get("name") or "")
                if event == "DELETED":
                    self.pods.pop(name, None)
                elif name:
                    self.pods[name] = pod
            elif kind == "pods":  # listed again after the watch expired: the list replaces what we knew
                self.pods = {
                    str(p["metadata"]["name"]): p for p in payload if p.get("metadata", {}).get("name")
                }
            if time.monotonic() - last_read >= self.args.poll_interval:
                workflow = self.kube.workflow(self.name)
                last_read = time.monotonic()
                if workflow is None:
                    self.printer.note(f"Workflow {sanitize(self.name)} was deleted; stopped following")
                    self.workflow.setdefault("status", {})["phase"] = "Error"
                else:
                    self.workflow = workflow
            self.reconcile(final=False)

    def shutdown(self) -> None:
        """Stop every thread: a thread blocked in a TLS read at interpreter exit can abort the process."""
        self.stop.set()
        self.kube.close()
        deadline = time.monotonic() + _SHUTDOWN_SECONDS
        for thread in [*self.workers, *self.watchers]:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _raise_pending(self) -> None:
        while True:
            try:
                kind, payload = self.events.get_nowait()
            except queue.Empty:
                return
            if kind == "fatal":
                raise payload

    def reconcile(self, *, final: bool) -> None:
        """Start what can start now: a follower per step with a pod, S3 for finished steps without one."""
        for step in self.steps():
            if step.key in self.handled or step.phase in NEVER_RAN:
                continue
            if step.pod is None and not final and step.phase not in DONE_PHASES:
                continue  # not started, or its pod is still on its way through the watch
            if step.pod is None or final:
                self.handle(step, follow=step.pod is not None)  # in order, here: no line mixing
                continue
            self.handled.add(step.key)
            self.label(step)  # named here, in start order, not by racing threads
            worker = threading.Thread(target=self._worker, args=(step,), daemon=True, name=f"step-{step.key}")
            self.workers.append(worker)
            worker.start()

    def _worker(self, step: Step) -> None:
        try:
            self.handle(step, follow=True)
        except BaseException as exc:  # any failure ends the command, from the main thread
            self.events.put(("fatal", exc))
        else:
            self.events.put(("done", step.key))

    def _watch(self, version: str) -> None:
        try:
            while not self.stop.is_set():
                try:
                    for event, obj in self.kube.watch_pods(self.name, version, _WATCH_SECONDS):
                        if event == "ERROR":
                            message = sanitize(str((obj or {}).get("message")), limit=200)
                            raise LogsError(f"the pod watch failed: {message}")
                        if isinstance(obj, Mapping):
                            version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
                            self.events.put(("pod", (event, obj)))
                except WatchExpired:
                    # 410 Gone: the events since `version` are no longer kept. List again and watch from
                    # the list's version; steps already followed are not started twice (Session.handled).
                    pods, version = self.kube.pods(self.name)
                    self.events.put(("pods", pods))
        except BaseException as exc:
            self.events.put(("fatal", exc))


class _Credentials:
    """S3 credentials, looked up once on first use: --s3-secret, else the environment, else the step's own
    settings (plain values in the Workflow, or the Secret its env refers to)."""

    def __init__(self, kube: Kube, secret: str | None) -> None:
        self._kube = kube
        self._secret = secret
        self._secrets: dict[str, dict[str, str]] = {}
        self._lock = threading.Lock()

    def __call__(self, template: ElyraTemplate | None) -> Mapping[str, str]:
        with self._lock:
            return self._lookup(template)

    def _read_secret(self, name: str) -> dict[str, str]:
        if name not in self._secrets:
            self._secrets[name] = self._kube.secret(name)
        return self._secrets[name]

    def _lookup(self, template: ElyraTemplate | None) -> dict[str, str]:
        names = contract.CREDENTIAL_ENV
        if self._secret:
            data = self._read_secret(self._secret)
            aliases = {"AWS_ACCESS_KEY_ID": "accesskey", "AWS_SECRET_ACCESS_KEY": "secretkey"}
            found = {n: data.get(n) or data.get(aliases.get(n, ""), "") for n in names}
            if not found["AWS_ACCESS_KEY_ID"] or not found["AWS_SECRET_ACCESS_KEY"]:
                raise LogsError(
                    f"Secret {sanitize(self._secret)!r} has neither AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY "
                    "nor accesskey/secretkey"
                )
            return {k: v for k, v in found.items() if v}
        if os.environ.get("AWS_ACCESS_KEY_ID") and os.environ.get("AWS_SECRET_ACCESS_KEY"):
            return {n: os.environ[n] for n in names if os.environ.get(n)}
        found = {}
        for name, value in (template.credentials if template else {}).items():
            if isinstance(value, SecretRef):
                found[name] = self._read_secret(value.name).get(value.key, "")
            else:
                found[name] = value
        return {k: v for k, v in found.items() if v}


def _gone(printed: int) -> str:
    return "its pod was deleted while being read" if printed else "its pod is gone"


def _check_ca_bundle(path: str) -> None:
    """A bad --s3-ca-bundle is named at once, not as an unreachable S3 endpoint once a copy is needed."""
    import ssl  # noqa: PLC0415 - only with this option

    shown = sanitize(path, limit=300)
    try:
        ssl.create_default_context(cafile=path)
    except OSError as exc:
        if isinstance(exc, ssl.SSLError):
            reason = sanitize(exc.reason or str(exc), limit=120)
            raise LogsError(f"--s3-ca-bundle {shown}: no PEM CA certificate in it ({reason})") from exc
        raise LogsError(f"--s3-ca-bundle {shown}: cannot read it ({exc.strerror or exc})") from exc


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    printer = Printer(prefix=not args.no_prefix)
    try:
        import kubernetes  # noqa: F401, PLC0415 - optional extra
        import minio  # noqa: F401, PLC0415
    except ImportError:
        print(
            "Error: `elyra-sidecar logs` needs the logs extra: pip install 'elyra-sidecar[logs]'",
            file=sys.stderr,
        )
        return 1
    session: Session | None = None
    try:
        if args.s3_ca_bundle:
            _check_ca_bundle(args.s3_ca_bundle)
        kube = connect(kubeconfig=args.kubeconfig, context=args.context, namespace=args.namespace)
        s3 = S3Reader(
            credentials=_Credentials(kube, args.s3_secret),
            endpoint_override=args.s3_endpoint,
            ca_bundle=args.s3_ca_bundle,
        )
        session = Session(kube, s3, printer, args)
        return session.run()
    except LogsError as exc:
        printer.closed = True  # worker threads stop printing; ours is the last line
        sys.stderr.write(f"Error: {exc}\n")
        return 1
    except KeyboardInterrupt:
        printer.closed = True
        return 130
    except BrokenPipeError:
        printer.closed = True
        return 141  # a reader such as `head` stopped reading: quietly, as the shell's own tools do
    finally:
        if session is not None:
            session.shutdown()


if __name__ == "__main__":
    sys.exit(main())
