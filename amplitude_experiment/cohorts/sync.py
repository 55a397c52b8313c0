"""Keeps the members of every cohort the current flags target, for evaluation.

When a new flag config arrives, cohorts it targets that are not loaded yet are downloaded
(in parallel, within ``load_timeout``) before the config is published; a cohort that cannot be
loaded is evaluated as "not a member" and warned about once per config version. A poller
refreshes all targeted cohorts every ``cohort_polling_interval_millis`` using
``lastModified``, and cohorts no flag targets any more are dropped.

With a fleet (``shared``, a :class:`~.shared.SharedCohortSource`) the bodies are shared: a new
config takes the cohorts it targets from the fleet first and downloads (and publishes) only those
the fleet does not have; only the holder of the fleet's cohort lease refreshes from Amplitude on
the interval and publishes what changed; every member checks the fleet's versions every
``FLEET_CHECK_INTERVAL`` and takes newer ones. A read-only member (``fetch=False``) never
downloads. While the fleet is unreachable every member downloads its own, as without a fleet.
"""

from __future__ import annotations

import logging
import threading
from typing import Collection, FrozenSet, Mapping, Optional, Set, Tuple

import requests

from .._backoff import Backoff
from .._clock import SYSTEM_CLOCK, Clock
from .._scheduling import PeriodicTask
from ..evaluation import CompiledFlags
from .config import CohortSyncConfig
from .download import CohortDownloader
from .loader import CohortLoader
from .members import CohortBodyError, parse_cohort_body
from .shared import SharedCohortSource
from .storage import Cohort, CohortStore

_default_logger = logging.getLogger("amplitude_experiment.cohorts")

#: Seconds a new flag config may wait for the cohorts it targets before it is published anyway.
LOAD_TIMEOUT = 10.0
#: Seconds between two checks of the fleet's cohort versions (one round trip), with a fleet.
FLEET_CHECK_INTERVAL = 1.0


def targeted_ids(targeted: Mapping[str, FrozenSet[str]]) -> Set[str]:
    return {cohort_id for ids in targeted.values() for cohort_id in ids}


class CohortSync:
    """Cohort membership for one client.

    Args:
        session: the HTTP session for cohort requests.
        config: the ``CohortSyncConfig``.
        load_timeout: bound on loading newly targeted cohorts before a config is published.
        clock: time source and waiter of the refresh, the downloads and their retries; tests
            pass :class:`amplitude_experiment.testing.ManualClock`.
        logger: where every message of cohort sync goes.
        shared: the fleet's shared cohorts (``RedisFleet.cohorts(api_key)``), or None on its own.
    """

    def __init__(self, session: requests.Session, config: CohortSyncConfig, load_timeout: float = LOAD_TIMEOUT, *,
                 clock: Clock = SYSTEM_CLOCK, logger: Optional[logging.Logger] = None,
                 shared: Optional[SharedCohortSource] = None) -> None:
        self.config = config
        self.store = CohortStore()
        self.load_timeout = load_timeout
        self.shared = shared
        self._clock = clock
        self._logger = logger or _default_logger
        self._targeted: Mapping[str, FrozenSet[str]] = {}
        self._leading = False
        self._next_refresh = float("-inf")
        self._bad_versions: Set[Tuple[str, int]] = set()
        self._take_lock = threading.Lock()
        self._build(session)

    @property
    def downloads(self) -> bool:
        """Whether this member may download cohorts from Amplitude (False: a read-only fleet member)."""
        return self.shared is None or self.shared.fetch

    def _build(self, session: requests.Session) -> None:
        config = self.config
        self.downloader = CohortDownloader(session, config.cohort_server_url, config.api_key, config.secret_key,
                                           config.max_cohort_size, clock=self._clock, logger=self._logger)
        self.loader = CohortLoader(self.downloader, self.store, clock=self._clock, logger=self._logger,
                                   on_download=self._publish if self.shared is not None else None)
        interval = config.cohort_polling_interval_millis / 1000
        task, every = (self.refresh, interval) if self.shared is None else (self.refresh_in_fleet,
                                                                             FLEET_CHECK_INTERVAL)
        self.poller = PeriodicTask(task, every, Backoff(base=5.0, cap=interval), what="cohort refresh",
                                   name="amplitude_experiment-cohorts", clock=self._clock, logger=self._logger)

    def prepare(self, flags: CompiledFlags) -> None:
        """Load the cohorts a new config targets (bounded), before it is published."""
        self._targeted = flags.cohort_ids
        wanted = targeted_ids(flags.cohort_ids)
        self.store.retain(wanted)
        missing = wanted - self.store.ids()
        if missing and self.shared is not None:
            missing -= self._take_from_fleet(missing)
        if missing and not self.downloads:
            self._logger.warning("Cohorts %s are not in the fleet yet and this read-only member does not download; "
                                 "their conditions count as 'not a member' until the fleet has them",
                                 ", ".join(sorted(missing)))
        elif missing:
            report = self.loader.load(missing, self.load_timeout)
            not_loaded = sorted(set(report.failed) | set(report.too_large))
            if not_loaded:
                self._logger.warning("Cohorts %s could not be loaded; their conditions count as 'not a member' "
                                     "until they are", ", ".join(not_loaded))
        self.store.build_index()

    def refresh(self) -> None:
        """Download changes of every targeted cohort (the poller's job)."""
        wanted = targeted_ids(self._targeted)
        if wanted:
            self.loader.load(wanted, max(self.load_timeout, 30.0))
            self.store.build_index()

    def renew_lease(self) -> None:
        """Acquire or renew the fleet's cohort lease (the fleet watcher calls this every renewal period)."""
        if self.shared is not None and self.downloads:
            self._leading = self.shared.try_lead()

    def refresh_in_fleet(self) -> None:
        """With a fleet (every ``FLEET_CHECK_INTERVAL``): take newer cohorts from the fleet; the lease holder
        also refreshes from Amplitude once per ``cohort_polling_interval_millis`` and publishes changes."""
        wanted = targeted_ids(self._targeted)
        if not wanted:
            return
        self._take_from_fleet(wanted)
        now = self._clock.monotonic()
        if self._leading and now >= self._next_refresh:
            self._next_refresh = now + self.config.cohort_polling_interval_millis / 1000
            self.loader.load(wanted, max(self.load_timeout, 30.0))
        self.store.build_index()

    def _take_from_fleet(self, cohort_ids: Collection[str]) -> Set[str]:
        """Store the fleet's copy of each of ``cohort_ids`` that is newer than ours; returns the ids now held."""
        shared = self.shared
        assert shared is not None
        held: Set[str] = set()
        with self._take_lock:
            for cohort_id, version in sorted(shared.versions(cohort_ids).items()):
                mine = self.store.last_modified(cohort_id)
                if (mine is None or version > mine) and (cohort_id, version) not in self._bad_versions:
                    cohort = self._parse_fleet_copy(cohort_id, shared.get(cohort_id))
                    if cohort is not None and cohort.last_modified > (mine if mine is not None else -1):
                        self.store.put(cohort)
                if cohort_id in self.store:
                    held.add(cohort_id)
        return held

    def _parse_fleet_copy(self, cohort_id: str, found: Optional[Tuple[int, bytes]]) -> Optional[Cohort]:
        if found is None:
            return None
        version, body = found
        try:
            group_type, last_modified, members = parse_cohort_body(cohort_id, body)
        except CohortBodyError as exc:
            self._bad_versions.add((cohort_id, version))
            self._logger.warning("The fleet's copy of cohort %s (lastModified %d) is not usable (%s); ignoring it",
                                 cohort_id, version, exc)
            return None
        if len(members) > self.config.max_cohort_size:
            self._bad_versions.add((cohort_id, version))
            self._logger.warning("The fleet's copy of cohort %s has %d members, more than max_cohort_size=%d; "
                                 "skipping it", cohort_id, len(members), self.config.max_cohort_size)
            return None
        return Cohort(cohort_id, group_type, last_modified, len(members), members)

    def _publish(self, cohort: Cohort, body: bytes) -> None:
        """Share a cohort this member downloaded (on the download thread; never raises)."""
        shared = self.shared
        if shared is None:
            return
        try:
            shared.publish(cohort.id, cohort.last_modified, body)
        except Exception:  # noqa: BLE001 - a fleet problem must not cost this member its download
            self._logger.exception("Could not publish cohort %s to the fleet", cohort.id)

    def start(self, first_wait: Optional[float] = None) -> None:
        """Refresh every ``cohort_polling_interval_millis`` from now on (the first after ``first_wait`` s).

        With a fleet the fleet's versions are checked every ``FLEET_CHECK_INTERVAL`` from now on and
        ``first_wait`` delays only the first refresh from Amplitude (should this member lead).
        """
        if self.shared is None:
            self.poller.start(first_wait=first_wait)
            return
        interval = self.config.cohort_polling_interval_millis / 1000
        self._next_refresh = self._clock.monotonic() + (interval if first_wait is None else first_wait)
        self.poller.start()

    def stop(self, timeout: Optional[float]) -> None:
        self.poller.stop(timeout)
        self.loader.close()
        self.downloader.cancel()
        if self.shared is not None:
            self._leading = False
            self.shared.resign()

    def reinit_after_fork(self, session: requests.Session) -> None:
        """Fresh downloader, loader and poller in a forked child; loaded members are kept."""
        self.store.reset_lock()
        self._take_lock = threading.Lock()
        self._leading = False
        self._build(session)
