"""Small HTTP facts shared by every downloader and the event sender."""

from __future__ import annotations

import math
import time
from email.utils import parsedate_to_datetime
from typing import Any, Optional

import requests


def parse_retry_after(value: Optional[str], now: Optional[float] = None) -> Optional[float]:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP-date).

    Returns ``None`` when the header is absent or unusable, never a negative or non-finite
    number. ``now`` (epoch seconds) is injectable for tests of the HTTP-date form.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when is None or when.tzinfo is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def verify_of(session: requests.Session) -> Any:
    """The TLS verification setting to pass with each request: the session's own.

    requests lets ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE`` override ``Session.verify`` when a
    request does not name ``verify`` (psf/requests#3829), so a CA bundle configured on the
    user's session would silently lose. Passing the session's value with every request keeps it
    in force; the default ``True`` still lets those variables pick the bundle.
    """
    return session.verify
