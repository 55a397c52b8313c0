"""Configuration of the remote-evaluation client."""

from __future__ import annotations

import logging
from typing import Any, Optional

import requests

from .. import _validate
from .._clock import SYSTEM_CLOCK, Clock
from ..server_zone import ServerZone, coerce_zone

#: Where remote evaluation is served, by zone.
DEFAULT_REMOTE_URL = {ServerZone.US: "https://api.lab.amplitude.com", ServerZone.EU: "https://api.lab.eu.amplitude.com"}
DEFAULT_SERVER_URL = DEFAULT_REMOTE_URL[ServerZone.US]


def _millis(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _validate.ConfigurationError(f"{name} must be an integer >= {minimum} (milliseconds), not {value!r}")
    return value


class RemoteEvaluationConfig:
    """How the remote-evaluation client talks to Amplitude.

    The keyword arguments and defaults are those of the official SDK. With
    ``server_zone=ServerZone.EU`` a ``server_url`` left at its default moves to
    ``https://api.lab.eu.amplitude.com``.

    Args:
        debug: set ``logger`` to DEBUG level.
        server_url: where remote evaluation is served.
        fetch_timeout_millis: timeout of the first request of a fetch.
        fetch_retries: how many times a failed request (429, 5xx, network error, timeout, no free
            connection) is retried. With 0 a failure is logged and the fetch returns ``{}``;
            otherwise the last failure raises :class:`~amplitude_experiment.FetchException`.
        fetch_retry_backoff_min_millis: wait before the first retry.
        fetch_retry_backoff_max_millis: the longest wait between retries.
        fetch_retry_backoff_scalar: each wait is the previous one times this.
        fetch_retry_timeout_millis: timeout of each retried request.
        fetch_pool_acquire_timeout_millis: how long a fetch waits for a free connection when
            ``connection_pool_max_size`` requests are in flight (``None``: as long as it takes);
            running out counts as a failed request.
        server_zone: ``ServerZone.US`` or ``ServerZone.EU`` (a string is accepted too).
        connection_pool_max_size: how many requests may be in flight at once (and connections
            kept open).
        logger: where the client logs: it writes to ``<logger>.remote`` (default logger:
            ``amplitude_experiment``, so ``amplitude_experiment.remote``). ``debug=True`` sets it
            to DEBUG and, when it has no handler, prints to stderr.

    Additions to the official options (keyword-only):

    Args:
        session: a ``requests.Session`` for every request (proxies, CA bundle, client
            certificates, adapters). It is never closed by the client. Without it the client
            makes its own, pooled to ``connection_pool_max_size``.
        clock: waits between retries go through ``clock.wait``; tests pass
            :class:`amplitude_experiment.testing.ManualClock` (or a recording fake).
    """

    def __init__(
        self,
        debug: bool = False,
        server_url: str = DEFAULT_SERVER_URL,
        fetch_timeout_millis: int = 10000,
        fetch_retries: int = 0,
        fetch_retry_backoff_min_millis: int = 500,
        fetch_retry_backoff_max_millis: int = 10000,
        fetch_retry_backoff_scalar: float = 1.5,
        fetch_retry_timeout_millis: int = 10000,
        fetch_pool_acquire_timeout_millis: Optional[int] = None,
        server_zone: "ServerZone | str" = ServerZone.US,
        connection_pool_max_size: int = 1,
        logger: Optional[logging.Logger] = None,
        *,
        session: Optional[requests.Session] = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.debug = bool(debug)
        self.server_zone = coerce_zone(server_zone)
        if self.server_zone is ServerZone.EU and server_url == DEFAULT_SERVER_URL:
            server_url = DEFAULT_REMOTE_URL[ServerZone.EU]
        self.server_url = _validate.url("server_url", server_url)
        self.fetch_timeout_millis = _millis("fetch_timeout_millis", fetch_timeout_millis, 1)
        self.fetch_retries = _validate.positive_int("fetch_retries", fetch_retries, minimum=0)
        self.fetch_retry_backoff_min_millis = _millis(
            "fetch_retry_backoff_min_millis", fetch_retry_backoff_min_millis, 0)
        self.fetch_retry_backoff_max_millis = _millis(
            "fetch_retry_backoff_max_millis", fetch_retry_backoff_max_millis, 0)
        if isinstance(fetch_retry_backoff_scalar, bool) or not isinstance(fetch_retry_backoff_scalar, (int, float)) \
                or not fetch_retry_backoff_scalar >= 1:
            raise _validate.ConfigurationError(
                f"fetch_retry_backoff_scalar must be a number >= 1, not {fetch_retry_backoff_scalar!r}")
        self.fetch_retry_backoff_scalar = float(fetch_retry_backoff_scalar)
        self.fetch_retry_timeout_millis = _millis("fetch_retry_timeout_millis", fetch_retry_timeout_millis, 1)
        self.fetch_pool_acquire_timeout_millis = (
            None if fetch_pool_acquire_timeout_millis is None
            else _millis("fetch_pool_acquire_timeout_millis", fetch_pool_acquire_timeout_millis, 0))
        self.connection_pool_max_size = _validate.positive_int("connection_pool_max_size", connection_pool_max_size)
        #: Every message of the client goes to this logger's ``remote`` child.
        self.logger: logging.Logger = _validate.logger_or_default(logger)
        self.session = _validate.optional_session(session)
        if not isinstance(clock, Clock):
            raise _validate.ConfigurationError("clock must be an amplitude_experiment Clock (e.g. testing.ManualClock)")
        self.clock = clock

    def __repr__(self) -> str:
        return (
            f"RemoteEvaluationConfig(server_url={self.server_url!r}, server_zone={self.server_zone.value!r}, "
            f"fetch_timeout_millis={self.fetch_timeout_millis}, fetch_retries={self.fetch_retries}, "
            f"fetch_retry_backoff_min_millis={self.fetch_retry_backoff_min_millis}, "
            f"fetch_retry_backoff_max_millis={self.fetch_retry_backoff_max_millis}, "
            f"fetch_retry_backoff_scalar={self.fetch_retry_backoff_scalar}, "
            f"fetch_retry_timeout_millis={self.fetch_retry_timeout_millis}, "
            f"fetch_pool_acquire_timeout_millis={self.fetch_pool_acquire_timeout_millis}, "
            f"connection_pool_max_size={self.connection_pool_max_size})"
        )
