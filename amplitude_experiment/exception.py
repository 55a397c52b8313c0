"""The official SDK's module path for its exceptions, kept so that
``from amplitude_experiment.exception import FetchException`` runs unchanged.

New code can import from ``amplitude_experiment`` directly.
"""

from .exceptions import FetchException

__all__ = ["FetchException"]
