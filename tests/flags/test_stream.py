"""FlagStream against the loopback stand-in: delivery, liveness, reconnection, backoff, stop."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from typing import Any, Callable, Iterator, List, Optional, Tuple

import pytest
import requests

from amplitude_experiment._backoff import Backoff
from amplitude_experiment.flags.decode import decode_flags
from amplitude_experiment.flags.stream import STREAM_PATH, FlagStream
from amplitude_experiment.testing import AmplitudeStandIn, ManualClock, wait_for
from amplitude_experiment.version import LIBRARY, USER_AGENT

KEY = "server-secret-deployment-key"
FLAGS_A = [{"key": "flag-a", "variants": {}, "segments": []}]
FLAGS_B = [{"key": "flag-b", "variants": {}, "segments": []}]
FAST = Backoff(0.01, 0.05)
KEEPALIVE = 17.0  # the watchdog's timeout in tests that drive it with a ManualClock (seconds of clock time)


class Recorder:
    """Collects on_flags and on_state_change calls from the stream thread."""

    def __init__(self, fail_first: int = 0) -> None:
        self.lock = threading.Lock()
        self.flags: List[List[Any]] = []
        self.raw: List[bytes] = []
        self.states: List[bool] = []
        self.fail_first = fail_first

    def on_flags(self, raw: bytes) -> None:
        flags = decode_flags(raw).flags  # raises FlagConfigError for an unusable message, as the updater does
        with self.lock:
            self.flags.append(flags)
            self.raw.append(raw)
            if len(self.flags) <= self.fail_first:
                raise RuntimeError("consumer bug")

    def on_state_change(self, up: bool) -> None:
        with self.lock:
            self.states.append(up)

    def count(self) -> int:
        with self.lock:
            return len(self.flags)


@pytest.fixture
def server() -> Iterator[AmplitudeStandIn]:
    with AmplitudeStandIn(FLAGS_A, keepalive_interval=0.05) as stand_in:
        yield stand_in


@pytest.fixture
def make_stream(session: requests.Session) -> Iterator[Callable[..., Tuple[FlagStream, Recorder]]]:
    streams: List[FlagStream] = []

    def make(url: str, recorder: Optional[Recorder] = None, key: str = KEY,
             **kwargs: Any) -> Tuple[FlagStream, Recorder]:
        recorder = recorder or Recorder()
        kwargs.setdefault("keepalive_timeout", 0.5)
        kwargs.setdefault("connect_timeout", 2.0)
        kwargs.setdefault("backoff", FAST)
        stream = FlagStream(session, url, key, recorder.on_flags, on_state_change=recorder.on_state_change,
                            **kwargs)
        streams.append(stream)
        return stream, recorder

    yield make
    for stream in streams:
        assert stream.stop(5.0)


def flag_records(caplog: pytest.LogCaptureFixture, level: int) -> List[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "amplitude_experiment.flags" and r.levelno == level]


# ----- delivery --------------------------------------------------------------------------------

def test_initial_flags_delivered(server: AmplitudeStandIn, make_stream: Any) -> None:
    stream, rec = make_stream(server.url)
    assert not stream.wait_first(0)
    stream.start()
    assert stream.running
    assert stream.wait_first(5)
    assert rec.flags == [FLAGS_A]
    assert rec.raw == [json.dumps(FLAGS_A, separators=(",", ":")).encode()]
    assert wait_for(lambda: stream.connected)
    assert rec.states == [True]
    assert (stream.connects, stream.messages, stream.failures) == (1, 1, 0)


def test_request_headers_exact(server: AmplitudeStandIn, make_stream: Any) -> None:
    stream, _ = make_stream(server.url + "/")  # a trailing slash does not double up
    stream.start()
    assert stream.wait_first(5)
    (request,) = server.requests("stream")
    assert (request.method, request.path, request.query) == ("GET", STREAM_PATH, {})
    assert request.header("Authorization") == f"Api-Key {KEY}"
    assert request.header("X-Amp-Exp-Library") == LIBRARY
    assert request.header("Accept") == "text/event-stream"
    assert request.header("User-Agent") == USER_AGENT


def test_update_delivered_on_the_same_connection(server: AmplitudeStandIn, make_stream: Any) -> None:
    stream, rec = make_stream(server.url)
    stream.start()
    assert stream.wait_first(5)
    server.set_flags(FLAGS_B)
    assert wait_for(lambda: rec.count() == 2)
    assert rec.flags == [FLAGS_A, FLAGS_B]
    assert stream.connects == 1
    assert len(server.requests("stream")) == 1


def test_multiline_message_is_rejoined(server: AmplitudeStandIn, make_stream: Any) -> None:
    stream, rec = make_stream(server.url)
    stream.start()
    assert stream.wait_first(5)
    pretty = json.dumps(FLAGS_B, indent=2).encode()
    assert b"\n" in pretty
    server.set_flags_raw(pretty)
    assert wait_for(lambda: rec.count() == 2)
    assert rec.raw[1] == pretty
    assert rec.flags[1] == FLAGS_B


def test_keepalives_keep_the_stream_alive(make_stream: Any) -> None:
    clock = ManualClock()
    with AmplitudeStandIn(FLAGS_A, keepalive_interval=0.01) as server:
        stream, rec = make_stream(server.url, keepalive_timeout=KEEPALIVE, clock=clock)
        stream.start()
        assert wait_for(lambda: rec.count() == 1)
        # Twice the keep-alive timeout passes on the watchdog's clock, a keep-alive between each step.
        for _ in range(4):
            seen = stream.keepalives
            assert wait_for(lambda seen=seen: stream.keepalives > seen)
            assert clock.wait_for_sleepers(1)  # the watchdog, fed again
            clock.advance(KEEPALIVE / 2)
        assert rec.flags == [FLAGS_A]
        assert (stream.connects, stream.failures) == (1, 0)
        assert len(server.requests("stream")) == 1
        assert stream.connected


def test_garbage_message_is_ignored(server: AmplitudeStandIn, make_stream: Any,
                                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, "amplitude_experiment.flags")
    stream, rec = make_stream(server.url)
    stream.start()
    assert stream.wait_first(5)
    server.set_flags_raw(b"<html>not json")
    assert wait_for(lambda: stream.rejected == 1)
    server.set_flags_raw(b'{"flags": []}')
    assert wait_for(lambda: stream.rejected == 2)
    server.set_flags(FLAGS_B)
    assert wait_for(lambda: rec.count() == 2)
    assert rec.flags == [FLAGS_A, FLAGS_B]
    assert (stream.connects, stream.messages, stream.failures) == (1, 4, 0)
    assert stream.connected and rec.states == [True]
    warnings = [r.getMessage() for r in flag_records(caplog, logging.WARNING)]
    assert len(warnings) == 2
    assert all(w.startswith(f"Ignoring an unusable flag message (14 bytes) from {stream.url}; keeping the last good "
                            "flags: flag configs are not valid JSON") or "must be a JSON array, got dict" in w
               for w in warnings)


def test_consumer_error_is_logged_and_the_stream_goes_on(server: AmplitudeStandIn, make_stream: Any,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    stream, rec = make_stream(server.url, Recorder(fail_first=1))
    stream.start()
    assert wait_for(lambda: rec.count() == 1)
    assert not stream.wait_first(0)  # a failed delivery is not a delivery
    assert not stream.connected
    server.set_flags(FLAGS_B)
    assert stream.wait_first(5)
    assert rec.flags == [FLAGS_A, FLAGS_B]
    assert stream.connects == 1
    assert any(r.exc_info for r in flag_records(caplog, logging.ERROR))


def test_state_callback_error_does_not_kill_the_thread(server: AmplitudeStandIn,
                                                       session: requests.Session) -> None:
    rec = Recorder()

    def broken(up: bool) -> None:
        raise RuntimeError("callback bug")

    stream = FlagStream(session, server.url, KEY, rec.on_flags, backoff=FAST, keepalive_timeout=0.5,
                        on_state_change=broken)
    stream.start()
    try:
        assert stream.wait_first(5)
        server.close_streams()
        assert wait_for(lambda: rec.count() == 2)
        assert stream.running
    finally:
        assert stream.stop(5)


# ----- reconnection ----------------------------------------------------------------------------

def test_silent_stream_is_dead_after_keepalive_timeout(server: AmplitudeStandIn, make_stream: Any,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "amplitude_experiment.flags")
    server.add_fault("stream", action="silent")
    clock = ManualClock()
    stream, rec = make_stream(server.url, keepalive_timeout=KEEPALIVE, clock=clock,
                              backoff=Backoff(1, 1, random_fn=lambda: 0.0))
    stream.start()
    assert clock.wait_for_sleepers(1)  # the watchdog of the silent connection
    clock.advance(KEEPALIVE - 0.5)
    assert clock.wait_for_sleepers(1)
    assert len(server.requests("stream")) == 1 and stream.failures == 0  # silence shorter than the timeout is fine
    clock.advance(0.5)  # KEEPALIVE seconds without a byte: the watchdog ends the connection
    assert wait_for(lambda: stream.failures == 1)
    assert clock.wait_for_sleepers(1) and clock.next_deadline() == 0.5  # the backoff wait before reconnecting
    assert len(server.requests("stream")) == 1
    clock.advance(0.5)
    assert wait_for(lambda: rec.count() == 1)
    assert rec.flags == [FLAGS_A]
    assert len(server.requests("stream")) == 2
    assert (stream.connects, stream.failures) == (2, 1)
    assert wait_for(lambda: rec.states == [False, True])
    (warning,) = flag_records(caplog, logging.WARNING)
    assert "no data" in warning.getMessage() and f"{KEEPALIVE:g} s" in warning.getMessage()
    assert any("recovered" in r.getMessage() for r in flag_records(caplog, logging.INFO))


def test_closed_stream_reconnects_and_gets_current_flags(server: AmplitudeStandIn, make_stream: Any,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "amplitude_experiment.flags")
    stream, rec = make_stream(server.url)
    stream.start()
    assert stream.wait_first(5)
    server.close_streams()
    assert wait_for(lambda: rec.count() == 2)
    assert rec.flags == [FLAGS_A, FLAGS_A]
    assert stream.connects == 2
    assert wait_for(lambda: server.open_streams == 1)
    server.set_flags(FLAGS_B)
    assert wait_for(lambda: rec.count() == 3)
    assert rec.flags[2] == FLAGS_B
    assert rec.states == [True, False, True]
    # A routine server-side close is not an outage.
    assert flag_records(caplog, logging.WARNING) == []
    assert any("closed by the server" in r.getMessage() for r in flag_records(caplog, logging.INFO))


def test_http_errors_retry_with_backoff(server: AmplitudeStandIn, make_stream: Any,
                                        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "amplitude_experiment.flags")
    server.add_fault("stream", status=500, times=3)
    stream, rec = make_stream(server.url)
    stream.start()
    assert stream.wait_first(5)
    assert len(server.requests("stream")) == 4
    assert (stream.connects, stream.failures, stream.consecutive_failures) == (1, 3, 0)
    assert rec.states == [False, True]
    (warning,) = flag_records(caplog, logging.WARNING)  # one per outage, not per attempt
    assert "HTTP 500" in warning.getMessage()
    infos = [r.getMessage() for r in flag_records(caplog, logging.INFO)]
    assert any("recovered after 3 failed attempts" in m for m in infos)


def test_persistent_errors_follow_the_backoff(server: AmplitudeStandIn, make_stream: Any) -> None:
    server.add_fault("stream", status=503, times=None)
    backoff = Backoff(1, 16, random_fn=lambda: 0.0)  # waits are exactly step/2: 0.5, 1, 2, 4, 8, 8, ...
    clock = ManualClock()
    stream, rec = make_stream(server.url, backoff=backoff, clock=clock)
    stream.start()
    for attempt in range(1, 8):
        assert wait_for(lambda attempt=attempt: stream.failures == attempt)
        assert clock.wait_for_sleepers(1)
        assert clock.next_deadline() == backoff.delay(attempt) == min(8, 2 ** (attempt - 2))
        assert len(server.requests("stream")) == attempt  # no attempt before the wait is over
        clock.advance(backoff.delay(attempt))
    assert wait_for(lambda: stream.failures == 8)
    assert rec.flags == [] and rec.states == [False]
    assert not stream.connected


def test_retry_after_is_honoured(server: AmplitudeStandIn, make_stream: Any) -> None:
    server.add_fault("stream", status=429, headers={"Retry-After": "30"})
    clock = ManualClock()
    stream, rec = make_stream(server.url, backoff=Backoff(0.01, 60), clock=clock)
    stream.start()
    assert wait_for(lambda: stream.failures == 1)
    assert clock.wait_for_sleepers(1)
    assert clock.next_deadline() == 30  # the server's wait, not the backoff's ~0.01 s
    clock.advance(29)
    assert clock.wait_for_sleepers(1)
    assert len(server.requests("stream")) == 1
    clock.advance(1)
    assert wait_for(lambda: rec.count() == 1)
    assert len(server.requests("stream")) == 2


def test_rejected_key_logs_the_status_not_the_key(make_stream: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, "amplitude_experiment.flags")
    with AmplitudeStandIn(FLAGS_A, deployment_key="the-right-key", keepalive_interval=0.05) as server:
        stream, rec = make_stream(server.url, key=KEY, auth_backoff=Backoff(0.01, 0.02))
        stream.start()
        assert wait_for(lambda: stream.failures >= 4)
        assert stream.stop(2)
    assert rec.flags == [] and not stream.wait_first(0)
    (error,) = flag_records(caplog, logging.ERROR)
    assert "HTTP 401" in error.getMessage()
    assert flag_records(caplog, logging.WARNING) == []
    assert all(KEY not in r.getMessage() for r in caplog.records)


def test_default_auth_backoff_is_capped_high(session: requests.Session) -> None:
    stream = FlagStream(session, "http://127.0.0.1:9", KEY, lambda body: None, backoff=FAST)
    assert stream.auth_backoff.cap >= 300 and stream.auth_backoff.base == FAST.base


def test_connection_refused_retries(make_stream: Any) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound but not listening: connections are refused
        stream, rec = make_stream(f"http://127.0.0.1:{port}")
        stream.start()
        assert wait_for(lambda: stream.failures >= 3)
        assert stream.connects == 0 and rec.states == [False]


# ----- lifecycle -------------------------------------------------------------------------------

def test_stop_interrupts_a_blocked_read(make_stream: Any) -> None:
    with AmplitudeStandIn(FLAGS_A, keepalive_interval=30) as server:
        stream, _ = make_stream(server.url, keepalive_timeout=30)
        stream.start()
        assert stream.wait_first(5)
        assert wait_for(lambda: server.open_streams == 1)
        started = time.monotonic()
        assert stream.stop(1.0)
        assert time.monotonic() - started < 1.0
        assert not stream.running and not stream.connected
        assert wait_for(lambda: server.open_streams == 0)


def test_stop_interrupts_the_backoff_wait(server: AmplitudeStandIn, make_stream: Any) -> None:
    server.add_fault("stream", status=500, times=None)
    stream, _ = make_stream(server.url, backoff=Backoff(30, 60))
    stream.start()
    assert wait_for(lambda: stream.failures == 1)
    started = time.monotonic()
    assert stream.stop(1.0)
    assert time.monotonic() - started < 1.0


def test_stop_while_waiting_for_headers_is_bounded(server: AmplitudeStandIn, make_stream: Any) -> None:
    server.add_fault("stream", action="hang", delay=5)
    # The read timeout (keepalive_timeout, a real socket timeout) is what bounds this case.
    stream, _ = make_stream(server.url, keepalive_timeout=0.2)
    stream.start()
    assert wait_for(lambda: len(server.requests("stream")) == 1)
    started = time.monotonic()
    stream.stop(0.05)  # may not end yet: no response object to interrupt
    assert time.monotonic() - started < 0.5
    # The read timeout ends the attempt, and the thread sees the stop without reconnecting.
    assert wait_for(lambda: not stream.running, timeout=3)
    assert len(server.requests("stream")) == 1


def test_stop_before_start_and_twice(server: AmplitudeStandIn, make_stream: Any) -> None:
    stream, _ = make_stream(server.url)
    assert stream.stop(0.1)
    stream.start()
    stream.start()  # no second thread
    assert stream.wait_first(5)
    assert stream.stop(1.0) and stream.stop(1.0)
    assert len(server.requests("stream")) == 1


def test_restart_after_stop(server: AmplitudeStandIn, make_stream: Any) -> None:
    stream, rec = make_stream(server.url)
    stream.start()
    assert stream.wait_first(5)
    assert stream.stop(1.0)
    server.set_flags(FLAGS_B)
    stream.start()
    assert wait_for(lambda: rec.count() == 2)
    assert rec.flags == [FLAGS_A, FLAGS_B]
    assert wait_for(lambda: rec.states == [True, True])  # each run reports its state from scratch
    assert stream.connects == 2


def test_thread_is_a_named_daemon(server: AmplitudeStandIn, make_stream: Any) -> None:
    stream, _ = make_stream(server.url)
    stream.start()
    assert stream.wait_first(5)
    (thread,) = [t for t in threading.enumerate() if t.name == "amplitude_experiment-stream"]
    assert thread.daemon


# ----- a server without chunked framing --------------------------------------------------------

class CloseDelimitedServer:
    """Answers one request with an event stream whose body simply runs until the socket closes."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = "http://127.0.0.1:%d" % self.listener.getsockname()[1]
        self.outbox: List[bytes] = []
        self.send = threading.Event()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        with conn:
            request = b""
            while b"\r\n\r\n" not in request:
                request += conn.recv(4096)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
                         b"data: " + json.dumps(FLAGS_A).encode() + b"\n\n")
            self.send.wait(5)
            conn.sendall(b"data: " + json.dumps(FLAGS_B).encode() + b"\n\n")
            self.done.wait(5)

    def close(self) -> None:
        self.send.set()
        self.done.set()
        self.thread.join(5)
        self.listener.close()


def test_events_arrive_without_waiting_for_the_body_to_end(make_stream: Any) -> None:
    server = CloseDelimitedServer()
    try:
        stream, rec = make_stream(server.url, keepalive_timeout=30)
        stream.start()
        assert stream.wait_first(5)
        server.send.set()
        assert wait_for(lambda: rec.count() == 2)
        assert rec.flags == [FLAGS_A, FLAGS_B]
        started = time.monotonic()
        assert stream.stop(1.0)
        assert time.monotonic() - started < 1.0
    finally:
        server.close()
