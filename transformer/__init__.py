"""Rewrite Elyra-compiled Argo Workflows so script logs, outputs and parameters reach KFP users.

Public surface: `transform()`, `Config` and `load_config()`, and the result types.
"""

from transformer._config import Config, ConfigError, config_from_mapping, load_config
from transformer._elyra import ElyraNode, NodeParseError
from transformer._transform import (
    INJECT_ANNOTATION,
    NodeReport,
    TransformResult,
    WorkflowError,
    transform,
)

__version__ = "0.1.0"

__all__ = [
    "INJECT_ANNOTATION",
    "Config",
    "ConfigError",
    "ElyraNode",
    "NodeParseError",
    "NodeReport",
    "TransformResult",
    "WorkflowError",
    "__version__",
    "config_from_mapping",
    "load_config",
    "transform",
]
