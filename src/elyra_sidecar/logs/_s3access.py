"""Where the S3 copies are read and with which credentials: the endpoint rule of `_endpoint` applied, and
the credentials looked up once, each with a description of its source that names no value."""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

from elyra_sidecar import contract
from elyra_sidecar.logs._endpoint import (
    KFP_CONFIGMAP,
    Endpoint,
    EndpointError,
    kfp_object_store,
    parse_endpoint,
)
from elyra_sidecar.logs._output import sanitize
from elyra_sidecar.logs._sources import Kube, LogsError
from elyra_sidecar.logs._workflow import ElyraTemplate, SecretRef

__all__ = ["CredentialLookup", "Credentials", "EndpointChooser"]


@dataclass(frozen=True)
class Credentials:
    values: Mapping[str, str] = field(default_factory=dict)
    #: Where they came from, never the values: `secret ns/name keys a,b`, `env AWS_ACCESS_KEY_ID`, ...
    source: str = "none (anonymous requests)"
    #: Read from a Secret through the API (with the user's rights): never sent over plain http unasked.
    from_cluster: bool = False


class CredentialLookup:
    """S3 credentials, looked up once on first use: --s3-secret, else the environment, else the step's own
    settings (plain values in the Workflow, or the Secret its env refers to)."""

    def __init__(self, kube: Kube, secret: str | None) -> None:
        self._kube = kube
        self._secret = secret
        self._secrets: dict[str, dict[str, str]] = {}
        self._lock = threading.Lock()

    def __call__(self, template: ElyraTemplate | None) -> Credentials:
        with self._lock:
            return self._lookup(template)

    def _read_secret(self, name: str) -> dict[str, str]:
        if name not in self._secrets:
            self._secrets[name] = self._kube.secret(name)
        return self._secrets[name]

    def _lookup(self, template: ElyraTemplate | None) -> Credentials:
        names = contract.CREDENTIAL_ENV
        namespace = self._kube.namespace
        if self._secret:
            data = self._read_secret(self._secret)
            aliases = {"AWS_ACCESS_KEY_ID": "accesskey", "AWS_SECRET_ACCESS_KEY": "secretkey"}
            keys = {n: n if data.get(n) else aliases.get(n, "") for n in names}
            found = {n: data.get(k, "") for n, k in keys.items() if k}
            if not found.get("AWS_ACCESS_KEY_ID") or not found.get("AWS_SECRET_ACCESS_KEY"):
                raise LogsError(
                    f"Secret {sanitize(self._secret)!r} has neither AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY "
                    "nor accesskey/secretkey"
                )
            used = ",".join(keys[n] for n in names if found.get(n))
            return Credentials(
                {k: v for k, v in found.items() if v},
                f"secret {namespace}/{sanitize(self._secret)} keys {used} (--s3-secret)",
                from_cluster=True,
            )
        if os.environ.get("AWS_ACCESS_KEY_ID") and os.environ.get("AWS_SECRET_ACCESS_KEY"):
            env = {n: os.environ[n] for n in names if os.environ.get(n)}
            return Credentials(env, "env " + ",".join(env))
        values: dict[str, str] = {}
        secrets: dict[str, list[str]] = {}
        plain: list[str] = []
        for name, value in (template.credentials if template else {}).items():
            if isinstance(value, SecretRef):
                values[name] = self._read_secret(value.name).get(value.key, "")
                secrets.setdefault(value.name, []).append(value.key)
            else:
                values[name] = value
                plain.append(name)
        parts = [
            f"secret {namespace}/{sanitize(secret)} keys {','.join(sanitize(k) for k in keys)}"
            for secret, keys in secrets.items()
        ]
        if plain:
            parts.append("the Workflow's env values " + ",".join(plain))
        source = " and ".join(parts) + " (named by the Workflow)" if parts else Credentials.source
        return Credentials({k: v for k, v in values.items() if v}, source, from_cluster=bool(secrets))


class EndpointChooser:
    """The endpoint to read a Workflow's S3 copy at: `--s3-endpoint`; else KFP's own object store, provided
    the Workflow names the same host and port (or `--trust-workflow-endpoint`)."""

    def __init__(self, kube: Kube, *, override: str | None, kfp_namespace: str, trust_workflow: bool) -> None:
        self._kube = kube
        self._override = override
        self._kfp_namespace = kfp_namespace
        self._trust = trust_workflow
        self._lock = threading.Lock()
        self._confirmed: tuple[Endpoint | None, str] | None = None  # (endpoint, why none) once looked up

    @property
    def _configmap(self) -> str:
        return f"ConfigMap {self._kfp_namespace}/{KFP_CONFIGMAP}"

    def override(self) -> Endpoint | None:
        if not self._override:
            return None
        try:
            return parse_endpoint(self._override)
        except EndpointError as exc:
            raise LogsError(f"--s3-endpoint {sanitize(str(exc), limit=300)}") from None

    def _kfp(self) -> tuple[Endpoint | None, str]:
        with self._lock:
            if self._confirmed is None:
                self._confirmed = self._look_up()
            return self._confirmed

    def _look_up(self) -> tuple[Endpoint | None, str]:
        try:
            data = self._kube.configmap(self._kfp_namespace, KFP_CONFIGMAP)
        except LogsError as exc:
            return None, f"cannot read {self._configmap}: {exc}"
        if data is None:
            return None, f"there is no {self._configmap}"
        try:
            found = kfp_object_store(data)
        except EndpointError as exc:
            return None, f"{self._configmap}: {sanitize(str(exc), limit=200)}"
        return found, "" if found else f"{self._configmap} names no S3 artifactRepository endpoint"

    def choose(self, workflow_endpoint: str) -> tuple[Endpoint, str]:
        """The endpoint to use and why it may be trusted; LogsError when none may."""
        override = self.override()
        if override is not None:
            return override, "--s3-endpoint"
        shown = sanitize(workflow_endpoint, limit=200)
        try:
            named = parse_endpoint(workflow_endpoint)
        except EndpointError as exc:
            raise LogsError(
                f"the Workflow's S3 endpoint {sanitize(str(exc), limit=200)}: pass --s3-endpoint URL"
            ) from None
        if self._trust:
            return named, "the Workflow's, --trust-workflow-endpoint"
        confirmed, why_none = self._kfp()
        if confirmed is None:
            raise LogsError(
                f"no confirmed S3 endpoint to send credentials to ({why_none}): pass --s3-endpoint URL, or "
                f"--trust-workflow-endpoint to use {shown}, which the Workflow names"
            )
        if not confirmed.same_server(named):
            raise LogsError(
                f"the Workflow's S3 endpoint {shown} is not KFP's object store {confirmed} "
                f"({self._configmap}): no credentials sent there; pass --s3-endpoint URL, or "
                "--trust-workflow-endpoint if you trust this Workflow's author"
            )
        return confirmed, f"KFP's object store, {self._configmap}"
