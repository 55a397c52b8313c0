"""Fleet-wide insert_id claims: ``SET NX`` until the end of the id's day, one round trip per batch."""

from __future__ import annotations

import hashlib
import os
import secrets
from typing import Any, Iterable, List, Optional, Sequence, Tuple

from .._clock import Clock
from ._link import Link

DAY_MILLIS = 86_400_000

# One command per batch: SET NX PX for every key, server-side. Same round trip as a pipeline of
# SETs, at a third of the client-side cost (redis-py packs one command instead of hundreds).
_CLAIM = """
local out = {}
for i, key in ipairs(KEYS) do
  if redis.call('SET', key, ARGV[1], 'NX', 'PX', ARGV[i + 1]) then out[i] = 1 else out[i] = 0 end
end
return out
"""

# Delete only the claims this process made (another may have claimed an id after ours expired).
_RELEASE = """
local n = 0
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then n = n + redis.call('DEL', key) end
end
return n
"""


def claim_digest(insert_id: str) -> str:
    """The key part for an insert_id: short, fixed length, and free of the user and device ids it contains."""
    return hashlib.blake2b(insert_id.encode("utf-8", "surrogatepass"), digest_size=12).hexdigest()


class RedisClaims:
    """An :class:`~amplitude_experiment.events.claims.InsertIdClaims` in Redis for one analytics project.

    Key per claim: ``<prefix>:<sha256(api key)[:12]>:claim:<blake2b(insert_id)>``, holding the
    claiming process's token, expiring ``margin`` seconds after the end of the insert_id's day
    (by this process's clock; the margin absorbs clock skew between hosts). Obtain one from
    :meth:`RedisFleet.claims`.
    """

    def __init__(self, link: Link, namespace: str, *, clock: Clock, margin: float) -> None:
        self._link = link
        self._prefix = f"{namespace}:claim:"
        self._clock = clock
        self._margin_ms = max(1000, int(margin * 1000))
        self._claim = link.client.register_script(_CLAIM)
        self._release = link.client.register_script(_RELEASE)
        self._pid: Optional[int] = None
        self._token = ""

    @property
    def token(self) -> str:
        pid = os.getpid()
        if pid != self._pid:
            self._pid, self._token = pid, secrets.token_hex(8)
        return self._token

    def key(self, insert_id: str) -> str:
        return self._prefix + claim_digest(insert_id)

    def ttl_millis(self, day: int, now_ms: int) -> int:
        """Milliseconds a claim of an insert_id of ``day`` lives: to the day's end plus the margin, bounded."""
        ttl = (day + 1) * DAY_MILLIS + self._margin_ms - now_ms
        return min(max(ttl, self._margin_ms), DAY_MILLIS + self._margin_ms)

    def claim(self, items: Sequence[Tuple[str, int]]) -> List[bool]:
        if not items:
            return []
        ours = [True] * len(items)
        token = self.token
        now_ms = int(self._clock.time() * 1000)
        keys = [self.key(insert_id) for insert_id, _ in items]
        ttls = [self.ttl_millis(day, now_ms) for _, day in items]

        def run(_client: Any) -> List[bool]:
            return [result == 1 for result in self._claim(keys=keys, args=[token, *ttls])]

        return self._link.call("insert_id claim", run, ours)

    def release(self, insert_ids: Iterable[str]) -> None:
        keys = list(dict.fromkeys(self.key(insert_id) for insert_id in insert_ids))
        if not keys:
            return
        token = self.token
        self._link.call("insert_id release", lambda _c: self._release(keys=keys, args=[token]), None)
