"""A clock that moves only when a test says so."""

from __future__ import annotations

import functools
import os
import threading
import weakref
from typing import List, Optional, Tuple

from .._clock import Clock


class ManualClock(Clock):
    """A :class:`~amplitude_experiment._clock.Clock` for tests: time stands still until :meth:`advance`.

    A background worker's ``wait(event, timeout)`` blocks until the event is set or the test
    advances the clock past the deadline, so a test of a poller, backoff or the event sender
    runs in milliseconds and never sleeps to synchronise::

        clock = ManualClock()
        client = LocalEvaluationClient(key, LocalEvaluationConfig(..., clock=clock))
        clock.wait_for_sleepers(1)   # the poller is now waiting for its interval
        clock.advance(30)            # ... and runs once

    Args:
        start: the initial monotonic reading, in seconds.
        epoch: the initial wall-clock reading (``time()``), in epoch seconds.
    """

    def __init__(self, start: float = 1000.0, epoch: float = 1_700_000_000.0) -> None:
        self._now = start
        self._epoch_offset = epoch - start
        self._changed = threading.Condition()
        self._sleepers: List[Tuple[float, threading.Event]] = []
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=functools.partial(_reset_after_fork, weakref.ref(self)))

    def _forget_other_threads(self) -> None:
        # In a forked child only the forking thread lives on: the parent's sleepers are gone, and
        # the lock may have been held by one of them at the fork.
        self._changed = threading.Condition()
        self._sleepers = []

    def monotonic(self) -> float:
        with self._changed:
            return self._now

    def time(self) -> float:
        with self._changed:
            return self._now + self._epoch_offset

    def wait(self, event: threading.Event, timeout: Optional[float]) -> bool:
        with self._changed:
            deadline = None if timeout is None else self._now + max(0.0, timeout)
            entry = (float("inf") if deadline is None else deadline, event)
            self._sleepers.append(entry)
            self._changed.notify_all()
            try:
                while not event.is_set() and (deadline is None or self._now < deadline):
                    # Short real waits only so that an event set from another thread is noticed;
                    # the time a test observes moves only through advance().
                    self._changed.wait(0.005)
                return event.is_set()
            finally:
                self._sleepers.remove(entry)
                self._changed.notify_all()

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``; returns once every waiter whose deadline passed has woken.

        After it returns, :meth:`wait_for_sleepers` tells when the woken workers are waiting again
        (their work for this tick is done).
        """
        if seconds < 0:
            raise ValueError("a clock cannot go backwards")
        with self._changed:
            self._now += seconds
            self._changed.notify_all()
            self._changed.wait_for(lambda: all(d > self._now for d, _ in self._sleepers), 5.0)

    @property
    def sleepers(self) -> int:
        """How many threads are waiting on this clock now."""
        with self._changed:
            return len(self._sleepers)

    def next_deadline(self) -> Optional[float]:
        """Seconds until the earliest waiter's deadline (``None`` if nobody waits with a timeout)."""
        with self._changed:
            deadlines = [d for d, _ in self._sleepers if d != float("inf")]
            return None if not deadlines else max(0.0, min(deadlines) - self._now)

    def wait_for_sleepers(self, n: int = 1, timeout: float = 5.0) -> bool:
        """Block (in real time, at most ``timeout`` s) until at least ``n`` threads wait on this clock."""
        with self._changed:
            return self._changed.wait_for(lambda: len(self._sleepers) >= n, timeout)

    def run_until_idle(self, limit: float = 86_400.0, sleepers: int = 1, timeout: float = 5.0) -> None:
        """Advance to each waiter's deadline in turn until none is due within ``limit`` seconds."""
        elapsed = 0.0
        while elapsed < limit:
            if not self.wait_for_sleepers(sleepers, timeout):
                return
            due = self.next_deadline()
            if due is None or elapsed + due > limit:
                return
            self.advance(due)
            elapsed += due


def _reset_after_fork(clock_ref: "weakref.ref[ManualClock]") -> None:
    clock = clock_ref()
    if clock is not None:
        clock._forget_other_threads()
