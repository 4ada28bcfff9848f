"""The sidecar's command-line contract: the one place that names its arguments and environment.

The transformer imports this module to write the sidecar container spec; the sidecar's own argument
parser is built from it. The sidecar never imports the transformer.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "ARG_BUCKET",
    "ARG_CA_BUNDLE",
    "ARG_DIR",
    "ARG_ENDPOINT",
    "ARG_FILE",
    "ARG_FORMAT",
    "ARG_KEY",
    "ARG_POLL",
    "ARG_SHUTDOWN_DEADLINE",
    "ARG_UPLOAD_INTERVAL",
    "CREDENTIAL_ENV",
    "SUBCOMMAND",
]

#: `elyra-sidecar tail ...` (also `python -m sidecar ...`).
SUBCOMMAND: Final = "tail"
#: Directory to watch: where the bootstrapper writes `<name>.log` (absolute, inside the shared volume).
ARG_DIR: Final = "--dir"
#: A file name (relative to --dir) to follow; repeatable.
ARG_FILE: Final = "--file"
#: Object storage endpoint URL (http:// or https://), as the bootstrapper's --cos-endpoint.
ARG_ENDPOINT: Final = "--endpoint"
#: Bucket, as the bootstrapper's --cos-bucket.
ARG_BUCKET: Final = "--bucket"
#: Object key for the n-th --file; repeatable, paired by position. Without keys nothing is mirrored.
ARG_KEY: Final = "--key"
#: Seconds between uploads while a file grows.
ARG_UPLOAD_INTERVAL: Final = "--upload-interval"
#: Seconds from SIGTERM to exit, including the final drain and upload.
ARG_SHUTDOWN_DEADLINE: Final = "--shutdown-deadline"
#: raw (the file's bytes) or json (one record per line).
ARG_FORMAT: Final = "--format"
#: PEM bundle of CAs to trust for an https endpoint.
ARG_CA_BUNDLE: Final = "--ca-bundle"
#: Force polling instead of inotify.
ARG_POLL: Final = "--poll"

#: Credentials the sidecar reads from its environment (the same entries the main container has).
CREDENTIAL_ENV: Final = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
