"""Download a set of cohorts in parallel into a ``CohortStore``, within a time budget."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Dict, FrozenSet, Iterable, List, Mapping, Optional, Set

from .._clock import SYSTEM_CLOCK, Clock
from .download import BodyHook, CohortDownloadCancelled, CohortDownloader, CohortDownloadError, CohortTooLarge
from .storage import Cohort, CohortStore

_default_logger = logging.getLogger("amplitude_experiment.cohorts")

#: The ``failed`` reason of cohorts whose download had not finished when ``load``'s time ran out.
TIMEOUT = "timeout"
#: The ``failed`` reason of cohorts not attempted because the loader is closed.
CLOSED = "closed"


@dataclass(frozen=True)
class CohortLoadReport:
    """What one ``CohortLoader.load`` call achieved, by cohort id."""

    #: downloaded and stored (new or changed)
    loaded: FrozenSet[str] = frozenset()
    #: not modified since the stored copy (HTTP 204)
    unchanged: FrozenSet[str] = frozenset()
    #: larger than max_cohort_size; not stored
    too_large: FrozenSet[str] = frozenset()
    #: failed, with the reason (``TIMEOUT`` when time ran out)
    failed: Mapping[str, str] = field(default_factory=dict)
    #: seconds the call took
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        """Whether no cohort failed (too-large cohorts are not failures)."""
        return not self.failed


class _Outcomes:
    """What the downloads of one load ended in, by cohort id."""

    def __init__(self) -> None:
        self.loaded: Set[str] = set()
        self.unchanged: Set[str] = set()
        self.too_large: Set[str] = set()
        self.failed: Dict[str, str] = {}
        self.cancelled: Set[str] = set()


class CohortLoader:
    """Loads cohorts into ``store`` with up to ``max_workers`` parallel downloads.

    Each ``load`` passes the stored ``last_modified`` so unchanged cohorts cost a 204, stores each
    cohort as soon as it is downloaded, and returns within its ``timeout``: downloads still
    running then are cancelled and reported as failed.
    The loader does not own ``downloader`` or ``store``.

    Args:
        downloader: downloads one cohort.
        store: where loaded cohorts go.
        max_workers: parallel downloads at most.
        clock: time source and waiter (the ``timeout`` of a load).
        logger: where warnings go (one when a cohort starts failing, one when it recovers).
        on_download: called on the download thread with each downloaded cohort and its body as
            received, before it is stored (e.g. to publish it to a fleet).
    """

    def __init__(self, downloader: CohortDownloader, store: CohortStore, *, max_workers: int = 4,
                 clock: Clock = SYSTEM_CLOCK, logger: Optional[logging.Logger] = None,
                 on_download: Optional[BodyHook] = None) -> None:
        if max_workers < 1:
            raise ValueError("max_workers must be >= 1")
        self._downloader = downloader
        self._store = store
        self.max_workers = max_workers
        self._clock = clock
        self._logger = logger or _default_logger
        self._on_download = on_download
        self._lock = threading.Lock()
        self._closed = False
        self._stops: List[threading.Event] = []
        # Executors whose workers may still be running (a download past its load's timeout).
        self._executors: Dict[ThreadPoolExecutor, List[Future[Optional[Cohort]]]] = {}
        self._warned_too_large: Set[str] = set()
        self._failing: Set[str] = set()

    @property
    def closed(self) -> bool:
        return self._closed

    def load(self, cohort_ids: Iterable[str], timeout: float) -> CohortLoadReport:
        """Download ``cohort_ids`` (in parallel) into the store, taking at most ``timeout`` seconds.

        Never raises for download problems; they are in the report's ``failed``.
        """
        started = self._clock.monotonic()
        deadline = started + max(0.0, timeout)
        ids = list(dict.fromkeys(cohort_ids))
        stop = threading.Event()
        with self._lock:
            closed = self._closed
            if not closed:
                self._stops.append(stop)
                self._prune()
        if closed:
            return CohortLoadReport(failed=dict.fromkeys(ids, CLOSED), elapsed=self._clock.monotonic() - started)
        try:
            futures = self._download_all(ids, stop, deadline) if ids else {}
        finally:
            with self._lock:
                self._stops.remove(stop)
        outcomes = self._collect(futures)
        self._log(outcomes.loaded | outcomes.unchanged, outcomes.too_large, outcomes.failed, outcomes.cancelled)
        report = CohortLoadReport(frozenset(outcomes.loaded), frozenset(outcomes.unchanged),
                                  frozenset(outcomes.too_large), outcomes.failed, self._clock.monotonic() - started)
        self._logger.debug("Cohort load: %d loaded, %d unchanged, %d too large, %d failed in %.3fs",
                           len(report.loaded), len(report.unchanged), len(report.too_large), len(report.failed),
                           report.elapsed)
        return report

    def _download_all(self, ids: List[str], stop: threading.Event,
                      deadline: float) -> Dict["Future[Optional[Cohort]]", str]:
        """Start every download and wait until all ended or ``deadline``; stragglers are stopped."""
        executor = ThreadPoolExecutor(max_workers=min(self.max_workers, len(ids)),
                                      thread_name_prefix="amplitude_experiment-cohort")
        futures: Dict[Future[Optional[Cohort]], str] = {}
        all_done = threading.Event()
        pending = [len(ids)]
        pending_lock = threading.Lock()

        def one_done(_: "Future[Optional[Cohort]]") -> None:
            with pending_lock:
                pending[0] -= 1
                if pending[0] == 0:
                    all_done.set()

        finished = False
        try:
            for cid in ids:
                future = executor.submit(self._download_one, cid, stop, deadline)
                futures[future] = cid
                future.add_done_callback(one_done)
            with self._lock:
                self._executors[executor] = list(futures)
            finished = self._clock.wait(all_done, max(0.0, deadline - self._clock.monotonic()))
        finally:
            if finished:
                executor.shutdown(wait=True)
                with self._lock:
                    self._executors.pop(executor, None)
            else:
                # Out of time (or failed to submit): end the stragglers without waiting for them.
                stop.set()
                executor.shutdown(wait=False, cancel_futures=True)
        return futures

    def _download_one(self, cohort_id: str, stop: threading.Event, deadline: float) -> Optional[Cohort]:
        """Download one cohort and store it at once (None: unchanged); runs on a worker thread."""
        cohort = self._downloader.download(cohort_id, self._store.last_modified(cohort_id), stop=stop,
                                           deadline=deadline, on_body=self._on_download)
        if cohort is not None:
            self._store.put(cohort)
        return cohort

    def _collect(self, futures: Mapping["Future[Optional[Cohort]]", str]) -> _Outcomes:
        """Sort every cohort into its outcome."""
        outcomes = _Outcomes()
        for future, cid in futures.items():
            if not future.done() or future.cancelled():
                outcomes.failed[cid] = TIMEOUT
                continue
            try:
                cohort: Optional[Cohort] = future.result()
            except CohortTooLarge:
                outcomes.too_large.add(cid)
            except CohortDownloadCancelled as exc:
                outcomes.failed[cid] = str(exc)
                outcomes.cancelled.add(cid)
            except CohortDownloadError as exc:
                outcomes.failed[cid] = str(exc)
            except Exception as exc:  # noqa: BLE001 - a bug must not take the other cohorts down
                self._logger.error("Unexpected error downloading cohort %s", cid, exc_info=exc)
                outcomes.failed[cid] = f"unexpected {exc.__class__.__name__}: {exc}"
            else:
                (outcomes.unchanged if cohort is None else outcomes.loaded).add(cid)
        return outcomes

    def close(self, wait: bool = False) -> None:
        """Cancel loads in progress and refuse new ones; with ``wait``, join their worker threads.

        Idempotent. A worker blocked in a request ends within the downloader's request timeout.
        """
        with self._lock:
            self._closed = True
            stops = list(self._stops)
            executors = list(self._executors)
            self._executors.clear()
        for stop in stops:
            stop.set()
        for executor in executors:
            executor.shutdown(wait=wait, cancel_futures=True)

    def _prune(self) -> None:
        # Called with the lock held: forget executors whose stragglers have all finished.
        for executor, futures in list(self._executors.items()):
            if futures and all(f.done() for f in futures):
                del self._executors[executor]

    def _log(self, succeeded: Set[str], too_large: Set[str], failed: Dict[str, str], cancelled: Set[str]) -> None:
        # One warning when a cohort starts failing or first turns out too large, not one per refresh.
        warnings: List[str] = []
        recovered: List[str] = []
        with self._lock:
            for cid in sorted(too_large):
                if cid not in self._warned_too_large:
                    self._warned_too_large.add(cid)
                    warnings.append(f"Cohort {cid} is larger than max_cohort_size="
                                    f"{self._downloader.max_cohort_size} and is skipped; flags targeting it "
                                    f"will not match its members")
            for cid in sorted(failed):
                if cid not in cancelled and cid not in self._failing:
                    self._failing.add(cid)
                    warnings.append(f"Cohort {cid} download failed: {failed[cid]}")
                else:
                    self._logger.debug("Cohort %s download failed: %s", cid, failed[cid])
            for cid in sorted(succeeded | too_large):
                if cid in succeeded:
                    self._warned_too_large.discard(cid)
                if cid in self._failing:
                    self._failing.discard(cid)
                    recovered.append(cid)
        for message in warnings:
            self._logger.warning("%s", message)
        for cid in recovered:
            self._logger.info("Cohort %s download recovered", cid)
