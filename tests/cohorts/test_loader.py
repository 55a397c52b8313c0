"""CohortLoader against the loopback stand-in: parallel loads, refresh, time bounds, cancel."""

from __future__ import annotations

import base64
import logging
import socket
import threading
import time
from typing import Any, Callable, Dict, Iterator, List

import pytest
import requests

from amplitude_experiment._backoff import Backoff
from amplitude_experiment.cohorts import (
    CohortDownloadCancelled,
    CohortDownloader,
    CohortDownloadError,
    CohortLoader,
    CohortLoadReport,
    CohortStore,
)
from amplitude_experiment.testing import AmplitudeStandIn, ManualClock, wait_for

API_KEY = "api-key-1234"
SECRET = "very-secret-key-5678"
FAST = Backoff(0.001, 0.005)

MakeLoader = Callable[..., CohortLoader]


@pytest.fixture
def server() -> Iterator[AmplitudeStandIn]:
    with AmplitudeStandIn(cohort_api_key=API_KEY, cohort_secret_key=SECRET) as stand_in:
        yield stand_in


@pytest.fixture
def store() -> CohortStore:
    return CohortStore()


@pytest.fixture
def make_loader(session: requests.Session, store: CohortStore) -> Iterator[MakeLoader]:
    loaders: List[CohortLoader] = []

    def make(url: str, *, max_workers: int = 4, secret: str = SECRET, max_cohort_size: int = 10,
             clock: Any = None, **downloader_options: Any) -> CohortLoader:
        options: Dict[str, Any] = dict(request_timeout=5.0, backoff=FAST, not_ready_wait=0.001)
        options.update(downloader_options)
        clocks: Dict[str, Any] = {} if clock is None else {"clock": clock}
        downloader = CohortDownloader(session, url, API_KEY, secret, max_cohort_size, **options, **clocks)
        loader = CohortLoader(downloader, store, max_workers=max_workers, **clocks)
        loaders.append(loader)
        return loader

    yield make
    for loader in loaders:
        loader.close(wait=True)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_loads_in_parallel_and_reports_each_outcome(server: AmplitudeStandIn, make_loader: MakeLoader,
                                                    store: CohortStore, caplog: pytest.LogCaptureFixture) -> None:
    server.set_cohort("small", ["u1", "u2"])
    server.set_cohort("big", [f"u{i}" for i in range(11)])
    server.set_delay("cohort", 0.3)
    loader = make_loader(server.url, max_cohort_size=10)

    report = loader.load(["small", "big", "missing", "small"], timeout=5.0)

    assert report.loaded == frozenset({"small"})
    assert report.too_large == frozenset({"big"})
    assert report.unchanged == frozenset()
    assert list(report.failed) == ["missing"]
    assert "returned HTTP 404" in report.failed["missing"]
    assert not report.ok
    requests_ = server.requests("cohort")
    assert len(requests_) == 3  # duplicates are downloaded once
    # All three arrived before the first (delayed 0.3s) was answered: they ran in parallel.
    times = [r.time for r in requests_]
    assert max(times) - min(times) < 0.3
    for r in requests_:
        assert r.query["maxCohortSize"] == "10"
        assert "lastModified" not in r.query
        assert r.header("Authorization") == "Basic " + base64.b64encode(f"{API_KEY}:{SECRET}".encode()).decode()
    assert store.ids() == frozenset({"small"})
    assert store.memberships("u2", ["small", "big", "missing"]) == frozenset({"small"})

    # A second load warns about the too-large cohort no more.
    server.set_delay("cohort", 0)
    caplog.set_level(logging.WARNING, logger="amplitude_experiment.cohorts")
    caplog.clear()
    report = loader.load(["small", "big", "missing"], timeout=5.0)
    assert report.unchanged == frozenset({"small"}) and report.too_large == frozenset({"big"})
    assert "larger than max_cohort_size" not in caplog.text
    assert "missing" not in caplog.text


def test_incremental_refresh(server: AmplitudeStandIn, make_loader: MakeLoader, store: CohortStore) -> None:
    server.set_cohort("c1", ["u1"], last_modified=1000)
    loader = make_loader(server.url)

    report = loader.load(["c1"], timeout=5.0)
    assert (report.loaded, report.unchanged, report.too_large, report.failed) == (
        frozenset({"c1"}), frozenset(), frozenset(), {})
    first = store.get("c1")
    assert first is not None and first.last_modified == 1000

    report = loader.load(["c1"], timeout=5.0)
    assert report.unchanged == frozenset({"c1"}) and report.loaded == frozenset() and report.ok
    assert server.requests("cohort")[-1].query["lastModified"] == "1000"
    assert store.get("c1") is first

    server.set_cohort("c1", ["u2", "u3"], last_modified=2000)
    report = loader.load(["c1"], timeout=5.0)
    assert report.loaded == frozenset({"c1"})
    assert server.requests("cohort")[-1].query["lastModified"] == "1000"
    assert store.last_modified("c1") == 2000
    assert store.memberships("u1", ["c1"]) == frozenset()
    assert store.memberships("u3", ["c1"]) == frozenset({"c1"})


def test_not_ready_is_polled(server: AmplitudeStandIn, make_loader: MakeLoader, store: CohortStore) -> None:
    server.set_cohort("c1", ["u1"])
    server.add_fault("cohort", status=202, times=2)
    report = make_loader(server.url).load(["c1"], timeout=5.0)
    assert report.loaded == frozenset({"c1"})
    assert len(server.requests("cohort")) == 3


def test_retryable_faults_recover(server: AmplitudeStandIn, make_loader: MakeLoader) -> None:
    server.set_cohort("c1", ["u1"])
    server.add_fault("cohort", status=503, times=1)
    server.add_fault("cohort", action="close", times=1)
    server.add_fault("cohort", status=429, headers={"Retry-After": "0"}, times=1)
    report = make_loader(server.url).load(["c1"], timeout=5.0)
    assert report.loaded == frozenset({"c1"})
    assert len(server.requests("cohort")) == 4


def test_wrong_credentials_fail_without_retry(server: AmplitudeStandIn, make_loader: MakeLoader) -> None:
    server.set_cohort("c1", ["u1"])
    report = make_loader(server.url, secret="wrong").load(["c1"], timeout=5.0)
    assert "returned HTTP 401" in report.failed["c1"]
    assert len(server.requests("cohort")) == 1


def load_in_thread(loader: CohortLoader, ids: List[str], timeout: float) -> Callable[[], CohortLoadReport]:
    """Start ``loader.load`` on a thread; the returned function joins it and gives its report."""
    reports: List[CohortLoadReport] = []
    thread = threading.Thread(target=lambda: reports.append(loader.load(ids, timeout)))
    thread.start()

    def result() -> CohortLoadReport:
        thread.join(5)
        assert not thread.is_alive()
        return reports[0]

    return result


def test_unreachable_host_is_bounded_by_timeout(make_loader: MakeLoader) -> None:
    clock = ManualClock()
    loader = make_loader(f"http://127.0.0.1:{closed_port()}", backoff=Backoff(0.2, 0.2, random_fn=lambda: 1.0),
                         max_attempts=10_000, clock=clock)
    result = load_in_thread(loader, ["c1", "c2"], timeout=0.5)
    for _ in range(2):  # refused at once, then a 0.2 s wait: the loader and both downloads wait on the clock
        assert clock.wait_for_sleepers(3)
        clock.advance(0.2)
    # At 0.4 s a third wait would pass the 0.5 s deadline: both give up and the load returns.
    report = result()
    assert report.elapsed == pytest.approx(0.4)
    assert set(report.failed) == {"c1", "c2"}
    assert all("ran out of time; last error: ConnectionError" in reason for reason in report.failed.values())
    assert report.loaded == report.unchanged == report.too_large == frozenset()
    assert clock.sleepers == 0


def test_hanging_download_counts_as_timeout(server: AmplitudeStandIn, make_loader: MakeLoader,
                                            store: CohortStore) -> None:
    for cid in ("a", "b", "c"):
        server.set_cohort(cid, [cid])
    server.add_fault("cohort", action="hang", times=1)  # the first request never gets an answer
    clock = ManualClock()
    loader = make_loader(server.url, max_workers=3, clock=clock)
    result = load_in_thread(loader, ["a", "b", "c"], timeout=30.0)
    assert wait_for(lambda: len(store) == 2)  # each cohort is stored as soon as it is downloaded
    clock.advance(30.0)  # the load's deadline: "a" still hangs
    report = result()
    assert len(report.loaded) == 2
    assert list(report.failed.values()) == ["timeout"]
    assert store.ids() == report.loaded
    server.stop()  # drops the held connection so the straggler ends
    loader.close(wait=True)


def test_cancel_during_backoff_wait_returns_promptly(server: AmplitudeStandIn, session: requests.Session) -> None:
    server.add_fault("cohort", status=503, times=None)
    downloader = CohortDownloader(session, server.url, API_KEY, SECRET, 10, backoff=Backoff(30.0, 30.0),
                                  deadline_seconds=120.0)
    outcome: List[BaseException] = []

    def run() -> None:
        try:
            downloader.download("c1")
        except CohortDownloadError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    assert wait_for(lambda: len(server.requests("cohort")) == 1)
    started = time.monotonic()
    downloader.cancel()
    thread.join(2.0)
    assert not thread.is_alive()
    assert time.monotonic() - started < 0.5
    assert len(outcome) == 1 and isinstance(outcome[0], CohortDownloadCancelled)
    assert len(server.requests("cohort")) == 1


def test_loader_close_cancels_a_load_in_progress(server: AmplitudeStandIn, make_loader: MakeLoader) -> None:
    server.add_fault("cohort", status=503, times=None)
    loader = make_loader(server.url, backoff=Backoff(30.0, 30.0), deadline_seconds=120.0)
    reports: List[CohortLoadReport] = []
    thread = threading.Thread(target=lambda: reports.append(loader.load(["c1", "c2"], timeout=60.0)))
    thread.start()
    assert wait_for(lambda: len(server.requests("cohort")) == 2)
    started = time.monotonic()
    loader.close()
    thread.join(2.0)
    assert not thread.is_alive()
    assert time.monotonic() - started < 0.5
    assert set(reports[0].failed) == {"c1", "c2"}
    assert all("cancelled" in reason for reason in reports[0].failed.values())
    assert loader.load(["c1"], timeout=1.0).failed == {"c1": "closed"}
