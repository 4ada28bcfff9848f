"""Rewrite Elyra-compiled Argo Workflows so script logs, outputs and parameters reach KFP users.

Public surface: `transform()` (a Workflow, KFP v1), `instrument_pod()` (the Pod of one step, KFP v2: the
webhook's Pod mode) with `read_command()`, `Config` and `load_config()`, and the result types. Every
other room imports only these names (an import-linter contract keeps the `_` modules private).
"""

from elyra_sidecar.transformer._config import Config, ConfigError, config_from_mapping, load_config
from elyra_sidecar.transformer._elyra import ElyraNode, NodeParseError
from elyra_sidecar.transformer._pod import (
    KILL_CMD_ANNOTATION_PREFIX,
    MAIN_EXIT_FILE,
    PodError,
    PodResult,
    instrument_pod,
    kill_command,
    read_command,
)
from elyra_sidecar.transformer._steps import Change
from elyra_sidecar.transformer._transform import (
    INJECT_ANNOTATION,
    KFP_V2_NOTE,
    NodeReport,
    TransformResult,
    WorkflowError,
    transform,
)

__all__ = [
    "INJECT_ANNOTATION",
    "KFP_V2_NOTE",
    "KILL_CMD_ANNOTATION_PREFIX",
    "MAIN_EXIT_FILE",
    "Change",
    "Config",
    "ConfigError",
    "ElyraNode",
    "NodeParseError",
    "NodeReport",
    "PodError",
    "PodResult",
    "TransformResult",
    "WorkflowError",
    "config_from_mapping",
    "instrument_pod",
    "kill_command",
    "load_config",
    "read_command",
    "transform",
]
