"""Amplitude data-center regions and their default hosts."""

from __future__ import annotations

import enum

from .exceptions import ConfigurationError


class ServerZone(enum.Enum):
    """Where the Amplitude project lives."""

    US = "US"
    EU = "EU"


DEFAULT_FLAGS_URL = {ServerZone.US: "https://api.lab.amplitude.com", ServerZone.EU: "https://flag.lab.eu.amplitude.com"}
DEFAULT_STREAM_URL = {
    ServerZone.US: "https://stream.lab.amplitude.com",
    ServerZone.EU: "https://stream.lab.eu.amplitude.com",
}
DEFAULT_COHORT_URL = {
    ServerZone.US: "https://cohort-v2.lab.amplitude.com",
    ServerZone.EU: "https://cohort-v2.lab.eu.amplitude.com",
}
DEFAULT_EVENTS_URL = {
    ServerZone.US: "https://api2.amplitude.com/2/httpapi",
    ServerZone.EU: "https://api.eu.amplitude.com/2/httpapi",
}
DEFAULT_BATCH_URL = {
    ServerZone.US: "https://api2.amplitude.com/batch",
    ServerZone.EU: "https://api.eu.amplitude.com/batch",
}


def coerce_zone(zone: "ServerZone | str") -> ServerZone:
    """Accept a ``ServerZone`` or its name in any case (``"eu"``, ``"EU"``)."""
    if isinstance(zone, ServerZone):
        return zone
    if isinstance(zone, str):
        try:
            return ServerZone(zone.upper())
        except ValueError:
            pass
    raise ConfigurationError(f"server_zone must be ServerZone.US or ServerZone.EU, not {zone!r}")
