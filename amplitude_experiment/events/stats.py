"""Counters a user can read: what tracking did with every evaluation and event."""

from __future__ import annotations

import itertools
import threading
from typing import Dict


class Counter:
    """A counter that many threads may increment without a lock.

    ``itertools.count.__next__`` is a single C call, so increments are never lost; the value
    is read back from the counter's repr, which is ``count(N)``.
    """

    __slots__ = ("_count", "increment")

    def __init__(self) -> None:
        self._count = itertools.count()
        self.increment = self._count.__next__

    @property
    def value(self) -> int:
        return int(repr(self._count)[6:-1])


class ReasonCounters:
    """Counters keyed by a reason string (created on first use)."""

    def __init__(self) -> None:
        self._counters: Dict[str, Counter] = {}
        self._lock = threading.Lock()

    def add(self, reason: str, n: int = 1) -> None:
        counter = self._counters.get(reason)
        if counter is None:
            with self._lock:
                counter = self._counters.setdefault(reason, Counter())
        for _ in range(n):
            counter.increment()

    def snapshot(self) -> Dict[str, int]:
        return {reason: counter.value for reason, counter in sorted(self._counters.items())}

    def total(self) -> int:
        return sum(c.value for c in self._counters.values())
