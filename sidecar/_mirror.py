"""Mirror a followed file to object storage: consistent prefixes, bounded retries, secrets never printed."""

from __future__ import annotations

import os
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

__all__ = ["Mirror", "MirrorTarget", "PrefixReader", "make_client"]


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


def make_client(endpoint: str, *, ca_bundle: str | None = None, timeout: float = 5.0) -> Any:
    """A minio client for `endpoint` (http or https URL), credentials from the standard AWS env vars."""
    import urllib3  # noqa: PLC0415 - imported only when mirroring
    from minio import Minio  # noqa: PLC0415
    from minio.credentials.providers import EnvAWSProvider  # noqa: PLC0415

    parsed = urlparse(endpoint if "://" in endpoint else f"http://{endpoint}")
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError(f"endpoint {endpoint!r} is not an http(s) URL")
    secure = parsed.scheme == "https"
    pool_kwargs: dict[str, Any] = {
        "timeout": urllib3.Timeout(connect=min(timeout, 3.0), read=timeout),
        "retries": urllib3.Retry(total=0),  # our own bounded retries, below
        "maxsize": 2,
    }
    if secure:
        context = ssl.create_default_context(cafile=ca_bundle) if ca_bundle else ssl.create_default_context()
        pool_kwargs["ssl_context"] = context
    http = urllib3.PoolManager(**pool_kwargs)
    return Minio(
        parsed.netloc,
        secure=secure,
        credentials=EnvAWSProvider(),
        http_client=http,
        region=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
    )


@dataclass(frozen=True)
class MirrorTarget:
    bucket: str
    key: str


class Mirror:
    """Uploads prefixes of files in a background thread; `final()` runs the last upload in the caller."""

    def __init__(self, client: Any, *, interval: float, log: Any, attempts: int = 4) -> None:
        self._client = client
        self._interval = interval
        self._log = log
        self._attempts = attempts
        self._lock = threading.Lock()
        self._uploaded: dict[str, int] = {}  # key -> length last uploaded
        self._failing: set[str] = set()
        self.uploads = 0
        self.failures = 0

    def _put(self, target: MirrorTarget, fd: int, length: int, deadline: float) -> bool:
        delay = 0.2
        for attempt in range(1, self._attempts + 1):
            try:
                self._client.put_object(
                    target.bucket,
                    target.key,
                    PrefixReader(fd, length),
                    length,
                    content_type="text/plain; charset=utf-8",
                )
            except Exception as exc:
                self.failures += 1
                if target.key not in self._failing:
                    self._failing.add(target.key)
                    self._log.warning(
                        "upload_failed",
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
                if target.key in self._failing:
                    self._failing.discard(target.key)
                    self._log.info("upload_recovered", key=target.key)
                return True
        return False  # pragma: no cover - loop always returns

    def upload(self, target: MirrorTarget, fd: int, length: int, *, deadline: float) -> bool:
        """Upload the first `length` bytes of `fd` to `target`, unless that exact length is there already."""
        with self._lock:
            if self._uploaded.get(target.key) == length:
                return True
            ok = self._put(target, fd, length, deadline)
            if ok:
                self._uploaded[target.key] = length
            return ok

    def needs_upload(self, target: MirrorTarget, length: int) -> bool:
        return self._uploaded.get(target.key) != length

    @property
    def interval(self) -> float:
        return self._interval


def _safe_error(exc: Exception) -> str:
    """An error's class and S3 code, never its full text (which can echo signed URLs or headers)."""
    code = getattr(exc, "code", None)
    return f"{type(exc).__name__}{f' {code}' if code else ''}"
