"""Counts tell the truth (issue 15 point 6): drop warnings, stats after stop(), stop()'s bound.

design.md §3: Amplitude acknowledges an upload with 200 {events_ingested}; what the stand-in
ingested is what Amplitude would have, so ``sent`` must equal it exactly after ``stop()``.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import List

import pytest
import requests

from amplitude_experiment.events.sender import STOP_MARGIN
from amplitude_experiment.events.stats import Counter, ReasonCounters
from amplitude_experiment.testing import AmplitudeStandIn, ManualClock, wait_for

from .sender_support import Item, Outcome, make_sender

# Scheduling noise on a shared 2-core machine, on top of the documented margin.
_SLACK = 0.3


def warnings_of(caplog: pytest.LogCaptureFixture) -> List[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno == logging.WARNING and r.name == "amplitude_experiment.events"]


def test_queue_full_warnings_carry_every_drop_since_the_last_one(server: AmplitudeStandIn,
                                                                 session: requests.Session,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    clock = ManualClock()
    sender = make_sender(session, server.events_url, clock=clock, max_queue_size=5, flush_queue_size=100)
    full = ("event(s) since the last warning ({total} in all): the event queue is full (5 events) because events "
            f"are made faster than {server.events_url} takes them; new events are dropped until it drains")
    with caplog.at_level(logging.WARNING, logger="amplitude_experiment.events"):
        results = [sender.enqueue(Item(n)) for n in range(8)]
        assert results == [True] * 5 + [False] * 3
        assert warnings_of(caplog) == ["Dropped 1 " + full.format(total=1)]
        for n in range(78_999):  # within the 10 s: counted, not logged
            sender.enqueue(Item(n))
        assert len(warnings_of(caplog)) == 1
        clock.advance(10.0)
        sender.enqueue(Item(0))  # the next warning carries everything since the first
        assert warnings_of(caplog)[1] == "Dropped 79002 " + full.format(total=79_003)
        for n in range(7):
            sender.enqueue(Item(n))
        sender.start()
        sender.stop(5)  # ... and stop() reports what is still unreported
    assert warnings_of(caplog)[2] == "Dropped 7 " + full.format(total=79_010)
    assert sender.stats()["dropped"] == {"queue_full": 79_010}
    assert sender.stats()["sent"] == 5 == len(server.events)


def test_stats_after_stop_match_what_the_server_ingested(server: AmplitudeStandIn,
                                                         session: requests.Session) -> None:
    sender = make_sender(session, server.events_url, flush_queue_size=200)
    sender.start()
    for n in range(10_200):
        sender.enqueue(Item(n))
    sender.stop(10)
    stats = sender.stats()
    assert stats["sent"] == len(server.events) == 10_200
    assert stats["enqueued"] == 10_200
    assert (stats["dropped"], stats["queue_depth"], stats["in_flight"]) == ({}, 0, 0)


def test_stop_with_100000_queued_returns_in_time_and_counts_exactly(server: AmplitudeStandIn,
                                                                     session: requests.Session,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    sender = make_sender(session, server.events_url, flush_queue_size=200)
    for n in range(100_000):
        sender.enqueue(Item(n))
    server.set_delay("events", 0.05)  # a collector that takes its time: not everything fits
    sender.start()
    began = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="amplitude_experiment.events"):
        sender.stop(0.3)
    assert time.monotonic() - began < 0.3 + STOP_MARGIN + _SLACK
    stats = sender.stats()
    received = len(server.events)
    assert 0 < stats["sent"] == received < 100_000
    assert stats["dropped"] == {"shutdown": 100_000 - received}
    assert (stats["queue_depth"], stats["in_flight"]) == (0, 0)
    assert warnings_of(caplog) == [f"Dropped {100_000 - received} queued event(s) not sent to {server.events_url} "
                                   "before stop(timeout=0.3) ran out (reason shutdown)"]


def test_stop_is_bounded_while_the_server_hangs(server: AmplitudeStandIn, session: requests.Session) -> None:
    server.add_fault("events", action="hang", delay=30.0, times=None)
    outcomes: List[Outcome] = []
    sender = make_sender(session, server.events_url, outcomes, timeout=(30.0, 30.0))
    sender.start()
    for n in range(10):
        sender.enqueue(Item(n))
    assert wait_for(lambda: len(server.requests("events")) >= 1)
    for n in range(10, 25):
        sender.enqueue(Item(n))
    began = time.monotonic()
    sender.stop(0.5)
    assert time.monotonic() - began < 0.5 + STOP_MARGIN + _SLACK
    # what was queued is accounted for at once; the batch already on the wire is reported as such
    assert sender.stats()["dropped"] == {"shutdown": 15}
    assert sender.stats()["in_flight"] == 10
    server.stop()  # the hung request now fails after stop()'s deadline: dropped, not retried;
    assert wait_for(lambda: sender.stats()["in_flight"] == 0)
    # it had been sent, so nobody knows whether Amplitude got it: "unconfirmed", not "shutdown"
    assert sender.stats()["dropped"] == {"shutdown": 15, "unconfirmed": 10}
    assert len(outcomes) == 25 and server.events == []


def test_a_retry_that_cannot_start_before_the_deadline_is_dropped_at_once(server: AmplitudeStandIn,
                                                                          session: requests.Session) -> None:
    server.add_fault("events", status=503, times=None, headers={"Retry-After": "20"})
    clock = ManualClock()
    sender = make_sender(session, server.events_url, clock=clock)
    sender.start()
    for n in range(10):
        sender.enqueue(Item(n))
    # the sender has read the 503 and waits out the 20 s Retry-After (not still posting the first try)
    assert wait_for(lambda: clock.next_deadline() == 20.0)
    assert len(server.requests("events")) == 1
    began = time.monotonic()
    sender.stop(2.0)  # stop cuts the 20 s wait short: one last try, then no time for another 20 s
    assert time.monotonic() - began < 2.0 + STOP_MARGIN  # the documented bound, far below the 20 s wait
    assert len(server.requests("events")) == 2
    assert sender.stats()["dropped"] == {"shutdown": 10}


# ----- the counters themselves -------------------------------------------------------------------


def test_counter_is_exact_under_concurrent_increments_and_reads() -> None:
    counter = Counter()
    reads: List[int] = []

    def bump() -> None:
        for _ in range(50_000):
            counter.increment()

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for t in threads:
        t.start()
    for _ in range(200):
        reads.append(counter.value)
    for t in threads:
        t.join()
    assert reads == sorted(reads)
    assert counter.value == 200_000 == counter.value  # reading does not count
    counter.add(5)
    counter.add(1)
    counter.add(0)
    assert counter.value == 200_006


def test_reason_counters() -> None:
    reasons = ReasonCounters()
    reasons.add("b", 3)
    reasons.add("a")
    reasons.add("b")
    assert reasons.snapshot() == {"a": 1, "b": 4}
    assert (reasons.get("b"), reasons.get("z"), reasons.total()) == (4, 0, 5)
