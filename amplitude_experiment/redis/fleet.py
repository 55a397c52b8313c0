"""``RedisFleet``: many processes of one deployment behave like one client."""

from __future__ import annotations

import hashlib
import logging
import threading
from typing import Dict, Optional

from .._backoff import Backoff
from .._clock import SYSTEM_CLOCK, Clock
from ._link import Link
from .claims import RedisClaims
from .cohorts import RedisCohortSource
from .flags import RedisFlagSource

_default_logger = logging.getLogger("amplitude_experiment.redis")

#: Default bound, in seconds, on any single Redis command (and on connecting).
DEFAULT_SOCKET_TIMEOUT = 0.25


def key_digest(secret: str) -> str:
    """The short digest that stands for a deployment or API key in Redis key names."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()[:12]


class RedisFleet:
    """Shares flag downloads, cohort downloads and event dedup between processes through Redis.

    Pass one to ``LocalEvaluationConfig(fleet=RedisFleet("redis://host:6379/0"))`` in every process
    of a deployment. One process at a time (a lease, renewed while it lives, taken over within
    ``lease_millis`` after it dies) downloads from Amplitude and publishes; the others serve what
    it publishes; each assignment event is sent by the first process that claims its insert_id.

    Faults: no call waits longer than ``socket_timeout`` (connect or command); while Redis is
    unreachable every call answers at once with a fallback (download yourself, every event is
    yours), one warning is logged per outage and one info line on recovery, and reconnects follow
    a backoff (0.5 s doubling to 30 s). Keys contain a digest of the deployment/API key, never the
    key, and begin with ``prefix``, which keeps deployments sharing one Redis apart.

    Thread-safe. Threads: none of its own; the client calls it from its poller, sender and fleet
    watcher threads.

    Args:
        url: a redis-py URL, e.g. ``redis://host:6379/0`` or ``rediss://:password@host:6380/0``.
        prefix: the first part of every key and channel.
        fetch: ``False`` makes a read-only member: it never downloads from Amplitude and serves
            what the fleet publishes (keeping what it has while Redis is unreachable).
        lease_millis: how long a leader's lease lasts without renewal; it is renewed every third
            of that.
        socket_timeout: seconds any Redis command or connection attempt may take.
        claim_margin: seconds an insert_id claim outlives the end of its day (absorbs clock skew).
        clock: time source (reconnect schedule, claim expiry); tests pass a ``ManualClock``.
        logger: where outage/recovery and leadership lines go.
        client: an existing ``redis.Redis`` to use instead of ``url`` (not closed by :meth:`close`).
    """

    def __init__(self, url: str, prefix: str = "amplitude", *, fetch: bool = True, lease_millis: int = 2000,
                 socket_timeout: float = DEFAULT_SOCKET_TIMEOUT, claim_margin: float = 3600.0,
                 clock: Clock = SYSTEM_CLOCK, logger: Optional[logging.Logger] = None,
                 client: Optional[object] = None) -> None:
        if not isinstance(url, str) or not isinstance(prefix, str):
            raise TypeError("RedisFleet(url: str, prefix: str)")
        if not prefix or any(ch.isspace() for ch in prefix):
            raise ValueError("prefix must be a non-empty string without whitespace")
        if not isinstance(lease_millis, int) or lease_millis < 30:
            raise ValueError("lease_millis must be an int >= 30")
        if socket_timeout <= 0:
            raise ValueError("socket_timeout must be > 0")
        self.prefix = prefix
        self.fetch = bool(fetch)
        self.lease_seconds = lease_millis / 1000
        self.socket_timeout = socket_timeout
        self.claim_margin = claim_margin
        self._clock = clock
        self._logger = logger or _default_logger
        self._link = Link(url, socket_timeout=socket_timeout, backoff=Backoff(base=0.5, cap=30.0), clock=clock,
                          logger=self._logger, client=client)  # type: ignore[arg-type]
        self._lock = threading.Lock()
        self._flags: Dict[str, RedisFlagSource] = {}
        self._cohorts: Dict[str, RedisCohortSource] = {}
        self._claims: Dict[str, RedisClaims] = {}

    @property
    def up(self) -> bool:
        """False while Redis is considered unreachable (between a failure and the next success)."""
        return self._link.up

    def namespace(self, secret: str) -> str:
        """``<prefix>:<digest of secret>``: the start of every key for that deployment or project."""
        if not isinstance(secret, str) or not secret:
            raise TypeError("a deployment or API key (non-empty str) is required")
        return f"{self.prefix}:{key_digest(secret)}"

    def flags(self, deployment_key: str) -> RedisFlagSource:
        """The shared flag source of one deployment (the same object for the same key)."""
        namespace = self.namespace(deployment_key)
        with self._lock:
            source = self._flags.get(namespace)
            if source is None:
                source = RedisFlagSource(self._link, namespace, fetch=self.fetch, lease_seconds=self.lease_seconds,
                                         clock=self._clock, logger=self._logger)
                self._flags[namespace] = source
            return source

    def cohorts(self, api_key: str) -> RedisCohortSource:
        """The shared cohorts of one project (keyed by the cohort API key, e.g. plus ``max_cohort_size``)."""
        namespace = self.namespace(api_key)
        with self._lock:
            source = self._cohorts.get(namespace)
            if source is None:
                source = RedisCohortSource(self._link, namespace, fetch=self.fetch,
                                           lease_seconds=self.lease_seconds, logger=self._logger)
                self._cohorts[namespace] = source
            return source

    def claims(self, api_key: str) -> RedisClaims:
        """Fleet-wide insert_id claims for one analytics project (keyed by its API key)."""
        namespace = self.namespace(api_key)
        with self._lock:
            claims = self._claims.get(namespace)
            if claims is None:
                claims = RedisClaims(self._link, namespace, clock=self._clock, margin=self.claim_margin)
                self._claims[namespace] = claims
            return claims

    def close(self) -> None:
        """Resign held leases, close subscriptions and the connection pool (if this fleet built it). Idempotent."""
        with self._lock:
            flags, cohorts = list(self._flags.values()), list(self._cohorts.values())
        for flag_source in flags:
            flag_source.close()
        for cohort_source in cohorts:
            cohort_source.close()
        self._link.close()

    def __repr__(self) -> str:
        return f"RedisFleet({self._link.where!r}, prefix={self.prefix!r}, fetch={self.fetch})"
