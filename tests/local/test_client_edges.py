"""The client's guarantees at its edges: a bug below never reaches a request handler, and the
lifecycle paths that few apps take (two senders, a caller's session, explain before flags)."""

from __future__ import annotations

import logging
from typing import Any, Iterator

import pytest
import requests

from amplitude_experiment import (
    AssignmentConfig,
    EvaluateOptions,
    ExposureConfig,
    LocalEvaluationClient,
    LocalEvaluationConfig,
    User,
)
from amplitude_experiment.events.assignment import AssignmentTracker
from amplitude_experiment.events.exposure import ExposureTracker
from amplitude_experiment.testing import AmplitudeStandIn, on_flag

FLAGS = [on_flag("new-checkout")]


@pytest.fixture
def server() -> Iterator[AmplitudeStandIn]:
    with AmplitudeStandIn(flags=FLAGS, deployment_key="server-key") as stand_in:
        yield stand_in


def make_client(server: AmplitudeStandIn, **options: Any) -> LocalEvaluationClient:
    options.setdefault("flag_config_polling_interval_millis", 60_000)
    return LocalEvaluationClient("server-key", LocalEvaluationConfig(server_url=server.url, **options))


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
        assert {k: v.key for k, v in variants.items()} == {"new-checkout": "on"}
        assert client.track_exposure(User(user_id="u"), "new-checkout", variants["new-checkout"]) is False
    assert errors(caplog) == ["Unexpected error while tracking an evaluation",
                              "Unexpected error while tracking an exposure"]


def test_track_exposure_without_an_exposure_config_does_nothing(server: AmplitudeStandIn) -> None:
    with make_client(server) as client:
        assert client.track_exposure(User(user_id="u"), "new-checkout", "on") is False
    assert server.events == []


def test_assignment_and_exposure_senders_both_deliver_by_stop(server: AmplitudeStandIn) -> None:
    client = make_client(server, assignment_config=AssignmentConfig("analytics-key", server_url=server.events_url),
                         exposure_config=ExposureConfig("analytics-key", server_url=server.events_url))
    client.start()
    client.evaluate_v2(User(user_id="user-1"), options=EvaluateOptions(tracks_exposure=True))
    client.stop(5.0)  # two senders, stopped side by side within one bound
    assert sorted(e["event_type"] for e in server.events) == ["$exposure", "[Experiment] Assignment"]


def test_explain_before_flags_and_with_a_bad_key(server: AmplitudeStandIn) -> None:
    client = make_client(server)
    assert client.explain(User(user_id="u"), "new-checkout") is None  # not started: no flags yet
    with pytest.raises(TypeError, match="flag_key must be a str, not int"):
        client.explain(User(user_id="u"), 5)  # type: ignore[arg-type]


def test_a_restarted_client_keeps_the_callers_session_and_drops_its_pooled_connections(
        server: AmplitudeStandIn) -> None:
    with requests.Session() as session:
        client = make_client(server, session=session)
        client.start()
        client.stop()
        client.start()  # restart: the caller's session is kept (not closed, not replaced)
        assert client.evaluate_v2(User(user_id="u"))["new-checkout"].key == "on"
        client.stop()
        assert len(server.requests("flags")) == 2
        assert session.get(server.url + "/sdk/v2/flags", headers={"Authorization": "Api-Key server-key"},
                           timeout=5).status_code == 200  # still usable by its owner
