"""A backoff policy as an immutable value, shared by every worker that retries (flags, stream,
cohorts, events, remote evaluation, the Redis link)."""

from __future__ import annotations

import random
from typing import Callable, Optional


class Backoff:
    """Exponential backoff with jitter.

    The n-th wait (n starting at 1) is drawn uniformly from ``[step/2, step]`` where
    ``step = min(cap, base * 2**(n-1))``. Keeping half of the step as a floor bounds the
    request rate during an outage while still spreading clients apart.

    Args:
        base: the first step, in seconds.
        cap: the largest step, in seconds.
        random_fn: returns a float in [0, 1); injectable for tests.
    """

    __slots__ = ("base", "cap", "_random")

    def __init__(self, base: float, cap: float, random_fn: Callable[[], float] = random.random) -> None:
        if base <= 0 or cap < base:
            raise ValueError("Backoff needs 0 < base <= cap")
        self.base = base
        self.cap = cap
        self._random = random_fn

    def step(self, failures: int) -> float:
        """The upper bound of the wait after ``failures`` consecutive failures."""
        exponent = min(max(failures - 1, 0), 62)
        step: float = min(self.cap, self.base * float(2 ** exponent))
        return step

    def delay(self, failures: int, retry_after: Optional[float] = None) -> float:
        """Seconds to wait after ``failures`` consecutive failures.

        A server's ``Retry-After`` (seconds) is honoured, but never beyond ``cap``.
        """
        step = self.step(failures)
        wait = step / 2 + self._random() * step / 2
        if retry_after is not None and retry_after > wait:
            wait = min(retry_after, self.cap)
        return wait

    def __repr__(self) -> str:
        return f"Backoff(base={self.base}, cap={self.cap})"
