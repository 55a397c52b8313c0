"""Entry points of the multi-process fleet tests (importable by spawned interpreters)."""

from __future__ import annotations

import time
from typing import Any, List, Tuple


def claim_worker(url: str, prefix: str, api_key: str, ids: List[Tuple[str, int]], batch: int, out: Any) -> None:
    """Claim ``ids`` in batches; put the ids this process won on ``out``."""
    from amplitude_experiment.redis import RedisFleet

    fleet = RedisFleet(url, prefix, socket_timeout=2.0)
    claims = fleet.claims(api_key)
    won: List[str] = []
    for start in range(0, len(ids), batch):
        chunk = ids[start:start + batch]
        won.extend(insert_id for (insert_id, _), ours in zip(chunk, claims.claim(chunk)) if ours)
    fleet.close()
    out.put(won)


def lease_worker(url: str, prefix: str, deployment: str, lease_millis: int, name: str, out: Any) -> None:
    """Keep trying to lead (renewing every few ms); report each change of leadership on ``out`` until killed."""
    from amplitude_experiment.redis import RedisFleet

    source = RedisFleet(url, prefix, lease_millis=lease_millis, socket_timeout=2.0).flags(deployment)
    leading = False
    out.put((name, "ready"))
    while True:
        now = source.try_lead()
        if now != leading:
            leading = now
            out.put((name, "lead" if now else "lost"))
        time.sleep(lease_millis / 6000)  # the renewal cadence of this stand-in client
