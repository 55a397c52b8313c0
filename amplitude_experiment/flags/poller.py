"""Background refresh of flag configs at a fixed interval, with backoff while failing."""

from __future__ import annotations

import logging
import threading
from typing import Callable, Optional

from .._backoff import Backoff

logger = logging.getLogger("amplitude_experiment.flags")


class FlagPoller:
    """Calls ``refresh()`` every ``interval`` seconds on a daemon thread.

    While ``refresh`` raises, waits follow ``backoff`` instead (never a hot loop), one warning
    is logged per outage and one info line when it ends. The thread survives any exception.

    Args:
        refresh: downloads and publishes a config; raises on failure.
        interval: seconds between refreshes when healthy.
        backoff: waits between attempts while failing.
        name: the thread's name.
    """

    def __init__(self, refresh: Callable[[], None], interval: float, backoff: Backoff,
                 name: str = "amplitude_experiment-poller") -> None:
        self._refresh = refresh
        self.interval = interval
        self._backoff = backoff
        self._name = name
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self.failures = 0

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, failures: int = 0) -> None:
        """Start the thread; ``failures`` > 0 means the first attempt comes after a backoff wait."""
        if self.running:
            return
        self.failures = failures
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def stop(self, timeout: Optional[float] = None) -> bool:
        """Ask the thread to stop and wait up to ``timeout`` seconds; True if it ended."""
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is None or thread is threading.current_thread():
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def poll_now(self) -> None:
        """Refresh as soon as possible instead of at the next interval."""
        self._wake.set()

    def next_wait(self) -> float:
        return self.interval if self.failures == 0 else self._backoff.delay(self.failures)

    def _run(self) -> None:
        stop, wake = self._stop, self._wake
        while True:
            wake.wait(self.next_wait())
            if stop.is_set():
                return
            wake.clear()
            try:
                self._refresh()
            except Exception as exc:  # noqa: BLE001 - the loop must outlive any failure
                self.failures += 1
                if self.failures == 1:
                    logger.warning("Flag refresh failed; keeping the last good flags and retrying with backoff: %s",
                                   exc)
                else:
                    logger.debug("Flag refresh failed again (%d in a row): %s", self.failures, exc)
            else:
                if self.failures:
                    logger.info("Flag refresh recovered after %d failed attempts", self.failures)
                self.failures = 0
