"""One exception tree for the package.

``evaluate_v2`` and ``evaluate`` never raise these for I/O or data problems; they come from
configuration, ``start()`` and explicit fetches.
"""

from __future__ import annotations

from typing import Any, Optional, Tuple


class ExperimentError(Exception):
    """Root of every error this package raises."""


class ConfigurationError(ExperimentError, ValueError):
    """A configuration value is invalid; the message names the field."""


class FetchError(ExperimentError, OSError):
    """A request to Amplitude failed (network error, bad status or unusable body).

    Raised for flag-config downloads; remote evaluation raises the subclass
    :class:`FetchException`.

    Also an ``OSError``, as the official SDK's network failures are, so existing
    ``except OSError`` handlers around ``start()`` keep working.
    """

    def __init__(self, message: str, status_code: Optional[int] = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class FlagConfigError(ExperimentError, ValueError):
    """A flag config document is not usable at all (not a JSON array of flags)."""


class FetchException(FetchError):
    """Remote evaluation (``fetch_v2``) failed after its retries; the official SDK's name.

    Args:
        status_code: the HTTP status of the last answer, or ``None`` when no usable answer came
            (network error, timeout, no free connection in the pool).
        message: what failed (never contains the deployment key).

    It is also a :class:`FetchError`, an :class:`ExperimentError` and an ``OSError``: handlers
    written for the official SDK (``except FetchException``, or ``except OSError`` for its
    network failures) keep working.
    """

    def __init__(self, status_code: Optional[int], message: str) -> None:
        super().__init__(message, status_code)

    def __reduce__(self) -> Tuple[Any, ...]:
        # Pickling (e.g. across a process pool) must rebuild it with both arguments.
        return (type(self), (self.status_code, str(self)), self.__dict__)
