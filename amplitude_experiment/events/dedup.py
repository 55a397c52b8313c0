"""A bounded, thread-safe TTL set: "have we already tracked this today?"."""

from __future__ import annotations

import threading
import time
from typing import Callable, Hashable

from cachetools import TTLCache

DAY_SECONDS = 86_400.0


class SeenCache:
    """Remembers up to ``capacity`` keys for ``ttl`` seconds (least recently used evicted first).

    ``first_time(key)`` is an atomic check-and-add, so two threads tracking the same key at
    once produce exactly one event.
    """

    def __init__(self, capacity: int, ttl: float = DAY_SECONDS, timer: Callable[[], float] = time.monotonic) -> None:
        self._cache: "TTLCache[Hashable, None]" = TTLCache(maxsize=capacity, ttl=ttl, timer=timer)
        self._lock = threading.Lock()

    def first_time(self, key: Hashable) -> bool:
        """True the first time ``key`` is seen (within its TTL); it is then remembered."""
        with self._lock:
            if key in self._cache:
                return False
            self._cache[key] = None
            return True

    def reset_lock(self) -> None:
        """A fresh lock (after ``fork()``, where another thread may have held the old one)."""
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._cache)

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()
