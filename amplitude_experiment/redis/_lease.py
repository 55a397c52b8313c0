"""A leader lease in Redis: one holder at a time, renewed by its holder, taken over when it lapses."""

from __future__ import annotations

import logging
import os
import secrets
from typing import Any, Optional

from ._link import Link

# Acquire when free, renew when ours, refuse when another's: one round trip either way.
_ACQUIRE_OR_RENEW = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class Lease:
    """The lease at ``key`` for this process, identified by a random token.

    The token is drawn per process (a forked child draws its own), so a child never believes it
    holds its parent's lease.

    Args:
        link: the Redis link.
        key: the lease key.
        duration: seconds the lease lasts without renewal.
        what: names the job the lease guards, for log lines ("flag downloads").
        logger: where leadership changes are logged (info).
    """

    def __init__(self, link: Link, key: str, duration: float, what: str, logger: logging.Logger) -> None:
        if duration <= 0:
            raise ValueError("lease duration must be > 0")
        self._link = link
        self.key = key
        self.duration = duration
        self._what = what
        self._logger = logger
        self._pid: Optional[int] = None
        self._token = ""
        self._held = False
        self._acquire: Any = link.client.register_script(_ACQUIRE_OR_RENEW)
        self._release: Any = link.client.register_script(_RELEASE)

    @property
    def token(self) -> str:
        pid = os.getpid()
        if pid != self._pid:
            self._pid, self._token, self._held = pid, secrets.token_hex(12), False
        return self._token

    @property
    def held(self) -> bool:
        """Whether the last acquire/renew attempt that reached Redis succeeded (in this process)."""
        _ = self.token
        return self._held

    def try_acquire(self) -> Optional[bool]:
        """Acquire or renew; True if held, False if another holds it, None if Redis is unreachable."""
        token = self.token
        millis = max(1, int(self.duration * 1000))
        result: Optional[int] = self._link.call(
            "lease renewal", lambda _c: int(self._acquire(keys=[self.key], args=[token, millis])), None)
        if result is None:
            return None
        held = result == 1
        if held != self._held:
            self._logger.info("This process %s %s for the fleet", "now leads" if held else "no longer leads",
                              self._what)
        self._held = held
        return held

    def lead(self, fetch: bool) -> bool:
        """Whether this process should download now: never for a read-only member (``fetch=False``);
        otherwise while it holds the lease, and also while Redis is unreachable (each process then
        downloads for itself)."""
        if not fetch:
            return False
        held = self.try_acquire()
        return True if held is None else held

    def release(self) -> None:
        """Delete the lease if this process holds it (best effort)."""
        token = self.token
        if not self._held:
            return
        self._held = False
        self._link.call("lease release", lambda _c: self._release(keys=[self.key], args=[token]), None)
