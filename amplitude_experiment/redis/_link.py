"""One Redis connection pool with outage handling: fallbacks instead of errors, backoff, one log line each way."""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Optional, TypeVar
from urllib.parse import urlsplit

try:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError('amplitude_experiment.redis needs redis-py: pip install "amplitude-local-evaluation[redis]"') \
        from exc

from .._backoff import Backoff
from .._clock import Clock

T = TypeVar("T")

#: The failures that mean "Redis is unreachable, slow or refusing": answered with the fallback.
LINK_ERRORS = (redis.RedisError, OSError)


def describe_url(url: str) -> str:
    """``host:port/db`` of a Redis URL, without user or password (for log lines)."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return parts.path or "unix socket"
    host = parts.hostname or "localhost"
    port = parts.port or 6379
    db = parts.path.lstrip("/") or "0"
    return f"{host}:{port}/{db}"


class Link:
    """A redis-py client whose calls never raise and never wait past the socket timeouts.

    After a failure the link is "down": calls return their fallback at once until the next
    reconnect attempt is due (``backoff``), then one call tries again. The first failure of an
    outage is logged as a warning, the recovery as info; failures in between at debug.

    Args:
        url: a redis-py URL (``redis://``, ``rediss://``, ``unix://``).
        socket_timeout: seconds any command may take (also the connect timeout).
        backoff: waits between reconnect attempts while down.
        clock: time source for the reconnect schedule.
        logger: where the outage and recovery lines go.
        client: an existing redis-py client to use instead of building one from ``url``
            (it is not closed by :meth:`close`).
    """

    def __init__(self, url: str, *, socket_timeout: float, backoff: Backoff, clock: Clock,
                 logger: logging.Logger, client: Optional["redis.Redis"] = None) -> None:
        self.where = describe_url(url)
        self._owns_client = client is None
        self.client: "redis.Redis" = client if client is not None else redis.Redis.from_url(
            url, socket_timeout=socket_timeout, socket_connect_timeout=socket_timeout,
            retry=Retry(NoBackoff(), 0), retry_on_timeout=False, health_check_interval=0)
        self.socket_timeout = socket_timeout
        self._backoff = backoff
        self._clock = clock
        self._logger = logger
        self._lock = threading.Lock()
        self._failures = 0
        self._next_attempt = 0.0

    @property
    def up(self) -> bool:
        """False during an outage (between a failure and the next successful call)."""
        return self._failures == 0

    def admit(self) -> bool:
        """Whether a call may try Redis now (always while up; once per backoff step while down)."""
        if self._failures == 0:
            return True
        with self._lock:
            now = self._clock.monotonic()
            if self._failures == 0:
                return True
            if now < self._next_attempt:
                return False
            # Reserve this attempt so concurrent callers keep using the fallback meanwhile.
            self._next_attempt = now + self._backoff.delay(self._failures)
            return True

    def failed(self, what: str, exc: BaseException) -> None:
        """Record a failed call: start or continue the outage."""
        with self._lock:
            self._failures += 1
            failures = self._failures
            self._next_attempt = self._clock.monotonic() + self._backoff.delay(failures)
        if failures == 1:
            self._logger.warning(
                "Redis fleet at %s is unreachable (%s failed: %s); this process downloads its own flags and "
                "cohorts and deduplicates events by itself until it is back, retrying in about %.1f s",
                self.where, what, _brief(exc), self._backoff.step(1))
        else:
            self._logger.debug("Redis fleet at %s still unreachable (%s failed, %d in a row): %s",
                               self.where, what, failures, _brief(exc))

    def succeeded(self) -> None:
        if self._failures == 0:
            return
        with self._lock:
            failures, self._failures = self._failures, 0
        if failures:
            self._logger.info("Redis fleet at %s is reachable again after %d failed attempts; rejoining the fleet",
                              self.where, failures)

    def call(self, what: str, fn: Callable[["redis.Redis"], T], fallback: T) -> T:
        """``fn(client)``, or ``fallback`` when Redis is down, slow or fails."""
        if not self.admit():
            return fallback
        try:
            result = fn(self.client)
        except LINK_ERRORS as exc:
            self.failed(what, exc)
            return fallback
        self.succeeded()
        return result

    def close(self) -> None:
        if self._owns_client:
            try:
                self.client.close()
            except LINK_ERRORS:
                pass


def _brief(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 200 else text[:200] + "..."


def script(link: Link, source: str) -> Any:
    """A server-side Lua script registered on the link's client (loaded by SHA, reloaded when missing)."""
    return link.client.register_script(source)
