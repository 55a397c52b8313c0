"""Entry points of the multi-process fleet tests (importable by spawned interpreters)."""

from __future__ import annotations

import threading
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
    cadence = threading.Event()  # never set: a wait on it is this worker's renewal period
    out.put((name, "ready"))
    while True:
        now = source.try_lead()
        if now != leading:
            leading = now
            out.put((name, "lead" if now else "lost"))
        cadence.wait(lease_millis / 6000)  # the renewal cadence of this stand-in client


def client_worker(url: str, prefix: str, deployment: str, server_url: str, events_url: str, users: List[str],
                  name: str, commands: Any, out: Any, lease_millis: int, polling_millis: int) -> None:
    """A LocalEvaluationClient in a fleet: track ``users`` once, then report (value, lease token, up) until "stop"."""
    import queue

    from amplitude_experiment import AssignmentConfig, LocalEvaluationClient, LocalEvaluationConfig, User
    from amplitude_experiment.redis import RedisFleet

    fleet = RedisFleet(url, prefix, lease_millis=lease_millis)
    client = LocalEvaluationClient(deployment, LocalEvaluationConfig(
        server_url=server_url, flag_config_polling_interval_millis=polling_millis, fleet=fleet,
        assignment_config=AssignmentConfig(api_key="analytics-fleet-key", server_url=events_url,
                                           flush_interval_millis=200)))
    client.start()
    for user_id in users:
        client.evaluate_v2(User(user_id=user_id, device_id="device-" + user_id))
    client.flush(10.0)
    out.put((name, "tracked", None))
    source = fleet.flags(deployment)
    while True:
        try:
            command = commands.get(timeout=0.05)
        except queue.Empty:
            command = None
        if command == "stop":
            client.stop(5.0)
            fleet.close()
            out.put((name, "stopped", client.stats()["events"]))
            return
        variant = client.evaluate_v2(User(user_id="probe")).get("exp")
        out.put((name, "tick", (None if variant is None else variant.value, source.lease.token, fleet.up)))
