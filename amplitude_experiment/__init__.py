"""Amplitude Experiment local evaluation: a drop-in, fast and robust client.

The public names match the official ``amplitude-experiment`` package's local-evaluation path.
"""

from .cohorts.config import CohortSyncConfig
from .cookie import AmplitudeCookie
from .events.config import AssignmentConfig, ExposureConfig
from .exceptions import ConfigurationError, ExperimentError, FetchError, FetchException, FlagConfigError
from .factory import Experiment
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
    "Experiment",
    "ExperimentError",
    "ExposureConfig",
    "FetchError",
    "FetchException",
    "FetchOptions",
    "FlagConfigError",
    "LocalEvaluationClient",
    "LocalEvaluationConfig",
    "RemoteEvaluationClient",
    "RemoteEvaluationConfig",
    "ServerZone",
    "User",
    "Variant",
    "__version__",
]
