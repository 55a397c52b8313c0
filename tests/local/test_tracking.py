"""Tracking end to end: client -> stand-in, bursts, threads, faults, shutdown and exit.

Only the public API is used. Retries wait on the client's clock
(``LocalEvaluationConfig(clock=...)``): a ``ManualClock`` that a helper thread fast-forwards
whenever a worker waits, so backoff costs no real time.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import textwrap
import threading
from typing import Any, Dict, Iterator, List, Optional

import pytest

from amplitude_experiment import (
    AssignmentConfig,
    EvaluateOptions,
    ExposureConfig,
    LocalEvaluationClient,
    LocalEvaluationConfig,
    User,
)
from amplitude_experiment.testing import AmplitudeStandIn, ManualClock

EXPERIMENT = {
    "key": "exp",
    "metadata": {"flagType": "experiment", "flagVersion": 5, "experimentKey": "exp-5"},
    "variants": {"control": {"key": "control", "value": "control"},
                 "treatment": {"key": "treatment", "value": "treatment"},
                 "off": {"key": "off", "metadata": {"default": True}}},
    "segments": [{"metadata": {"segmentName": "All Other Users"},
                  "bucket": {"selector": ["context", "user", "device_id"], "salt": "s",
                             "allocations": [{"range": [0, 100], "distributions": [
                                 {"variant": "control", "range": [0, 21474837]},
                                 {"variant": "treatment", "range": [21474837, 42949673]}]}]},
                  "variant": "off"}],
}


@pytest.fixture
def server() -> Iterator[AmplitudeStandIn]:
    with AmplitudeStandIn(flags=[EXPERIMENT]) as stand_in:
        yield stand_in


@contextlib.contextmanager
def fast_forward(clock: ManualClock) -> Iterator[None]:
    """Advance ``clock`` to the next waiter's deadline whenever something waits on it."""
    done = threading.Event()

    def run() -> None:
        while not done.is_set():
            due = clock.next_deadline()
            if due is None or due > 3600:  # pollers waiting for their interval: leave them be
                done.wait(0.001)
            else:
                clock.advance(due)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(5)


def make_client(server: AmplitudeStandIn, exposure: bool = False, clock: Optional[ManualClock] = None,
                **assignment: Any) -> LocalEvaluationClient:
    assignment.setdefault("server_url", server.url + "/2/httpapi")
    config = LocalEvaluationConfig(
        server_url=server.url,
        flag_config_polling_interval_millis=3_600_000,
        assignment_config=AssignmentConfig(api_key="analytics-key", **assignment),
        exposure_config=ExposureConfig(api_key="analytics-key", server_url=server.url + "/2/httpapi")
        if exposure else None,
        **({} if clock is None else {"clock": clock}),
    )
    return LocalEvaluationClient("server-key", config)


def assert_exactly_once(server: AmplitudeStandIn, expected: int) -> None:
    accepted = server.accepted_insert_ids()
    assert len(accepted) == expected
    assert len(set(accepted)) == expected


def test_burst_of_distinct_users_all_delivered_once(server: AmplitudeStandIn) -> None:
    n = 20_000
    client = make_client(server)
    client.start()
    for i in range(n):
        client.evaluate_v2(User(user_id=f"user-{i:06d}", device_id=f"device-{i:06d}"))
    client.stop(30)
    assert_exactly_once(server, n)
    stats = client.stats()
    assert stats["assignment"] == {"evaluated": n, "tracked": n, "deduplicated": 0, "skipped": {}}
    assert stats["events"]["sent"] == n and stats["events"]["dropped"] == {}


def test_threads_evaluating_same_and_different_users(server: AmplitudeStandIn) -> None:
    client = make_client(server)
    client.start()

    def work(thread: int) -> None:
        for i in range(500):
            client.evaluate_v2(User(user_id="shared-user", device_id="shared-device"))
            client.evaluate_v2(User(user_id=f"user-{thread}-{i}", device_id=f"device-{thread}-{i}"))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    client.stop(30)
    assert_exactly_once(server, 8 * 500 + 1)
    assert client.stats()["assignment"]["deduplicated"] == 8 * 500 - 1


@pytest.mark.parametrize(
    "fault",
    [
        dict(status=503, times=3),
        dict(status=429, times=2, headers={"Retry-After": "0"}),
        dict(action="close", times=2),
        dict(action="hang", delay=0.6, times=1),
    ],
)
def test_faults_lose_nothing(server: AmplitudeStandIn, fault: Dict[str, Any]) -> None:
    # design.md §3: 429, 5xx and network errors are retried with backoff; insert_ids make resending safe
    clock = ManualClock()
    client = make_client(server, flush_queue_size=50, clock=clock)
    with fast_forward(clock):
        client.start()
        server.add_fault("events", **fault)
        for i in range(500):
            client.evaluate_v2(User(user_id=f"user-{i:05d}", device_id=f"device-{i:05d}"))
        # No deadline: fast_forward jumps the clock to every waiter's deadline, a stop bound included.
        client.stop(None)
    assert_exactly_once(server, 500)
    assert client.stats()["events"]["retried"] >= 1


def test_invalid_events_are_dropped_with_a_reason_and_the_rest_delivered(server: AmplitudeStandIn) -> None:
    # design.md §3: 400 events_with_invalid_id_lengths -> drop exactly those, resend the rest
    outcomes: List[Any] = []
    client = make_client(server, callback=lambda e, code, message: outcomes.append((e["user_id"], code)))
    client.start()
    client.evaluate_v2(User(user_id="abc", device_id="device-1"))  # user_id shorter than 5
    for i in range(9):
        client.evaluate_v2(User(user_id=f"user-{i:05d}"))
    client.stop(10)
    assert_exactly_once(server, 9)
    assert ("abc", 400) in outcomes and len(outcomes) == 10
    assert client.stats()["events"]["dropped"] == {"invalid_id_length": 1}


def test_min_id_length_option_lets_short_ids_through(server: AmplitudeStandIn) -> None:
    client = make_client(server, min_id_length=1)
    client.start()
    client.evaluate_v2(User(user_id="ab"))
    client.stop(10)
    assert [e["user_id"] for e in server.events] == ["ab"]
    assert server.requests("events")[0].json()["options"] == {"min_id_length": 1}


def test_exposure_tracking_through_options_and_explicitly(server: AmplitudeStandIn) -> None:
    client = make_client(server, exposure=True)
    client.start()
    user = User(user_id="user-00001", device_id="device-7")
    variants = client.evaluate_v2(user, options=EvaluateOptions(tracks_exposure=True))
    client.evaluate_v2(user, options=EvaluateOptions(tracks_exposure=True))
    assert client.track_exposure(user, "exp", variants["exp"]) is False  # same user, flag, variant, day
    assert client.track_exposure(user, "other-flag", "on", experiment_key="run-2") is True
    client.stop(10)
    exposures = [e["event_properties"] for e in server.events if e["event_type"] == "$exposure"]
    assert exposures == [
        {"flag_key": "exp", "variant": variants["exp"].key, "experiment_key": "exp-5"},
        {"flag_key": "other-flag", "variant": "on", "experiment_key": "run-2"},
    ]
    assert [e["event_type"] for e in server.events].count("[Experiment] Assignment") == 1


def test_evaluation_before_start_tracks_nothing_and_is_counted(server: AmplitudeStandIn) -> None:
    # design.md §5: no event when the result is empty; count it
    client = make_client(server)
    client.evaluate_v2(User(user_id="user-00001"))  # no flags yet: empty result, nothing to track
    client.start()
    client.evaluate_v2(User(user_id="user-00001"))
    client.stop(10)
    assert len(server.events) == 1
    assert client.stats()["assignment"]["skipped"] == {"empty_result": 1}


def test_tracking_after_stop_is_counted_not_sent(server: AmplitudeStandIn) -> None:
    client = make_client(server)
    client.start()
    client.stop(5)
    assert client.evaluate_v2(User(user_id="user-00001"))["exp"].key == "off"  # no device id to bucket
    assert client.stats()["events"]["dropped"] == {"stopped": 1}
    assert server.events == []


def test_interpreter_exit_flushes_a_client_that_was_never_stopped(server: AmplitudeStandIn) -> None:
    script = textwrap.dedent(f"""
        from amplitude_experiment import AssignmentConfig, LocalEvaluationClient, LocalEvaluationConfig, User
        config = LocalEvaluationConfig(
            server_url={server.url!r},
            assignment_config=AssignmentConfig(api_key="k", server_url={server.url + "/2/httpapi"!r},
                                               flush_interval_millis=3_600_000),
        )
        client = LocalEvaluationClient("server-key", config)
        client.start()
        for i in range(37):
            client.evaluate_v2(User(user_id=f"user-{{i:05d}}"))
        # no stop(): the atexit hook must deliver the 37 events
    """)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    assert_exactly_once(server, 37)
