"""The names every room agrees on: the sidecar's command line, the live hook's environment, annotations.

The transformer (and the webhook) import this module to write container specs; the sidecar's own argument
parser is built from it. It sits below every room and imports nothing of them (import-linter checks).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: the step pod's start-up does without importing typing
    from typing import Final

__all__ = [
    "ANNOTATION_INJECT",
    "ANNOTATION_TRANSFORMED",
    "ARGO_MAIN_EXIT_CODE_FILE",
    "ARG_BUCKET",
    "ARG_CA_BUNDLE",
    "ARG_DIR",
    "ARG_ENDPOINT",
    "ARG_FILE",
    "ARG_FORMAT",
    "ARG_KEY",
    "ARG_MAIN_EXIT_FILE",
    "ARG_POLL",
    "ARG_SHUTDOWN_DEADLINE",
    "ARG_STOP_SIGNAL",
    "ARG_UPLOAD_INTERVAL",
    "CREDENTIAL_ENV",
    "INSTALL_LIVE_COMMAND",
    "LIVE_LOG_ENV",
    "LIVE_MAIN_ENV",
    "LIVE_SCRIPT_ENV",
    "STOP_COMMAND",
    "TAIL_COMMAND",
]

#: `elyra-sidecar tail ...` (also `python -m elyra_sidecar.sidecar ...`): the elyra-log container.
TAIL_COMMAND: Final = "tail"
#: `elyra-sidecar install-live --dest DIR`: the init container that places the live hook.
INSTALL_LIVE_COMMAND: Final = "install-live"
#: `elyra-sidecar stop --signal N`: Argo's kill command for the elyra-log container (no shell needed).
STOP_COMMAND: Final = "stop"
#: The option of `stop` that takes the signal number (Argo puts `%d` there).
ARG_STOP_SIGNAL: Final = "--signal"
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
#: Stop by itself (drain to EOF, final upload, exit 0) once this file exists. Argo's emissary writes
#: main's exit code to /var/run/argo/ctr/main/exitcode (all versions): a sidecar in a Pod with
#: `var-run-argo` mounted ends without waiting for Argo's kill. Default: none.
ARG_MAIN_EXIT_FILE: Final = "--main-exit-file"
#: Where Argo's emissary writes main's exit code (the path to pass with ARG_MAIN_EXIT_FILE).
ARGO_MAIN_EXIT_CODE_FILE: Final = "/var/run/argo/ctr/main/exitcode"

#: Credentials the sidecar reads from its environment (the same entries the main container has).
CREDENTIAL_ENV: Final = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")

#: The live hook (sidecar/live_sitecustomize.py, which runs in the user's image and cannot import this
#: module, spells the same names): the script's base name, where to write the live copy of its output,
#: and "1" to also copy it into main's log (the bootstrapper's stdout, the KFP UI's Logs tab).
LIVE_SCRIPT_ENV: Final = "ELYRA_SIDECAR_LIVE_SCRIPT"
LIVE_LOG_ENV: Final = "ELYRA_SIDECAR_LIVE_LOG"
LIVE_MAIN_ENV: Final = "ELYRA_SIDECAR_LIVE_MAIN"

#: Opt-in/opt-out per Workflow, template or Pod: "true" / "false".
ANNOTATION_INJECT: Final = "elyra-sidecar/inject"
#: Set on what we changed, with our version as the value: a second run changes nothing.
ANNOTATION_TRANSFORMED: Final = "elyra-sidecar/transformed"
