"""Failures and retries (issue 11, point 4), with a clock that records waits instead of sleeping."""

from __future__ import annotations

import logging
import threading
from typing import Any, List

import pytest
import requests
import responses

from amplitude_experiment import (
    ConfigurationError,
    ExperimentError,
    FetchError,
    FetchException,
    RemoteEvaluationClient,
    RemoteEvaluationConfig,
    User,
)
from amplitude_experiment.remote.retry import RetryPolicy

from .helpers import KEY, SERVER, VARDATA, RecordingClock

OK = {"flag": {"key": "on", "value": "on"}}


def _client(clock: RecordingClock, **config: Any) -> RemoteEvaluationClient:
    return RemoteEvaluationClient(KEY, RemoteEvaluationConfig(server_url=SERVER, clock=clock, **config))


def _statuses(*statuses: int) -> None:
    for status in statuses:
        if status == 200:
            responses.add(responses.POST, VARDATA, json=OK)
        else:
            responses.add(responses.POST, VARDATA, json={"error": "x"}, status=status)


def test_backoff_schedule_is_the_official_one() -> None:
    # Measured on the official client against a loopback server: min=100 ms, scalar 2, max 400 ms
    # waited 0.1, 0.2, 0.4, 0.4, 0.4 s before retries 1..5 (no jitter).
    policy = RetryPolicy(5, 0.1, 0.4, 2.0)
    assert [policy.delay(n) for n in range(5)] == [0.1, 0.2, 0.4, 0.4, 0.4]
    defaults = RetryPolicy(8, 0.5, 10.0, 1.5)
    assert [round(defaults.delay(n), 6) for n in range(9)] == [
        0.5, 0.75, 1.125, 1.6875, 2.53125, 3.796875, 5.695312, 8.542969, 10.0]
    # Retry-After lengthens a wait, capped at the maximum.
    assert policy.delay(0, retry_after=0.3) == 0.3
    assert policy.delay(0, retry_after=60) == 0.4
    assert policy.delay(2, retry_after=0.05) == 0.4


@responses.activate
def test_5xx_retried_with_backoff_then_success() -> None:
    _statuses(503, 500, 200)
    clock = RecordingClock()
    with _client(clock, fetch_retries=2, fetch_retry_backoff_min_millis=100, fetch_retry_backoff_scalar=2) as client:
        variants = client.fetch_v2(User(user_id="u"))
    assert variants["flag"].key == "on"
    assert len(responses.calls) == 3
    assert clock.waits == [0.1, 0.2]


@responses.activate
def test_retries_exhausted_raise_fetch_exception_with_status() -> None:
    _statuses(500, 502, 504)
    clock = RecordingClock()
    with _client(clock, fetch_retries=2) as client, pytest.raises(FetchException) as raised:
        client.fetch_v2(User(user_id="u"))
    assert raised.value.status_code == 504
    assert isinstance(raised.value, (FetchError, ExperimentError, OSError))
    assert len(responses.calls) == 3
    assert clock.waits == [0.5, 0.75]


@responses.activate
def test_429_is_retried_and_retry_after_is_honoured() -> None:
    responses.add(responses.POST, VARDATA, status=429, headers={"Retry-After": "2"}, json={})
    _statuses(200)
    clock = RecordingClock()
    with _client(clock, fetch_retries=1) as client:
        assert list(client.fetch_v2(User(user_id="u"))) == ["flag"]
    assert clock.waits == [2.0]


@responses.activate
def test_no_retries_failure_logs_and_returns_empty(caplog: pytest.LogCaptureFixture) -> None:
    _statuses(503)
    clock = RecordingClock()
    with caplog.at_level(logging.WARNING, logger="amplitude_experiment"), _client(clock) as client:
        assert client.fetch_v2(User(user_id="u")) == {}
    assert len(responses.calls) == 1 and clock.waits == []
    (record,) = caplog.records
    assert record.name == "amplitude_experiment.remote"
    assert "https://remote.test/sdk/v2/vardata?v=0 failed: HTTP 503; returning no variants" in record.getMessage()
    assert KEY not in caplog.text


@pytest.mark.parametrize("status", [400, 401, 404, 408, 413])
@responses.activate
def test_non_retryable_4xx_returns_empty_dict_not_none(status: int, caplog: pytest.LogCaptureFixture) -> None:
    # The official client returns None here (and never retries); we give {} and log the status.
    _statuses(status, 200)
    clock = RecordingClock()
    with caplog.at_level(logging.WARNING, logger="amplitude_experiment"), _client(clock, fetch_retries=3) as client:
        assert client.fetch_v2(User(user_id="u")) == {}
    assert len(responses.calls) == 1 and clock.waits == []
    assert f"HTTP {status}" in caplog.text


@responses.activate
def test_4xx_during_retries_stops_them() -> None:
    _statuses(500, 400, 200)
    with _client(RecordingClock(), fetch_retries=3) as client:
        assert client.fetch_v2(User(user_id="u")) == {}
    assert len(responses.calls) == 2


@responses.activate
def test_network_errors_are_retried_then_raise_with_cause() -> None:
    for _ in range(2):
        responses.add(responses.POST, VARDATA, body=requests.ConnectionError("connection refused"))
    with _client(RecordingClock(), fetch_retries=1) as client, pytest.raises(FetchException) as raised:
        client.fetch_v2(User(user_id="u"))
    assert raised.value.status_code is None
    assert isinstance(raised.value.__cause__, requests.ConnectionError)
    assert "connection refused" in str(raised.value)


@responses.activate
def test_timeouts_first_request_then_retry_timeout() -> None:
    seen: List[Any] = []

    def answer(request: Any) -> Any:
        seen.append(request.req_kwargs["timeout"])
        raise requests.Timeout("read timed out")

    responses.add_callback(responses.POST, VARDATA, callback=answer)
    with _client(RecordingClock(), fetch_retries=2, fetch_timeout_millis=1500,
                 fetch_retry_timeout_millis=700) as client, pytest.raises(FetchException):
        client.fetch_v2(User(user_id="u"))
    assert seen == [1.5, 0.7, 0.7]


@responses.activate
def test_unusable_body_counts_as_a_failure() -> None:
    responses.add(responses.POST, VARDATA, body=b"<html>gateway</html>")
    responses.add(responses.POST, VARDATA, json=["not", "an", "object"])
    _statuses(200)
    with _client(RecordingClock(), fetch_retries=2) as client:
        assert list(client.fetch_v2(User(user_id="u"))) == ["flag"]
    with _client(RecordingClock()) as client:
        responses.add(responses.POST, VARDATA, body=b"null")
        assert client.fetch_v2(User(user_id="u")) == {}


@responses.activate
def test_close_interrupts_a_backoff_wait() -> None:
    _statuses(503, 200)
    clock = RecordingClock()
    client = _client(clock, fetch_retries=1)

    def close_on_wait(event: threading.Event, timeout: Any) -> bool:
        client.close()
        return event.is_set()

    clock.wait = close_on_wait  # type: ignore[method-assign]
    assert client.fetch_v2(User(user_id="u")) == {}
    assert len(responses.calls) == 1


@responses.activate
def test_repeated_warnings_are_rate_limited(caplog: pytest.LogCaptureFixture) -> None:
    for _ in range(4):
        _statuses(503)
    clock = RecordingClock()
    with caplog.at_level(logging.DEBUG, logger="amplitude_experiment"), _client(clock) as client:
        for _ in range(3):
            client.fetch_v2(User(user_id="u"))
        clock.now += 10
        client.fetch_v2(User(user_id="u"))
    levels = [r.levelname for r in caplog.records if r.name == "amplitude_experiment.remote"]
    assert levels == ["WARNING", "DEBUG", "DEBUG", "WARNING"]
    assert "2 similar warnings" in caplog.records[-1].getMessage()


@pytest.mark.parametrize("key", ["server-\u2603-secret", "server-secret\n", " server-secret", ""])
def test_a_key_unfit_for_a_header_is_rejected_without_echoing_it(key: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        RemoteEvaluationClient(key, RemoteEvaluationConfig(server_url=SERVER))
    assert "secret" not in str(raised.value)


@responses.activate
def test_a_given_logger_receives_everything_and_debug_levels_it(caplog: pytest.LogCaptureFixture) -> None:
    _statuses(503)
    mine = logging.getLogger("tests.remote.mine")
    client = RemoteEvaluationClient(KEY, RemoteEvaluationConfig(server_url=SERVER, debug=True, logger=mine))
    try:
        assert mine.level == logging.DEBUG and mine.handlers  # debug=True: printed even without app logging
        with caplog.at_level(logging.WARNING, logger="tests.remote.mine"):
            client.fetch_v2(User(user_id="u"))
    finally:
        client.close()
        for handler in list(mine.handlers):
            mine.removeHandler(handler)
    assert [r.name for r in caplog.records] == ["tests.remote.mine.remote"]
