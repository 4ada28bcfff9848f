"""elyra-sidecar: Elyra script logs, artifacts and run parameters made visible in Kubeflow Pipelines.

One import namespace with a room per deployable (see the README's Layout section):

- `elyra_sidecar.transformer`: the pure rewrite of a Workflow (`transform()`) and the `transform` command;
- `elyra_sidecar.sidecar`: what runs in the step pod (`tail`, `install-live`, the live hook);
- `elyra_sidecar.webhook`: the in-cluster admission webhook (`webhook`);
- `elyra_sidecar.contract`: the names every room agrees on (sidecar arguments, env, annotations).

This module stays import-cheap: the pod program imports it before its own room.
"""

from __future__ import annotations

__all__ = ["__version__"]


def __getattr__(name: str) -> str:
    # Lazy: importlib.metadata costs milliseconds the sidecar's start-up does not need to pay.
    if name == "__version__":
        from elyra_sidecar._version import version  # noqa: PLC0415

        return version()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
