"""What the remote-evaluation tests share: a clock that records waits, a URL, users."""

from __future__ import annotations

import threading
from typing import List, Optional

from amplitude_experiment._clock import Clock

SERVER = "https://remote.test"
VARDATA = SERVER + "/sdk/v2/vardata?v=0"
KEY = "server-deployment-key-1234"


class RecordingClock(Clock):
    """Never sleeps: records every wait and returns at once (as if the time had passed)."""

    def __init__(self) -> None:
        self.waits: List[Optional[float]] = []
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def wait(self, event: threading.Event, timeout: Optional[float]) -> bool:
        self.waits.append(timeout)
        if timeout is not None:
            self.now += timeout
        return event.is_set()
