"""One exception tree for the package.

``evaluate_v2`` and ``evaluate`` never raise these for I/O or data problems; they come from
configuration, ``start()`` and explicit fetches.
"""

from __future__ import annotations

from typing import Optional


class ExperimentError(Exception):
    """Root of every error this package raises."""


class ConfigurationError(ExperimentError, ValueError):
    """A configuration value is invalid; the message names the field."""


class FetchError(ExperimentError, OSError):
    """Downloading flag configs failed (network error, bad status or unusable body).

    Also an ``OSError``, as the official SDK's network failures are, so existing
    ``except OSError`` handlers around ``start()`` keep working.
    """

    def __init__(self, message: str, status_code: Optional[int] = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class FlagConfigError(ExperimentError, ValueError):
    """A flag config document is not usable at all (not a JSON array of flags)."""
