"""Flag configs shared through Redis: a lease for the downloader, a hash holding the current body, pub/sub for news."""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from typing import Any, Optional, Tuple

from .._clock import Clock
from ._lease import Lease
from ._link import LINK_ERRORS, Link

# Publish only while holding the lease, so a leader that stalled past its lease cannot
# overwrite what its successor published.
_PUBLISH = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if redis.call('HGET', KEYS[2], 'version') == ARGV[2] then return 2 end
redis.call('HSET', KEYS[2], 'version', ARGV[2], 'body', ARGV[3])
redis.call('PUBLISH', ARGV[4], ARGV[2])
return 1
"""

#: Longest single wait on the pub/sub socket, so that ``stop`` is noticed promptly.
_POLL_SLICE = 0.1
_MIN_DIGEST = 16


def _text(value: Any) -> Optional[str]:
    if value is None:
        return None
    return value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)


class RedisFlagSource:
    """A :class:`~amplitude_experiment.flags.shared.SharedFlagSource` in Redis for one deployment.

    Keys (``ns`` = ``<prefix>:<sha256(deployment key)[:12]>``): ``ns:flags:lease`` (the holder's
    token), ``ns:flags`` (hash: ``version``, ``body``), channel ``ns:flags:updates`` (new versions).
    Obtain one from :meth:`RedisFleet.flags`.
    """

    def __init__(self, link: Link, namespace: str, *, fetch: bool, lease_seconds: float, clock: Clock,
                 logger: logging.Logger) -> None:
        self._link = link
        self.fetch = fetch
        self.renew_interval = lease_seconds / 3
        self._clock = clock
        self._logger = logger
        self.lease = Lease(link, f"{namespace}:flags:lease", lease_seconds, "flag downloads", logger)
        self.data_key = f"{namespace}:flags"
        self.channel = f"{namespace}:flags:updates"
        self._publish = link.client.register_script(_PUBLISH)
        self._pubsub: Any = None
        self._pubsub_pid: Optional[int] = None
        self._pubsub_lock = threading.Lock()
        self._never = threading.Event()

    # -- leading ----------------------------------------------------------------------------------

    def try_lead(self) -> bool:
        return self.lease.lead(self.fetch)

    def resign(self) -> None:
        self.lease.release()

    @property
    def leading(self) -> bool:
        """Whether this process held the lease at its last successful renewal."""
        return self.lease.held

    def publish(self, body: bytes, digest: str) -> bool:
        if not isinstance(body, (bytes, bytearray)) or not isinstance(digest, str):
            raise TypeError("publish(body: bytes, digest: str)")
        if len(digest) < _MIN_DIGEST or not hashlib.sha256(body).hexdigest().startswith(digest):
            raise ValueError("digest must be a hex prefix (16+ characters) of sha256(body)")
        if not self.lease.held:
            return False
        token = self.lease.token

        def run(client: Any) -> bool:
            # Unchanged configs (the usual re-poll) cost one small read, not a body upload.
            if _text(client.hget(self.data_key, "version")) == digest:
                return True
            done = int(self._publish(keys=[self.lease.key, self.data_key],
                                     args=[token, digest, bytes(body), self.channel]))
            if done == 1:
                self._logger.debug("Published flag config %s to the fleet (%d bytes)", digest, len(body))
            return done != 0

        return self._link.call("flag publish", run, False)

    # -- following --------------------------------------------------------------------------------

    def current_version(self) -> Optional[str]:
        return self._link.call("flag version check", lambda c: _text(c.hget(self.data_key, "version")), None)

    def latest(self) -> Optional[Tuple[str, bytes]]:
        def run(client: Any) -> Optional[Tuple[str, bytes]]:
            version, body = client.hmget(self.data_key, ["version", "body"])
            if version is None or body is None:
                return None
            text = _text(version)
            if text is None or not hashlib.sha256(body).hexdigest().startswith(text):
                self._logger.warning("The fleet's flag config does not match its version %s; ignoring it", text)
                return None
            return text, bytes(body)

        return self._link.call("flag download from the fleet", run, None)

    def wait_for_version(self, known: Optional[str], timeout: float,
                         stop: Optional[threading.Event] = None) -> Optional[str]:
        stop = stop if stop is not None else self._never
        if not self._link.admit():
            self._clock.wait(stop, timeout)
            return None
        deadline = time.monotonic() + max(0.0, timeout)
        with self._pubsub_lock:
            try:
                pubsub = self._subscribed()
                current = _text(self._link.client.hget(self.data_key, "version"))  # the fallback check
                self._link.succeeded()
                if current != known:
                    return current
                while not stop.is_set():
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    message = pubsub.get_message(ignore_subscribe_messages=True,
                                                 timeout=min(_POLL_SLICE, remaining))
                    if message is not None and message.get("type") == "message":
                        current = _text(message.get("data"))
                        if current != known:
                            return current
                return current
            except LINK_ERRORS as exc:
                self._link.failed("flag update subscription", exc)
                self._drop_pubsub()
        self._clock.wait(stop, max(0.0, deadline - time.monotonic()))
        return None

    def _subscribed(self) -> Any:
        if self._pubsub is None or self._pubsub_pid != os.getpid():
            client: Any = self._link.client
            self._pubsub = client.pubsub(ignore_subscribe_messages=True)
            self._pubsub_pid = os.getpid()
            self._pubsub.subscribe(self.channel)
        return self._pubsub

    def _drop_pubsub(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None and self._pubsub_pid == os.getpid():
            try:
                pubsub.close()
            except LINK_ERRORS:
                pass

    def close(self) -> None:
        """Resign the lease and close the subscription."""
        self.resign()
        with self._pubsub_lock:
            self._drop_pubsub()
