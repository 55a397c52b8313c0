"""The client with stream_updates=True: stream first, polling while it is down, bounded start/stop.

Time runs on a ``ManualClock`` (``config.clock``): the poller, the stream's backoff, its
keep-alive watchdog and ``start()``'s wait for the stream all wait on it, so no test sleeps.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Iterator, List

import pytest

from amplitude_experiment import LocalEvaluationClient, LocalEvaluationConfig, User
from amplitude_experiment.testing import AmplitudeStandIn, ManualClock, wait_for

from ..evaluation.helpers import targeted_flag

FLAGS = [targeted_flag("alpha", ...)]
INTERVAL = 5.0  # polling interval, seconds of clock time
KEEPALIVE = 17.0  # design.md §3: a keep-alive at least every ~17 s


@pytest.fixture
def server() -> Iterator[AmplitudeStandIn]:
    with AmplitudeStandIn(flags=FLAGS, keepalive_interval=3600) as stand_in:  # keep-alives only when we say
        yield stand_in


def make_client(server: AmplitudeStandIn, clock: ManualClock, **options: Any) -> LocalEvaluationClient:
    options.setdefault("flag_config_polling_interval_millis", int(INTERVAL * 1000))
    options.setdefault("stream_keepalive_timeout_millis", int(KEEPALIVE * 1000))
    config = LocalEvaluationConfig(server_url=server.url, stream_server_url=server.url, stream_updates=True,
                                   clock=clock, **options)
    return LocalEvaluationClient("server-key", config)


def flag_keys(client: LocalEvaluationClient) -> set:
    return set(client.evaluate_v2(User(user_id="user-1")))


def start_in_background(client: LocalEvaluationClient) -> Callable[[], None]:
    """Run ``client.start()`` on a thread (it waits on the manual clock); returns a join."""
    errors: List[BaseException] = []

    def run() -> None:
        try:
            client.start()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()

    def join() -> None:
        thread.join(5)
        assert not thread.is_alive() and errors == []

    return join


def advance_until(clock: ManualClock, predicate: Callable[[], bool], sleepers: int = 2, limit: float = 600) -> float:
    """Advance the clock deadline by deadline until ``predicate()`` holds; returns the clock time spent."""
    spent = 0.0
    while not predicate():
        assert clock.wait_for_sleepers(sleepers)
        due = clock.next_deadline()
        assert due is not None and spent + due <= limit, (spent, due)
        clock.advance(due)
        spent += due
        clock.wait_for_sleepers(sleepers, timeout=1.0)
    return spent


def test_stream_delivers_flags_and_updates_without_polling(server: AmplitudeStandIn) -> None:
    clock = ManualClock()
    with make_client(server, clock) as client:
        assert client.snapshot_source == "stream"
        assert flag_keys(client) == {"alpha"}
        server.set_flags(FLAGS + [targeted_flag("beta", ...)])
        assert wait_for(lambda: flag_keys(client) == {"alpha", "beta"})
        assert clock.wait_for_sleepers(2)  # the poller and the stream's keep-alive watchdog
        for _ in range(3):  # three polling intervals (15 s, within the keep-alive timeout) pass
            clock.advance(INTERVAL)
            assert clock.wait_for_sleepers(2)
    assert server.requests("flags") == []  # the healthy stream keeps polling idle
    assert len(server.requests("stream")) == 1


def test_silent_stream_falls_back_to_polling(server: AmplitudeStandIn) -> None:
    server.add_fault("stream", action="silent", times=None)
    clock = ManualClock()
    client = make_client(server, clock, stream_flag_conn_timeout=300)
    join = start_in_background(client)
    assert clock.wait_for_sleepers(2)  # start() waiting for the stream, and the watchdog
    clock.advance(0.3)  # stream_flag_conn_timeout passes without flags
    join()
    assert client.snapshot_source == "network"
    server.set_flags(FLAGS + [targeted_flag("beta", ...)])
    # The poller covers the dead stream: it refreshes at the interval.
    advance_until(clock, lambda: flag_keys(client) == {"alpha", "beta"})
    began = time.monotonic()
    client.stop(2)
    assert time.monotonic() - began < 2.5


def test_silent_stream_is_replaced_after_the_keepalive_timeout(server: AmplitudeStandIn) -> None:
    clock = ManualClock()
    with make_client(server, clock) as client:
        assert client.snapshot_source == "stream"
        server.add_fault("stream", action="silent", times=1)
        assert clock.wait_for_sleepers(2)
        clock.advance(KEEPALIVE - 1)
        assert clock.wait_for_sleepers(2)
        assert len(server.requests("stream")) == 1  # not yet: 16 s of silence is allowed
        clock.advance(1)  # 17 s without a byte: the watchdog ends the connection
        # reconnect after a backoff wait: the first attempt is silent, the second delivers again
        spent = advance_until(clock, lambda: len(server.requests("stream")) == 2)
        assert spent < INTERVAL  # only the stream's backoff wait passed, no polling interval
        # The poller covered the gap at once (on its own thread: it may answer after the reconnect).
        assert wait_for(lambda: server.requests("flags") != [])
        server.set_flags([targeted_flag("gamma", ...)])
        advance_until(clock, lambda: flag_keys(client) == {"gamma"}, limit=3 * KEEPALIVE)


def test_stream_drop_reconnects_and_polling_covers_the_gap(server: AmplitudeStandIn) -> None:
    clock = ManualClock()
    with make_client(server, clock) as client:
        assert clock.wait_for_sleepers(2)
        server.close_streams()
        assert wait_for(lambda: len(server.requests("flags")) == 1)  # the gap is polled at once
        server.set_flags([targeted_flag("gamma", ...)])
        advance_until(clock, lambda: len(server.requests("stream")) == 2)  # after the backoff wait
        assert wait_for(lambda: flag_keys(client) == {"gamma"})


def test_stop_interrupts_a_blocked_stream_read(server: AmplitudeStandIn) -> None:
    clock = ManualClock()
    client = make_client(server, clock)
    client.start()
    assert client.snapshot_source == "stream" and server.open_streams == 1
    began = time.monotonic()
    client.stop(1)
    assert time.monotonic() - began < 1.5
    assert wait_for(lambda: server.open_streams == 0)


def test_stream_error_at_start_polls_instead(server: AmplitudeStandIn) -> None:
    server.add_fault("stream", status=500, times=None)
    clock = ManualClock()
    client = make_client(server, clock, stream_flag_conn_timeout=1000)
    join = start_in_background(client)
    assert clock.wait_for_sleepers(2)  # start() waiting for the stream, and the stream's backoff
    clock.advance(1.0)
    join()
    assert client.snapshot_source == "network"
    assert flag_keys(client) == {"alpha"}
    client.stop()
