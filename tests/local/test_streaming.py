"""The client with stream_updates=True: stream first, polling while it is down, bounded start/stop."""

from __future__ import annotations

import time
from typing import Any, Iterator

import pytest

from amplitude_experiment import LocalEvaluationClient, LocalEvaluationConfig, User
from amplitude_experiment._backoff import Backoff
from amplitude_experiment.testing import AmplitudeStandIn, wait_for

from ..evaluation.helpers import targeted_flag

FLAGS = [targeted_flag("alpha", ...)]


@pytest.fixture
def server() -> Iterator[AmplitudeStandIn]:
    with AmplitudeStandIn(flags=FLAGS, keepalive_interval=0.05) as stand_in:
        yield stand_in


def make_client(server: AmplitudeStandIn, **options: Any) -> LocalEvaluationClient:
    options.setdefault("flag_config_polling_interval_millis", 50)
    options.setdefault("stream_keepalive_timeout_millis", 500)
    config = LocalEvaluationConfig(server_url=server.url, stream_server_url=server.url, stream_updates=True, **options)
    client = LocalEvaluationClient("server-key", config)
    client._updater.stream._backoff = Backoff(base=0.02, cap=0.05)
    return client


def flag_keys(client: LocalEvaluationClient) -> set:
    return set(client.evaluate_v2(User(user_id="user-1")))


def test_stream_delivers_flags_and_updates_without_polling(server: AmplitudeStandIn) -> None:
    with make_client(server) as client:
        assert client.snapshot_source == "stream"
        assert flag_keys(client) == {"alpha"}
        server.set_flags(FLAGS + [targeted_flag("beta", ...)])
        assert wait_for(lambda: flag_keys(client) == {"alpha", "beta"})
        time.sleep(0.3)  # several polling intervals pass; the healthy stream keeps polling idle
    assert server.requests("flags") == []
    assert len(server.requests("stream")) == 1


def test_silent_stream_falls_back_to_polling_and_start_returns_promptly(server: AmplitudeStandIn) -> None:
    server.add_fault("stream", action="silent", times=None)
    client = make_client(server, stream_flag_conn_timeout=300)
    began = time.monotonic()
    client.start()
    assert time.monotonic() - began < 1.5
    assert client.snapshot_source == "network"
    server.set_flags(FLAGS + [targeted_flag("beta", ...)])
    assert wait_for(lambda: flag_keys(client) == {"alpha", "beta"})  # the poller covers the dead stream
    began = time.monotonic()
    client.stop(2)
    assert time.monotonic() - began < 2.5


def test_stream_drop_reconnects_and_polling_covers_the_gap(server: AmplitudeStandIn) -> None:
    with make_client(server) as client:
        connects = len(server.requests("stream"))
        server.close_streams()
        assert wait_for(lambda: len(server.requests("stream")) > connects)
        server.set_flags([targeted_flag("gamma", ...)])
        assert wait_for(lambda: flag_keys(client) == {"gamma"})
        assert wait_for(lambda: client._updater.stream.connected)


def test_stop_interrupts_a_blocked_stream_read(server: AmplitudeStandIn) -> None:
    client = make_client(server, stream_keepalive_timeout_millis=60_000)
    client.start()
    assert wait_for(lambda: client._updater.stream.connected)
    began = time.monotonic()
    client.stop(1)
    assert time.monotonic() - began < 1.5
    assert not client._updater.stream.running


def test_stream_error_at_start_polls_instead(server: AmplitudeStandIn) -> None:
    server.add_fault("stream", status=500, times=None)
    with make_client(server, stream_flag_conn_timeout=1000) as client:
        assert client.snapshot_source == "network"
        assert flag_keys(client) == {"alpha"}
