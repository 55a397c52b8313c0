"""When a failed fetch is retried, and how long to wait first."""

from __future__ import annotations

from typing import Optional


class Failure(Exception):
    """One failed request: its status (``None``: no answer), whether retrying may help, and why."""

    def __init__(self, status: Optional[int], retryable: bool, reason: str,
                 retry_after: Optional[float] = None) -> None:
        super().__init__(reason)
        self.status = status
        self.retryable = retryable
        self.reason = reason
        self.retry_after = retry_after


def retryable_status(status: int) -> bool:
    """429 and 5xx may succeed later; other statuses will not (the official SDK's rule)."""
    return status == 429 or 500 <= status <= 599


class RetryPolicy:
    """The official SDK's retry schedule as a value.

    The wait before retry ``n`` (0-based) is ``min(backoff_min * scalar**n, backoff_max)``,
    without jitter, exactly as the official client waits. A ``Retry-After`` from the server
    lengthens a wait, but never beyond ``backoff_max``.

    Args:
        retries: how many retries after the first attempt.
        backoff_min: the first wait, in seconds.
        backoff_max: the longest wait, in seconds.
        scalar: the growth factor between waits.
    """

    __slots__ = ("retries", "backoff_min", "backoff_max", "scalar")

    def __init__(self, retries: int, backoff_min: float, backoff_max: float, scalar: float) -> None:
        self.retries = retries
        self.backoff_min = backoff_min
        self.backoff_max = backoff_max
        self.scalar = scalar

    def delay(self, retry: int, retry_after: Optional[float] = None) -> float:
        """Seconds to wait before retry number ``retry`` (0 for the first)."""
        wait = self.backoff_min
        for _ in range(retry):
            wait *= self.scalar
            if wait >= self.backoff_max:
                break
        wait = min(wait, self.backoff_max)
        if retry_after is not None and retry_after > wait:
            wait = min(retry_after, self.backoff_max)
        return wait

    def __repr__(self) -> str:
        return (f"RetryPolicy(retries={self.retries}, backoff_min={self.backoff_min}, "
                f"backoff_max={self.backoff_max}, scalar={self.scalar})")
