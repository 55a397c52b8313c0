"""Cohort membership shared through Redis, one hash per cohort, newest ``lastModified`` wins."""

from __future__ import annotations

import logging
from typing import Any, Collection, Dict, List, Optional, Tuple

from ._lease import Lease
from ._link import Link

_PUBLISH = """
local stored = tonumber(redis.call('HGET', KEYS[1], 'lm'))
if stored and stored >= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'lm', ARGV[1], 'body', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""

#: A cohort nobody republished for this long (no flag targets it any more) leaves Redis.
COHORT_TTL_SECONDS = 30 * 86_400


class RedisCohortSource:
    """A :class:`~amplitude_experiment.cohorts.shared.SharedCohortSource` in Redis for one project.

    Keys (``ns`` = ``<prefix>:<sha256(key)[:12]>``): ``ns:cohorts:lease`` and one hash
    ``ns:cohort:<cohort id>`` (``lm``, ``body``) per cohort. Obtain one from :meth:`RedisFleet.cohorts`.
    """

    def __init__(self, link: Link, namespace: str, *, fetch: bool, lease_seconds: float,
                 logger: logging.Logger) -> None:
        self._link = link
        self.fetch = fetch
        self.renew_interval = lease_seconds / 3
        self._namespace = namespace
        self._logger = logger
        self.lease = Lease(link, f"{namespace}:cohorts:lease", lease_seconds, "cohort downloads", logger)
        self._publish = link.client.register_script(_PUBLISH)

    def key(self, cohort_id: str) -> str:
        return f"{self._namespace}:cohort:{cohort_id}"

    def try_lead(self) -> bool:
        return self.lease.lead(self.fetch)

    def resign(self) -> None:
        self.lease.release()

    def publish(self, cohort_id: str, last_modified: int, body: bytes) -> bool:
        if not isinstance(cohort_id, str) or not isinstance(last_modified, int) or \
                not isinstance(body, (bytes, bytearray)):
            raise TypeError("publish(cohort_id: str, last_modified: int, body: bytes)")
        ttl = COHORT_TTL_SECONDS * 1000
        return self._link.call(
            "cohort publish",
            lambda _c: int(self._publish(keys=[self.key(cohort_id)], args=[last_modified, bytes(body), ttl])) == 1,
            False)

    def versions(self, cohort_ids: Collection[str]) -> Dict[str, int]:
        ids: List[str] = list(dict.fromkeys(cohort_ids))
        if not ids:
            return {}

        def run(client: Any) -> Dict[str, int]:
            pipe = client.pipeline(transaction=False)
            for cohort_id in ids:
                pipe.hget(self.key(cohort_id), "lm")
            found: Dict[str, int] = {}
            for cohort_id, value in zip(ids, pipe.execute()):
                if value is not None:
                    found[cohort_id] = int(value)
            return found

        return self._link.call("cohort version check", run, {})

    def get(self, cohort_id: str) -> Optional[Tuple[int, bytes]]:
        def run(client: Any) -> Optional[Tuple[int, bytes]]:
            last_modified, body = client.hmget(self.key(cohort_id), ["lm", "body"])
            if last_modified is None or body is None:
                return None
            return int(last_modified), bytes(body)

        return self._link.call("cohort download from the fleet", run, None)

    def close(self) -> None:
        self.resign()
