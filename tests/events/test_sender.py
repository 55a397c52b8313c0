"""The batching sender against the loopback stand-in: every fault, nothing lost silently."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest
import requests

from amplitude_experiment._backoff import Backoff
from amplitude_experiment.events.sender import EventSender
from amplitude_experiment.testing import AmplitudeStandIn, wait_for


class Item:
    """A queued event whose dict is fixed up front."""

    def __init__(self, n: int, user_id: Optional[str] = None, size: int = 0) -> None:
        self.event: Dict[str, Any] = {"event_type": "test", "user_id": user_id or f"user-{n:06d}",
                                      "insert_id": f"id-{n}", "time": 1}
        if size:
            self.event["event_properties"] = {"blob": "x" * size}

    def build(self) -> Dict[str, Any]:
        return dict(self.event)


@pytest.fixture
def server() -> Iterator[AmplitudeStandIn]:
    with AmplitudeStandIn() as stand_in:
        yield stand_in


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s


Outcome = Tuple[str, int, Optional[str]]


def make_sender(session: requests.Session, url: str, outcomes: Optional[List[Outcome]] = None,
                **options: Any) -> EventSender:
    options.setdefault("flush_queue_size", 10)
    options.setdefault("flush_interval", 60.0)
    options.setdefault("max_retries", 5)
    if outcomes is not None:
        options["callback"] = lambda event, status, message: outcomes.append((event["insert_id"], status, message))
    sender = EventSender(session, url, "analytics-key", **options)
    sender.backoff = Backoff(base=0.01, cap=0.02)
    return sender


def ids(server: AmplitudeStandIn) -> List[str]:
    return server.accepted_insert_ids()


def test_sends_a_batch_as_soon_as_flush_queue_size_events_wait(server: AmplitudeStandIn,
                                                                session: requests.Session) -> None:
    sender = make_sender(session, server.url + "/2/httpapi")
    sender.start()
    for n in range(10):
        sender.enqueue(Item(n))
    assert server.wait_for_events(10)  # flush_interval is 60 s: the size alone triggered it
    for n in range(10, 15):
        sender.enqueue(Item(n))
    assert [len(r.json()["events"]) for r in server.requests("events")] == [10]
    body = server.requests("events")[0].json()
    assert body["api_key"] == "analytics-key"
    assert "options" not in body
    sender.stop(5)  # flushes the 5 still waiting
    assert [len(r.json()["events"]) for r in server.requests("events")] == [10, 5]
    assert sorted(ids(server)) == sorted(f"id-{n}" for n in range(15))
    assert sender.stats() == {"enqueued": 15, "sent": 15, "retried": 0, "duplicates": 0, "dropped": {},
                              "queue_depth": 0, "in_flight": 0}


def test_a_backlog_goes_out_in_requests_as_large_as_amplitude_accepts(server: AmplitudeStandIn,
                                                                       session: requests.Session) -> None:
    sender = make_sender(session, server.url + "/2/httpapi")
    for n in range(2500):
        sender.enqueue(Item(n))
    sender.start()
    sender.stop(10)
    assert [len(r.json()["events"]) for r in server.requests("events")] == [2000, 500]
    assert len(set(ids(server))) == 2500


def test_payloads_over_the_byte_limit_are_split_before_sending(server: AmplitudeStandIn,
                                                               session: requests.Session) -> None:
    sender = make_sender(session, server.url + "/2/httpapi", flush_queue_size=8)
    sender.max_payload_bytes = 2_000
    for n in range(8):
        sender.enqueue(Item(n, size=400))
    sender.enqueue(Item(99, size=5_000))
    sender.start()
    sender.stop(5)
    sizes = [len(r.json()["events"]) for r in server.requests("events")]
    assert sum(sizes) == 8 and max(sizes) <= 4  # never a request over the limit, never a 413
    assert all(len(r.body) <= 2_000 for r in server.requests("events"))
    assert sender.stats()["dropped"] == {"too_large": 1}


def test_an_event_json_cannot_carry_is_dropped_alone_and_odd_values_go_as_text(
        server: AmplitudeStandIn, session: requests.Session) -> None:
    import datetime
    import decimal

    outcomes: List[Outcome] = []
    sender = make_sender(session, server.url + "/2/httpapi", outcomes)
    odd = Item(1)
    odd.event["user_properties"] = {"signed_up": datetime.date(2026, 12, 1), "score": decimal.Decimal("1.5")}
    not_a_number = Item(2)
    not_a_number.event["user_properties"] = {"ratio": float("nan")}  # Amplitude would reject the whole request
    for item in (Item(0), odd, not_a_number, Item(3)):
        sender.enqueue(item)
    sender.start()
    sender.stop(5)
    (request,) = server.requests("events")
    events = request.json()["events"]
    assert [e["insert_id"] for e in events] == ["id-0", "id-1", "id-3"]
    assert events[1]["user_properties"] == {"signed_up": "2026-12-01", "score": "1.5"}
    assert sender.stats()["dropped"] == {"build_error": 1}
    outcomes.sort()
    assert outcomes[2][:2] == ("id-2", 0)
    assert (outcomes[2][2] or "").startswith("event could not be encoded: ValueError: Out of range float values")
    del outcomes[2]
    assert outcomes == [("id-0", 200, "Event sent successfully."), ("id-1", 200, "Event sent successfully."),
                        ("id-3", 200, "Event sent successfully.")]


def test_flush_interval_sends_a_partial_batch(server: AmplitudeStandIn, session: requests.Session) -> None:
    sender = make_sender(session, server.url + "/2/httpapi", flush_interval=0.05, min_id_length=3)
    sender.start()
    sender.enqueue(Item(1))
    assert server.wait_for_events(1)
    assert server.requests("events")[0].json()["options"] == {"min_id_length": 3}
    sender.stop(5)


@pytest.mark.parametrize("status", [500, 502, 503, 504, 429, 408])
def test_retryable_statuses_are_retried_until_delivered(server: AmplitudeStandIn, session: requests.Session,
                                                        status: int) -> None:
    server.add_fault("events", status=status, times=3, headers={"Retry-After": "0"})
    outcomes: List[Outcome] = []
    sender = make_sender(session, server.url + "/2/httpapi", outcomes)
    sender.start()
    for n in range(10):
        sender.enqueue(Item(n))
    assert server.wait_for_events(10)
    sender.stop(5)
    assert len(server.requests("events")) == 4
    assert sorted(ids(server)) == sorted(f"id-{n}" for n in range(10))
    assert sender.stats()["retried"] == 3
    assert sorted(outcomes) == sorted((f"id-{n}", 200, "Event sent successfully.") for n in range(10))


def test_gives_up_after_max_retries_and_accounts_for_every_event(server: AmplitudeStandIn,
                                                                 session: requests.Session) -> None:
    server.add_fault("events", status=503, times=None)
    outcomes: List[Outcome] = []
    sender = make_sender(session, server.url + "/2/httpapi", outcomes, max_retries=2)
    sender.start()
    for n in range(10):
        sender.enqueue(Item(n))
    assert wait_for(lambda: len(outcomes) == 10)
    sender.stop(5)
    assert len(server.requests("events")) == 3
    assert sender.stats()["dropped"] == {"max_retries": 10}
    assert {o[1] for o in outcomes} == {503}
    assert outcomes[0][2] == "gave up after 3 attempts: HTTP 503 (Service Unavailable)"


def test_400_drops_only_the_named_events_and_resends_the_rest(server: AmplitudeStandIn,
                                                              session: requests.Session) -> None:
    outcomes: List[Outcome] = []
    sender = make_sender(session, server.url + "/2/httpapi", outcomes)
    server.silence_insert_ids(["id-7"])
    sender.start()
    for n in range(10):
        sender.enqueue(Item(n, user_id="u1" if n in (2, 5) else None))  # too short for min_id_length 5
    assert server.wait_for_events(7)
    sender.stop(5)
    assert sorted(ids(server)) == sorted(f"id-{n}" for n in range(10) if n not in (2, 5, 7))
    assert sender.stats()["dropped"] == {"invalid": 3}
    rejected = sorted(o for o in outcomes if o[1] == 400)
    assert [o[0] for o in rejected] == ["id-2", "id-5", "id-7"]
    assert rejected[0][2] == "event rejected: HTTP 400 (Request missing required field)"
    assert len(server.requests("events")) == 2


def test_400_naming_nothing_drops_the_payload(server: AmplitudeStandIn, session: requests.Session) -> None:
    server.add_fault("events", status=400, body=b'{"code": 400, "error": "Invalid API key"}')
    sender = make_sender(session, server.url + "/2/httpapi")
    sender.start()
    for n in range(10):
        sender.enqueue(Item(n))
    assert wait_for(lambda: len(server.requests("events")) == 1)
    for n in range(10, 20):
        sender.enqueue(Item(n))
    assert server.wait_for_events(10)
    sender.stop(5)
    assert sorted(ids(server)) == sorted(f"id-{n}" for n in range(10, 20))
    assert sender.stats()["dropped"] == {"invalid": 10}


def test_413_splits_batches_and_drops_a_single_oversized_event(session: requests.Session) -> None:
    with AmplitudeStandIn(max_payload_bytes=2_000) as server:
        outcomes: List[Outcome] = []
        sender = make_sender(session, server.url + "/batch", outcomes, flush_queue_size=16)
        sender.start()
        for n in range(16):
            sender.enqueue(Item(n, size=3_000 if n == 9 else 50))
        assert wait_for(lambda: len(outcomes) == 16)
        sender.stop(5)
        assert sorted(ids(server)) == sorted(f"id-{n}" for n in range(16) if n != 9)
        assert sender.stats()["dropped"] == {"too_large": 1}
        assert ("id-9", 413, "event too large for the ingestion API") in outcomes
        sizes = [len(r.json()["events"]) for r in server.requests("events") if r.body]
        assert sizes[0] == 16 and max(sizes[1:]) <= 8


def test_timeouts_are_retried(server: AmplitudeStandIn, session: requests.Session) -> None:
    server.add_fault("events", action="hang", delay=1.0, times=1)
    sender = make_sender(session, server.url + "/2/httpapi", timeout=(1.0, 0.2))
    sender.start()
    for n in range(10):
        sender.enqueue(Item(n))
    assert server.wait_for_events(10)
    sender.stop(5)
    assert sender.stats()["retried"] == 1
    assert sorted(ids(server)) == sorted(f"id-{n}" for n in range(10))


def test_refused_connections_then_recovery(session: requests.Session) -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens on this port until the server starts below
    sender = make_sender(session, f"http://127.0.0.1:{port}/2/httpapi", max_retries=200)
    sender.backoff = Backoff(base=0.05, cap=0.05)
    sender.start()
    for n in range(10):
        sender.enqueue(Item(n))
    assert wait_for(lambda: sender.stats()["retried"] >= 2)
    with AmplitudeStandIn(port=port) as server:
        assert server.wait_for_events(10)
        sender.stop(5)
        assert sorted(ids(server)) == sorted(f"id-{n}" for n in range(10))


def test_stop_is_bounded_while_the_server_hangs(server: AmplitudeStandIn, session: requests.Session) -> None:
    server.add_fault("events", action="hang", delay=30.0, times=None)
    outcomes: List[Outcome] = []
    sender = make_sender(session, server.url + "/2/httpapi", outcomes, timeout=(30.0, 30.0))
    sender.start()
    for n in range(10):
        sender.enqueue(Item(n))
    assert wait_for(lambda: len(server.requests("events")) >= 1)
    for n in range(10, 25):
        sender.enqueue(Item(n))
    began = time.monotonic()
    sender.stop(0.5)
    assert time.monotonic() - began < 1.5
    # what was queued is accounted for at once; the batch already on the wire is reported
    assert sender.stats()["dropped"] == {"shutdown": 15}
    assert sender.stats()["in_flight"] == 10
    server.stop()  # the hung request now fails, after stop()'s deadline: dropped, not retried
    assert wait_for(lambda: sender.stats()["in_flight"] == 0)
    assert sender.stats()["dropped"] == {"shutdown": 25}
    assert len(outcomes) == 25 and ids(server) == []


def test_stop_flushes_everything_pending(server: AmplitudeStandIn, session: requests.Session) -> None:
    sender = make_sender(session, server.url + "/2/httpapi", flush_queue_size=1000)
    sender.start()
    for n in range(123):
        sender.enqueue(Item(n))
    sender.stop(5)
    assert len(ids(server)) == 123
    sender.stop(5)  # idempotent
    assert not sender.enqueue(Item(999))
    assert sender.stats()["dropped"] == {"stopped": 1}


def test_full_queue_drops_new_events_with_a_count(server: AmplitudeStandIn, session: requests.Session,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    sender = make_sender(session, server.url + "/2/httpapi", max_queue_size=5, flush_queue_size=100)
    with caplog.at_level("WARNING", logger="amplitude_experiment.events"):
        results = [sender.enqueue(Item(n)) for n in range(8)]
    assert results == [True] * 5 + [False] * 3
    assert sender.stats()["dropped"] == {"queue_full": 3}
    assert [r.getMessage() for r in caplog.records] == [
        "Dropped 1 event(s) that could not be queued (queue_full); queue holds 5 of at most 5"]
    sender.start()
    sender.stop(5)
    assert len(ids(server)) == 5


def test_an_insert_id_is_never_sent_twice(server: AmplitudeStandIn, session: requests.Session) -> None:
    sender = make_sender(session, server.url + "/2/httpapi")
    sender.start()
    for n in list(range(10)) + list(range(5)):
        sender.enqueue(Item(n))
    sender.stop(5)
    assert sorted(ids(server)) == sorted(f"id-{n}" for n in range(10))
    assert sender.stats()["duplicates"] == 5


def test_a_raising_callback_does_not_stop_delivery(server: AmplitudeStandIn, session: requests.Session) -> None:
    def callback(event: Dict[str, Any], status: int, message: Optional[str]) -> None:
        raise RuntimeError("user bug")

    sender = make_sender(session, server.url + "/2/httpapi", callback=callback)
    sender.start()
    for n in range(20):
        sender.enqueue(Item(n))
    sender.stop(5)
    assert len(ids(server)) == 20


def test_enqueue_from_many_threads_loses_nothing(server: AmplitudeStandIn, session: requests.Session) -> None:
    sender = make_sender(session, server.url + "/2/httpapi", flush_queue_size=200)
    sender.start()

    def produce(base: int) -> None:
        for n in range(base, base + 1000):
            sender.enqueue(Item(n))

    threads = [threading.Thread(target=produce, args=(i * 1000,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sender.stop(10)
    accepted = ids(server)
    assert len(accepted) == 8000 and len(set(accepted)) == 8000
    assert sender.stats()["sent"] == 8000
