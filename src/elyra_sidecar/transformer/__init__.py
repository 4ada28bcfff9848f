"""Rewrite Elyra-compiled Argo Workflows so script logs, outputs and parameters reach KFP users.

Public surface: `transform()`, `Config` and `load_config()`, and the result types.
"""

from elyra_sidecar.transformer._config import Config, ConfigError, config_from_mapping, load_config
from elyra_sidecar.transformer._elyra import ElyraNode, NodeParseError
from elyra_sidecar.transformer._transform import (
    INJECT_ANNOTATION,
    NodeReport,
    TransformResult,
    WorkflowError,
    transform,
)

__all__ = [
    "INJECT_ANNOTATION",
    "Config",
    "ConfigError",
    "ElyraNode",
    "NodeParseError",
    "NodeReport",
    "TransformResult",
    "WorkflowError",
    "config_from_mapping",
    "load_config",
    "transform",
]
