"""Keeps the members of every cohort the current flags target, for evaluation.

When a new flag config arrives, cohorts it targets that are not loaded yet are downloaded
(in parallel, within ``load_timeout``) before the config is published; a cohort that cannot be
loaded is evaluated as "not a member" and warned about once per config version. A poller
refreshes all targeted cohorts every ``cohort_polling_interval_millis`` using
``lastModified``, and cohorts no flag targets any more are dropped.
"""

from __future__ import annotations

import logging
from typing import FrozenSet, Mapping, Optional, Set

import requests

from .._backoff import Backoff
from .._clock import SYSTEM_CLOCK, Clock
from .._scheduling import PeriodicTask
from ..evaluation import CompiledFlags
from .config import CohortSyncConfig
from .download import CohortDownloader
from .loader import CohortLoader
from .storage import CohortStore

_default_logger = logging.getLogger("amplitude_experiment.cohorts")

#: Seconds a new flag config may wait for the cohorts it targets before it is published anyway.
LOAD_TIMEOUT = 10.0


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
    """

    def __init__(self, session: requests.Session, config: CohortSyncConfig, load_timeout: float = LOAD_TIMEOUT, *,
                 clock: Clock = SYSTEM_CLOCK, logger: Optional[logging.Logger] = None) -> None:
        self.config = config
        self.store = CohortStore()
        self.load_timeout = load_timeout
        self._clock = clock
        self._logger = logger or _default_logger
        self._targeted: Mapping[str, FrozenSet[str]] = {}
        self._build(session)

    def _build(self, session: requests.Session) -> None:
        config = self.config
        self.downloader = CohortDownloader(session, config.cohort_server_url, config.api_key, config.secret_key,
                                           config.max_cohort_size, clock=self._clock, logger=self._logger)
        self.loader = CohortLoader(self.downloader, self.store, clock=self._clock, logger=self._logger)
        interval = config.cohort_polling_interval_millis / 1000
        self.poller = PeriodicTask(self.refresh, interval, Backoff(base=5.0, cap=interval), what="cohort refresh",
                                   name="amplitude_experiment-cohorts", clock=self._clock, logger=self._logger)

    def prepare(self, flags: CompiledFlags) -> None:
        """Load the cohorts a new config targets (bounded), before it is published."""
        self._targeted = flags.cohort_ids
        wanted = targeted_ids(flags.cohort_ids)
        self.store.retain(wanted)
        missing = wanted - self.store.ids()
        if missing:
            report = self.loader.load(missing, self.load_timeout)
            not_loaded = sorted(set(report.failed) | set(report.too_large))
            if not_loaded:
                self._logger.warning("Cohorts %s could not be loaded; their conditions count as 'not a member' "
                                     "until they are", ", ".join(not_loaded))

    def refresh(self) -> None:
        """Download changes of every targeted cohort (the poller's job)."""
        wanted = targeted_ids(self._targeted)
        if wanted:
            self.loader.load(wanted, max(self.load_timeout, 30.0))

    def start(self, first_wait: Optional[float] = None) -> None:
        """Refresh every ``cohort_polling_interval_millis`` from now on (the first after ``first_wait`` s)."""
        self.poller.start(first_wait=first_wait)

    def stop(self, timeout: Optional[float]) -> None:
        self.poller.stop(timeout)
        self.loader.close()
        self.downloader.cancel()

    def reinit_after_fork(self, session: requests.Session) -> None:
        """Fresh downloader, loader and poller in a forked child; loaded members are kept."""
        self.store.reset_lock()
        self._build(session)
