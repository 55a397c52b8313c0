"""The local-evaluation client (kept at the official SDK's module paths)."""

from .client import LocalEvaluationClient
from .config import LocalEvaluationConfig
from .evaluate_options import EvaluateOptions

__all__ = ["EvaluateOptions", "LocalEvaluationClient", "LocalEvaluationConfig"]
