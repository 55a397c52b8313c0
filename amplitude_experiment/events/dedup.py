"""A bounded, thread-safe "already tracked today?" memory of 64-bit keys.

Callers hash what identifies an event (ids, result, day) into one int, so an entry costs a
small int in a set: about 65 bytes at the default capacity, instead of ~430 for a TTL cache of
tuples (``tests/events/test_assignment.py`` measures it). Two generations replace per-entry
expiry: keys go into ``current``; when it holds ``capacity // 2`` keys it becomes ``previous``
and the old ``previous`` is dropped. So the most recent ``capacity // 2`` keys are always
remembered and never more than ``capacity``. The day is part of every key, so a key cannot
match on another day; when the day changes both generations are dropped at once.

A wrong "seen" needs two different events of one day with the same 60-bit key among at most
``capacity`` remembered ones: with the default capacity, a chance below 1e-13 per event.
"""

from __future__ import annotations

import threading
from typing import Optional, Set

#: Keys are masked to 60 bits: such an int takes two 30-bit digits (32 bytes) instead of three.
KEY_MASK = (1 << 60) - 1


class SeenKeys:
    """Remembers the last ``capacity // 2`` to ``capacity`` keys of the current day.

    ``seen(key)`` is lock-free (a false "not seen" is possible while generations rotate, a
    false "seen" is not); ``first_time(key, day)`` is an atomic check-and-add, so two threads
    tracking the same key at once produce exactly one event.

    Args:
        capacity: the most keys remembered (at least 2 keeps the generations meaningful).
    """

    __slots__ = ("capacity", "_generation", "current", "previous", "_day", "_lock")

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.capacity = capacity
        self._generation = max(1, capacity // 2)
        #: the newest keys (read lock-free on the request path)
        self.current: Set[int] = set()
        #: the generation before ``current``
        self.previous: Set[int] = set()
        self._day: Optional[float] = None
        self._lock = threading.Lock()

    def seen(self, key: int) -> bool:
        """Whether ``key`` is remembered (no lock, no change)."""
        return key in self.current or key in self.previous

    def first_time(self, key: int, day: float) -> bool:
        """True the first time ``key`` is offered; it is then remembered.

        ``day`` is the day the key belongs to (e.g. ``epoch_seconds // 86400``): a later day
        than any seen before drops every remembered key (they can no longer match).
        """
        with self._lock:
            if self._day is None or day > self._day:
                if self._day is not None:
                    self.previous = set()
                    self.current = set()
                self._day = day
            if key in self.current or key in self.previous:
                return False
            self.current.add(key)
            if len(self.current) >= self._generation:
                # Assign ``previous`` first: a lock-free reader then still finds every key.
                self.previous = self.current
                self.current = set()
            return True

    def reset_lock(self) -> None:
        """A fresh lock (after ``fork()``, where another thread may have held the old one)."""
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.current) + len(self.previous)

    def clear(self) -> None:
        with self._lock:
            self.current = set()
            self.previous = set()
