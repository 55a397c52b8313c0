"""The sender above the sustainable rate: a backlog, what it holds, what is on its way.

Requests go to a fake transport adapter mounted on the session (no sockets), which answers
``200 {"code":200}`` and records what it saw; where a test needs two requests on their way at
once, the adapter holds each request until a second one arrives (bounded, on a threading.Event).
"""

from __future__ import annotations

import gc
import io
import json
import threading
import tracemalloc
from typing import Any, Callable, Iterator, List, Optional

import pytest
import requests
import requests.adapters

from amplitude_experiment.events.sender import EventSender
from amplitude_experiment.testing import ManualClock, wait_for

from .sender_support import Item, make_sender

URL = "http://amplitude.test/2/httpapi"
BIG = 100_000  # bytes of each event's blob: 9 events fit in one 1 MB request


class Ingestion(requests.adapters.HTTPAdapter):
    """Answers every POST with 200 and records the insert_ids, and how many requests were on their way.

    ``hold``: each request waits (at most 10 s) until another one is on its way too.
    ``on_send``: called with each request, on the sending thread.
    """

    def __init__(self, hold: bool = False, on_send: Optional[Callable[[requests.PreparedRequest], None]] = None):
        super().__init__()
        self.hold = hold
        self.on_send = on_send
        self.insert_ids: List[str] = []
        self.sizes: List[int] = []
        self.on_the_way = 0
        self.most_on_the_way = 0
        self.two_on_the_way = threading.Event()
        self.release = threading.Event()  # set: no request is held any more
        self._lock = threading.Lock()

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        if self.on_send is not None:
            self.on_send(request)
        with self._lock:
            self.on_the_way += 1
            self.most_on_the_way = max(self.most_on_the_way, self.on_the_way)
            if self.on_the_way >= 2:
                self.two_on_the_way.set()
        try:
            if self.hold and not self.release.is_set():
                self.two_on_the_way.wait(10)
            assert isinstance(request.body, bytes)
            events = json.loads(request.body)["events"]
            with self._lock:
                self.insert_ids += [event["insert_id"] for event in events]
                self.sizes.append(len(events))
        finally:
            with self._lock:
                self.on_the_way -= 1
        response = requests.Response()
        response.status_code = 200
        response.raw = io.BytesIO(b'{"code":200}')
        response.request = request
        response.url = request.url or ""
        return response


@pytest.fixture
def fake_session() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def mounted(session: requests.Session, adapter: Ingestion) -> requests.Session:
    session.mount("http://amplitude.test", adapter)
    return session


def test_a_backlog_has_a_second_request_on_its_way(fake_session: requests.Session, clock: ManualClock) -> None:
    """With a backlog of more than a request's worth, two requests are on their way at once: most of
    a request's time is spent waiting for the answer, so the backlog drains twice as fast."""
    ingestion = Ingestion(hold=True)
    sender = make_sender(mounted(fake_session, ingestion), URL, clock=clock, flush_queue_size=1000)
    sender.start()
    for n in range(10):  # a first batch teaches the sender how many such events fit in a request (9)
        sender.enqueue(Item(n, size=BIG))
    ingestion.release.set()
    assert sender.flush(10)
    ingestion.release.clear()
    for n in range(10, 100):
        sender.enqueue(Item(n, size=BIG))
    assert sender.flush(30)
    sender.stop(5)
    assert ingestion.two_on_the_way.is_set() and ingestion.most_on_the_way == 2
    assert sorted(ingestion.insert_ids) == sorted(f"id-{n}" for n in range(100))
    assert sender.stats() == {"enqueued": 100, "sent": 100, "retried": 0, "duplicates": 0, "dropped": {},
                              "queue_depth": 0, "in_flight": 0}


def test_without_a_backlog_one_request_at_a_time(fake_session: requests.Session, clock: ManualClock) -> None:
    ingestion = Ingestion()
    sender = make_sender(mounted(fake_session, ingestion), URL, clock=clock, flush_queue_size=1000)
    sender.start()
    for wave in range(3):
        for n in range(wave * 15, wave * 15 + 15):  # less than two requests' worth each time
            sender.enqueue(Item(n, size=BIG))
        assert sender.flush(10)
    sender.stop(5)
    assert ingestion.most_on_the_way == 1
    assert len(ingestion.insert_ids) == 45


def test_stop_with_two_requests_on_their_way_accounts_for_every_event(fake_session: requests.Session) -> None:
    """stop() returns within its bound while both requests hang; they are counted when they end, and
    what was still queued is dropped as "shutdown": nothing lost silently, nothing counted twice."""
    ingestion = Ingestion(hold=True)
    hang = threading.Event()
    held = threading.Event()
    ingestion.on_send = lambda request: held.wait(10) if hang.is_set() else None
    sender = make_sender(mounted(fake_session, ingestion), URL, flush_queue_size=1000)
    sender.start()
    for n in range(10):
        sender.enqueue(Item(n, size=BIG))
    ingestion.release.set()
    assert sender.flush(10)
    ingestion.release.clear()
    hang.set()  # from now on requests hang until held is set
    for n in range(10, 100):
        sender.enqueue(Item(n, size=BIG))
    sender.flush(0.0)  # wake the sender without waiting
    assert wait_for(lambda: sender.stats()["in_flight"] == 18)  # two requests' worth taken ...
    sender.stop(0.2)  # ... held by the adapter past stop()'s bound
    held.set()
    assert wait_for(lambda: sender.stats()["in_flight"] == 0)
    stats = sender.stats()
    assert stats["sent"] == 10 + 18 and len(ingestion.insert_ids) == 28
    assert stats["dropped"] == {"shutdown": 72}
    assert stats["enqueued"] == stats["sent"] + sum(stats["dropped"].values())


def test_a_backlog_is_taken_one_requests_worth_at_a_time(fake_session: requests.Session, clock: ManualClock) -> None:
    """Events are built only as they can be sent: a request's worth (by the byte limit and the size of
    recent events) per sending thread, not the whole backlog (whose JSON would all be held at once)."""
    on_the_way: List[int] = []
    ingestion = Ingestion(on_send=lambda request: on_the_way.append(sender.stats()["in_flight"]))
    sender: EventSender = make_sender(mounted(fake_session, ingestion), URL, clock=clock, flush_queue_size=1000)
    sender.start()
    for n in range(10):
        sender.enqueue(Item(n, size=BIG))
    assert sender.flush(10)
    assert ingestion.sizes == [9, 1]  # the first batch, of unknown size: split by the byte limit
    del on_the_way[:]
    for n in range(10, 70):
        sender.enqueue(Item(n, size=BIG))
    assert sender.flush(10)
    sender.stop(5)
    assert max(ingestion.sizes[2:]) == 9 and sum(ingestion.sizes) == 70
    assert max(on_the_way) <= 2 * 9  # at most a request's worth per sending thread


def test_sent_insert_ids_are_remembered_as_hashes_not_as_text(fake_session: requests.Session,
                                                              clock: ManualClock) -> None:
    """The memory that keeps an insert_id from being sent twice holds a 59-bit hash per id (~32 bytes),
    not the id itself (~100 bytes for an assignment's, more with long ids)."""
    ingestion = Ingestion()
    sender = make_sender(mounted(fake_session, ingestion), URL, clock=clock, flush_queue_size=10_000,
                         dedup_capacity=10_000)
    n = 3000
    sender.enqueue(Item(0, insert_id="warm-up"))
    sender.start()
    assert sender.flush(10)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(n):
            sender.enqueue(Item(i, insert_id=f"user-{i:06d} device-{i:06d}-{'x' * 300} 1234567890 20782"))
        assert sender.flush(10)
        del ingestion.insert_ids[:]
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
        sender.stop(5)
    assert sender.stats()["sent"] == n + 1
    assert kept / n < 100  # the ids themselves would be ~400 bytes each
