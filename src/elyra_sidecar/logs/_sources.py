"""Where a step's lines come from: the Kubernetes API (official client) and the mirrored object (minio).

Both speak plain dicts and bytes to the rest of the command, and turn every failure a user can meet into
one `LogsError` line: what was denied or unreachable, and where. Only API calls that exist in every
`kubernetes` client release of the last years are used (`_preload_content=False`, JSON parsed here), so
the command runs beside an older client pinned by kfp in a notebook image.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
import ssl
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from elyra_sidecar.logs._output import sanitize
from elyra_sidecar.logs._workflow import WORKFLOW_LABEL, ElyraTemplate

if TYPE_CHECKING:
    from elyra_sidecar.logs._endpoint import Endpoint
    from elyra_sidecar.logs._s3access import Credentials

__all__ = ["Kube", "LogsError", "ObjectRead", "PodGone", "PodNotReady", "S3Reader", "WatchExpired", "connect"]

#: Where Kubernetes mounts a pod's service account (token, CA, namespace).
SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
_TIMEOUT = (10.0, 60.0)  # (connect, read) seconds for calls that answer at once


class LogsError(Exception):
    """A failure to report as one `Error:` line (exit 1)."""


class PodGone(Exception):  # noqa: N818 - a state, not an error
    """The pod (or its log) is not there any more: 404."""


class PodNotReady(Exception):  # noqa: N818 - a state, not an error
    """The container has not started yet, so it has no log: 400."""


class WatchExpired(Exception):  # noqa: N818 - a state, not an error
    """410 Gone: the resourceVersion a watch started from is older than the history the API server keeps;
    the client must list again and watch from the list's version (API conventions, "Efficient detection of
    changes")."""


def _status_message(body: Any) -> str:
    try:
        status = json.loads(body)
    except (TypeError, ValueError):
        return ""
    return str(status.get("message") or "") if isinstance(status, dict) else ""


@dataclass(frozen=True)
class _Call:
    verb: str
    resource: str
    namespace: str


class Kube:
    """The few API calls this command makes, with errors named by verb and resource."""

    def __init__(self, api_client: Any, namespace: str) -> None:
        from kubernetes import client  # noqa: PLC0415 - optional extra, imported on use

        self.namespace = namespace
        self.host = str(api_client.configuration.host)
        self._open: set[Any] = set()  # streaming responses, shut on close() to free their threads
        self._lock = threading.Lock()
        self._core = client.CoreV1Api(api_client)
        self._custom = client.CustomObjectsApi(api_client)

    def _fail(self, exc: Exception, call: _Call) -> LogsError:
        from kubernetes.client.rest import ApiException  # noqa: PLC0415

        where = f"in namespace {call.namespace!r}"
        if isinstance(exc, ApiException) and exc.status:
            if exc.status == 403:
                return LogsError(
                    f"permission denied: cannot {call.verb} {call.resource} {where} "
                    "(docs/logs.md shows the Role a user needs)"
                )
            if exc.status == 401:
                return LogsError(
                    f"the Kubernetes API at {self.host} did not accept our credentials (401) "
                    f"to {call.verb} {call.resource}: log in again or check the kubeconfig"
                )
            message = sanitize(_status_message(exc.body) or str(exc.reason), limit=200)
            return LogsError(
                f"the Kubernetes API answered {exc.status} to {call.verb} {call.resource} {where}: {message}"
            )
        reason = sanitize(f"{type(exc).__name__}: {exc}", limit=200)
        return LogsError(f"cannot reach the Kubernetes API at {self.host} ({reason})")

    def _json(self, call: _Call, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        response = self._raw(call, fn, *args, _request_timeout=_TIMEOUT, **kwargs)
        try:
            return json.loads(response.data)
        finally:
            response.release_conn()

    def _raw(self, call: _Call, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        from kubernetes.client.rest import ApiException  # noqa: PLC0415

        try:
            return fn(*args, _preload_content=False, **kwargs)
        except ApiException as exc:
            if exc.status == 404:
                raise PodGone(call.resource) from exc
            if exc.status == 400 and call.resource == "pods/log":
                raise PodNotReady(_status_message(exc.body)) from exc
            if exc.status == 410 and call.verb == "watch":
                raise WatchExpired(_status_message(exc.body)) from exc
            raise self._fail(exc, call) from exc
        except Exception as exc:
            raise self._fail(exc, call) from exc

    def workflows_by_run_id(self, run_id: str) -> list[dict[str, Any]]:
        listing = self._json(
            _Call("list", "workflows.argoproj.io", self.namespace),
            self._custom.list_namespaced_custom_object,
            "argoproj.io",
            "v1alpha1",
            self.namespace,
            "workflows",
            label_selector=f"pipeline/runid={run_id}",
        )
        return [w for w in listing.get("items") or [] if isinstance(w, dict)]

    def workflow(self, name: str) -> dict[str, Any] | None:
        try:
            found = self._json(
                _Call("get", "workflows.argoproj.io", self.namespace),
                self._custom.get_namespaced_custom_object,
                "argoproj.io",
                "v1alpha1",
                self.namespace,
                "workflows",
                name,
            )
        except PodGone:
            return None
        return found if isinstance(found, dict) else None

    def pods(self, workflow: str) -> tuple[list[dict[str, Any]], str]:
        """The Workflow's pods and the list's resourceVersion (to watch from)."""
        listing = self._json(
            _Call("list", "pods", self.namespace),
            self._core.list_namespaced_pod,
            self.namespace,
            label_selector=f"{WORKFLOW_LABEL}={workflow}",
        )
        items = [p for p in listing.get("items") or [] if isinstance(p, dict)]
        return items, str((listing.get("metadata") or {}).get("resourceVersion") or "")

    def watch_pods(self, workflow: str, resource_version: str, seconds: int) -> Iterator[tuple[str, Any]]:
        """Events (type, object) for the Workflow's pods after `resource_version`, for about `seconds`.

        Raises WatchExpired when the version is too old (list again): the API server says so with an `ERROR`
        event carrying a Status of code 410 (HTTP 200), an HTTP 410 is taken alike. Any other `ERROR` event
        is yielded (its object a Status)."""
        from kubernetes.watch.watch import iter_resp_lines  # noqa: PLC0415

        response = self._raw(
            _Call("watch", "pods", self.namespace),
            self._core.list_namespaced_pod,
            self.namespace,
            label_selector=f"{WORKFLOW_LABEL}={workflow}",
            watch=True,
            resource_version=resource_version,
            allow_watch_bookmarks=False,
            timeout_seconds=seconds,
            _request_timeout=(_TIMEOUT[0], seconds + 30.0),
        )
        self._track(response)
        try:
            for line in iter_resp_lines(response):
                if line.strip():
                    yield _watch_event(line)
        except Exception as exc:
            if isinstance(exc, (LogsError, WatchExpired, GeneratorExit)):
                raise
            return  # a dropped watch is resumed by the caller from the last version it saw
        finally:
            self._untrack(response)

    def pod(self, name: str) -> dict[str, Any] | None:
        try:
            found = self._json(
                _Call("get", "pods", self.namespace), self._core.read_namespaced_pod, name, self.namespace
            )
        except PodGone:
            return None
        return found if isinstance(found, dict) else None

    def pod_log(self, name: str, container: str, *, follow: bool, timestamps: bool) -> Iterator[bytes]:
        """The container's log as chunks, as they arrive; ends when the stream ends or breaks.

        Raises PodGone (404) or PodNotReady (400: the container is still waiting) before the first chunk."""
        response = self._raw(
            _Call("get", "pods/log", self.namespace),
            self._core.read_namespaced_pod_log,
            name,
            self.namespace,
            container=container,
            follow=follow,
            timestamps=timestamps,
            _request_timeout=None if follow else _TIMEOUT,
        )
        self._track(response)
        return self._chunks(response)

    def _chunks(self, response: Any) -> Iterator[bytes]:
        try:
            yield from response.stream(1 << 16, decode_content=False)
        except Exception as exc:
            if isinstance(exc, GeneratorExit):
                raise
            return  # the server closed mid-stream (pod deleted, API server restarted): the caller checks
        finally:
            self._untrack(response)

    def _track(self, response: Any) -> None:
        with self._lock:
            self._open.add(response)

    def _untrack(self, response: Any) -> None:
        with self._lock:
            self._open.discard(response)
        response.release_conn()

    def close(self) -> None:
        """Shut the sockets of the streams still open, so that the threads reading them return now."""
        with self._lock:
            responses = list(self._open)
        for response in responses:
            connection = getattr(response, "connection", None) or getattr(response, "_connection", None)
            sock = getattr(connection, "sock", None)
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def configmap(self, namespace: str, name: str) -> dict[str, str] | None:
        """The ConfigMap's `data`, or None when there is no such ConfigMap."""
        try:
            found = self._json(
                _Call("get", "configmaps", namespace), self._core.read_namespaced_config_map, name, namespace
            )
        except PodGone:
            return None
        data = found.get("data") if isinstance(found, dict) else None
        return {str(k): v for k, v in data.items() if isinstance(v, str)} if isinstance(data, dict) else {}

    def secret(self, name: str) -> dict[str, str]:
        try:
            found = self._json(
                _Call("get", "secrets", self.namespace),
                self._core.read_namespaced_secret,
                name,
                self.namespace,
            )
        except PodGone:
            raise LogsError(f"Secret {name!r} not found in namespace {self.namespace!r}") from None
        data = found.get("data") or {} if isinstance(found, dict) else {}
        return {str(k): base64.b64decode(v).decode("utf-8", errors="replace") for k, v in data.items()}


def _watch_event(line: str) -> tuple[str, Any]:
    """One watch event as (type, object); WatchExpired for the ERROR event that says 410 Gone."""
    event = json.loads(line)
    kind, obj = str(event.get("type")), event.get("object")
    if kind == "ERROR" and isinstance(obj, Mapping) and obj.get("code") == 410:
        raise WatchExpired(str(obj.get("message") or ""))
    return kind, obj


def _active_namespace(config_file: str, context: str | None) -> str | None:
    from kubernetes import config  # noqa: PLC0415

    contexts, active = config.list_kube_config_contexts(config_file=config_file)
    chosen = next((c for c in contexts or [] if c.get("name") == context), None) if context else active
    return str(((chosen or {}).get("context") or {}).get("namespace") or "") or None


def connect(*, kubeconfig: str | None, context: str | None, namespace: str | None) -> Kube:
    """A client from the kubeconfig (`--kubeconfig`, $KUBECONFIG, ~/.kube/config) or, in a pod, the
    service account; the namespace from the option, the context, the service account, else `default`."""
    from kubernetes import client, config  # noqa: PLC0415
    from kubernetes.config.incluster_config import InClusterConfigLoader  # noqa: PLC0415

    configuration = client.Configuration()
    path = kubeconfig or os.environ.get("KUBECONFIG") or str(Path("~/.kube/config").expanduser())
    paths = [p for p in path.split(os.pathsep) if p]
    try:
        if kubeconfig or any(Path(p).expanduser().exists() for p in paths):
            config.load_kube_config(config_file=path, context=context, client_configuration=configuration)
            namespace = namespace or _active_namespace(path, context)
        elif os.environ.get("KUBERNETES_SERVICE_HOST"):
            InClusterConfigLoader(
                token_filename=str(SERVICE_ACCOUNT_DIR / "token"),
                cert_filename=str(SERVICE_ACCOUNT_DIR / "ca.crt"),
            ).load_and_set(configuration)
            sa_namespace = SERVICE_ACCOUNT_DIR / "namespace"
            if not namespace and sa_namespace.exists():
                namespace = sa_namespace.read_text().strip() or None
        else:
            raise LogsError(  # noqa: TRY301 - the one failure that is ours, among the loaders' own
                f"no Kubernetes configuration: no kubeconfig at {path} and not running in a pod "
                "(set KUBECONFIG or pass --kubeconfig)"
            )
    except LogsError:
        raise
    except Exception as exc:  # ConfigException, a YAML error, a missing file named by --kubeconfig
        raise LogsError(
            f"cannot load the Kubernetes configuration from {path}: {sanitize(str(exc), limit=200)}"
        ) from exc
    return Kube(client.ApiClient(configuration), namespace or "default")


@dataclass(frozen=True)
class ObjectRead:
    """An object being read: where, when it was written, and its bytes as they arrive (None: no such
    object or bucket). Iterate `chunks` to the end (or close it) to release the connection."""

    endpoint: str
    last_modified: datetime | None
    chunks: Iterator[bytes] | None


_CHUNK = 1 << 16  # bytes per read of an S3 copy: memory stays this size whatever the object's


class S3Reader:
    """Reads mirrored logs, only at a confirmed endpoint (`choose`); one client per endpoint and
    credentials, built on first use. Says on stderr (`note`) once per client which endpoint and which
    credentials' source (never a value) it uses."""

    def __init__(
        self,
        *,
        credentials: Callable[[ElyraTemplate | None], Credentials],
        choose: Callable[[str], tuple[Endpoint, str]],
        insecure: bool,
        ca_bundle: str | None,
        note: Callable[[str], None],
    ) -> None:
        self._credentials = credentials
        self._choose = choose
        self._insecure = insecure
        self._ca_bundle = ca_bundle
        self._note = note
        self._clients: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    def _client(self, workflow_endpoint: str, template: ElyraTemplate | None) -> tuple[Any, Endpoint]:
        endpoint, why = self._choose(workflow_endpoint)  # before any Secret is read for it
        creds = self._credentials(template)
        if endpoint.scheme == "http" and creds.from_cluster and not self._insecure:
            raise LogsError(
                f"not sending the credentials of {creds.source} over plain http to {endpoint} ({why}): "
                "use an https endpoint (--s3-endpoint https://...), or pass --insecure to allow it"
            )
        cache_key = (endpoint.url, creds.source)
        with self._lock:
            if cache_key in self._clients:
                return self._clients[cache_key], endpoint
            import urllib3  # noqa: PLC0415
            from minio import Minio  # noqa: PLC0415

            http = urllib3.PoolManager(
                timeout=urllib3.Timeout(connect=5.0, read=60.0),
                retries=urllib3.Retry(total=2, backoff_factor=0.2, status_forcelist=(500, 502, 503, 504)),
                cert_reqs="CERT_REQUIRED",
                ca_certs=self._ca_bundle,
            )
            values = creds.values
            self._clients[cache_key] = Minio(
                endpoint.netloc,
                access_key=values.get("AWS_ACCESS_KEY_ID"),
                secret_key=values.get("AWS_SECRET_ACCESS_KEY"),
                session_token=values.get("AWS_SESSION_TOKEN"),
                secure=endpoint.scheme == "https",
                http_client=http,
            )
            self._note(f"S3: reading at {endpoint} ({why}), credentials: {creds.source}")
            return self._clients[cache_key], endpoint

    def open(
        self, endpoint: str, bucket: str, key: str, *, template: ElyraTemplate | None = None
    ) -> ObjectRead:
        """The object, to be read as it arrives; `chunks` is None when there is no such object or bucket."""
        from minio.error import S3Error  # noqa: PLC0415

        where = f"s3://{bucket}/{key}"
        client, chosen = self._client(endpoint, template)
        try:
            response = client.get_object(bucket, key)
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchBucket"):
                return ObjectRead(chosen.url, None, None)
            raise LogsError(
                f"S3 at {chosen} refused to read {where} ({exc.code}): check the credentials "
                "(AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or --s3-secret)"
            ) from exc
        except Exception as exc:
            raise self._fail(exc, chosen, where) from exc
        stamp = _http_date(response.headers.get("Last-Modified"))
        return ObjectRead(chosen.url, stamp, self._stream(response, chosen, where))

    def _stream(self, response: Any, endpoint: Endpoint, where: str) -> Iterator[bytes]:
        try:
            yield from response.stream(_CHUNK, decode_content=False)
        except GeneratorExit:
            raise
        except Exception as exc:
            raise self._fail(exc, endpoint, where) from exc
        finally:
            response.close()
            response.release_conn()

    def _fail(self, exc: Exception, endpoint: Endpoint, where: str) -> LogsError:
        untrusted = _certificate_error(exc)
        if untrusted is not None:
            trusted = f"the CAs in {self._ca_bundle}" if self._ca_bundle else "the system's CAs"
            reason = sanitize(untrusted.verify_message or str(untrusted), limit=120)
            return LogsError(
                f"S3 endpoint {endpoint} presented a certificate that fails verification against "
                f"{trusted} ({reason}) while reading {where}: pass a private CA with --s3-ca-bundle FILE"
            )
        reason = sanitize(_root_cause(exc), limit=160)
        return LogsError(f"S3 endpoint {endpoint} is unreachable ({reason}) while reading {where}")


def _certificate_error(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The failed certificate check somewhere under urllib3's wrappers (MaxRetryError, SSLError), if any."""
    seen: set[int] = set()
    todo: list[object] = [exc]
    while todo:
        item = todo.pop()
        if not isinstance(item, BaseException) or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, ssl.SSLCertVerificationError):
            return item
        todo += [getattr(item, "reason", None), item.__cause__, item.__context__, *item.args]
    return None


def _root_cause(exc: BaseException) -> str:
    reason: Any = getattr(exc, "reason", None)
    while isinstance(reason, BaseException) and getattr(reason, "reason", None) is not None:
        reason = getattr(reason, "reason", None)
    inner = reason if isinstance(reason, BaseException) else exc
    return f"{type(inner).__name__}: {inner}"


def _http_date(value: str | None) -> datetime | None:
    from email.utils import parsedate_to_datetime  # noqa: PLC0415

    if not value:
        return None
    try:
        return parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
