from __future__ import annotations

import base64
import json
import threading
import time
from typing import Any, Dict, Iterator, List, Optional

import pytest
import requests

from amplitude_experiment.testing import AmplitudeStandIn, wait_for

FLAG_A = {"key": "flag-a", "variants": {"on": {"key": "on", "value": "on"}}, "segments": []}
FLAG_B = {"key": "flag-b", "variants": {}, "segments": []}


def _compact(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


@pytest.fixture
def server() -> Iterator[AmplitudeStandIn]:
    with AmplitudeStandIn(flags=[FLAG_A]) as stand_in:
        yield stand_in


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s


def _post_events(
    session: requests.Session, server: AmplitudeStandIn, events: List[Dict[str, Any]], **extra: Any
) -> requests.Response:
    payload: Dict[str, Any] = {"api_key": "client-key", "events": events}
    payload.update(extra)
    return session.post(server.events_url, json=payload, timeout=5)


def _next_data(lines: Iterator[bytes]) -> bytes:
    """The next event's data line, checking the blank line that terminates the event."""
    data, terminator = next(lines), next(lines)
    assert terminator == b""
    return data


# ----- flags -----------------------------------------------------------------------------------


def test_flags_served_and_replaced(server: AmplitudeStandIn, session: requests.Session) -> None:
    r = session.get(server.url + "/sdk/v2/flags?v=0", timeout=5)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/json"
    assert r.json() == [FLAG_A]

    server.set_flags([FLAG_A, FLAG_B])
    assert session.get(server.url + "/sdk/v2/flags?v=0", timeout=5).json() == [FLAG_A, FLAG_B]

    server.set_flags_raw(b"{not json")
    assert session.get(server.url + "/sdk/v2/flags?v=0", timeout=5).content == b"{not json"

    recorded = server.requests("flags")
    assert len(recorded) == 3
    assert recorded[0].method == "GET"
    assert recorded[0].path == "/sdk/v2/flags"
    assert recorded[0].query == {"v": "0"}
    assert recorded[0].body == b""
    assert recorded[0].time <= recorded[1].time <= recorded[2].time
    assert server.requests("events") == []


def test_unknown_path_is_404_and_recorded(server: AmplitudeStandIn, session: requests.Session) -> None:
    r = session.get(server.url + "/nope", timeout=5)
    assert r.status_code == 404
    assert [req.route for req in server.requests()] == ["other"]


def test_deployment_key_required() -> None:
    with AmplitudeStandIn(flags=[FLAG_A], deployment_key="server-abc") as server, requests.Session() as s:
        assert s.get(server.url + "/sdk/v2/flags?v=0", timeout=5).status_code == 401
        bad = {"Authorization": "Api-Key wrong"}
        assert s.get(server.url + "/sdk/v2/flags?v=0", headers=bad, timeout=5).status_code == 401
        good = {"Authorization": "Api-Key server-abc"}
        r = s.get(server.url + "/sdk/v2/flags?v=0", headers=good, timeout=5)
        assert (r.status_code, r.json()) == (200, [FLAG_A])
        assert s.get(server.url + "/sdk/stream/v1/flags", timeout=5).status_code == 401
        assert server.requests("flags")[2].header("authorization") == "Api-Key server-abc"


def test_cohort_credentials_required() -> None:
    with AmplitudeStandIn(cohort_api_key="k", cohort_secret_key="s") as server, requests.Session() as s:
        server.set_cohort("c1", ["u1"], last_modified=10)
        url = server.url + "/sdk/v1/cohort/c1?maxCohortSize=10"
        assert s.get(url, timeout=5).status_code == 401
        assert s.get(url, auth=("k", "wrong"), timeout=5).status_code == 401
        assert s.get(url, auth=("k", "s"), timeout=5).status_code == 200
        expected = "Basic " + base64.b64encode(b"k:s").decode()
        assert server.requests("cohort")[2].headers["Authorization"] == expected


# ----- stream ----------------------------------------------------------------------------------


def test_stream_initial_update_and_keepalive(session: requests.Session) -> None:
    with AmplitudeStandIn(flags=[FLAG_A], keepalive_interval=0.05) as server:
        with session.get(server.url + "/sdk/stream/v1/flags", stream=True, timeout=5) as r:
            assert r.status_code == 200
            assert r.headers["Content-Type"] == "text/event-stream"
            lines = r.iter_lines()
            assert _next_data(lines) == b"data: " + _compact([FLAG_A])
            assert server.open_streams == 1

            server.set_flags([FLAG_B])
            # Keep-alives may come before the update; wait for one after it too.
            seen_update = False
            while True:
                data = _next_data(lines)
                if data == b"data:  ":
                    if seen_update:
                        break
                else:
                    assert data == b"data: " + _compact([FLAG_B])
                    seen_update = True
        assert wait_for(lambda: server.open_streams == 0)


def test_close_streams_ends_stream(server: AmplitudeStandIn, session: requests.Session) -> None:
    with session.get(server.url + "/sdk/stream/v1/flags", stream=True, timeout=5) as r:
        lines = r.iter_lines()
        assert _next_data(lines) == b"data: " + _compact([FLAG_A])
        server.close_streams()
        assert list(lines) == []
    assert wait_for(lambda: server.open_streams == 0)
    assert len(server.requests("stream")) == 1


def test_client_disconnect_is_noticed(server: AmplitudeStandIn, session: requests.Session) -> None:
    with session.get(server.url + "/sdk/stream/v1/flags", stream=True, timeout=5) as r:
        lines = r.iter_lines()  # kept: a discarded line iterator closes the connection at once
        _next_data(lines)
        assert server.open_streams == 1
    # Default 15 s keep-alive: the server must notice the hang-up without writing to the socket.
    assert wait_for(lambda: server.open_streams == 0, timeout=2)


def test_raw_multiline_flags_are_framed_per_line(server: AmplitudeStandIn, session: requests.Session) -> None:
    with session.get(server.url + "/sdk/stream/v1/flags", stream=True, timeout=5) as r:
        lines = r.iter_lines()
        _next_data(lines)
        server.set_flags_raw(b"line1\nline2")
        assert [next(lines) for _ in range(3)] == [b"data: line1", b"data: line2", b""]
    assert server.requests("stream")[0].path == "/sdk/stream/v1/flags"


# ----- cohorts ---------------------------------------------------------------------------------


def test_cohort_download_responses(server: AmplitudeStandIn, session: requests.Session) -> None:
    server.set_cohort("c1", ["a", "b", "c"], group_type="org", last_modified=1000)
    base = server.url + "/sdk/v1/cohort/"

    r = session.get(base + "c1?maxCohortSize=3", timeout=5)
    assert r.status_code == 200
    assert r.json() == {
        "cohortId": "c1",
        "groupType": "org",
        "groupTypeId": 0,
        "lastModified": 1000,
        "size": 3,
        "memberIds": ["a", "b", "c"],
    }
    assert session.get(base + "c1?maxCohortSize=3&lastModified=999", timeout=5).status_code == 200

    for last_modified in (1000, 1001):
        r = session.get(base + "c1?maxCohortSize=3&lastModified=%d" % last_modified, timeout=5)
        assert (r.status_code, r.content) == (204, b"")

    assert session.get(base + "c1?maxCohortSize=2", timeout=5).status_code == 413
    assert session.get(base + "missing?maxCohortSize=2", timeout=5).status_code == 404
    assert len(server.requests("cohort")) == 6


def test_cohort_last_modified_defaults_increase(server: AmplitudeStandIn, session: requests.Session) -> None:
    server.set_cohort("c1", ["a"])
    first = session.get(server.url + "/sdk/v1/cohort/c1?maxCohortSize=10", timeout=5).json()["lastModified"]
    server.set_cohort("c1", ["a", "b"])
    second = session.get(server.url + "/sdk/v1/cohort/c1?maxCohortSize=10", timeout=5).json()
    assert second["lastModified"] > first
    assert second["memberIds"] == ["a", "b"]


# ----- ingestion (Amplitude HTTP V2 API / Batch Event Upload as documented; design.md §3) ------------

E1 = {"event_type": "$exposure", "user_id": "user-1", "insert_id": "i1"}
E2 = {"event_type": "$exposure", "device_id": "device-1", "insert_id": "i2"}


def test_events_url_is_the_full_ingestion_url(server: AmplitudeStandIn) -> None:
    assert server.events_url == server.url + "/2/httpapi"
    assert server.batch_url == server.url + "/batch"


def test_ingestion_accepts_and_records(server: AmplitudeStandIn, session: requests.Session) -> None:
    # HTTP V2 200: {code, events_ingested, payload_size_bytes, server_upload_time}
    r = _post_events(session, server, [E1, E2])
    assert r.status_code == 200
    body = r.json()
    assert isinstance(body.pop("server_upload_time"), int)
    assert body == {"code": 200, "events_ingested": 2, "payload_size_bytes": len(r.request.body or b"")}
    r2 = session.post(server.batch_url, json={"api_key": "k", "events": [E1]}, timeout=5)
    assert r2.status_code == 200

    assert server.wait_for_events(3, timeout=1)
    assert server.events == [E1, E2, E1]
    assert server.accepted_insert_ids() == ["i1", "i2", "i1"]
    assert server.requests("events")[0].json()["api_key"] == "client-key"

    server.reset_records()
    assert (server.events, server.requests(), server.accepted_insert_ids()) == ([], [], [])


def test_request_level_400s(server: AmplitudeStandIn, session: requests.Session) -> None:
    # 400 with missing_field (a string) rejects the request as such.
    r = session.post(server.events_url, data=b"not json", timeout=5)
    assert (r.status_code, r.json()) == (400, {"code": 400, "error": "Invalid JSON request body"})
    r = session.post(server.events_url, json={"events": [E1]}, timeout=5)
    assert (r.status_code, r.json()) == (
        400, {"code": 400, "error": "Request missing required field", "missing_field": "api_key"})
    r = session.post(server.events_url, json={"api_key": "k"}, timeout=5)
    assert (r.status_code, r.json()) == (
        400, {"code": 400, "error": "Request missing required field", "missing_field": "events"})
    assert server.events == []


def test_wrong_api_key_is_an_invalid_api_key_400(session: requests.Session) -> None:
    with AmplitudeStandIn(api_key="right-key") as server:
        r = _post_events(session, server, [E1])
        assert (r.status_code, r.json()) == (400, {"code": 400, "error": "Invalid API key: client-key"})
        ok = session.post(server.events_url, json={"api_key": "right-key", "events": [E1]}, timeout=5)
        assert ok.status_code == 200
        assert server.events == [E1]


def test_short_ids_reject_the_whole_request_naming_them(server: AmplitudeStandIn,
                                                        session: requests.Session) -> None:
    # HTTP V2: user_id/device_id must have 5+ characters unless options.min_id_length says otherwise;
    # the whole request is rejected: 400 with events_with_invalid_id_lengths (field -> indexes).
    events = [
        {"event_type": "ok", "user_id": "user-1"},
        {"event_type": "short user", "user_id": "u1", "device_id": "device-1"},
        {"event_type": "short device", "device_id": "d1"},
        {"event_type": "both short", "user_id": "u", "device_id": "d"},
    ]
    r = _post_events(session, server, events)
    assert (r.status_code, r.json()) == (400, {
        "code": 400,
        "error": "Invalid id length for user_id or device_id",
        "events_with_invalid_id_lengths": {"user_id": [1, 3], "device_id": [2, 3]},
    })
    assert server.events == []

    # The request's own option overrides the default of 5.
    r = _post_events(session, server, events[:3], options={"min_id_length": 2})
    assert r.status_code == 200
    assert server.events == events[:3]


def test_missing_and_invalid_fields_name_their_events(server: AmplitudeStandIn,
                                                      session: requests.Session) -> None:
    # An event needs event_type and a user_id or device_id: events_with_missing_fields;
    # wrongly typed fields: events_with_invalid_fields. All lists in one 400; nothing ingested.
    events: List[Dict[str, Any]] = [
        {"event_type": "ok", "user_id": "user-1"},
        {"user_id": "user-1"},
        {"event_type": "no ids"},
        {"event_type": "null ids", "user_id": None, "device_id": None},
        {"event_type": "bad time", "user_id": "user-1", "time": "yesterday"},
        {"event_type": "short", "user_id": "u"},
        {"event_type": 7, "device_id": "device-1", "event_properties": [1]},
    ]
    r = _post_events(session, server, events)
    assert (r.status_code, r.json()) == (400, {
        "code": 400,
        "error": "Request missing required field",
        "events_with_missing_fields": {"event_type": [1], "user_id": [2, 3]},
        "events_with_invalid_fields": {"time": [4], "event_type": [6], "event_properties": [6]},
        "events_with_invalid_id_lengths": {"user_id": [5]},
    })
    assert server.events == []


def test_batch_endpoint_removes_short_ids_instead(server: AmplitudeStandIn, session: requests.Session) -> None:
    # Batch Event Upload: a too-short id is removed from the event; an event left without ids is a 400.
    r = session.post(server.batch_url, json={"api_key": "k", "events": [
        {"event_type": "a", "user_id": "u1", "device_id": "device-1"}]}, timeout=5)
    assert r.status_code == 200
    assert server.events == [{"event_type": "a", "device_id": "device-1"}]
    r = session.post(server.batch_url, json={"api_key": "k", "events": [{"event_type": "a", "user_id": "u1"}]},
                     timeout=5)
    assert (r.status_code, r.json()) == (400, {
        "code": 400, "error": "Request missing required field", "events_with_missing_fields": {"user_id": [0]}})


def test_silenced_devices_and_insert_ids(server: AmplitudeStandIn, session: requests.Session) -> None:
    server.silence_devices(["device-1"])
    server.silence_insert_ids(["dup"])
    events = [E1, E2, {"event_type": "x", "user_id": "user-1", "insert_id": "dup"}]
    r = _post_events(session, server, events)
    assert (r.status_code, r.json()) == (400, {
        "code": 400, "error": "Events silenced", "silenced_events": [1, 2], "silenced_devices": ["device-1"]})
    assert server.events == []
    assert _post_events(session, server, [E1]).status_code == 200
    server.clear_limits()
    assert _post_events(session, server, events).status_code == 200
    assert server.accepted_insert_ids() == ["i1", "i1", "i2", "dup"]


def test_throttling_and_daily_quota_are_429s(server: AmplitudeStandIn, session: requests.Session) -> None:
    # 429: throttled_events (indexes), throttled_users/devices (id -> eps), exceeded_daily_quota_*.
    server.throttle(users=["user-1"], times=1)
    server.exceed_daily_quota(devices=["device-1"])
    events = [E1, E1, {"event_type": "x", "user_id": "user-2"}, E2]
    r = _post_events(session, server, events)
    assert (r.status_code, r.json()) == (429, {
        "code": 429, "error": "Too many requests for some devices and users", "eps_threshold": 30,
        "throttled_events": [0, 1, 3], "throttled_users": {"user-1": 2}, "throttled_devices": {},
        "exceeded_daily_quota_users": {}, "exceeded_daily_quota_devices": {"device-1": 1}})
    assert server.events == []
    # the throttle was for one request; the daily quota stays until cleared
    r = _post_events(session, server, events)
    assert r.status_code == 429 and r.json()["throttled_events"] == [3]
    assert _post_events(session, server, events[:3]).status_code == 200
    assert len(server.events) == 3


def test_limits_of_one_request(session: requests.Session) -> None:
    # HTTP V2: under 1 MB and at most 2000 events a request, else 413.
    with AmplitudeStandIn() as server:
        many: List[Dict[str, Any]] = [{"event_type": "x", "user_id": "user-1"}] * 2001
        r = _post_events(session, server, many)
        assert (r.status_code, r.json()) == (413, {"code": 413, "error": "Payload too large"})
        assert _post_events(session, server, many[:2000]).status_code == 200
        pad = {"pad": "x" * 1_000_000}
        big: List[Dict[str, Any]] = [{"event_type": "x", "user_id": "user-1", "event_properties": pad}]
        assert _post_events(session, server, big).status_code == 413
        r = session.post(server.batch_url, json={"api_key": "k", "events": big}, timeout=5)
        assert r.status_code == 200  # /batch accepts up to 20 MB
        assert len(server.events) == 2001


def test_payload_limit_can_be_lowered(session: requests.Session) -> None:
    with AmplitudeStandIn(max_payload_bytes=200) as server:
        small = _post_events(session, server, [E1])
        assert small.status_code == 200
        big = _post_events(session, server, [dict(E1, pad="x" * 200)])
        assert (big.status_code, big.json()) == (413, {"code": 413, "error": "Payload too large"})
        assert server.events == [E1]
        assert len(server.requests("events")) == 2


# ----- faults ----------------------------------------------------------------------------------


def test_fault_respond_is_consumed_in_order(server: AmplitudeStandIn, session: requests.Session) -> None:
    server.add_fault("flags", status=503)
    server.add_fault("flags", status=429, headers={"Retry-After": "2"}, body={"code": 429})
    url = server.url + "/sdk/v2/flags?v=0"
    first = session.get(url, timeout=5)
    assert (first.status_code, first.json()) == (503, {"code": 503, "error": "Service Unavailable"})
    second = session.get(url, timeout=5)
    assert (second.status_code, second.headers["Retry-After"], second.json()) == (429, "2", {"code": 429})
    assert session.get(url, timeout=5).status_code == 200
    assert len(server.requests("flags")) == 3


def test_fault_until_cleared_and_events_not_accepted(
    server: AmplitudeStandIn, session: requests.Session
) -> None:
    server.add_fault("events", status=500, times=None)
    for _ in range(3):
        assert _post_events(session, server, [E1]).status_code == 500
    server.clear_faults("events")
    assert _post_events(session, server, [E1]).status_code == 200
    assert server.events == [E1]
    assert len(server.requests("events")) == 4


def test_fault_close_drops_connection(server: AmplitudeStandIn, session: requests.Session) -> None:
    server.add_fault("events", action="close")
    with pytest.raises(requests.exceptions.ConnectionError):
        _post_events(session, server, [E1])
    assert server.events == []
    assert len(server.requests("events")) == 1
    assert _post_events(session, server, [E1]).status_code == 200


def test_fault_hang_times_out_client(server: AmplitudeStandIn, session: requests.Session) -> None:
    server.add_fault("cohort", action="hang", delay=0.5)
    with pytest.raises(requests.exceptions.ReadTimeout):
        session.get(server.url + "/sdk/v1/cohort/c1", timeout=(2, 0.1))
    assert len(server.requests("cohort")) == 1


def test_fault_garbage(server: AmplitudeStandIn, session: requests.Session) -> None:
    server.add_fault("flags", action="garbage")
    server.add_fault("flags", action="garbage", body=b"[{")
    url = server.url + "/sdk/v2/flags?v=0"
    first = session.get(url, timeout=5)
    assert (first.status_code, first.content) == (200, b"<html>not json")
    assert session.get(url, timeout=5).content == b"[{"
    assert session.get(url, timeout=5).json() == [FLAG_A]


def test_fault_respond_after_delay(server: AmplitudeStandIn, session: requests.Session) -> None:
    server.add_fault("flags", status=502, delay=0.1)
    started = time.monotonic()
    assert session.get(server.url + "/sdk/v2/flags?v=0", timeout=5).status_code == 502
    assert time.monotonic() - started >= 0.1


def test_fault_silent_stream_sends_headers_only() -> None:
    with AmplitudeStandIn(flags=[FLAG_A], keepalive_interval=0.01) as server, requests.Session() as s:
        server.add_fault("stream", action="silent")
        with s.get(server.url + "/sdk/stream/v1/flags", stream=True, timeout=(2, 0.1)) as r:
            assert r.status_code == 200
            assert r.headers["Content-Type"] == "text/event-stream"
            # Keep-alives would arrive every 10 ms if the stream were not silent (the read times out after 100).
            with pytest.raises(requests.exceptions.ConnectionError):
                next(r.iter_lines())
        # The fault was consumed: the next stream behaves normally.
        with s.get(server.url + "/sdk/stream/v1/flags", stream=True, timeout=5) as r:
            assert next(r.iter_lines()) == b"data: " + _compact([FLAG_A])


def test_standing_delay(server: AmplitudeStandIn, session: requests.Session) -> None:
    server.set_delay("flags", 0.1)
    started = time.monotonic()
    assert session.get(server.url + "/sdk/v2/flags?v=0", timeout=5).status_code == 200
    assert time.monotonic() - started >= 0.1
    server.set_delay("flags", 0)
    assert session.get(server.url + "/sdk/v2/flags?v=0", timeout=5).status_code == 200


def test_invalid_fault_arguments(server: AmplitudeStandIn) -> None:
    with pytest.raises(ValueError):
        server.add_fault("nope")
    with pytest.raises(ValueError):
        server.add_fault("flags", action="silent")
    with pytest.raises(ValueError):
        server.add_fault("flags", action="explode")
    with pytest.raises(ValueError):
        server.add_fault("flags", times=0)


# ----- lifecycle -------------------------------------------------------------------------------


def test_url_and_idempotent_stop() -> None:
    server = AmplitudeStandIn()
    with pytest.raises(RuntimeError):
        _ = server.url
    server.start()
    assert server.url.startswith("http://127.0.0.1:")
    server.stop()
    server.stop()
    with pytest.raises(RuntimeError):
        _ = server.url


def test_stop_is_prompt_with_open_stream(session: requests.Session) -> None:
    server = AmplitudeStandIn(flags=[FLAG_A]).start()
    with session.get(server.url + "/sdk/stream/v1/flags", stream=True, timeout=5) as r:
        lines = r.iter_lines()  # kept: a discarded line iterator would close the stream before stop()
        assert _next_data(lines) == b"data: " + _compact([FLAG_A])
        assert server.open_streams == 1
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < 2.0


def test_stop_is_prompt_with_hanging_handler_and_idle_connection(session: requests.Session) -> None:
    server = AmplitudeStandIn().start()
    # An idle keep-alive connection in the session's pool must not hold stop() up either.
    assert session.get(server.url + "/sdk/v2/flags?v=0", timeout=5).status_code == 200
    server.add_fault("flags", action="hang")  # no delay: hang until the server stops
    outcome: List[Optional[BaseException]] = []

    def call() -> None:
        try:
            with requests.get(server.url + "/sdk/v2/flags?v=0", timeout=10):
                outcome.append(None)
        except requests.RequestException as exc:
            outcome.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    assert wait_for(lambda: len(server.requests("flags")) == 2)
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 2.0
    caller.join(timeout=5)
    assert len(outcome) == 1 and isinstance(outcome[0], requests.exceptions.ConnectionError)
