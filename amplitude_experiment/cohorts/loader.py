"""Download a set of cohorts in parallel into a ``CohortStore``, within a time budget."""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Dict, FrozenSet, Iterable, List, Mapping, Optional, Set

from .download import CohortDownloadCancelled, CohortDownloader, CohortDownloadError, CohortTooLarge
from .storage import Cohort, CohortStore

logger = logging.getLogger("amplitude_experiment.cohorts")

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


class CohortLoader:
    """Loads cohorts into ``store`` with up to ``max_workers`` parallel downloads.

    Each ``load`` passes the stored ``last_modified`` so unchanged cohorts cost a 204, and returns
    within its ``timeout``: downloads still running then are cancelled and reported as failed.
    The loader does not own ``downloader`` or ``store``.
    """

    def __init__(self, downloader: CohortDownloader, store: CohortStore, *, max_workers: int = 4) -> None:
        if max_workers < 1:
            raise ValueError("max_workers must be >= 1")
        self._downloader = downloader
        self._store = store
        self.max_workers = max_workers
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
        started = time.monotonic()
        deadline = started + max(0.0, timeout)
        ids = list(dict.fromkeys(cohort_ids))
        stop = threading.Event()
        with self._lock:
            closed = self._closed
            if not closed:
                self._stops.append(stop)
                self._prune()
        if closed:
            return CohortLoadReport(failed=dict.fromkeys(ids, CLOSED), elapsed=time.monotonic() - started)
        if not ids:
            with self._lock:
                self._stops.remove(stop)
            return CohortLoadReport(elapsed=time.monotonic() - started)

        executor = ThreadPoolExecutor(max_workers=min(self.max_workers, len(ids)),
                                      thread_name_prefix="amplitude_experiment-cohort")
        futures: Dict[Future[Optional[Cohort]], str] = {}
        done: Set[Future[Optional[Cohort]]] = set()
        try:
            for cid in ids:
                future = executor.submit(self._downloader.download, cid, self._store.last_modified(cid),
                                         stop=stop, deadline=deadline)
                futures[future] = cid
            with self._lock:
                self._executors[executor] = list(futures)
            done = wait(futures, timeout=max(0.0, deadline - time.monotonic())).done
        finally:
            with self._lock:
                self._stops.remove(stop)
            if len(done) < len(futures) or len(futures) < len(ids):
                # Out of time (or failed to submit): end the stragglers without waiting for them.
                stop.set()
                executor.shutdown(wait=False, cancel_futures=True)
            else:
                executor.shutdown(wait=True)
                with self._lock:
                    self._executors.pop(executor, None)

        loaded: Set[str] = set()
        unchanged: Set[str] = set()
        too_large: Set[str] = set()
        failed: Dict[str, str] = {}
        cancelled: Set[str] = set()
        for future, cid in futures.items():
            if future not in done:
                failed[cid] = TIMEOUT
                continue
            try:
                cohort: Optional[Cohort] = future.result()
            except CohortTooLarge:
                too_large.add(cid)
            except CohortDownloadCancelled as exc:
                failed[cid] = str(exc)
                cancelled.add(cid)
            except CohortDownloadError as exc:
                failed[cid] = str(exc)
            except Exception as exc:  # noqa: BLE001 - a bug must not take the other cohorts down
                logger.error("Unexpected error downloading cohort %s", cid, exc_info=exc)
                failed[cid] = f"unexpected {exc.__class__.__name__}: {exc}"
            else:
                if cohort is None:
                    unchanged.add(cid)
                else:
                    self._store.put(cohort)
                    loaded.add(cid)
        self._log(loaded | unchanged, too_large, failed, cancelled)
        report = CohortLoadReport(frozenset(loaded), frozenset(unchanged), frozenset(too_large), failed,
                                  time.monotonic() - started)
        logger.debug("Cohort load: %d loaded, %d unchanged, %d too large, %d failed in %.3fs",
                     len(loaded), len(unchanged), len(too_large), len(failed), report.elapsed)
        return report

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
                    logger.debug("Cohort %s download failed: %s", cid, failed[cid])
            for cid in sorted(succeeded | too_large):
                if cid in succeeded:
                    self._warned_too_large.discard(cid)
                if cid in self._failing:
                    self._failing.discard(cid)
                    recovered.append(cid)
        for message in warnings:
            logger.warning("%s", message)
        for cid in recovered:
            logger.info("Cohort %s download recovered", cid)
