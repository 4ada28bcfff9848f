"""`elyra-sidecar logs RUN`: the script logs of a whole run's Elyra steps, in the order they started, live.

Each step's lines come from its pod's log sidecar while the pod exists, else from the object the sidecar
mirrored to S3 (stderr says so per step). With `-f` the run is followed until it ends: running steps are
streamed as they write, new steps are picked up as their pods appear (a pod watch), and the Workflow is
re-read every `--poll-interval` seconds to learn about finished steps and the end of the run.
Exit codes: 0 done, 1 one `Error:` line (no such run, permission denied, no Elyra steps, S3
unreachable or refused, a malformed Workflow, ...), 2 usage, 130 Ctrl-C, 141 stdout closed by its reader.

This module is the command and the run's main loop; finding the run and watching its pods is
`_discovery`, printing one step from its pod or S3 is `_steps`, where S3 may be read `_s3access`.
"""

from __future__ import annotations

import argparse
import queue
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from elyra_sidecar._argtypes import positive_number
from elyra_sidecar.logs._discovery import (
    Event,
    Failed,
    PodChanged,
    PodsListed,
    PodWatch,
    StepDone,
    check_shape,
    find_workflow,
    pods_by_name,
)
from elyra_sidecar.logs._endpoint import KFP_CONFIGMAP, KFP_NAMESPACE
from elyra_sidecar.logs._output import Printer, error_line, sanitize
from elyra_sidecar.logs._s3access import CredentialLookup, EndpointChooser
from elyra_sidecar.logs._sources import Kube, LogsError, S3Reader, connect
from elyra_sidecar.logs._steps import StepReader
from elyra_sidecar.logs._workflow import (
    DONE_PHASES,
    NEVER_RAN,
    ElyraTemplate,
    Step,
    elyra_templates,
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
_SHUTDOWN_SECONDS = 5.0  # at most this long to let the threads go at exit


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
        "--s3-endpoint",
        metavar="URL",
        help="read the S3 copies here (default: KFP's object store, from the ConfigMap "
        f"{KFP_CONFIGMAP} in --kfp-namespace, if the steps name the same host and port)",
    )
    p.add_argument(
        "--kfp-namespace",
        default=KFP_NAMESPACE,
        metavar="NS",
        help=f"namespace of KFP's {KFP_CONFIGMAP} (default {KFP_NAMESPACE})",
    )
    p.add_argument(
        "--trust-workflow-endpoint",
        action="store_true",
        help="send S3 credentials to the endpoint the Workflow names even when it is not KFP's own",
    )
    p.add_argument(
        "--insecure",
        action="store_true",
        help="allow sending credentials read from a cluster Secret over plain http",
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
        self.events: queue.Queue[Event] = queue.Queue()
        self.stop = threading.Event()
        self.pods: dict[str, dict[str, Any]] = {}
        self.templates: dict[str, ElyraTemplate] = {}
        self.workflow: dict[str, Any] = {}
        self.handled: set[str] = set()
        self.workers: list[threading.Thread] = []
        self.watchers: list[threading.Thread] = []
        self.reader = StepReader(
            kube,
            s3,
            printer,
            timestamps=args.timestamps,
            poll_interval=args.poll_interval,
            stop=self.stop,
            pod_of=self.pods_get,
            finished_at=self._finished_at,
        )

    def pods_get(self, name: str) -> dict[str, Any] | None:
        return self.pods.get(name)

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
        return self.reader.label(step)

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
        self.handled.add(step.key)
        self.reader.handle(step, follow=follow)

    def _finished_at(self, key: str) -> datetime | None:
        nodes = ((self.workflow.get("status") or {}).get("nodes") or {}).values()
        return next(
            (
                parse_time(n.get("finishedAt"))
                for n in nodes
                if isinstance(n, Mapping) and n.get("name") == key
            ),
            None,
        )

    # -- the whole run ---------------------------------------------------------------------------------

    def run(self) -> int:
        self.workflow = find_workflow(self.kube, self.args.run)
        self.templates = elyra_templates(self.workflow)
        pods, version = self.kube.pods(self.name)
        self.pods = pods_by_name(pods)
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
        self.watchers.append(PodWatch(self.kube, self.name, self.events, self.stop).start(version))
        last_read = time.monotonic()
        self.reconcile(final=False)
        while True:
            if self._run_done():
                fresh, _ = self.kube.pods(self.name)
                self.pods.update(pods_by_name(fresh))
                self.reconcile(final=True)
                for worker in self.workers:
                    while worker.is_alive():
                        worker.join(0.2)
                        self._raise_pending()
                self._raise_pending()
                return 0
            wait = max(0.0, self.args.poll_interval - (time.monotonic() - last_read))
            try:
                event: Event | None = self.events.get(timeout=wait)
            except queue.Empty:
                event = None  # time to poll
            if event is not None:
                self._apply(event)
            if time.monotonic() - last_read >= self.args.poll_interval:
                workflow = self.kube.workflow(self.name)
                last_read = time.monotonic()
                if workflow is None:
                    self.printer.note(f"Workflow {sanitize(self.name)} was deleted; stopped following")
                    self.workflow["status"] = {**(self.workflow.get("status") or {}), "phase": "Error"}
                else:
                    check_shape(workflow, self.name)
                    self.workflow = workflow
            self.reconcile(final=False)

    def _apply(self, event: Event) -> None:
        """What a thread reported: a pod changed, the pods listed again, a step done, or a failure."""
        if isinstance(event, Failed):
            raise event.error
        if isinstance(event, PodChanged):
            name = str((event.pod.get("metadata") or {}).get("name") or "")
            if event.kind == "DELETED":
                self.pods.pop(name, None)
            elif name:
                self.pods[name] = event.pod
        elif isinstance(event, PodsListed):  # after the watch expired: the list replaces what we knew
            self.pods = pods_by_name(event.pods)

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
                event = self.events.get_nowait()
            except queue.Empty:
                return
            if isinstance(event, Failed):
                raise event.error

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
            self.reader.handle(step, follow=True)
        except BaseException as exc:  # any failure ends the command, from the main thread
            self.events.put(Failed(exc))
        else:
            self.events.put(StepDone(step.key))


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
        chooser = EndpointChooser(
            kube,
            override=args.s3_endpoint,
            kfp_namespace=args.kfp_namespace,
            trust_workflow=args.trust_workflow_endpoint,
        )
        chooser.override()  # a bad --s3-endpoint is named at once
        s3 = S3Reader(
            credentials=CredentialLookup(kube, args.s3_secret),
            choose=chooser.choose,
            insecure=args.insecure,
            ca_bundle=args.s3_ca_bundle,
            note=printer.note,
        )
        session = Session(kube, s3, printer, args)
        return session.run()
    except LogsError as exc:
        printer.closed = True  # worker threads stop printing; ours is the last line
        sys.stderr.write(error_line(str(exc)))
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
