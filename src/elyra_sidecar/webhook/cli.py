"""`elyra-sidecar webhook`: run the admission webhook (in-cluster mode). `main(argv) -> int`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from elyra_sidecar.transformer import ConfigError, load_config

__all__ = ["main", "parser"]


def parser() -> argparse.ArgumentParser:
    w = argparse.ArgumentParser(
        prog="elyra-sidecar webhook",
        allow_abbrev=False,  # `--tls` must not silently mean `--tls-cert`
        description="Serve Kubernetes AdmissionReview v1 for Argo Workflow CREATE on POST /mutate.",
    )
    w.add_argument("--config", help="YAML config file (the chart's ConfigMap)")
    w.add_argument("--tls-cert", required=True, help="PEM certificate (reloaded when it changes)")
    w.add_argument("--tls-key", required=True, help="PEM private key")
    w.add_argument("--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")  # noqa: S104
    w.add_argument("--port", type=int, default=8443, help="port (default 8443)")
    return w


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        from elyra_sidecar.webhook.server import serve  # noqa: PLC0415 - aiohttp loads only past the args

        return serve(
            load_config(args.config), cert=args.tls_cert, key=args.tls_key, host=args.host, port=args.port
        )
    except (ConfigError, OSError) as exc:
        sys.stderr.write(f"Error: {exc}\n")
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
