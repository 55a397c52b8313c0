"""Small HTTP facts shared by every downloader and the event sender."""

from __future__ import annotations

import math
import time
from email.utils import parsedate_to_datetime
from typing import Optional


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
