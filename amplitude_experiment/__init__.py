"""Amplitude Experiment for Python: a drop-in, fast and robust replacement for the official SDK.

The public names match the official ``amplitude-experiment`` package (local and remote
evaluation); the names after them are additions. ``__all__`` is the public API, pinned by
``tests/public_api.txt``.
"""

from .cohorts.config import CohortSyncConfig
from .cookie import AmplitudeCookie
from .evaluation import EvaluationDetail, Explanation
from .events.config import AssignmentConfig, ExposureConfig
from .exceptions import ConfigurationError, ExperimentError, FetchError, FetchException, FlagConfigError
from .factory import Experiment
from .flags.store import FlagSnapshot
from .local.client import LocalEvaluationClient
from .local.config import LocalEvaluationConfig
from .local.evaluate_options import EvaluateOptions
from .remote.client import RemoteEvaluationClient
from .remote.config import RemoteEvaluationConfig
from .remote.fetch_options import FetchOptions
from .server_zone import ServerZone
from .user import User
from .variant import Variant
from .version import __version__

__all__ = [
    "AmplitudeCookie",
    "AssignmentConfig",
    "CohortSyncConfig",
    "ConfigurationError",
    "EvaluateOptions",
    "EvaluationDetail",
    "Experiment",
    "ExperimentError",
    "Explanation",
    "ExposureConfig",
    "FetchError",
    "FetchException",
    "FetchOptions",
    "FlagConfigError",
    "FlagSnapshot",
    "LocalEvaluationClient",
    "LocalEvaluationConfig",
    "RemoteEvaluationClient",
    "RemoteEvaluationConfig",
    "ServerZone",
    "User",
    "Variant",
    "__version__",
]
