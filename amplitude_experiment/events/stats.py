"""Counters a user can read: what tracking did with every evaluation and event."""

from __future__ import annotations

import itertools
import threading
from typing import Dict


class Counter:
    """An exact counter that request threads increment without taking a lock.

    ``increment`` is ``itertools.count.__next__``: one C call, atomic under the GIL, so no
    increment is ever lost. Reading draws one number from the same count (under a lock, so
    readers are serialised) and subtracts how many numbers earlier reads drew. ``add(n)``
    (bulk counts from the sender thread) goes to a plain int under the same lock.
    """

    __slots__ = ("_count", "_reads", "_bulk", "_lock", "increment")

    def __init__(self) -> None:
        self._count = itertools.count()
        self._reads = 0
        self._bulk = 0
        self._lock = threading.Lock()
        self.increment = self._count.__next__

    def add(self, n: int) -> None:
        """Count ``n`` at once."""
        if n == 1:
            self.increment()
        elif n:
            with self._lock:
                self._bulk += n

    @property
    def value(self) -> int:
        """The exact count so far."""
        with self._lock:
            drawn = next(self._count)
            value = drawn - self._reads + self._bulk
            self._reads += 1
            return value


class ReasonCounters:
    """Exact counters keyed by a reason string (created on first use)."""

    def __init__(self) -> None:
        self._counters: Dict[str, Counter] = {}
        self._lock = threading.Lock()

    def add(self, reason: str, n: int = 1) -> None:
        """Count ``n`` for ``reason``."""
        counter = self._counters.get(reason)
        if counter is None:
            with self._lock:
                counter = self._counters.setdefault(reason, Counter())
        counter.add(n)

    def get(self, reason: str) -> int:
        """The count for one reason (0 if never counted)."""
        counter = self._counters.get(reason)
        return 0 if counter is None else counter.value

    def snapshot(self) -> Dict[str, int]:
        """Every reason counted so far, sorted by name."""
        with self._lock:
            items = sorted(self._counters.items())
        return {reason: counter.value for reason, counter in items}

    def total(self) -> int:
        """The sum over all reasons."""
        with self._lock:
            counters = list(self._counters.values())
        return sum(c.value for c in counters)
