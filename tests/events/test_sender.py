"""The batching sender against the loopback stand-in: batching, retries, accounting.

The stand-in answers as Amplitude's HTTP V2 API documents (design.md §3); time is a ManualClock,
so every interval and backoff is checked exactly and nothing sleeps.
"""

from __future__ import annotations

import datetime
import decimal
import socket
import threading
from typing import Any, Dict, List, Optional

import pytest
import requests

from amplitude_experiment.events.sender import EventSender
from amplitude_experiment.testing import AmplitudeStandIn, ManualClock, wait_for
from amplitude_experiment.version import USER_AGENT

from .sender_support import Item, Outcome, batch_sizes, make_sender


def ids(server: AmplitudeStandIn) -> List[str]:
    return server.accepted_insert_ids()


def sleeping_for(clock: ManualClock, seconds: float) -> bool:
    """Wait (real time, bounded) until the sender thread waits on the clock for ``seconds``."""
    return wait_for(lambda: clock.sleepers == 1 and clock.next_deadline() == pytest.approx(seconds))


def test_sends_a_batch_as_soon_as_flush_queue_size_events_wait(server: AmplitudeStandIn, session: requests.Session,
                                                                clock: ManualClock) -> None:
    sender = make_sender(session, server.events_url, clock=clock)
    sender.start()
    for n in range(10):
        sender.enqueue(Item(n))
    assert server.wait_for_events(10)  # the clock never moved: the size alone triggered it
    for n in range(10, 15):
        sender.enqueue(Item(n))
    assert batch_sizes(server.requests("events")) == [10]
    request = server.requests("events")[0]
    body = request.json()
    assert body["api_key"] == "analytics-key"
    assert "options" not in body
    # design.md §3: POST JSON; every request names the library (issue 10 point 10: one User-Agent)
    assert request.header("User-Agent") == USER_AGENT
    assert request.header("Content-Type") == "application/json"
    sender.stop(5)  # flushes the 5 still waiting
    assert batch_sizes(server.requests("events")) == [10, 5]
    assert sorted(ids(server)) == sorted(f"id-{n}" for n in range(15))
    assert sender.stats() == {"enqueued": 15, "sent": 15, "retried": 0, "duplicates": 0, "dropped": {},
                              "queue_depth": 0, "in_flight": 0}


def test_flush_interval_on_the_clock_sends_a_partial_batch(server: AmplitudeStandIn, session: requests.Session,
                                                           clock: ManualClock) -> None:
    sender = make_sender(session, server.events_url, clock=clock, flush_interval=60.0, min_id_length=3)
    sender.start()
    sender.enqueue(Item(1))
    assert sleeping_for(clock, 60.0)
    clock.advance(59.9)
    assert server.requests("events") == []
    clock.advance(0.1)
    assert server.wait_for_events(1)
    # AssignmentConfig(min_id_length=...) goes out as options.min_id_length (design.md §3)
    assert server.requests("events")[0].json()["options"] == {"min_id_length": 3}
    sender.stop(5)


def test_a_backlog_goes_out_in_requests_as_large_as_amplitude_accepts(server: AmplitudeStandIn,
                                                                       session: requests.Session) -> None:
    # design.md §3: at most 2000 events a request
    sender = make_sender(session, server.events_url)
    for n in range(2500):
        sender.enqueue(Item(n))
    sender.start()
    sender.stop(10)
    assert batch_sizes(server.requests("events")) == [2000, 500]
    assert len(set(ids(server))) == 2500
    assert sender.stats()["sent"] == 2500


def test_payloads_over_the_byte_limit_are_split_before_sending(server: AmplitudeStandIn,
                                                               session: requests.Session) -> None:
    # design.md §3: at most 1 MB a request; splitting ourselves saves a 413 round trip
    sender = make_sender(session, server.events_url, flush_queue_size=8)
    sender.max_payload_bytes = 2_000
    for n in range(8):
        sender.enqueue(Item(n, size=400))
    sender.enqueue(Item(99, size=5_000))
    sender.start()
    sender.stop(5)
    # filled in order up to the byte limit (3 of ~480 bytes fit in 2,000), the lone giant dropped
    assert batch_sizes(server.requests("events")) == [3, 3, 2]
    assert all(len(r.body) <= 2_000 for r in server.requests("events"))
    assert sender.stats()["dropped"] == {"too_large": 1}
    assert sender.stats()["sent"] == 8


def test_an_event_json_cannot_carry_is_dropped_alone_and_odd_values_go_as_text(
        server: AmplitudeStandIn, session: requests.Session) -> None:
    outcomes: List[Outcome] = []
    sender = make_sender(session, server.events_url, outcomes)
    odd = Item(1, user_properties={"signed_up": datetime.date(2026, 12, 1), "score": decimal.Decimal("1.5")})
    not_a_number = Item(2, user_properties={"ratio": float("nan")})  # Amplitude would reject the whole request
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


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408])
def test_server_errors_are_retried_after_backoff_on_the_clock(server: AmplitudeStandIn, session: requests.Session,
                                                              clock: ManualClock, status: int) -> None:
    # design.md §3: 5xx and network errors: retry with backoff
    server.add_fault("events", status=status, times=2)
    outcomes: List[Outcome] = []
    sender = make_sender(session, server.events_url, outcomes, clock=clock)
    sender.start()
    for n in range(10):
        sender.enqueue(Item(n))
    assert sleeping_for(clock, 0.5)  # first retry after 0.5 s
    assert len(server.requests("events")) == 1
    clock.advance(0.5)
    assert sleeping_for(clock, 1.0)  # then 1 s
    assert len(server.requests("events")) == 2
    clock.advance(1.0)
    assert server.wait_for_events(10)
    sender.stop(5)
    assert len(server.requests("events")) == 3
    assert sorted(ids(server)) == sorted(f"id-{n}" for n in range(10))
    assert sender.stats()["retried"] == 2
    assert sorted(outcomes) == sorted((f"id-{n}", 200, "Event sent successfully.") for n in range(10))


def test_retry_after_is_honoured_in_both_forms(server: AmplitudeStandIn, session: requests.Session,
                                               clock: ManualClock) -> None:
    # Retry-After as delta-seconds, then as an HTTP-date read against the clock's time()
    server.add_fault("events", status=503, headers={"Retry-After": "7"})
    when = datetime.datetime.fromtimestamp(clock.time() + 7 + 20, tz=datetime.timezone.utc)  # read after the 7 s
    server.add_fault("events", status=503, headers={"Retry-After": when.strftime("%a, %d %b %Y %H:%M:%S GMT")})
    sender = make_sender(session, server.events_url, clock=clock)
    sender.start()
    for n in range(10):
        sender.enqueue(Item(n))
    assert sleeping_for(clock, 7.0)
    clock.advance(7.0)
    assert sleeping_for(clock, 20.0)
    clock.advance(20.0)
    assert server.wait_for_events(10)
    sender.stop(5)


def test_gives_up_after_max_retries_and_accounts_for_every_event(server: AmplitudeStandIn,
                                                                 session: requests.Session,
                                                                 clock: ManualClock) -> None:
    server.add_fault("events", status=503, times=None)
    outcomes: List[Outcome] = []
    sender = make_sender(session, server.events_url, outcomes, clock=clock, max_retries=2)
    sender.start()
    for n in range(10):
        sender.enqueue(Item(n))
    for wait in (0.5, 1.0):
        assert sleeping_for(clock, wait)
        clock.advance(wait)
    assert wait_for(lambda: len(outcomes) == 10)
    sender.stop(5)
    assert len(server.requests("events")) == 3
    assert sender.stats()["dropped"] == {"max_retries": 10}
    assert {o[1] for o in outcomes} == {503}
    assert outcomes[0][2] == "gave up after 3 attempts: HTTP 503 (Service Unavailable)"


def test_timeouts_are_retried(server: AmplitudeStandIn, session: requests.Session, clock: ManualClock) -> None:
    server.add_fault("events", action="hang", delay=2.0, times=1)
    sender = make_sender(session, server.events_url, clock=clock, timeout=(1.0, 0.2))
    sender.start()
    for n in range(10):
        sender.enqueue(Item(n))
    assert sleeping_for(clock, 0.5)
    clock.advance(0.5)
    assert server.wait_for_events(10)
    sender.stop(5)
    assert sender.stats()["retried"] == 1
    assert sorted(ids(server)) == sorted(f"id-{n}" for n in range(10))


def test_refused_connections_then_recovery(session: requests.Session, clock: ManualClock) -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens on this port until the server starts below
    sender = make_sender(session, f"http://127.0.0.1:{port}/2/httpapi", clock=clock)
    sender.start()
    for n in range(10):
        sender.enqueue(Item(n))
    assert sleeping_for(clock, 0.5)
    with AmplitudeStandIn(port=port) as server:
        clock.advance(0.5)
        assert server.wait_for_events(10)
        sender.stop(5)
        assert sorted(ids(server)) == sorted(f"id-{n}" for n in range(10))
        assert sender.stats()["retried"] == 1


def test_stop_flushes_everything_pending_and_is_idempotent(server: AmplitudeStandIn,
                                                           session: requests.Session) -> None:
    sender = make_sender(session, server.events_url, flush_queue_size=1000)
    sender.start()
    for n in range(123):
        sender.enqueue(Item(n))
    sender.stop(5)
    assert len(ids(server)) == 123
    sender.stop(5)
    assert not sender.enqueue(Item(999))
    assert sender.stats()["dropped"] == {"stopped": 1}


def test_start_after_stop_sends_again(server: AmplitudeStandIn, session: requests.Session) -> None:
    sender = make_sender(session, server.events_url)
    sender.start()
    sender.stop(5)
    sender.start()
    sender.enqueue(Item(1))
    sender.stop(5)
    assert ids(server) == ["id-1"]


def test_an_insert_id_is_never_sent_twice(server: AmplitudeStandIn, session: requests.Session) -> None:
    sender = make_sender(session, server.events_url)
    sender.start()
    for n in list(range(10)) + list(range(5)):
        sender.enqueue(Item(n))
    sender.stop(5)
    assert sorted(ids(server)) == sorted(f"id-{n}" for n in range(10))
    assert sender.stats()["duplicates"] == 5


def test_sent_insert_ids_are_remembered_up_to_the_dedup_capacity(server: AmplitudeStandIn,
                                                                  session: requests.Session) -> None:
    # The newest dedup_capacity // 2 to dedup_capacity - 1 insert_ids are remembered (two generations of
    # 2 here): after id-0..id-5, id-4 and id-5 are known (not sent again); id-3 and id-0 are not.
    sender = make_sender(session, server.events_url, dedup_capacity=4, flush_queue_size=100)
    for n in [0, 1, 2, 3, 4, 5, 4, 5, 3, 0]:
        sender.enqueue(Item(n))
    sender.start()
    sender.stop(5)
    assert ids(server) == [f"id-{n}" for n in [0, 1, 2, 3, 4, 5, 3, 0]]
    assert sender.stats()["duplicates"] == 2


def test_a_raising_callback_does_not_stop_delivery(server: AmplitudeStandIn, session: requests.Session) -> None:
    def callback(event: Dict[str, Any], status: int, message: Optional[str]) -> None:
        raise RuntimeError("user bug")

    sender = make_sender(session, server.events_url, callback=callback)
    sender.start()
    for n in range(20):
        sender.enqueue(Item(n))
    sender.stop(5)
    assert len(ids(server)) == 20


def test_enqueue_from_many_threads_loses_nothing(server: AmplitudeStandIn, session: requests.Session) -> None:
    sender = make_sender(session, server.events_url, flush_queue_size=200)
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
    assert sender.stats()["enqueued"] == 8000


def test_constructor_keywords_used_by_the_local_client() -> None:
    with requests.Session() as s:
        sender = EventSender(s, "http://127.0.0.1:9/2/httpapi", "key", flush_queue_size=5, flush_interval=1.0,
                             max_retries=1, max_queue_size=10, min_id_length=None, callback=None,
                             dedup_capacity=10, name="x", clock=ManualClock(), logger=None)
        assert sender.destination == ("http://127.0.0.1:9/2/httpapi", "key", None)
        assert sender.max_payload_bytes == 1_000_000
        assert EventSender(s, "http://h/batch", "key").max_payload_bytes == 20_000_000
