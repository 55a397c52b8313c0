"""Measure the assignment dedup memory (issue 12 point 3: <= 150 bytes per entry) and the
request-path cost of tracking, through ``AssignmentTracker`` with a sender that only queues.

Usage::

    python benchmarks/bench_dedup.py

Prints bytes per entry at the default ``cache_capacity`` (tracemalloc, at the fullest moment:
both generations full, keys included) and microseconds per ``track()`` for a dedup hit and for
a never-seen user (the whole request path: dedup check plus enqueue), with 1 and 40 flags.
"""

from __future__ import annotations

import gc
import os
import sys
import timeit
import tracemalloc
from typing import Any, List

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

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


def main() -> None:
    print(f"dedup memory at the default capacity: {memory_per_entry():.0f} bytes per entry (target <= 150)")
    for n in (1, 40):
        print(per_call(n))


if __name__ == "__main__":
    main()
