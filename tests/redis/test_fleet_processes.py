"""Four real client processes share one Redis (issue 14 pt 5 and "done when").

One SIGKILLed leader, a flag changed after the kill, Redis restarted once. Checked: one process's
worth of flag downloads, each assignment event accepted once, the change served by the survivors
within 4 s of the kill.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any, Dict, List, Tuple

from amplitude_experiment.redis.fleet import key_digest
from amplitude_experiment.testing import AmplitudeStandIn

from ._workers import client_worker
from .conftest import process_context

DEPLOYMENT = "server-fleetProcessKey01"
USERS = [f"user-{i:03d}" for i in range(40)]
# Short enough that the test takes about a second, long enough that a process briefly starved of
# CPU on a busy 2-core machine keeps its lease (renewed every third of it).
LEASE_MILLIS = 750
POLLING_MILLIS = 400


def flag(value: str) -> Dict[str, Any]:
    return {"key": "exp", "metadata": {"flagType": "experiment", "flagVersion": 1, "experimentKey": "exp-1"},
            "variants": {value: {"key": value, "value": value}, "off": {"key": "off", "metadata": {"default": True}}},
            "segments": [{"variant": value}]}


def test_four_processes_behave_like_one_client(redis_server, prefix) -> None:
    ctx = process_context()
    out = ctx.Queue()
    with AmplitudeStandIn(flags=[flag("blue")]) as stand_in:
        commands = {f"w{i}": ctx.Queue() for i in range(4)}
        workers = {name: ctx.Process(target=client_worker, daemon=True, args=(
            redis_server.url, prefix, DEPLOYMENT, stand_in.url, stand_in.events_url, USERS, name, queue, out,
            LEASE_MILLIS, POLLING_MILLIS))
            for name, queue in commands.items()}
        state: Dict[str, Tuple[Any, str, bool]] = {}
        tracked: List[str] = []
        stopped: Dict[str, Any] = {}

        def pump(until: Any, timeout: float) -> bool:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if until():
                    return True
                try:
                    name, what, data = out.get(timeout=0.05)
                except Exception:  # noqa: BLE001 - queue.Empty
                    continue
                if what == "tick":
                    state[name] = data
                elif what == "tracked":
                    tracked.append(name)
                elif what == "stopped":
                    stopped[name] = data
            return until()

        try:
            began = time.monotonic()
            for worker in workers.values():
                worker.start()
            assert pump(lambda: len(tracked) == 4 and len(state) == 4, 60.0)
            # Each user's assignment event arrives once although four processes tracked it.
            ids = [i for i in stand_in.accepted_insert_ids() if i.startswith("user-")]  # not the probe's
            assert len(ids) == len(USERS) and len(set(ids)) == len(USERS)

            redis_server.restart()  # empty again: the fleet re-forms around one leader
            lease_key = f"{prefix}:{key_digest(DEPLOYMENT)}:flags:lease"
            admin = redis_server.client()

            def holder() -> Any:
                token = admin.get(lease_key)
                return next((name for name, (_, mine, _) in state.items() if token == mine.encode()), None)

            assert pump(lambda: all(up for _, _, up in state.values()) and holder() is not None, 15.0)
            leader = holder()
            admin.close()
            os.kill(workers[leader].pid, signal.SIGKILL)  # type: ignore[arg-type]
            killed_at = time.monotonic()
            del state[leader]
            stand_in.set_flags([flag("green")])
            survivors = [name for name in workers if name != leader]
            assert pump(lambda: all(state.get(name, (None,))[0] == "green" for name in survivors), 10.0)
            served_after = time.monotonic() - killed_at
            assert served_after < 4.0, served_after
            print(f"change served {served_after:.2f} s after the kill")

            elapsed = time.monotonic() - began
            downloads = len(stand_in.requests("flags"))
            for name in survivors:
                commands[name].put("stop")
            assert pump(lambda: len(stopped) == 3, 20.0)
            # One process alone downloads at start and once per polling interval: 1.5x of that (issue 14
            # "done when"), plus one download per process while Redis restarted (each falls back to its own).
            print(f"{downloads} flag downloads in {elapsed:.1f} s")
            assert downloads <= 1.5 * (elapsed / (POLLING_MILLIS / 1000) + 1) + 4, (downloads, elapsed)
            # Nothing was sent again after the restart. (The probe user's events, tracked while Redis
            # restarted and lost its claims, may repeat: the documented fallback, deduplicated by Amplitude.)
            assert [i for i in stand_in.accepted_insert_ids() if i.startswith("user-")] == ids
        finally:
            for worker in workers.values():
                if worker.is_alive():
                    worker.kill()
                worker.join(10)
