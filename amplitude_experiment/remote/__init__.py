"""Remote evaluation: Amplitude evaluates the flags, one HTTP request per fetch."""

from .client import RemoteEvaluationClient
from .config import RemoteEvaluationConfig
from .fetch_options import FetchOptions

__all__ = ["FetchOptions", "RemoteEvaluationClient", "RemoteEvaluationConfig"]
