"""A repeating background task with backoff while it fails (flag polling, cohort refresh)."""

from __future__ import annotations

import logging
import threading
from typing import Callable, Optional

from ._backoff import Backoff
from ._clock import SYSTEM_CLOCK, Clock

_default_logger = logging.getLogger("amplitude_experiment.scheduling")


class PeriodicTask:
    """Calls ``task()`` every ``interval`` seconds on a daemon thread.

    While ``task`` raises, waits follow ``backoff`` instead (never a hot loop); one warning is
    logged per outage (naming ``what`` failed and what happens next) and one info line when it
    ends. The thread survives any exception. Every wait goes through ``clock`` so tests can
    drive the loop without sleeping.

    Args:
        task: the work; raises on failure.
        interval: seconds between runs when healthy.
        backoff: waits between attempts while failing.
        what: names the task in log lines ("flag refresh", "cohort refresh").
        name: the thread's name.
        clock: time source and waiter.
        logger: where warnings go.
        first_wait: seconds before the first run (``None``: ``interval``); a forked worker uses a
            jittered point of the interval so that many workers do not refresh at once.
    """

    def __init__(self, task: Callable[[], None], interval: float, backoff: Backoff, *, what: str,
                 name: str, clock: Clock = SYSTEM_CLOCK, logger: Optional[logging.Logger] = None) -> None:
        self._task = task
        self.interval = interval
        self._backoff = backoff
        self._what = what
        self._name = name
        self._clock = clock
        self._logger = logger or _default_logger
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._first_wait: Optional[float] = None
        self.failures = 0

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, failures: int = 0, first_wait: Optional[float] = None) -> None:
        """Start the thread.

        Args:
            failures: > 0 means the first attempt comes after a backoff wait.
            first_wait: seconds before the first attempt when healthy (default: ``interval``).
        """
        if self.running:
            return
        self.failures = failures
        self._first_wait = first_wait
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

    def run_now(self) -> None:
        """Run as soon as possible instead of at the next interval."""
        self._wake.set()

    def next_wait(self) -> float:
        """Seconds until the next attempt, from the current failure count."""
        if self.failures:
            return self._backoff.delay(self.failures)
        if self._first_wait is not None:
            wait, self._first_wait = self._first_wait, None
            return wait
        return self.interval

    def _run(self) -> None:
        stop, wake = self._stop, self._wake
        while True:
            self._clock.wait(wake, self.next_wait())
            if stop.is_set():
                return
            wake.clear()
            try:
                self._task()
            except Exception as exc:  # noqa: BLE001 - the loop must outlive any failure
                self.failures += 1
                if self.failures == 1:
                    self._logger.warning("%s failed; keeping what was loaded and retrying in about %.0f s: %s",
                                         self._what.capitalize(), self._backoff.step(1), exc)
                else:
                    self._logger.debug("%s failed again (%d in a row): %s", self._what.capitalize(),
                                       self.failures, exc)
            else:
                if self.failures:
                    self._logger.info("%s recovered after %d failed attempts", self._what.capitalize(),
                                      self.failures)
                self.failures = 0
