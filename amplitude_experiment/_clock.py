"""Time as a value: background workers read the time and wait through a :class:`Clock`.

Production code uses :data:`SYSTEM_CLOCK`. Tests pass
:class:`amplitude_experiment.testing.ManualClock`, which moves only when told to, so pollers,
backoff, the event sender, cohort sync and the stream watchdog are driven deterministically
instead of by sleeping.
"""

from __future__ import annotations

import threading
import time
from typing import Optional


class Clock:
    """The real clock: ``time.monotonic`` for intervals, ``time.time`` for timestamps."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards (for intervals and deadlines)."""
        return time.monotonic()

    def time(self) -> float:
        """Seconds since the epoch (for event timestamps and day stamps)."""
        return time.time()

    def wait(self, event: threading.Event, timeout: Optional[float]) -> bool:
        """Wait until ``event`` is set or ``timeout`` seconds pass; True if the event is set.

        Every wait of a background worker goes through here, so ``stop()`` (which sets the
        event) interrupts it at once.
        """
        return event.wait(timeout)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


SYSTEM_CLOCK = Clock()
