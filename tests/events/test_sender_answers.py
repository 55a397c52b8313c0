"""The sender honours every answer Amplitude's HTTP V2 API documents (design.md §3, issue 10 point 2).

Each test cites the documented behaviour it checks. The stand-in produces the documented bodies
itself (amplitude_experiment/testing/ingestion.py) unless a test scripts a body with add_fault.
"""

from __future__ import annotations

import logging
from typing import List

import pytest
import requests

from amplitude_experiment.testing import AmplitudeStandIn, ManualClock, wait_for
from amplitude_experiment.version import USER_AGENT

from .sender_support import Item, Outcome, batch_sizes, make_sender


def sleeping_for(clock: ManualClock, seconds: float) -> bool:
    """Wait (real time, bounded) until the sender thread waits on the clock for ``seconds``."""
    return wait_for(lambda: clock.sleepers == 1 and clock.next_deadline() == pytest.approx(seconds))


def messages(caplog: pytest.LogCaptureFixture, level: int = logging.WARNING) -> List[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= level and r.name == "amplitude_experiment.events"]


def test_one_short_user_id_among_ten_costs_only_that_event(server: AmplitudeStandIn, session: requests.Session,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    # design.md §3: a user_id shorter than 5 characters is an invalid id length; Amplitude rejects the
    # request with events_with_invalid_id_lengths {"user_id": [3]}: drop exactly that event, resend the rest.
    outcomes: List[Outcome] = []
    sender = make_sender(session, server.events_url, outcomes)
    for n in range(10):
        sender.enqueue(Item(n, user_id="42" if n == 3 else None))
    with caplog.at_level(logging.WARNING, logger="amplitude_experiment.events"):
        sender.start()
        sender.stop(5)
    assert sorted(server.accepted_insert_ids()) == sorted(f"id-{n}" for n in range(10) if n != 3)
    assert batch_sizes(server.requests("events")) == [10, 9]
    assert server.requests("events")[0].json()["events"][3]["user_id"] == "42"
    assert sender.stats()["sent"] == 9
    assert sender.stats()["dropped"] == {"invalid_id_length": 1}
    assert ("id-3", 400, "event rejected (invalid_id_length: user_id): HTTP 400 "
            "(Invalid id length for user_id or device_id)") in outcomes
    assert messages(caplog) == [
        f"Dropped 1 event(s): {server.events_url} rejected their user_id as shorter than 5 characters (HTTP 400); "
        "resending the other 9. Fix: use longer ids, or accept short ones with "
        "AssignmentConfig(min_id_length=...) / ExposureConfig(min_id_length=...)"]


def test_min_id_length_lets_short_ids_through(server: AmplitudeStandIn, session: requests.Session) -> None:
    # design.md §3: options.min_id_length overrides the minimum of 5 for the request
    sender = make_sender(session, server.events_url, min_id_length=2)
    for n in range(10):
        sender.enqueue(Item(n, user_id="42" if n == 3 else None))
    sender.start()
    sender.stop(5)
    assert len(server.accepted_insert_ids()) == 10
    assert server.requests("events")[0].json()["options"] == {"min_id_length": 2}
    assert sender.stats()["dropped"] == {}


def test_all_four_lists_drop_exactly_the_named_events_counted_per_reason(
        server: AmplitudeStandIn, session: requests.Session) -> None:
    # design.md §3: events_with_invalid_fields, events_with_missing_fields, events_with_invalid_id_lengths
    # (field -> indexes) and silenced_events (indexes): drop exactly those, resend the rest.
    server.silence_devices(["silenced-device"])
    outcomes: List[Outcome] = []
    sender = make_sender(session, server.events_url, outcomes)
    odd = {
        1: Item(1, event_type=None),                                  # missing event_type
        4: Item(4, time="yesterday"),                                 # invalid time
        6: Item(6, user_id=None, device_id="dev"),                    # short device_id
        8: Item(8, device_id="silenced-device"),                      # silenced device
    }
    for n in range(10):
        sender.enqueue(odd.get(n) or Item(n))
    sender.start()
    sender.stop(5)
    assert sorted(server.accepted_insert_ids()) == sorted(f"id-{n}" for n in (0, 2, 3, 5, 7, 9))
    assert sender.stats()["dropped"] == {"invalid_fields": 1, "invalid_id_length": 1, "missing_fields": 1,
                                         "silenced": 1}
    assert sender.stats()["sent"] == 6
    # the validation 400 first (all three field lists in one body), then the silenced one, then 200
    assert batch_sizes(server.requests("events")) == [10, 7, 6]
    rejected = sorted(o for o in outcomes if o[1] == 400)
    assert [o[0] for o in rejected] == ["id-1", "id-4", "id-6", "id-8"]
    assert rejected[0][2] == "event rejected (missing_fields: event_type): HTTP 400 (Request missing required field)"
    assert rejected[3][2] == "event rejected (silenced): HTTP 400 (Events silenced)"


def test_an_invalid_api_key_drops_the_batch_and_logs_once_at_error(session: requests.Session,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    # design.md §3: an error starting "Invalid API key" rejects the request as such: drop, log once with the fix
    with AmplitudeStandIn(api_key="the-right-key") as server:
        sender = make_sender(session, server.events_url)
        with caplog.at_level(logging.WARNING, logger="amplitude_experiment.events"):
            sender.start()
            for batch in range(2):
                for n in range(batch * 10, batch * 10 + 10):
                    sender.enqueue(Item(n))
                assert sender.flush(5)
            sender.stop(5)
        assert len(server.requests("events")) == 2
        assert server.events == []
        assert sender.stats()["dropped"] == {"invalid_api_key": 20}
        errors = messages(caplog, logging.ERROR)
        assert errors == [
            f"Amplitude rejected the analytics API key (HTTP 400 from {server.events_url}): 10 event(s) dropped, "
            "and every later batch will be too. Fix: pass your Amplitude project's API key as "
            "AssignmentConfig(api_key=...) / ExposureConfig(api_key=...)"]
        assert "analytics-key" not in caplog.text  # the answer echoes the key; we never log it


def test_missing_field_drops_the_batch_and_logs_once_at_error(server: AmplitudeStandIn, session: requests.Session,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    # design.md §3: missing_field (a string) rejects the request as such
    server.add_fault("events", status=400, times=2, body={
        "code": 400, "error": "Request missing required field", "missing_field": "events"})
    sender = make_sender(session, server.events_url)
    with caplog.at_level(logging.WARNING, logger="amplitude_experiment.events"):
        sender.start()
        for batch in range(3):
            for n in range(batch * 10, batch * 10 + 10):
                sender.enqueue(Item(n))
            assert sender.flush(5)
        sender.stop(5)
    assert sender.stats()["dropped"] == {"missing_field": 20}
    assert sender.stats()["sent"] == 10
    assert len(messages(caplog, logging.ERROR)) == 1
    assert messages(caplog, logging.ERROR)[0].startswith(
        f"Amplitude rejected a request for missing field 'events' (HTTP 400 from {server.events_url}): "
        "10 event(s) dropped. Fix: ")


def test_a_400_naming_no_event_drops_the_batch(server: AmplitudeStandIn, session: requests.Session) -> None:
    # design.md §3: a 400 rejects the whole request; if it names no culprit, nothing can be resent
    server.add_fault("events", status=400, body={"code": 400, "error": "Invalid JSON request body"})
    sender = make_sender(session, server.events_url)
    sender.start()
    for batch in range(2):
        for n in range(batch * 10, batch * 10 + 10):
            sender.enqueue(Item(n))
        assert sender.flush(5)
    sender.stop(5)
    assert sorted(server.accepted_insert_ids()) == sorted(f"id-{n}" for n in range(10, 20))
    assert sender.stats()["dropped"] == {"bad_request": 10}


def test_429_resends_throttled_after_backoff_others_at_once_and_drops_daily_quota(
        server: AmplitudeStandIn, session: requests.Session, clock: ManualClock,
        caplog: pytest.LogCaptureFixture) -> None:
    # design.md §3: 429 throttled_events / throttled_users / exceeded_daily_quota_*: back off and resend the
    # throttled ones, drop the daily-quota ones (counted); the rest need not wait.
    server.throttle(users=["user-000001"], times=1)
    server.exceed_daily_quota(devices=["over-quota"])
    outcomes: List[Outcome] = []
    sender = make_sender(session, server.events_url, outcomes, clock=clock)
    with caplog.at_level(logging.WARNING, logger="amplitude_experiment.events"):
        sender.start()
        for n in range(10):
            sender.enqueue(Item(n, device_id="over-quota" if n == 5 else None))
        assert server.wait_for_events(8)  # the 8 neither throttled nor over quota, without waiting
        assert sleeping_for(clock, 0.5)
        assert server.accepted_insert_ids() == [f"id-{n}" for n in range(10) if n not in (1, 5)]
        clock.advance(0.5)
        assert server.wait_for_events(9)
        sender.stop(5)
    assert batch_sizes(server.requests("events")) == [10, 8, 1]
    assert server.accepted_insert_ids()[-1] == "id-1"
    assert sender.stats()["dropped"] == {"daily_quota": 1}
    assert sender.stats()["sent"] == 9
    assert sender.stats()["retried"] == 1
    assert ("id-5", 429, "daily quota exceeded") in outcomes
    assert messages(caplog) == [
        f"Dropped 1 event(s) of users or devices over Amplitude's daily quota (HTTP 429 from {server.events_url})",
        f"Sending 1 event(s) to {server.events_url} failed (HTTP 429 (Too many requests for some devices and "
        "users)); retry 1 of 5 in 0.5 s"]


def test_a_bare_429_backs_off_the_whole_batch_honouring_retry_after(
        server: AmplitudeStandIn, session: requests.Session, clock: ManualClock) -> None:
    # design.md §3: 429 throttled: back off and resend (a 429 that names nothing throttles everything)
    server.add_fault("events", status=429, body=b"", headers={"Retry-After": "12"})
    sender = make_sender(session, server.events_url, clock=clock)
    sender.start()
    for n in range(10):
        sender.enqueue(Item(n))
    assert sleeping_for(clock, 12.0)
    assert server.events == []
    clock.advance(12.0)
    assert server.wait_for_events(10)
    sender.stop(5)
    assert batch_sizes(server.requests("events")) == [10, 10]


def test_a_413_answer_splits_through_the_same_path(server: AmplitudeStandIn, session: requests.Session) -> None:
    # design.md §3: 413 payload too large: split and resend
    server.add_fault("events", status=413, times=2)
    sender = make_sender(session, server.events_url)
    sender.start()
    for n in range(10):
        sender.enqueue(Item(n))
    sender.stop(5)
    assert batch_sizes(server.requests("events")) == [10, 5, 2, 3, 5]
    assert sorted(server.accepted_insert_ids()) == sorted(f"id-{n}" for n in range(10))


def test_an_unexpected_status_is_dropped_with_a_warning_naming_url_and_status(
        server: AmplitudeStandIn, session: requests.Session, caplog: pytest.LogCaptureFixture) -> None:
    server.add_fault("events", status=404)
    sender = make_sender(session, server.events_url)
    with caplog.at_level(logging.WARNING, logger="amplitude_experiment.events"):
        sender.start()
        for n in range(10):
            sender.enqueue(Item(n))
        sender.stop(5)
    assert sender.stats()["dropped"] == {"rejected": 10}
    assert messages(caplog) == [
        f"Dropped 10 event(s): {server.events_url} answered HTTP 404 (Not Found), which is not retried; check the "
        "ingestion URL (AssignmentConfig(server_url=...))"]


def test_retry_warnings_say_what_happens_next_and_are_rate_limited(
        server: AmplitudeStandIn, session: requests.Session, clock: ManualClock,
        caplog: pytest.LogCaptureFixture) -> None:
    server.add_fault("events", status=503, times=3)
    sender = make_sender(session, server.events_url, clock=clock)
    with caplog.at_level(logging.WARNING, logger="amplitude_experiment.events"):
        sender.start()
        for n in range(10):
            sender.enqueue(Item(n))
        for wait in (0.5, 1.0, 2.0):
            assert sleeping_for(clock, wait)
            clock.advance(wait)
        assert server.wait_for_events(10)
        sender.stop(5)
    # one warning; the next two (within 10 s) went to DEBUG
    assert messages(caplog) == [
        f"Sending 10 event(s) to {server.events_url} failed (HTTP 503 (Service Unavailable)); retry 1 of 5 in 0.5 s"]
    assert all(r.header("User-Agent") == USER_AGENT for r in server.requests("events"))
    assert "analytics-key" not in caplog.text
