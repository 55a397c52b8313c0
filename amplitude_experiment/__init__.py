"""Amplitude Experiment local evaluation: a drop-in, fast and robust client.

The public names match the official ``amplitude-experiment`` package's local-evaluation path.
"""

from .cohorts.config import CohortSyncConfig
from .events.config import AssignmentConfig, ExposureConfig
from .exceptions import ConfigurationError, ExperimentError, FetchError, FlagConfigError
from .factory import Experiment
from .local.client import LocalEvaluationClient
from .local.config import LocalEvaluationConfig
from .local.evaluate_options import EvaluateOptions
from .server_zone import ServerZone
from .user import User
from .variant import Variant
from .version import __version__

__all__ = [
    "AssignmentConfig",
    "CohortSyncConfig",
    "ConfigurationError",
    "EvaluateOptions",
    "Experiment",
    "ExperimentError",
    "ExposureConfig",
    "FetchError",
    "FlagConfigError",
    "LocalEvaluationClient",
    "LocalEvaluationConfig",
    "ServerZone",
    "User",
    "Variant",
    "__version__",
]
