"""Which S3 endpoint may receive the user's credentials: one the user confirmed, never one a Workflow names.

A Workflow is written by the pipeline's author; the endpoint in its sidecar's args and the Secrets its env
refers to are the author's choice. `logs` reads that Secret with the user's rights, so sending it where the
Workflow says would hand the user's (or the namespace's) credentials to whoever wrote the pipeline. The
endpoint is therefore confirmed by the user (`--s3-endpoint`) or by the KFP installation itself: the
`artifactRepository` of Argo's `workflow-controller-configmap` in KFP's namespace, which KFP v1's manifests
fill with its object store (`s3.endpoint` without a scheme, `s3.insecure: true` for http; upstream
kubeflow/pipelines `manifests/kustomize/third-party/argo/base/workflow-controller-configmap-patch.yaml`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import yaml

__all__ = [
    "KFP_CONFIGMAP",
    "KFP_NAMESPACE",
    "Endpoint",
    "EndpointError",
    "kfp_object_store",
    "parse_endpoint",
]

#: Argo's controller ConfigMap, which KFP's manifests install with the object store as artifactRepository.
KFP_CONFIGMAP = "workflow-controller-configmap"
KFP_NAMESPACE = "kubeflow"
_DEFAULT_PORTS = {"http": 80, "https": 443}


class EndpointError(ValueError):
    """An endpoint that is not an http(s) URL or host[:port]."""


@dataclass(frozen=True)
class Endpoint:
    scheme: str  # http or https
    host: str  # lower case, without brackets
    port: int

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = _DEFAULT_PORTS[self.scheme] == self.port
        return f"{self.scheme}://{host}" + ("" if default else f":{self.port}")

    @property
    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def same_server(self, other: Endpoint) -> bool:
        """Same host and port (the scheme is the confirmed endpoint's to say)."""
        return (self.host, self.port) == (other.host, other.port)

    def __str__(self) -> str:
        return self.url


def parse_endpoint(text: str, *, default_scheme: str = "http") -> Endpoint:
    """`http(s)://host[:port]` or `host[:port]` (then `default_scheme`), as an Endpoint."""
    text = text.strip()
    try:
        url = urlsplit(text if "://" in text else f"{default_scheme}://{text}")
        port = url.port
    except ValueError:
        raise EndpointError(f"{text!r} is not an http(s) URL with a valid host and port") from None
    scheme = url.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not url.hostname:
        raise EndpointError(f"{text!r} is not an http(s) URL")
    if url.path.strip("/") or url.query or url.fragment or url.username is not None:
        raise EndpointError(f"{text!r} has more than a scheme, host and port")
    return Endpoint(scheme, url.hostname.lower(), port or _DEFAULT_PORTS[scheme])


def kfp_object_store(data: Mapping[str, Any]) -> Endpoint | None:
    """The S3 endpoint of an Argo controller ConfigMap's `data`: `artifactRepository` (Argo 2.7+, KFP 1.x
    manifests) or `config`'s `artifactRepository` (older Argo); None when it names no S3 endpoint.

    Raises EndpointError for YAML that cannot be read or an endpoint that is no URL."""
    repository: Any = None
    try:
        if isinstance(data.get("artifactRepository"), str):
            repository = yaml.safe_load(data["artifactRepository"])
        elif isinstance(data.get("config"), str):
            config = yaml.safe_load(data["config"])
            repository = config.get("artifactRepository") if isinstance(config, Mapping) else None
    except yaml.YAMLError as exc:
        raise EndpointError(f"its artifactRepository is not YAML ({type(exc).__name__})") from None
    s3 = repository.get("s3") if isinstance(repository, Mapping) else None
    endpoint = s3.get("endpoint") if isinstance(s3, Mapping) else None
    if not isinstance(endpoint, str) or not endpoint.strip():
        return None
    insecure = s3.get("insecure") is True if isinstance(s3, Mapping) else False
    return parse_endpoint(endpoint, default_scheme="http" if insecure else "https")
