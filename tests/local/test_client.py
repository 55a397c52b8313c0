"""The client end to end against the loopback stand-in."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Dict, Iterator, List

import pytest
import requests

from amplitude_experiment import (
    AssignmentConfig,
    ConfigurationError,
    EvaluateOptions,
    Experiment,
    ExposureConfig,
    FetchError,
    LocalEvaluationClient,
    LocalEvaluationConfig,
    ServerZone,
    User,
)
from amplitude_experiment.events.assignment import AssignmentTracker
from amplitude_experiment.events.exposure import ExposureTracker
from amplitude_experiment.testing import AmplitudeStandIn, ManualClock
from amplitude_experiment.version import LIBRARY

from ..evaluation.helpers import condition, targeted_flag

FLAGS = [
    targeted_flag("pro-only", [[condition(["context", "user", "user_properties", "plan"], "is", ["pro"])]],
                  metadata={"flagType": "release", "flagVersion": 3}),
    targeted_flag("undeployed", ..., metadata={"deployed": False}),
]


@pytest.fixture
def server() -> Iterator[AmplitudeStandIn]:
    with AmplitudeStandIn(flags=FLAGS, deployment_key="server-key") as stand_in:
        yield stand_in


def make_client(server: AmplitudeStandIn, **options: Any) -> LocalEvaluationClient:
    options.setdefault("flag_config_polling_interval_millis", 60_000)
    return LocalEvaluationClient("server-key", LocalEvaluationConfig(server_url=server.url, **options))


def keys(variants: Dict[str, Any]) -> Dict[str, str]:
    return {k: v.key for k, v in variants.items()}


def test_start_downloads_flags_and_evaluates(server: AmplitudeStandIn) -> None:
    with make_client(server) as client:
        assert client.is_ready
        assert keys(client.evaluate_v2(User(user_id="u", user_properties={"plan": "pro"}))) == {
            "pro-only": "on", "undeployed": "on"}
        assert keys(client.evaluate_v2(User(user_id="u"), {"pro-only"})) == {"pro-only": "off"}
    (request,) = server.requests("flags")
    assert request.path == "/sdk/v2/flags"
    assert request.query == {"v": "0"}
    assert request.header("Authorization") == "Api-Key server-key"
    assert request.header("X-Amp-Exp-Library") == LIBRARY


def test_deprecated_evaluate_drops_default_and_undeployed_variants(server: AmplitudeStandIn) -> None:
    with make_client(server) as client:
        with pytest.warns(DeprecationWarning, match="evaluate_v2"):
            assert keys(client.evaluate(User(user_id="u", user_properties={"plan": "pro"}))) == {"pro-only": "on"}
        with pytest.warns(DeprecationWarning):
            assert client.evaluate(User(user_id="u")) == {}


def test_failed_start_raises_then_recovers_in_background(server: AmplitudeStandIn) -> None:
    server.add_fault("flags", status=503, times=2)
    clock = ManualClock()
    client = make_client(server, clock=clock)
    try:
        with pytest.raises(FetchError, match="HTTP 503"):
            client.start()
        assert not client.is_ready
        assert client.evaluate_v2(User(user_id="u")) == {}
        for _ in range(2):  # two backoff waits: the first retry fails too, the second succeeds
            assert clock.wait_for_sleepers(1)
            clock.advance(clock.next_deadline() or 0.0)
        assert clock.wait_for_sleepers(1)
        assert client.is_ready
        assert keys(client.evaluate_v2(User(user_id="u"))) == {"pro-only": "off", "undeployed": "on"}
        assert len(server.requests("flags")) == 3
    finally:
        client.stop()


def test_refresh_picks_up_new_flags(server: AmplitudeStandIn) -> None:
    clock = ManualClock()
    with make_client(server, clock=clock) as client:
        server.set_flags([targeted_flag("new-flag", ...)])
        assert clock.wait_for_sleepers(1)
        clock.advance(60)  # flag_config_polling_interval_millis=60_000
        assert clock.wait_for_sleepers(1)
        assert keys(client.evaluate_v2(User(user_id="u"))) == {"new-flag": "on"}
        assert client.snapshot is not None and client.snapshot.source == "network"


@pytest.mark.parametrize("fault", [dict(status=500), dict(action="garbage"), dict(action="close"),
                                   dict(status=200, body=b'{"not": "a list"}'),
                                   dict(status=200, body=b'[{"error": "rate limited"}]')])
def test_failed_or_garbage_refresh_keeps_last_good_flags(server: AmplitudeStandIn, fault: Dict[str, Any]) -> None:
    clock = ManualClock()
    with make_client(server, clock=clock) as client:
        before = client.snapshot
        server.add_fault("flags", times=None, **fault)
        for _ in range(3):
            assert clock.wait_for_sleepers(1)
            clock.advance(clock.next_deadline() or 0.0)
        assert clock.wait_for_sleepers(1)
        assert len(server.requests("flags")) == 4
        assert client.snapshot is before
        assert keys(client.evaluate_v2(User(user_id="u"))) == {"pro-only": "off", "undeployed": "on"}


def test_failing_refresh_logs_one_warning_per_outage(server: AmplitudeStandIn,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    clock = ManualClock()
    with caplog.at_level(logging.INFO, logger="amplitude_experiment"):
        with make_client(server, clock=clock):
            server.add_fault("flags", status=500, times=4)
            for _ in range(6):  # the polling interval, four backoff waits, then one healthy poll
                assert clock.wait_for_sleepers(1)
                clock.advance(clock.next_deadline() or 0.0)
            assert clock.wait_for_sleepers(1)
    assert len(server.requests("flags")) == 7
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("amplitude_experiment.flags")]
    assert messages[0].startswith("Flag refresh failed; keeping what was loaded and retrying in about 1 s: ")
    assert f"{server.url}/sdk/v2/flags" in messages[0] and "HTTP 500" in messages[0]
    assert messages[1:] == ["Flag refresh recovered after 4 failed attempts"]


def test_stop_is_prompt_idempotent_and_evaluation_still_answers(server: AmplitudeStandIn) -> None:
    client = make_client(server)
    client.start()
    began = time.monotonic()
    client.stop()
    client.stop()
    assert time.monotonic() - began < 1.0
    assert not any(t.name.startswith("amplitude_experiment") and t.is_alive() for t in threading.enumerate()
                   if t.name == "amplitude_experiment-poller")
    assert keys(client.evaluate_v2(User(user_id="u"))) == {"pro-only": "off", "undeployed": "on"}


def test_start_after_stop_restarts_the_client(server: AmplitudeStandIn) -> None:
    # The official SDK lets a stopped client be started again; FastAPI lifespans under pytest
    # do exactly that with the client Experiment.initialize_local hands back.
    client = make_client(server)
    client.start()
    client.stop()
    server.set_flags([targeted_flag("after-restart", ...)])
    client.start()
    try:
        assert keys(client.evaluate_v2(User(user_id="u"))) == {"after-restart": "on"}
        assert len(server.requests("flags")) == 2
        assert any(t.name == "amplitude_experiment-poller" and t.is_alive() for t in threading.enumerate())
    finally:
        client.stop()


def test_initialize_local_after_stop_hands_back_a_client_that_starts(server: AmplitudeStandIn) -> None:
    config = LocalEvaluationConfig(server_url=server.url, flag_config_polling_interval_millis=60_000)
    for _ in range(2):  # two "app lifespans" in one process
        client = Experiment.initialize_local("server-key", config)
        client.start()
        assert keys(client.evaluate_v2(User(user_id="u"))) == {"pro-only": "off", "undeployed": "on"}
        client.stop()
    assert Experiment.initialize_local("server-key") is client
    assert len(server.requests("flags")) == 2


@pytest.mark.parametrize("user", [{"user_id": "u"}, "u", None, 42])
def test_a_user_of_the_wrong_type_is_a_programming_error(server: AmplitudeStandIn, user: Any) -> None:
    with make_client(server) as client:
        with pytest.raises(TypeError, match=f"user must be an amplitude_experiment.User, not {type(user).__name__}"):
            client.evaluate_v2(user)
        with pytest.raises(TypeError, match="amplitude_experiment.User"), \
                pytest.warns(DeprecationWarning):
            client.evaluate(user)
        with pytest.raises(TypeError, match="amplitude_experiment.User"):
            client.evaluate_details(user)
        with pytest.raises(TypeError, match="amplitude_experiment.User"):
            client.explain(user, "pro-only")


@pytest.mark.parametrize("flag_keys", [5, 1.5, object()])
def test_non_iterable_flag_keys_are_a_programming_error(server: AmplitudeStandIn, flag_keys: Any) -> None:
    with make_client(server) as client:
        with pytest.raises(TypeError, match="flag_keys must be a collection of flag keys or None"):
            client.evaluate_v2(User(user_id="u"), flag_keys)


def test_flag_keys_may_be_any_iterable_or_a_single_key(server: AmplitudeStandIn) -> None:
    with make_client(server) as client:
        user = User(user_id="u")
        assert keys(client.evaluate_v2(user, ["pro-only"])) == {"pro-only": "off"}
        assert keys(client.evaluate_v2(user, ("pro-only",))) == {"pro-only": "off"}
        assert keys(client.evaluate_v2(user, iter(["undeployed"]))) == {"undeployed": "on"}
        assert keys(client.evaluate_v2(user, "pro-only")) == {"pro-only": "off"}
        assert client.evaluate_v2(user, []) == {}


def test_start_twice_downloads_once(server: AmplitudeStandIn) -> None:
    with make_client(server) as client:
        client.start()
    assert len(server.requests("flags")) == 1


def test_wrong_deployment_key_fails_clearly_without_leaking_it(server: AmplitudeStandIn,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    client = LocalEvaluationClient("server-wrong-secret", LocalEvaluationConfig(server_url=server.url))
    with caplog.at_level(logging.DEBUG, logger="amplitude_experiment"):
        with pytest.raises(FetchError, match="HTTP 401") as caught:
            client.start()
        client.stop()
    assert "server-wrong-secret" not in str(caught.value)
    assert all("server-wrong-secret" not in r.getMessage() for r in caplog.records)


def test_evaluate_from_many_threads_during_refreshes(server: AmplitudeStandIn) -> None:
    errors: List[BaseException] = []
    with make_client(server, flag_config_polling_interval_millis=1) as client:
        def work() -> None:
            try:
                for i in range(2000):
                    result = client.evaluate_v2(User(user_id=f"u{i}", user_properties={"plan": "pro"}))
                    assert set(result) in ({"pro-only", "undeployed"}, {"new"})
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)

        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for i in range(20):
            server.set_flags([targeted_flag("new", ...)] if i % 2 else FLAGS)
        for t in threads:
            t.join()
    assert errors == []


def test_initialize_local_returns_one_client_per_key(server: AmplitudeStandIn) -> None:
    config = LocalEvaluationConfig(server_url=server.url)
    first = Experiment.initialize_local("server-key-registry-test", config)
    assert Experiment.initialize_local("server-key-registry-test") is first
    assert Experiment.initialize_local("server-other-registry-test") is not first


def test_eu_zone_moves_default_urls() -> None:
    config = LocalEvaluationConfig(server_zone=ServerZone.EU)
    assert config.server_url == "https://flag.lab.eu.amplitude.com"
    assert config.stream_server_url == "https://stream.lab.eu.amplitude.com"
    assert LocalEvaluationConfig(server_zone="eu", server_url="https://custom.example/").server_url == \
        "https://custom.example"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(server_url="ftp://x"), "server_url must be an http(s) URL, not 'ftp://x'"),
        (dict(flag_config_polling_interval_millis=0), "flag_config_polling_interval_millis must be an integer >= 1"),
        (dict(server_zone="MARS"), "server_zone must be ServerZone.US or ServerZone.EU, not 'MARS'"),
        (dict(assignment_config={"api_key": "x"}), "assignment_config must be a AssignmentConfig or None"),
    ],
)
def test_config_errors_name_the_field(kwargs: Dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        LocalEvaluationConfig(**kwargs)
    assert str(caught.value).startswith(message)
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize("key", ["", " server-key", "server-key\n", "server\x00key"])
def test_bad_deployment_keys_are_refused_without_echoing_them(key: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        LocalEvaluationClient(key)
    expected = ("api_key (the deployment key) must be a non-empty string" if not key else
                "api_key (the deployment key) contains whitespace or control characters")
    assert str(caught.value) == expected


def test_every_request_sends_the_same_user_agent() -> None:
    from amplitude_experiment import AssignmentConfig, CohortSyncConfig
    from amplitude_experiment.testing import FlagBuilder, in_cohort
    from amplitude_experiment.version import USER_AGENT

    flag = FlagBuilder("members").variant("on").rule("Members", [in_cohort("c1")], "on").build()
    with AmplitudeStandIn(flags=[flag]) as stand_in:
        stand_in.set_cohort("c1", ["user-1"])
        config = LocalEvaluationConfig(
            server_url=stand_in.url, flag_config_polling_interval_millis=60_000,
            assignment_config=AssignmentConfig("analytics-key", server_url=stand_in.events_url),
            cohort_sync_config=CohortSyncConfig("cohort-key", "cohort-secret", cohort_server_url=stand_in.url))
        with LocalEvaluationClient("server-key", config) as client:
            assert keys(client.evaluate_v2(User(user_id="user-1"))) == {"members": "on"}
        agents = {(r.route, r.header("User-Agent")) for r in stand_in.requests()}
    assert agents == {("flags", USER_AGENT), ("cohort", USER_AGENT), ("events", USER_AGENT)}


# ----- the edges: a bug below never reaches a request handler; lifecycle paths few apps take -----


def boom(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("a bug below the client")


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def test_an_evaluation_bug_returns_no_variants_and_is_logged(server: AmplitudeStandIn,
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    with make_client(server) as client:
        monkeypatch.setattr("amplitude_experiment.local.client.evaluate", boom)
        monkeypatch.setattr("amplitude_experiment.local.client.evaluate_details", boom)
        assert client.evaluate_v2(User(user_id="u")) == {}
        assert client.evaluate_details(User(user_id="u")) == {}
    assert errors(caplog) == ["Unexpected error while evaluating flags; returning no variants",
                              "Unexpected error while explaining flags"]


def test_a_tracking_bug_still_returns_the_variants(server: AmplitudeStandIn, monkeypatch: pytest.MonkeyPatch,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    with make_client(server, assignment_config=AssignmentConfig("analytics-key", server_url=server.events_url),
                     exposure_config=ExposureConfig("analytics-key", server_url=server.events_url)) as client:
        monkeypatch.setattr(AssignmentTracker, "track", boom)
        monkeypatch.setattr(ExposureTracker, "track", boom)
        variants = client.evaluate_v2(User(user_id="u"), options=EvaluateOptions(tracks_exposure=True))
        assert keys(variants) == {"pro-only": "off", "undeployed": "on"}
        assert client.track_exposure(User(user_id="u"), "pro-only", variants["pro-only"]) is False
    assert errors(caplog) == ["Unexpected error while tracking an evaluation",
                              "Unexpected error while tracking an exposure"]


def test_track_exposure_without_an_exposure_config_does_nothing(server: AmplitudeStandIn) -> None:
    with make_client(server) as client:
        assert client.track_exposure(User(user_id="u"), "pro-only", "on") is False
    assert server.events == []


def test_assignment_and_exposure_senders_both_deliver_by_stop(server: AmplitudeStandIn) -> None:
    client = make_client(server, assignment_config=AssignmentConfig("analytics-key", server_url=server.events_url),
                         exposure_config=ExposureConfig("analytics-key", server_url=server.events_url))
    client.start()
    client.evaluate_v2(User(user_id="user-1", user_properties={"plan": "pro"}), ["pro-only"],
                       options=EvaluateOptions(tracks_exposure=True))  # "on": a default variant has no exposure
    client.stop(5.0)  # two senders, stopped side by side within one bound
    assert sorted(e["event_type"] for e in server.events) == ["$exposure", "[Experiment] Assignment"]


def test_explain_before_flags_and_with_a_bad_key(server: AmplitudeStandIn) -> None:
    client = make_client(server)
    assert client.explain(User(user_id="u"), "pro-only") is None  # not started: no flags yet
    with pytest.raises(TypeError, match="flag_key must be a str, not int"):
        client.explain(User(user_id="u"), 5)  # type: ignore[arg-type]


def test_a_restarted_client_keeps_the_callers_session_and_drops_its_pooled_connections(
        server: AmplitudeStandIn) -> None:
    with requests.Session() as session:
        client = make_client(server, session=session)
        client.start()
        client.stop()
        client.start()  # restart: the caller's session is kept (not closed, not replaced)
        assert client.evaluate_v2(User(user_id="u", user_properties={"plan": "pro"}))["pro-only"].key == "on"
        client.stop()
        assert len(server.requests("flags")) == 2
        assert session.get(server.url + "/sdk/v2/flags", headers={"Authorization": "Api-Key server-key"},
                           timeout=5).status_code == 200  # still usable by its owner
