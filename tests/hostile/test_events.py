"""Hostile and odd input on the event path (issue 15 point 7): garbage answers from the ingestion
endpoint and odd values in events. Each case asserts exact counts and that nothing raises into
the caller (enqueue, flush and stop return normally).
"""

from __future__ import annotations

import datetime
from typing import Any, Dict, Iterator, List, Tuple

import pytest
import requests

from amplitude_experiment.testing import AmplitudeStandIn, ManualClock, wait_for
from tests.events.sender_support import Item, Outcome, batch_sizes, make_sender


@pytest.fixture
def server() -> Iterator[AmplitudeStandIn]:
    with AmplitudeStandIn() as stand_in:
        yield stand_in


def send_ten(server: AmplitudeStandIn, session: requests.Session, **options: Any) -> Tuple[Any, List[Outcome]]:
    outcomes: List[Outcome] = []
    sender = make_sender(session, server.events_url, outcomes, **options)
    for n in range(10):
        assert sender.enqueue(Item(n)) is True
    sender.start()
    sender.stop(5)
    return sender, outcomes


# ----- garbage answers ---------------------------------------------------------------------------


@pytest.mark.parametrize("body", [
    b"<html>Bad Request</html>",                                              # not JSON
    b"",                                                                      # empty
    b"[1, 2, 3]",                                                             # JSON, not an object
    b'{"code": 400, "events_with_invalid_id_lengths": {"user_id": [10, 99, -1]}}',  # indexes out of range
    b'{"code": 400, "events_with_invalid_fields": {"time": [true, "3", 2.0]}}',     # not ints
    b'{"code": 400, "events_with_missing_fields": [1, 2], "silenced_events": {"1": 1}}',  # wrong shapes
    b'{"code": 400, "missing_field": 7}',                                     # not a string
], ids=["html", "empty", "array", "out-of-range", "not-ints", "wrong-shapes", "missing-field-not-str"])
def test_a_400_that_names_no_usable_event_drops_that_batch_only(server: AmplitudeStandIn,
                                                                session: requests.Session, body: bytes) -> None:
    # design.md §3: a 400 rejects the whole request; resending unnamed events would loop, so they are dropped
    server.add_fault("events", status=400, body=body)
    sender, outcomes = send_ten(server, session)
    assert sender.stats()["dropped"] == {"bad_request": 10}
    assert sender.stats()["sent"] == 0
    assert [o[1] for o in outcomes] == [400] * 10
    assert len(server.requests("events")) == 1


def test_a_400_mixing_good_and_bad_indexes_drops_only_the_good_ones(server: AmplitudeStandIn,
                                                                    session: requests.Session) -> None:
    server.add_fault("events", status=400, body={
        "code": 400, "events_with_invalid_fields": {"time": [2, 2, 10, -3, "4", True]}, "silenced_events": [7, 99]})
    sender, _ = send_ten(server, session)
    assert sender.stats()["dropped"] == {"invalid_fields": 1, "silenced": 1}
    assert sorted(server.accepted_insert_ids()) == sorted(f"id-{n}" for n in range(10) if n not in (2, 7))


def test_a_200_with_html_counts_as_delivered(server: AmplitudeStandIn, session: requests.Session) -> None:
    # design.md §3: 200 means ingested; the body is informational
    server.add_fault("events", status=200, body=b"<html>OK</html>", headers={"Content-Type": "text/html"})
    sender, outcomes = send_ten(server, session)
    assert sender.stats()["sent"] == 10
    assert sender.stats()["dropped"] == {}
    assert outcomes == [(f"id-{n}", 200, "Event sent successfully.") for n in range(10)]


def test_a_429_with_a_garbage_body_backs_off_the_whole_batch(server: AmplitudeStandIn,
                                                             session: requests.Session) -> None:
    server.add_fault("events", status=429, body={
        "code": 429, "throttled_events": "all", "throttled_users": ["x"], "exceeded_daily_quota_users": [1]})
    clock = ManualClock()
    sender = make_sender(session, server.events_url, clock=clock)
    sender.start()
    for n in range(10):
        sender.enqueue(Item(n))
    assert wait_for(lambda: clock.sleepers == 1 and clock.next_deadline() == pytest.approx(0.5))
    clock.advance(0.5)
    assert server.wait_for_events(10)
    sender.stop(5)
    assert sender.stats()["sent"] == 10
    assert batch_sizes(server.requests("events")) == [10, 10]


def test_an_endpoint_that_resets_connections_ends_in_counted_drops(server: AmplitudeStandIn,
                                                                   session: requests.Session) -> None:
    server.add_fault("events", action="close", times=None)
    clock = ManualClock()
    sender = make_sender(session, server.events_url, clock=clock, max_retries=1)
    sender.start()
    for n in range(10):
        sender.enqueue(Item(n))
    assert wait_for(lambda: clock.sleepers == 1 and clock.next_deadline() == pytest.approx(0.5))
    clock.advance(0.5)
    assert wait_for(lambda: sender.stats()["dropped"] == {"max_retries": 10})
    sender.stop(5)
    assert server.events == []


# ----- odd values in events ----------------------------------------------------------------------


def test_odd_property_values_cost_only_their_own_event(server: AmplitudeStandIn, session: requests.Session) -> None:
    outcomes: List[Outcome] = []
    sender = make_sender(session, server.events_url, outcomes)
    odd: Dict[int, Item] = {
        1: Item(1, event_properties={"ratio": float("nan")}),           # JSON cannot carry NaN: dropped alone
        2: Item(2, event_properties={"raw": b"\x00\xff", "when": datetime.datetime(2026, 1, 2, 3, 4, 5)}),
        3: Item(3, event_properties={"s": "a\udc80b", "pair": "\ud83d\ude00"}, user_id="user-\ud800"),
        4: Item(4, event_properties={"big": "x" * 1_100_000}),          # over 1 MB alone: dropped alone
        5: Item(5, event_properties={"inf": float("-inf")}),
    }
    for n in range(10):
        assert sender.enqueue(odd.get(n) or Item(n)) is True
    sender.start()
    sender.stop(5)
    stats = sender.stats()
    assert stats["dropped"] == {"build_error": 2, "too_large": 1}
    assert stats["sent"] == 7 == len(server.events)
    by_id = {e["insert_id"]: e for e in server.events}
    assert by_id["id-2"]["event_properties"] == {"raw": "b'\\x00\\xff'", "when": "2026-01-02 03:04:05"}
    # lone surrogates travel as \uXXXX escapes: valid JSON and UTF-8, the value round-trips
    assert by_id["id-3"]["event_properties"] == {"s": "a\udc80b", "pair": "\U0001f600"}
    assert by_id["id-3"]["user_id"] == "user-\ud800"
    assert sorted(o[0] for o in outcomes if o[1] != 200) == ["id-1", "id-4", "id-5"]


class Broken:
    """An item whose event cannot even be built."""

    def build(self) -> Dict[str, Any]:
        raise RuntimeError("broken item")


class BrokenJson(Item):
    def to_json(self) -> Tuple[str, str]:
        raise KeyError("no json")


def test_items_that_raise_while_building_are_counted_not_raised(server: AmplitudeStandIn,
                                                                session: requests.Session) -> None:
    outcomes: List[Outcome] = []
    sender = make_sender(session, server.events_url, outcomes)
    for n in range(8):
        sender.enqueue(Item(n))
    sender.enqueue(Broken())
    sender.enqueue(BrokenJson(9))
    sender.start()
    sender.stop(5)
    assert sender.stats()["dropped"] == {"build_error": 2}
    assert sender.stats()["sent"] == 8
    # the callback hears of the one that can still be built as a dict
    assert [o for o in outcomes if o[1] == 0] == [("id-9", 0, "event could not be encoded: KeyError: 'no json'")]
