"""Hostile and odd flag downloads (issue 15): never wipe good flags, never recurse into a crash.

The README promises that a garbage download keeps the last good flags, that ``evaluate_v2``
never raises and that ``start()`` recovers by itself. Each case below is one way a server (or
something in between) can break those promises. Polling runs on a ``ManualClock``.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Dict, Iterator, List

import pytest

from amplitude_experiment import FetchError, LocalEvaluationClient, LocalEvaluationConfig, User
from amplitude_experiment.testing import AmplitudeStandIn, ManualClock, wait_for

from ..evaluation.helpers import ON_OFF, targeted_flag

KEY = "server-hostile-deployment-key"
GOOD = [targeted_flag("alpha", ...), targeted_flag("beta", ...)]
INTERVAL = 30.0


@pytest.fixture
def server() -> Iterator[AmplitudeStandIn]:
    with AmplitudeStandIn(flags=GOOD, keepalive_interval=3600) as stand_in:
        yield stand_in


def make_client(server: AmplitudeStandIn, clock: ManualClock, **options: Any) -> LocalEvaluationClient:
    options.setdefault("flag_config_poller_request_timeout_millis", 2000)
    config = LocalEvaluationConfig(server_url=server.url, flag_config_polling_interval_millis=int(INTERVAL * 1000),
                                   clock=clock, **options)
    return LocalEvaluationClient(KEY, config)


def tick(clock: ManualClock) -> float:
    """Let the poller run once (at its next deadline) and wait until it sleeps again."""
    assert clock.wait_for_sleepers(1)
    due = clock.next_deadline()
    assert due is not None
    clock.advance(due)
    assert clock.wait_for_sleepers(1)
    return due


def keys(client: LocalEvaluationClient) -> Dict[str, str]:
    return {k: v.key for k, v in client.evaluate_v2(User(user_id="u1")).items()}


def flag_messages(caplog: pytest.LogCaptureFixture, level: int = logging.WARNING) -> List[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith("amplitude_experiment") and r.levelno == level]


# ----- 1. a download that parses but holds no usable flag ----------------------------------------

UNUSABLE = {
    "error object": ([{"error": "rate limited"}], "'#0': not an object with a string 'key'"),
    "empty object": ([{}], "'#0': not an object with a string 'key'"),
    "null": ([None], "'#0': not an object with a string 'key'"),
    "numbers": ([1, 2, 3], "'#0': not an object with a string 'key'"),
    "all malformed": ([{"key": "x", "variants": []}, {"key": "y", "segments": 5}], "'x': variants must be an object"),
}


@pytest.mark.parametrize("name", sorted(UNUSABLE))
def test_a_poll_with_no_usable_flag_keeps_the_good_flags_and_backs_off(
        server: AmplitudeStandIn, caplog: pytest.LogCaptureFixture, name: str) -> None:
    body, first_reason = UNUSABLE[name]
    clock = ManualClock()
    with make_client(server, clock) as client:
        assert keys(client) == {"alpha": "on", "beta": "on"}
        server.set_flags(body)
        with caplog.at_level(logging.WARNING, logger="amplitude_experiment"):
            assert tick(clock) == INTERVAL
        assert keys(client) == {"alpha": "on", "beta": "on"}  # before the fix: {} for every user
        assert client.snapshot_source == "network"
        # a failed download: the next attempt follows the backoff, not the interval
        assert 0.5 <= (clock.next_deadline() or 0) <= 1.0
        (warning,) = flag_messages(caplog)
        assert warning == (f"Flag refresh failed; keeping what was loaded and retrying in about 1 s: flag download "
                           f"from {server.url}/sdk/v2/flags was unusable: all {len(body)} flag entries were rejected "
                           f"(first: {first_reason})")
        server.set_flags(GOOD[:1])
        tick(clock)
        assert keys(client) == {"alpha": "on"}  # and it recovers with the next good config


def test_a_genuine_empty_array_is_applied(server: AmplitudeStandIn) -> None:
    clock = ManualClock()
    with make_client(server, clock) as client:
        server.set_flags([])
        tick(clock)
        assert keys(client) == {}  # every flag was deleted: that is a real config
        assert clock.next_deadline() == INTERVAL  # and not a failure


def test_a_stream_message_with_no_usable_flag_keeps_the_good_flags(server: AmplitudeStandIn,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    clock = ManualClock()
    config = LocalEvaluationConfig(server_url=server.url, stream_server_url=server.url, stream_updates=True,
                                   clock=clock)
    with LocalEvaluationClient(KEY, config) as client:
        assert client.snapshot_source == "stream"
        with caplog.at_level(logging.WARNING, logger="amplitude_experiment"):
            server.set_flags([{"error": "rate limited"}])
            assert wait_for(lambda: len(flag_messages(caplog)) == 1)
            server.set_flags([targeted_flag("gamma", ...)])
            assert wait_for(lambda: keys(client) == {"gamma": "on"})
    (warning,) = flag_messages(caplog)
    assert warning == (f"Ignoring an unusable flag message (26 bytes) from {server.url}/sdk/stream/v1/flags; "
                       "keeping the last good flags: all 1 flag entries were rejected (first: '#0': not an object "
                       "with a string 'key')")


def test_more_than_half_rejected_is_refused_while_good_flags_exist(server: AmplitudeStandIn,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    bad = {"key": "broken", "variants": {}, "segments": "nope"}
    clock = ManualClock()
    with make_client(server, clock) as client:
        # 2 of 3 entries rejected, and the current config has good flags: suspect, refused
        server.set_flags([targeted_flag("alpha", ...), bad, {"key": "broken-2", "segments": 1}])
        with caplog.at_level(logging.WARNING, logger="amplitude_experiment"):
            tick(clock)
        assert keys(client) == {"alpha": "on", "beta": "on"}
        assert "2 of 3 flag entries were rejected, more than half (first: 'broken': segments must be a list)" in \
            flag_messages(caplog)[0]
        # exactly half rejected: the good flags are applied, the bad one skipped with a warning naming it
        caplog.clear()
        server.set_flags([targeted_flag("gamma", ...), bad])
        with caplog.at_level(logging.WARNING, logger="amplitude_experiment"):
            tick(clock)
        assert keys(client) == {"gamma": "on"}
        assert flag_messages(caplog) == ["Skipping flag 'broken': segments must be a list"]


def test_a_mostly_broken_first_download_still_serves_its_good_flags(server: AmplitudeStandIn) -> None:
    # nothing better exists yet, so the usable part is better than no flags at all
    server.set_flags([targeted_flag("alpha", ...), {"key": "b1", "segments": 1}, {"key": "b2", "segments": 1}])
    with make_client(server, ManualClock()) as client:
        assert keys(client) == {"alpha": "on"}


def test_one_bad_flag_among_good_ones_skips_only_that_flag(server: AmplitudeStandIn) -> None:
    server.set_flags(GOOD + [{"key": "bad", "variants": {"on": "not an object"}, "segments": []}])
    with make_client(server, ManualClock()) as client:
        assert keys(client) == {"alpha": "on", "beta": "on"}
        assert client.snapshot is not None and set(client.snapshot.flags.skipped) == {"bad"}


# ----- 2. no input reaches a RecursionError --------------------------------------------------------

def test_ten_megabytes_of_nested_arrays_at_start_is_a_fetch_error_and_the_poller_retries(
        server: AmplitudeStandIn) -> None:
    server.set_flags_raw(b"[" * 10_000_000)
    clock = ManualClock()
    client = make_client(server, clock)
    with pytest.raises(FetchError, match="nested too deeply"):  # before the fix: RecursionError, no poller
        client.start()
    server.set_flags(GOOD)
    assert 0.5 <= tick(clock) <= 1.0  # the background retry, after a backoff wait
    assert keys(client) == {"alpha": "on", "beta": "on"}
    client.stop()


def deep(depth: int) -> Any:
    value: Any = "bottom"
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


def test_a_payload_nested_600_deep_can_be_read(server: AmplitudeStandIn) -> None:
    payload = deep(600)
    variants = {"on": {"key": "on", "payload": payload}, "off": {"key": "off"}}
    server.set_flags([targeted_flag("deep", ..., variants=variants)])
    with make_client(server, ManualClock()) as client:
        variant = client.evaluate_v2(User(user_id="u1"))["deep"]
        copy = variant.payload  # before the fix: RecursionError
        node, depth = copy, 0
        while not isinstance(node, str):
            node = node["k"] if isinstance(node, dict) else node[0]
            depth += 1
        assert (node, depth) == ("bottom", 600)
        copy[0] = "changed"  # the outermost level (600 is even) is a list; this is the caller's copy
        assert client.evaluate_v2(User(user_id="u1"))["deep"].payload[0] != "changed"


# ----- garbage bodies ------------------------------------------------------------------------------

GARBAGE = {
    "not json": b"not json at all",
    "html": b"<html><body>502 Bad Gateway</body></html>",
    "truncated": json.dumps(GOOD).encode()[:-7],
    "object": b'{"flags": []}',
    "huge": b"x" * 5_000_000,
    "invalid utf-8": b'[{"key": "\xff"}]',
}


@pytest.mark.parametrize("name", sorted(GARBAGE))
def test_garbage_first_download_is_a_fetch_error(server: AmplitudeStandIn, name: str) -> None:
    server.set_flags_raw(GARBAGE[name])
    client = make_client(server, ManualClock())
    with pytest.raises(FetchError, match="was unusable: flag configs"):
        client.start()
    assert keys(client) == {}
    client.stop()


@pytest.mark.parametrize("name", sorted(GARBAGE))
def test_garbage_poll_keeps_the_good_flags(server: AmplitudeStandIn, name: str) -> None:
    clock = ManualClock()
    with make_client(server, clock) as client:
        server.set_flags_raw(GARBAGE[name])
        tick(clock)
        assert keys(client) == {"alpha": "on", "beta": "on"}


# ----- 6 (flags part). odd but valid flags ---------------------------------------------------------

@pytest.mark.parametrize("segments", ["missing", None])
def test_a_flag_without_segments_is_accepted_with_a_warning_naming_it(
        server: AmplitudeStandIn, caplog: pytest.LogCaptureFixture, segments: Any) -> None:
    flag: Dict[str, Any] = {"key": "hollow", "variants": ON_OFF}
    if segments != "missing":
        flag["segments"] = segments
    server.set_flags(GOOD + [flag])
    with caplog.at_level(logging.WARNING, logger="amplitude_experiment"):
        with make_client(server, ManualClock()) as client:
            assert keys(client) == {"alpha": "on", "beta": "on"}  # no variant, and no error
            assert client.snapshot is not None and "hollow" in client.snapshot.flags.flags
    assert flag_messages(caplog) == ["flag 'hollow' has no segments (missing or null); it yields no variant"]


def test_dependency_cycles_leave_the_other_flags_working(server: AmplitudeStandIn) -> None:
    server.set_flags(GOOD + [targeted_flag("c1", ..., dependencies=["c2"]),
                             targeted_flag("c2", ..., dependencies=["c1"])])
    with make_client(server, ManualClock()) as client:
        assert keys(client) == {"alpha": "on", "beta": "on"}
        assert client.evaluate_v2(User(user_id="u1"), ["c1", "alpha"]).keys() == {"alpha"}


def test_a_hundred_thousand_unknown_flag_keys(server: AmplitudeStandIn) -> None:
    wanted = [f"unknown-{i}" for i in range(100_000)]
    with make_client(server, ManualClock()) as client:
        assert client.evaluate_v2(User(user_id="u1"), wanted) == {}
        assert set(client.evaluate_v2(User(user_id="u1"), wanted + ["beta"])) == {"beta"}


# ----- the deployment key stays secret ------------------------------------------------------------

def test_a_redirect_does_not_forward_the_deployment_key(server: AmplitudeStandIn) -> None:
    with AmplitudeStandIn(flags=GOOD) as elsewhere:
        server.add_fault("flags", status=302, times=None, headers={"Location": elsewhere.url + "/sdk/v2/flags?v=0"})
        with make_client(server, ManualClock()) as client:
            assert keys(client) == {"alpha": "on", "beta": "on"}
        assert server.requests("flags")[0].header("Authorization") == f"Api-Key {KEY}"
        (followed,) = elsewhere.requests("flags")
        assert followed.header("Authorization") is None


@pytest.mark.parametrize("fault", [dict(status=401), dict(status=403), dict(status=500), dict(action="close"),
                                   dict(action="garbage"), dict(status=200, body=[{"error": "rate limited"}])])
def test_the_key_is_never_in_a_log_line_or_an_exception(server: AmplitudeStandIn, caplog: pytest.LogCaptureFixture,
                                                        fault: Dict[str, Any]) -> None:
    server.add_fault("flags", times=None, **fault)
    clock = ManualClock()
    client = make_client(server, clock, debug=True)
    with caplog.at_level(logging.DEBUG, logger="amplitude_experiment"):
        with pytest.raises(FetchError) as caught:
            client.start()
        tick(clock)
        tick(clock)
    client.stop()
    texts = [str(caught.value), repr(caught.value), str(caught.value.__cause__)]
    texts += [r.getMessage() for r in caplog.records] + [caplog.text]
    assert caplog.records and all(KEY not in text for text in texts)


@pytest.mark.parametrize("status", [401, 403])
def test_a_rejected_key_says_so_and_names_the_url(server: AmplitudeStandIn, caplog: pytest.LogCaptureFixture,
                                                  status: int) -> None:
    # issue 10 point 7: the warning names the URL, the status and what happens next
    clock = ManualClock()
    with make_client(server, clock) as client:
        server.add_fault("flags", status=status, times=None)
        with caplog.at_level(logging.WARNING, logger="amplitude_experiment"):
            tick(clock)
        assert keys(client) == {"alpha": "on", "beta": "on"}
    assert flag_messages(caplog) == [
        f"Flag refresh failed; keeping what was loaded and retrying in about 1 s: flag download from "
        f"{server.url}/sdk/v2/flags returned HTTP {status}: the deployment key was rejected (check that it is a "
        "server deployment key of this project)"]
