"""The names every room agrees on: the sidecar's container, command line and diagnostic events, the live
hook's environment, annotations.

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
    "LINK_OUTPUTS_COMMAND",
    "LIVE_LOG_ENV",
    "LIVE_MAIN_ENV",
    "LIVE_SCRIPT_ENV",
    "SIDECAR_CONTAINER",
    "SIDECAR_EVENTS",
    "STOP_COMMAND",
    "TAIL_COMMAND",
    "WEB_IDENTITY_ENV",
    "WEB_IDENTITY_OPTIONAL_ENV",
    "SidecarEvent",
]

#: The log sidecar's container name unless config `sidecar.name` renames it (`elyra-sidecar logs` then
#: still finds it by its command: TAIL_COMMAND with ARG_DIR).
SIDECAR_CONTAINER: Final = "elyra-log"

#: `elyra-sidecar tail ...` (also `python -m elyra_sidecar.sidecar ...`): the elyra-log container.
TAIL_COMMAND: Final = "tail"
#: `elyra-sidecar install-live --dest DIR`: the init container that places the live hook.
INSTALL_LIVE_COMMAND: Final = "install-live"
#: `elyra-sidecar link-outputs --link=PATH --to=TARGET ...`: the init container that places, at each path
#: where KFP v2's launcher uploads an output artifact from, a symlink to the file in the work dir (Pod
#: mode, config `artifacts.kfp_v2`). `--link`/`--to` are paired by position.
LINK_OUTPUTS_COMMAND: Final = "link-outputs"
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
#: IRSA / web identity (what EKS's pod identity webhook sets, and Elyra's COS auth reads when there are no
#: keys): the role and the projected token's path, both required; the rest tune the STS request.
#: `AWS_ENDPOINT_URL_STS` (the AWS SDKs' name) points the sidecar at another STS than AWS's.
WEB_IDENTITY_ENV: Final = ("AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE")
WEB_IDENTITY_OPTIONAL_ENV: Final = (
    "AWS_ROLE_SESSION_NAME",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_STS_REGIONAL_ENDPOINTS",
    "AWS_ENDPOINT_URL_STS",
)

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


class SidecarEvent:
    """The `event` of every diagnostic record the sidecar writes to its stderr (a snake_case fact).

    The pod log interleaves these records with the script's lines; `elyra-sidecar logs` drops a JSON line
    only when its event is one of these (SIDECAR_EVENTS), so a user's own JSON lines are never taken for
    ours. The sidecar emits no other name (tests/test_sidecar_events.py checks its source and its output);
    the records it routes from the stdlib loggers of minio and urllib3 (WARNING and above) are
    LIBRARY_MESSAGE, with the library's `logger` and `message` fields.
    """

    SIDECAR_STARTED: Final = "sidecar_started"
    SIDECAR_STOPPED: Final = "sidecar_stopped"
    SIDECAR_FAILED: Final = "sidecar_failed"
    WATCHING: Final = "watching"
    WATCH_FALLBACK_POLLING: Final = "watch_fallback_polling"
    DIRECTORY_REFUSED: Final = "directory_refused"
    DIRECTORY_UNREADABLE: Final = "directory_unreadable"
    FILE_FOUND: Final = "file_found"
    FILE_REFUSED: Final = "file_refused"
    FILE_UNREADABLE: Final = "file_unreadable"
    FILE_REPLACED: Final = "file_replaced"
    FILE_DELETED: Final = "file_deleted"
    FILE_TRUNCATED: Final = "file_truncated"
    MAIN_EXITED: Final = "main_exited"
    STDOUT_FAILED: Final = "stdout_failed"
    FINAL_READ_FAILED: Final = "final_read_failed"
    FOLLOW_FAILED: Final = "follow_failed"
    MIRROR_DISABLED: Final = "mirror_disabled"
    MIRROR_APPEND_UNSUPPORTED: Final = "mirror_append_unsupported"
    UPLOAD_FAILED: Final = "upload_failed"
    UPLOAD_RECOVERED: Final = "upload_recovered"
    SHUTDOWN_DEADLINE_REACHED: Final = "shutdown_deadline_reached"
    SHUTDOWN_FAILED: Final = "shutdown_failed"
    LIBRARY_MESSAGE: Final = "library_message"


#: Every SidecarEvent name (derived, so a new event cannot be left out of the set).
SIDECAR_EVENTS: Final[frozenset[str]] = frozenset(
    value for name, value in vars(SidecarEvent).items() if name.isupper()
)
