"""Mirror a followed file to object storage: consistent prefixes, bounded retries, secrets never printed.

The object is always a prefix of the file. Its cost grows with what was appended, not with the file's
size times the number of intervals (a 119 MB log used to go up 46 times, ~2.5 GB):

- Once the object holds at least 5 MiB (S3's smallest part but the last), the next upload is a multipart
  upload whose first part is a server-side copy of the object's first bytes (UploadPartCopy, guarded by
  the ETag we wrote: if anyone else wrote the key, the copy is refused and we upload whole) and whose
  other parts are only the new bytes. The bytes sent are the appended bytes.
- Below 5 MiB, or on a server without UploadPartCopy, an upload sends the whole prefix. Those uploads are
  spaced out (up to 12 intervals) while the file grows slowly, so their bytes stay within 4x of what
  was appended, or one upload of at most the file's size per 12 intervals.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time

from elyra_sidecar.contract import SidecarEvent

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing stays out of the pod's start-up (see tail.py)
    from typing import Any

__all__ = ["MIN_PART", "Mirror", "MirrorTarget", "PrefixReader", "make_client"]

#: S3's smallest part size (every part but the last): below this an append cannot reuse the object.
MIN_PART = 5 << 20
#: Size of the parts that carry appended bytes (the last one may be smaller); bounds the memory used.
_PART = MIN_PART
#: A whole-prefix upload waits until it costs at most this many times the appended bytes...
_COST_PER_APPENDED = 4.0
#: ...or until this many intervals have passed since the last upload started.
_MAX_INTERVALS = 12.0
#: S3 error codes that mean "try again", not "this server has no UploadPartCopy".
_TRANSIENT = frozenset({"InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout"})
_CONTENT_TYPE = "text/plain; charset=utf-8"


class PrefixReader:
    """A read()-able view of the first `length` bytes of an open file, read with pread (no seek races)."""

    def __init__(self, fd: int, length: int) -> None:
        self._fd = fd
        self._length = length
        self._pos = 0

    def read(self, size: int = -1) -> bytes:
        remaining = self._length - self._pos
        if remaining <= 0:
            return b""
        want = remaining if size is None or size < 0 else min(size, remaining)
        data = os.pread(self._fd, want, self._pos)
        if not data:  # the file shrank under us: give what there is, the next upload corrects it
            self._length = self._pos
            return b""
        self._pos += len(data)
        return data


class _ShrankError(Exception):
    """The file is shorter than the prefix we meant to append: upload whole next time."""


def make_client(
    endpoint: str, *, ca_bundle: str | None = None, timeout: float = 5.0, web_identity: bool = False
) -> Any:
    """A minio client for `endpoint` (http or https URL), credentials from the standard AWS env vars:
    the keys, or with `web_identity` temporary ones for AWS_ROLE_ARN and the token in
    AWS_WEB_IDENTITY_TOKEN_FILE (see `_web_identity`)."""
    import ssl  # noqa: PLC0415 - imported only when mirroring (ssl alone is ~5 MiB of RSS)
    from urllib.parse import urlparse  # noqa: PLC0415

    import urllib3  # noqa: PLC0415
    from minio import Minio  # noqa: PLC0415
    from minio.credentials.providers import EnvAWSProvider  # noqa: PLC0415

    parsed = urlparse(endpoint if "://" in endpoint else f"http://{endpoint}")
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError(f"endpoint {endpoint!r} is not an http(s) URL")
    secure = parsed.scheme == "https"
    pool_kwargs: dict[str, Any] = {
        "timeout": urllib3.Timeout(connect=min(timeout, 3.0), read=timeout),
        "retries": urllib3.Retry(total=0),  # our own bounded retries, below
        # Uploads run one at a time (Mirror's lock, num_parallel_uploads=1), plus the occasional
        # credential or region request: 4 connections never overflow, so urllib3 never warns that the
        # "connection pool is full" (it did with minio's 3 parallel part uploads on a pool of 2).
        "maxsize": 4,
    }
    if secure:
        context = ssl.create_default_context(cafile=ca_bundle) if ca_bundle else ssl.create_default_context()
        pool_kwargs["ssl_context"] = context
    http = urllib3.PoolManager(**pool_kwargs)
    return Minio(
        parsed.netloc,
        secure=secure,
        credentials=_web_identity(pool_kwargs, ca_bundle) if web_identity else EnvAWSProvider(),
        http_client=http,
        region=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
    )


def sts_endpoint() -> str:
    """Where AssumeRoleWithWebIdentity goes: AWS_ENDPOINT_URL_STS (the AWS SDKs' variable) if set, else
    AWS's STS for AWS_REGION, as minio's IamAwsProvider (what Elyra's bootstrapper uses) chooses it."""
    custom = os.environ.get("AWS_ENDPOINT_URL_STS")
    if custom:
        return custom
    region = os.environ.get("AWS_REGION")
    if not region:
        return "https://sts.amazonaws.com"
    return f"https://sts.{region}.amazonaws.com" + (".cn" if region.startswith("cn-") else "")


#: A projected service-account token is a few kB; anything larger is not a token.
MAX_TOKEN_BYTES = 64 << 10


def read_token(path: str) -> str:
    """The web-identity token in `path` (the author's AWS_WEB_IDENTITY_TOKEN_FILE). Links are followed (the
    kubelet's projected token is one), but only a regular file of at most MAX_TOKEN_BYTES is read: a FIFO
    is opened without blocking and refused, a device such as /dev/zero is never read (OSError)."""
    import stat  # noqa: PLC0415

    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{path} is not a regular file")
        data = os.read(fd, MAX_TOKEN_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) > MAX_TOKEN_BYTES:
        raise OSError(f"{path} is over {MAX_TOKEN_BYTES} bytes: not a token")
    return data.decode("utf-8").strip()


def _web_identity(pool_kwargs: dict[str, Any], ca_bundle: str | None) -> Any:
    """Temporary credentials from STS for AWS_ROLE_ARN, renewed when they expire; the token file is read
    again for each request (the kubelet rotates a projected token). The STS connection has the same
    timeouts and no retries of its own (the mirror's bounded retries apply); it trusts the system's CAs
    and the --ca-bundle. Errors are reported by class only: minio's text holds the request URL, and
    with it the token."""
    import ssl  # noqa: PLC0415

    import urllib3  # noqa: PLC0415
    from minio.credentials.providers import WebIdentityProvider  # noqa: PLC0415

    context = ssl.create_default_context()
    if ca_bundle:
        context.load_verify_locations(cafile=ca_bundle)
    sts_http = urllib3.PoolManager(**{**pool_kwargs, "ssl_context": context, "maxsize": 1})
    token_file = os.environ["AWS_WEB_IDENTITY_TOKEN_FILE"]

    def token() -> dict[str, str]:
        return {"access_token": read_token(token_file), "expires_in": "0"}

    return WebIdentityProvider(
        jwt_provider_func=token,
        sts_endpoint=sts_endpoint(),
        role_arn=os.environ["AWS_ROLE_ARN"],
        role_session_name=os.environ.get("AWS_ROLE_SESSION_NAME") or None,
        http_client=sts_http,
    )


class MirrorTarget:
    """Where one file goes: bucket and key (a value; plain class: `dataclasses` costs start-up time)."""

    __slots__ = ("bucket", "key")

    def __init__(self, bucket: str, key: str) -> None:
        self.bucket = bucket
        self.key = key

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MirrorTarget) and (self.bucket, self.key) == (other.bucket, other.key)

    def __hash__(self) -> int:
        return hash((self.bucket, self.key))

    def __repr__(self) -> str:
        return f"MirrorTarget(bucket={self.bucket!r}, key={self.key!r})"


class _Uploaded:
    """What the object holds: the first `length` bytes of the file's `generation`, written as `etag`."""

    __slots__ = ("etag", "generation", "length")

    def __init__(self, generation: int, length: int, etag: str | None) -> None:
        self.generation = generation
        self.length = length
        self.etag = etag


class Mirror:
    """Uploads prefixes of files (one at a time); `upload()` is called from the worker and at shutdown."""

    def __init__(self, client: Any, *, interval: float, log: Any, attempts: int = 4) -> None:
        self._client = client
        self._interval = interval
        self._log = log
        self._attempts = attempts
        self._lock = threading.Lock()
        self._uploaded: dict[str, _Uploaded] = {}
        self._started: dict[str, float] = {}  # key -> clock time the last upload was claimed
        self._failing: set[str] = set()
        self._append_supported = True
        self.uploads = 0
        self.appends = 0  # uploads that sent only the appended bytes
        self.failures = 0
        self.bytes_sent = 0  # payload bytes sent (object data; not headers)

    # -- policy ----------------------------------------------------------------------------------
    def _appendable(self, prev: _Uploaded | None, generation: int, length: int) -> bool:
        return (
            self._append_supported
            and prev is not None
            and prev.etag is not None
            and prev.generation == generation
            and MIN_PART <= prev.length < length
        )

    def claim(self, target: MirrorTarget, *, generation: int, length: int, now: float) -> bool:
        """Whether an upload of this prefix should start now; if so, its start is recorded."""
        prev = self._uploaded.get(target.key)
        if prev is not None and prev.generation == generation and prev.length == length:
            return False
        elapsed = now - self._started.get(target.key, float("-inf"))
        if elapsed < self._interval:
            return False
        same = prev is not None and prev.generation == generation and prev.length < length
        appended = length - prev.length if same and prev is not None else length
        cost = appended if self._appendable(prev, generation, length) else length
        # The worse the cost per appended byte, the longer a whole-prefix upload waits (bounded).
        ratio = cost / (_COST_PER_APPENDED * max(appended, 1))
        if elapsed < self._interval * min(_MAX_INTERVALS, max(1.0, ratio)):
            return False
        self._started[target.key] = now
        return True

    def needs_upload(self, target: MirrorTarget, length: int, generation: int = 0) -> bool:
        prev = self._uploaded.get(target.key)
        return prev is None or prev.generation != generation or prev.length != length

    @property
    def interval(self) -> float:
        return self._interval

    # -- uploading -------------------------------------------------------------------------------
    def upload(
        self, target: MirrorTarget, fd: int, length: int, *, deadline: float, generation: int = 0
    ) -> bool:
        """Make the object the first `length` bytes of `fd`, unless it holds exactly that already."""
        if not self._lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            return False  # another upload still runs at the deadline: what it writes is a prefix too
        try:
            prev = self._uploaded.get(target.key)
            if prev is not None and prev.generation == generation and prev.length == length:
                return True
            return self._retrying(target, fd, length, generation, deadline)
        finally:
            self._lock.release()

    def _retrying(self, target: MirrorTarget, fd: int, length: int, generation: int, deadline: float) -> bool:
        delay = 0.2
        for attempt in range(1, self._attempts + 1):
            try:
                etag = self._send(target, fd, length, generation)
            except Exception as exc:
                self.failures += 1
                if target.key not in self._failing:
                    self._failing.add(target.key)
                    self._log.warning(
                        SidecarEvent.UPLOAD_FAILED,
                        key=target.key,
                        bucket=target.bucket,
                        attempt=attempt,
                        error=_safe_error(exc),
                    )
                if time.monotonic() + delay >= deadline or attempt == self._attempts:
                    return False
                time.sleep(delay)
                delay *= 2
            else:
                self.uploads += 1
                self._uploaded[target.key] = _Uploaded(generation, length, etag)
                if target.key in self._failing:
                    self._failing.discard(target.key)
                    self._log.info(SidecarEvent.UPLOAD_RECOVERED, key=target.key)
                return True
        return False  # pragma: no cover - loop always returns

    def _send(self, target: MirrorTarget, fd: int, length: int, generation: int) -> str | None:
        prev = self._uploaded.get(target.key)
        if prev is not None and self._appendable(prev, generation, length):
            try:
                return self._append(target, fd, prev, length)
            except _ShrankError:
                pass
            except Exception as exc:
                code = getattr(exc, "code", None)
                if code is None or code in _TRANSIENT:
                    raise  # network or server trouble: the retry loop decides
                if code != "PreconditionFailed":  # someone else wrote the key: upload whole, keep appending
                    self._append_supported = False
                    self._log.warning(
                        SidecarEvent.MIRROR_APPEND_UNSUPPORTED, key=target.key, error=_safe_error(exc)
                    )
        return self._put(target, fd, length)

    def _put(self, target: MirrorTarget, fd: int, length: int) -> str | None:
        result = self._client.put_object(
            target.bucket,
            target.key,
            PrefixReader(fd, length),
            length,
            content_type=_CONTENT_TYPE,
            num_parallel_uploads=1,  # one connection at a time (see make_client), bounded memory
        )
        self.bytes_sent += length
        etag = getattr(result, "etag", None)
        return str(etag) if etag else None

    def _append(self, target: MirrorTarget, fd: int, prev: _Uploaded, length: int) -> str | None:
        """The object's first `prev.length` bytes copied on the server, then only the new bytes sent."""
        from urllib.parse import quote  # noqa: PLC0415 - imported only when mirroring

        from minio.datatypes import Part  # noqa: PLC0415

        client = self._client
        bucket, key = target.bucket, target.key
        # minio's multipart primitives (what its compose_object and put_object are built from): compose
        # needs every source to be an object already, and the new bytes are not one.
        upload_id = client._create_multipart_upload(bucket, key, {"Content-Type": _CONTENT_TYPE})
        try:
            copied, _ = client._upload_part_copy(
                bucket,
                key,
                upload_id,
                1,
                {
                    "x-amz-copy-source": quote(f"/{bucket}/{key}"),
                    "x-amz-copy-source-range": f"bytes=0-{prev.length - 1}",
                    "x-amz-copy-source-if-match": f'"{prev.etag}"',
                },
            )
            parts = [Part(1, copied)]
            offset = prev.length
            while offset < length:
                data = _read_part(fd, offset, min(_PART, length - offset))
                number = len(parts) + 1
                parts.append(Part(number, client._upload_part(bucket, key, data, None, upload_id, number)))
                self.bytes_sent += len(data)
                offset += len(data)
            result = client._complete_multipart_upload(bucket, key, upload_id, parts)
        except BaseException:
            with contextlib.suppress(Exception):  # best effort: an unfinished upload is only storage
                client._abort_multipart_upload(bucket, key, upload_id)
            raise
        self.appends += 1
        etag = getattr(result, "etag", None)
        return str(etag) if etag else None


def _read_part(fd: int, offset: int, size: int) -> bytes:
    data = os.pread(fd, size, offset)
    if not data:
        raise _ShrankError
    return data


def _safe_error(exc: Exception) -> str:
    """An error's class and S3 code, never its full text (which can echo signed URLs or headers)."""
    code = getattr(exc, "code", None)
    return f"{type(exc).__name__}{f' {code}' if code else ''}"
