"""The client's side of a fleet (e.g. ``RedisFleet``): the seam it needs and the watcher thread it owns.

This module never imports ``amplitude_experiment.redis``; any object with :class:`Fleet`'s methods plugs in.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable, Optional, Protocol, runtime_checkable

from .._clock import Clock
from ..cohorts.shared import SharedCohortSource
from ..events.claims import InsertIdClaims
from ..exceptions import FlagConfigError
from ..flags.shared import SharedFlagSource
from ..flags.store import FlagStore


@runtime_checkable
class Fleet(Protocol):
    """What ``LocalEvaluationConfig(fleet=...)`` needs: shared flags per deployment, cohorts and claims per project."""

    def flags(self, deployment_key: str) -> SharedFlagSource:
        """The shared flag source of one deployment."""
        ...

    def cohorts(self, api_key: str) -> SharedCohortSource:
        """The shared cohort membership of one project (keyed by the cohort sync API key)."""
        ...

    def claims(self, api_key: str) -> InsertIdClaims:
        """Fleet-wide insert_id claims of one analytics project."""
        ...


class FleetWatcher:
    """A thread that serves new fleet versions from the store and keeps a leader's lease alive.

    Every ``shared.renew_interval`` seconds (or at once when pub/sub announces a version) it
    publishes the fleet's current config into ``store`` with source ``"fleet"`` unless the store
    already has it, and, for a member that may fetch, acquires or renews the download lease;
    when this process becomes the leader it calls ``on_lead()`` (the client polls at once); after each
    renewal it calls ``on_renew()`` (the client renews its cohort lease there too).

    Args:
        store: the client's flag store.
        shared: the deployment's shared flag source.
        on_lead: called on the watcher thread when this process takes the lease.
        on_renew: called on the watcher thread after each renewal attempt.
        clock: time source (waits while the fleet is unreachable go through ``shared``).
        logger: where problems of a fleet config are reported.
    """

    def __init__(self, store: FlagStore, shared: SharedFlagSource, *, on_lead: Callable[[], None],
                 clock: Clock, logger: logging.Logger, on_renew: Optional[Callable[[], None]] = None) -> None:
        self._store = store
        self._shared = shared
        self._on_lead = on_lead
        self._on_renew = on_renew
        self._clock = clock
        self._logger = logger
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._leading = False
        self._bad_version: Optional[str] = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the thread (again after :meth:`stop` or in a forked child). Idempotent."""
        if self.running:
            return
        self._stop = threading.Event()
        self._leading = False
        self._thread = threading.Thread(target=self._run, name="amplitude_experiment-fleet", daemon=True)
        self._thread.start()

    def stop(self, timeout: Optional[float]) -> bool:
        """Stop the thread and resign the lease; True if the thread ended within ``timeout``."""
        self._stop.set()
        thread = self._thread
        stopped = True
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            stopped = not thread.is_alive()
        self._shared.resign()
        return stopped

    def _run(self) -> None:
        shared, stop = self._shared, self._stop
        next_renewal = self._clock.monotonic()
        while not stop.is_set():
            try:
                if shared.fetch and self._clock.monotonic() >= next_renewal:
                    next_renewal = self._clock.monotonic() + shared.renew_interval
                    self._renew()
                current = self._store.current
                known = current.digest if current is not None else None
                version = shared.wait_for_version(known, shared.renew_interval, stop)
                if version is not None and version != known and not stop.is_set():
                    self.serve_latest()
            except Exception:  # noqa: BLE001 - the watcher must outlive any bug in one round
                self._logger.exception("Unexpected error in the fleet watcher; continuing")
                self._clock.wait(stop, shared.renew_interval)

    def _renew(self) -> None:
        leading = self._shared.try_lead()
        if leading and not self._leading:
            self._leading = True
            self._on_lead()
        elif not leading:
            self._leading = False
        if self._on_renew is not None:
            self._on_renew()

    def serve_latest(self) -> bool:
        """Publish the fleet's current config into the store; True if the store now has it."""
        latest = self._shared.latest()
        if latest is None:
            return False
        version, body = latest
        current = self._store.current
        if current is not None and current.digest == version:
            return True
        if version == self._bad_version:
            return False
        try:
            self._store.publish(body, source="fleet")
        except FlagConfigError as exc:
            self._bad_version = version
            self._logger.warning("The fleet's flag config %s is not usable (%s); keeping the current flags",
                                 version, exc)
            return False
        return True
