"""Small checks shared by the config classes (clear messages naming the bad field)."""

from __future__ import annotations

import logging
from typing import Any, Optional

import requests

from .exceptions import ConfigurationError

__all__ = ["ConfigurationError", "logger_or_default", "mask", "optional_session", "optional_str", "positive_int",
           "url"]

#: The logger a client uses when it is given none; components log to its children.
DEFAULT_LOGGER_NAME = "amplitude_experiment"


def positive_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigurationError(f"{name} must be an integer >= {minimum}, not {value!r}")
    return value


def logger_or_default(value: Any) -> logging.Logger:
    """``value`` (a Logger), or the package's logger when it is ``None``."""
    if value is None:
        return logging.getLogger(DEFAULT_LOGGER_NAME)
    if not isinstance(value, logging.Logger):
        raise ConfigurationError(f"logger must be a logging.Logger or None, not {type(value).__name__}")
    return value


def optional_session(value: Any) -> Optional[requests.Session]:
    if value is not None and not isinstance(value, requests.Session):
        raise ConfigurationError(f"session must be a requests.Session or None, not {type(value).__name__}")
    return value


def optional_str(name: str, value: Any) -> Optional[str]:
    if value is not None and not isinstance(value, str):
        raise ConfigurationError(f"{name} must be a string or None, not {type(value).__name__}")
    return value


def url(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        raise ConfigurationError(f"{name} must be an http(s) URL, not {value!r}")
    return value.rstrip("/")


def mask(secret: Optional[str]) -> str:
    """A secret as it may appear in a repr or a log line."""
    if not secret:
        return repr(secret)
    return f"'…{secret[-4:]}'" if len(secret) > 8 else "'…'"
