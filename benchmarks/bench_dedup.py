"""Measure the assignment dedup memory (issue 12 point 3: <= 150 bytes per entry) and the
request-path cost of tracking, through ``AssignmentTracker`` with a sender that only queues.

Usage::

    python benchmarks/bench_dedup.py

Prints bytes per entry at the default ``cache_capacity`` (tracemalloc, at the fullest moment:
both generations full, keys included), microseconds per ``track()`` for a dedup hit and for
a never-seen user (the whole request path: dedup check plus enqueue), with 1 and 40 flags, and
the bytes a queued assignment holds (what a backlog costs, see ``events/sender.py``) on the
single rollout flag and the realistic 10- and 40-flag deployments of ``deployment.py``, with the
users of ``bench_tracking.py`` (realistic ids, numbered).
"""

from __future__ import annotations

import gc
import os
import sys
import timeit
import tracemalloc
from typing import Any, List

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from deployment import realistic_deployment, realistic_users, single_rollout_flag  # noqa: E402

from amplitude_experiment import AssignmentConfig, User  # noqa: E402
from amplitude_experiment.evaluation import compile_flags, evaluate  # noqa: E402
from amplitude_experiment.events.assignment import AssignmentTracker  # noqa: E402


class Queue:
    """A sender that only keeps what it is given."""

    def __init__(self) -> None:
        self.items: List[Any] = []

    def enqueue(self, item: Any) -> bool:
        self.items.append(item)
        return True


def flags(n: int) -> Any:
    return compile_flags([{"key": f"flag-{i:02d}", "variants": {"on": {"key": "on"}}, "segments": [{"variant": "on"}],
                           "metadata": {"flagVersion": 1, "segmentName": "All"}} for i in range(n)])


def memory_per_entry() -> float:
    capacity = AssignmentConfig(api_key="k").cache_capacity
    compiled = flags(1)
    users = [User(user_id=f"user-{i:08d}", device_id=f"device-{i:08d}") for i in range(capacity)]
    results = evaluate(compiled, users[0])
    gc.collect()
    tracemalloc.start()
    tracker = AssignmentTracker(Queue(), capacity)  # type: ignore[arg-type]
    sender: Queue = tracker.sender  # type: ignore[assignment]
    base = tracemalloc.get_traced_memory()[0]
    for user in users[:-1]:  # one short of a rotation: both generations full
        tracker.track(user, results)
    sender.items.clear()  # the queued events are the sender's memory, not the cache's
    gc.collect()
    used = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    return used / capacity


def per_call(n_flags: int) -> str:
    compiled = flags(n_flags)
    user = User(user_id="user-1", device_id="device-1")
    results = evaluate(compiled, user)
    tracker = AssignmentTracker(Queue(), 65536)  # type: ignore[arg-type]
    tracker.track(user, results)
    hit = min(timeit.repeat(lambda: tracker.track(user, results), number=20000, repeat=5)) / 20000 * 1e6
    fresh = iter([User(user_id=f"user-{i}", device_id="d") for i in range(100_000)])
    miss = min(timeit.repeat(lambda: tracker.track(next(fresh), results), number=10000, repeat=5)) / 10000 * 1e6
    return f"{n_flags:>2} flag(s): dedup hit {hit:.2f} us, never-seen user {miss:.2f} us"


def queued_event_memory(flags_json: List[Any], n: int = 20_000) -> str:
    """Bytes a queued assignment holds (ids included) and its dedup entry, by tracemalloc."""
    compiled = compile_flags(flags_json)
    templates = realistic_users(1000)

    def users(start: int, count: int) -> Any:
        for index in range(start, start + count):
            kwargs = dict(templates[index % 1000])
            if kwargs.get("user_id") is not None:
                kwargs["user_id"] = f"{kwargs['user_id']}-n{index}"
            kwargs["device_id"] = f"{kwargs['device_id']}-n{index}"
            yield User(**kwargs)

    tracker = AssignmentTracker(Queue(), 1 << 20)  # type: ignore[arg-type]
    for user in users(0, 3000):  # remembered flag orders, written fragments: not per event
        tracker.track(user, evaluate(compiled, user))
    tracker.sender.items.clear()  # type: ignore[attr-defined]
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    for user in users(10_000, n):  # each user and result is dropped after the call, as in a server
        tracker.track(user, evaluate(compiled, user))
    gc.collect()
    used = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    seen = tracker._seen
    dedup = sum(sys.getsizeof(g) + sum(map(sys.getsizeof, g)) for g in (seen.current, seen.previous))
    return f"{(used - dedup) / n:.0f} bytes per queued event (+{dedup / n:.0f} of dedup entry)"


def main() -> None:
    print(f"dedup memory at the default capacity: {memory_per_entry():.0f} bytes per entry (target <= 150)")
    for n in (1, 40):
        print(per_call(n))
    deployments = (("1 rollout flag", single_rollout_flag()), ("10 realistic flags", realistic_deployment(10)),
                   ("40 realistic flags", realistic_deployment(40)))
    for name, flags_json in deployments:
        print(f"{name}: {queued_event_memory(flags_json)}")


if __name__ == "__main__":
    main()
