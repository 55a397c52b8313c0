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
from ..evaluation import CompiledFlags
from ..flags.poller import FlagPoller
from .config import CohortSyncConfig
from .download import CohortDownloader
from .loader import CohortLoader
from .storage import CohortStore

logger = logging.getLogger("amplitude_experiment.cohorts")

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
    """

    def __init__(self, session: requests.Session, config: CohortSyncConfig, load_timeout: float = LOAD_TIMEOUT) -> None:
        self.config = config
        self.store = CohortStore()
        self.load_timeout = load_timeout
        self._targeted: Mapping[str, FrozenSet[str]] = {}
        self._build(session)

    def _build(self, session: requests.Session) -> None:
        config = self.config
        self.downloader = CohortDownloader(session, config.cohort_server_url, config.api_key, config.secret_key,
                                           config.max_cohort_size)
        self.loader = CohortLoader(self.downloader, self.store)
        interval = config.cohort_polling_interval_millis / 1000
        self.poller = FlagPoller(self.refresh, interval, Backoff(base=5.0, cap=interval),
                                 name="amplitude_experiment-cohorts")

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
                logger.warning("Cohorts %s could not be loaded; their conditions count as 'not a member' until "
                               "they are", ", ".join(not_loaded))

    def refresh(self) -> None:
        """Download changes of every targeted cohort (the poller's job)."""
        wanted = targeted_ids(self._targeted)
        if wanted:
            self.loader.load(wanted, max(self.load_timeout, 30.0))

    def start(self) -> None:
        self.poller.start()

    def stop(self, timeout: Optional[float]) -> None:
        self.poller.stop(timeout)
        self.loader.close()
        self.downloader.cancel()

    def reinit_after_fork(self, session: requests.Session) -> None:
        """Fresh downloader, loader and poller in a forked child; loaded members are kept."""
        self.store.reset_lock()
        self._build(session)
