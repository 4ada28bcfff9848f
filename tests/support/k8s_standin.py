"""A STAND-IN for the Kubernetes API server, for the tests of `elyra-sidecar logs` (no real API server can
run on these machines). It is not Kubernetes: it holds a few objects in memory and serves, over HTTPS on
127.0.0.1, only the endpoints the command calls, with bodies shaped as in the Kubernetes API reference:

- `GET /apis/argoproj.io/v1alpha1/namespaces/{ns}/workflows[?labelSelector=]` (WorkflowList) and `/{name}`
- `GET /api/v1/namespaces/{ns}/pods?labelSelector=` (PodList), the same with `watch=true&resourceVersion=`
  (a chunked stream of `{"type", "object"}` events, ended after `timeoutSeconds`), and `/pods/{name}`;
  after `expire_watches()` a watch from an older resourceVersion is answered as the API server answers one
  whose history etcd has compacted: HTTP 200 and one `ERROR` event carrying a `Status` 410 (reason
  `Expired`, "too old resource version: X (Y)"; the watch cache and the etcd watcher both send the error as
  an event, never as the response's status), or, with `answer="http"`, a plain HTTP 410 `Status`
- `GET /api/v1/namespaces/{ns}/pods/{name}/log?container=&follow=&timestamps=` (text/plain, chunked;
  400 while the container waits, the stream ends when the log is closed or the pod deleted)
- `GET /api/v1/namespaces/{ns}/secrets/{name}`
- `GET /api/v1/namespaces/{ns}/configmaps/{name}` (KFP's workflow-controller-configmap: its S3 endpoint)

Failures are `Status` objects: 401 without the bearer token, 403 for a (verb, resource) the test denies
(the message as the API server words it), 404 for a missing object or an unknown path. The certificate
comes from a `trustme` CA; `kubeconfig` is a file that points the real `kubernetes` client here.
"""

from __future__ import annotations

import base64
import json
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import trustme
import yaml

TOKEN = "stand-in-token"  # noqa: S105 - a throw-away bearer token of a loopback test server
USER = "system:serviceaccount:team-a:default-editor"


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def status(code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    """A `Status` object (meta/v1), as the API server answers a failed request."""
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details is not None:
        body["details"] = details
    return body


@dataclass
class _Log:
    entries: list[tuple[str, bytes]] = field(default_factory=list)  # (RFC 3339 time, bytes written)
    closed: bool = False


class Cluster:
    """The objects the stand-in serves; every change wakes the streams waiting on it."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.version = 100
        self.workflows: dict[tuple[str, str], dict[str, Any]] = {}
        self.pods: dict[tuple[str, str], dict[str, Any]] = {}
        self.secrets: dict[tuple[str, str], dict[str, Any]] = {}
        self.configmaps: dict[tuple[str, str], dict[str, Any]] = {}
        self.logs: dict[tuple[str, str, str], _Log] = {}
        self.events: list[tuple[int, str, str, dict[str, Any]]] = []  # (version, namespace, type, pod)
        self.denied: set[tuple[str, str]] = set()
        self.requests: list[tuple[str, str]] = []  # (verb, resource) served, for assertions
        self.stopping = False
        self.compacted = 0  # watches from a resourceVersion below this one are too old (410 Gone)
        self.expired_answer = (
            "event"  # how a too-old watch is refused: "event" (the API server's way), "http"
        )
        self.expired_served = 0  # too-old watches refused so far
        self.watch_epoch = 0  # bumped to end every open watch stream

    def _bump(self, obj: dict[str, Any]) -> None:
        self.version += 1
        obj.setdefault("metadata", {})["resourceVersion"] = str(self.version)

    # -- what the tests change ----------------------------------------------------------------------

    def put_workflow(self, workflow: dict[str, Any]) -> None:
        with self.cond:
            meta = workflow["metadata"]
            self._bump(workflow)
            self.workflows[(meta["namespace"], meta["name"])] = workflow
            self.cond.notify_all()

    def put_pod(self, pod: dict[str, Any]) -> None:
        with self.cond:
            meta = pod["metadata"]
            key = (meta["namespace"], meta["name"])
            kind = "MODIFIED" if key in self.pods else "ADDED"
            self._bump(pod)
            self.pods[key] = pod
            self.events.append((self.version, key[0], kind, json.loads(json.dumps(pod))))
            self.cond.notify_all()

    def delete_pod(self, namespace: str, name: str) -> None:
        with self.cond:
            pod = self.pods.pop((namespace, name))
            self._bump(pod)
            self.events.append((self.version, namespace, "DELETED", pod))
            for (ns, pod_name, _), log in self.logs.items():
                if (ns, pod_name) == (namespace, name):
                    log.closed = True
            self.cond.notify_all()

    def put_secret(self, namespace: str, name: str, data: dict[str, str]) -> None:
        with self.cond:
            self.secrets[(namespace, name)] = {
                "kind": "Secret",
                "apiVersion": "v1",
                "metadata": {"name": name, "namespace": namespace, "resourceVersion": str(self.version)},
                "type": "Opaque",
                "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
            }

    def put_configmap(self, namespace: str, name: str, data: dict[str, str]) -> None:
        with self.cond:
            self.configmaps[(namespace, name)] = {
                "kind": "ConfigMap",
                "apiVersion": "v1",
                "metadata": {"name": name, "namespace": namespace, "resourceVersion": str(self.version)},
                "data": dict(data),
            }

    def write_log(self, namespace: str, pod: str, container: str, data: bytes) -> None:
        with self.cond:
            log = self.logs.setdefault((namespace, pod, container), _Log())
            stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            log.entries.append((stamp, data))
            self.cond.notify_all()

    def close_log(self, namespace: str, pod: str, container: str) -> None:
        with self.cond:
            self.logs.setdefault((namespace, pod, container), _Log()).closed = True
            self.cond.notify_all()

    def deny(self, verb: str, resource: str) -> None:
        self.denied.add((verb, resource))

    def expire_watches(self, *, answer: str = "event") -> None:
        """The watch history up to now is gone (as etcd compacts it every 5 minutes) and every open watch
        ends (as at its timeoutSeconds, or when the API server restarts): a client resuming from the last
        resourceVersion it saw is refused with 410 Gone (`answer`: "event" or "http") and must list again."""
        with self.cond:
            self.compacted = self.version
            self.expired_answer = answer
            self.watch_epoch += 1
            self.cond.notify_all()


def _true(value: str | None) -> bool:
    """A boolean query parameter as the API server reads it (Go's strconv.ParseBool: older Python clients
    send `True`)."""
    return value in ("1", "t", "T", "true", "TRUE", "True")


def _matches(labels: dict[str, str], selector: str) -> bool:
    """Equality-based label selectors (`a=b,c=d`), the only kind the command sends."""
    for term in filter(None, selector.split(",")):
        key, _, value = term.partition("=")
        if labels.get(key) != value:
            return False
    return True


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass

    # -- responses ----------------------------------------------------------------------------------

    def _json(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _start_chunked(self, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _chunk(self, data: bytes) -> None:
        if data:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

    def _end_chunked(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _forbidden(self, verb: str, resource: str, group: str, namespace: str, name: str = "") -> None:
        kind = resource.partition("/")[0]
        what = f'{kind} "{name}"' if name else kind
        if group:
            what = f'{resource}.{group} "{name}"' if name else f"{resource}.{group}"
        message = (
            f'{what} is forbidden: User "{USER}" cannot {verb} resource "{resource}" in API group '
            f'"{group}" in the namespace "{namespace}"'
        )
        details = {"kind": kind, **({"group": group} if group else {})}
        if name:
            details["name"] = name
        self._json(403, status(403, "Forbidden", message, details))

    def _not_found(self, resource: str, group: str, name: str) -> None:
        full = f"{resource}.{group}" if group else resource
        details = {"name": name, "kind": resource, **({"group": group} if group else {})}
        self._json(404, status(404, "NotFound", f'{full} "{name}" not found', details))

    # -- routing ------------------------------------------------------------------------------------

    def do_GET(self) -> None:
        cluster = self.server.cluster
        scheme, _, token = str(self.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or token != TOKEN:  # the scheme is case-insensitive (RFC 7235)
            self._json(401, status(401, "Unauthorized", "Unauthorized"))
            return
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        parts = url.path.strip("/").split("/")
        route = self._route(parts, query)
        if route is None:
            self._json(404, status(404, "NotFound", "the server could not find the requested resource"))
            return
        verb, resource, group, namespace, name, serve = route
        with cluster.cond:
            cluster.requests.append((verb, resource))
        if (verb, resource) in cluster.denied:
            self._forbidden(verb, resource, group, namespace, name)
            return
        serve(namespace, name, query)

    def _route(self, parts: list[str], query: dict[str, str]) -> tuple[Any, ...] | None:
        watch = _true(query.get("watch"))
        if parts[:5] == ["apis", "argoproj.io", "v1alpha1", "namespaces", parts[4] if len(parts) > 4 else ""]:
            if len(parts) == 6 and parts[5] == "workflows":
                return ("list", "workflows", "argoproj.io", parts[4], "", self._workflow_list)
            if len(parts) == 7 and parts[5] == "workflows":
                return ("get", "workflows", "argoproj.io", parts[4], parts[6], self._workflow)
            return None
        if len(parts) >= 4 and parts[:2] == ["api", "v1"] and parts[2] == "namespaces":
            namespace = parts[3]
            if parts[4:] == ["pods"]:
                if watch:
                    return ("watch", "pods", "", namespace, "", self._pod_watch)
                return ("list", "pods", "", namespace, "", self._pod_list)
            if len(parts) == 6 and parts[4] == "pods":
                return ("get", "pods", "", namespace, parts[5], self._pod)
            if len(parts) == 7 and parts[4] == "pods" and parts[6] == "log":
                return ("get", "pods/log", "", namespace, parts[5], self._pod_log)
            if len(parts) == 6 and parts[4] == "secrets":
                return ("get", "secrets", "", namespace, parts[5], self._secret)
            if len(parts) == 6 and parts[4] == "configmaps":
                return ("get", "configmaps", "", namespace, parts[5], self._configmap)
        return None

    # -- endpoints ----------------------------------------------------------------------------------

    def _workflow_list(self, namespace: str, _name: str, query: dict[str, str]) -> None:
        cluster = self.server.cluster
        with cluster.cond:
            items = [
                w
                for (ns, _), w in cluster.workflows.items()
                if ns == namespace
                and _matches(w["metadata"].get("labels") or {}, query.get("labelSelector", ""))
            ]
            body = {
                "apiVersion": "argoproj.io/v1alpha1",
                "kind": "WorkflowList",
                "metadata": {"resourceVersion": str(cluster.version), "continue": ""},
                "items": json.loads(json.dumps(items)),
            }
        self._json(200, body)

    def _workflow(self, namespace: str, name: str, _query: dict[str, str]) -> None:
        with self.server.cluster.cond:
            found = self.server.cluster.workflows.get((namespace, name))
            body = json.loads(json.dumps(found)) if found else None
        if body is None:
            self._not_found("workflows", "argoproj.io", name)
        else:
            self._json(200, body)

    def _pod_list(self, namespace: str, _name: str, query: dict[str, str]) -> None:
        cluster = self.server.cluster
        with cluster.cond:
            items = [
                p
                for (ns, _), p in cluster.pods.items()
                if ns == namespace
                and _matches(p["metadata"].get("labels") or {}, query.get("labelSelector", ""))
            ]
            body = {
                "kind": "PodList",
                "apiVersion": "v1",
                "metadata": {"resourceVersion": str(cluster.version)},
                "items": json.loads(json.dumps(items)),
            }
        self._json(200, body)

    def _pod_watch(self, namespace: str, _name: str, query: dict[str, str]) -> None:
        cluster = self.server.cluster
        since = int(query.get("resourceVersion") or 0)
        deadline = time.monotonic() + float(query.get("timeoutSeconds") or 1800)
        selector = query.get("labelSelector", "")
        with cluster.cond:
            epoch = cluster.watch_epoch
            expired = since < cluster.compacted
            if expired:
                cluster.expired_served += 1
                gone = status(410, "Expired", f"too old resource version: {since} ({cluster.compacted})")
                answer = cluster.expired_answer
        if expired and answer == "http":
            self._json(410, gone)
            return
        self._start_chunked("application/json")
        if expired:
            self._chunk(json.dumps({"type": "ERROR", "object": gone}).encode() + b"\n")
            self._end_chunked()
            return
        sent = since
        while True:
            with cluster.cond:
                if cluster.watch_epoch != epoch:
                    break
                fresh = [
                    (v, kind, pod)
                    for v, ns, kind, pod in cluster.events
                    if v > sent
                    and ns == namespace
                    and _matches(pod["metadata"].get("labels") or {}, selector)
                ]
                if not fresh:
                    left = deadline - time.monotonic()
                    if left <= 0 or cluster.stopping:
                        break
                    cluster.cond.wait(min(left, 0.5))
                    continue
            for version, kind, pod in fresh:
                obj = {"kind": "Pod", "apiVersion": "v1", **pod}
                obj["metadata"] = {**pod["metadata"], "resourceVersion": str(version)}
                self._chunk(json.dumps({"type": kind, "object": obj}).encode() + b"\n")
                sent = version
        self._end_chunked()

    def _pod(self, namespace: str, name: str, _query: dict[str, str]) -> None:
        with self.server.cluster.cond:
            found = self.server.cluster.pods.get((namespace, name))
            body = json.loads(json.dumps(found)) if found else None
        if body is None:
            self._not_found("pods", "", name)
        else:
            self._json(200, {"kind": "Pod", "apiVersion": "v1", **body})

    def _pod_log(self, namespace: str, name: str, query: dict[str, str]) -> None:
        cluster = self.server.cluster
        container = query.get("container", "")
        with cluster.cond:
            pod = cluster.pods.get((namespace, name))
            state = _container_state(pod, container) if pod else None
        if pod is None:
            self._not_found("pods", "", name)
            return
        if state is None:
            message = f"container {container} is not valid for pod {name}"
            self._json(400, status(400, "BadRequest", message))
            return
        if state == "waiting":
            message = f'container "{container}" in pod "{name}" is waiting to start: ContainerCreating'
            self._json(400, status(400, "BadRequest", message))
            return
        follow = _true(query.get("follow"))
        stamps = _true(query.get("timestamps"))
        self._start_chunked("text/plain")
        for data in self._log_pieces(namespace, name, container, follow=follow):
            self._chunk(_stamped(data, stamps))
        self._end_chunked()

    def _log_pieces(
        self, namespace: str, pod: str, container: str, *, follow: bool
    ) -> Iterator[tuple[bytes, bytes, bool]]:
        cluster = self.server.cluster
        sent = 0
        at_line_start = True
        while True:
            with cluster.cond:
                log = cluster.logs.setdefault((namespace, pod, container), _Log())
                fresh = log.entries[sent:]
                if not fresh:
                    if not follow or log.closed or cluster.stopping:
                        return
                    cluster.cond.wait(0.5)
                    continue
                sent += len(fresh)
            for stamp, data in fresh:
                yield stamp.encode(), data, at_line_start
                at_line_start = data.endswith(b"\n")

    def _secret(self, namespace: str, name: str, _query: dict[str, str]) -> None:
        with self.server.cluster.cond:
            found = self.server.cluster.secrets.get((namespace, name))
        if found is None:
            self._not_found("secrets", "", name)
        else:
            self._json(200, found)

    def _configmap(self, namespace: str, name: str, _query: dict[str, str]) -> None:
        with self.server.cluster.cond:
            found = self.server.cluster.configmaps.get((namespace, name))
        if found is None:
            self._not_found("configmaps", "", name)
        else:
            self._json(200, found)


def _stamped(piece: tuple[bytes, bytes, bool], stamps: bool) -> bytes:
    stamp, data, at_line_start = piece
    if not stamps:
        return bytes(data)
    # The kubelet puts the time in front of every line it read from the container's log.
    lines = data.split(b"\n")
    out = []
    for i, line in enumerate(lines):
        if i == len(lines) - 1 and not line:
            break
        head = stamp + b" " if (i > 0 or at_line_start) else b""
        out.append(head + line + (b"\n" if i < len(lines) - 1 else b""))
    return b"".join(out)


def _container_state(pod: dict[str, Any], container: str) -> str | None:
    names = [c["name"] for c in pod["spec"]["containers"]]
    if container not in names:
        return None
    for st in (pod.get("status") or {}).get("containerStatuses") or []:
        if st["name"] == container:
            state = st.get("state") or {}
            return "terminated" if "terminated" in state else "running" if "running" in state else "waiting"
    return "waiting"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    cluster: Cluster


@dataclass
class StandIn:
    """The running stand-in: its URL, the kubeconfig that points at it, and its objects (`cluster`)."""

    url: str
    kubeconfig: Path
    cluster: Cluster
    _server: _Server
    _thread: threading.Thread

    def stop(self) -> None:
        with self.cluster.cond:
            self.cluster.stopping = True
            self.cluster.cond.notify_all()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


def start_standin(tmp: Path, *, namespace: str = "team-a") -> StandIn:
    """Start the stand-in on a free port of 127.0.0.1 and write `tmp/kubeconfig` (context namespace given)."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    server = _Server(("127.0.0.1", 0), _Handler)
    server.cluster = Cluster()
    server.socket = context.wrap_socket(server.socket, server_side=True)
    port = server.server_address[1]
    url = f"https://127.0.0.1:{port}"
    ca_path = tmp / "standin-ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    kubeconfig = tmp / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {"name": "standin", "cluster": {"server": url, "certificate-authority": str(ca_path)}}
                ],
                "users": [{"name": "standin-user", "user": {"token": TOKEN}}],
                "contexts": [
                    {
                        "name": "standin",
                        "context": {"cluster": "standin", "user": "standin-user", "namespace": namespace},
                    }
                ],
                "current-context": "standin",
            }
        )
    )
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    return StandIn(url, kubeconfig, server.cluster, server, thread)
