"""End to end against the loopback stand-in: /sdk/v2/vardata is answered by our engine (issue 11, point 5)."""

from __future__ import annotations

import json
from typing import Any, Dict, List

import pytest

from amplitude_experiment import FetchException, FetchOptions, RemoteEvaluationClient, RemoteEvaluationConfig, User
from amplitude_experiment.evaluation import compile_flags, evaluate
from amplitude_experiment.testing import AmplitudeStandIn, ManualClock
from amplitude_experiment.testing.vardata import answer_vardata

from .helpers import KEY

FLAGS: List[Dict[str, Any]] = [
    {"key": "dark-mode", "metadata": {"deployed": True, "flagType": "release", "flagVersion": 2},
     "variants": {"on": {"key": "on", "value": "on", "payload": {"theme": "dark"}},
                  "off": {"key": "off", "metadata": {"default": True}}},
     "segments": [{"conditions": [[{"selector": ["context", "user", "user_properties", "plan"], "op": "is",
                                    "values": ["pro"]}]], "variant": "on", "metadata": {"segmentName": "Pro"}},
                  {"variant": "off", "metadata": {"segmentName": "All Other Users"}}]},
    {"key": "checkout", "metadata": {"deployed": True, "flagType": "experiment", "experimentKey": "exp-1"},
     "variants": {"control": {"key": "control", "value": "control"},
                  "treatment": {"key": "treatment", "value": "treatment"},
                  "off": {"key": "off", "metadata": {"default": True}}},
     "segments": [{"bucket": {"selector": ["context", "user", "user_id"], "salt": "checkout", "allocations": [
         {"range": [0, 100], "distributions": [{"variant": "control", "range": [0, 21474837]},
                                               {"variant": "treatment", "range": [21474837, 42949673]}]}]},
                   "variant": "off"}]},
    {"key": "child", "dependencies": ["dark-mode"], "variants": {"on": {"key": "on", "value": "on"}},
     "segments": [{"conditions": [[{"selector": ["result", "dark-mode", "key"], "op": "is", "values": ["on"]}]],
                   "variant": "on"}]},
]
USERS = [User(user_id=f"user-{i}", device_id=f"device-{i}", user_properties={"plan": "pro" if i % 2 else "free"})
         for i in range(8)]


def _as_tuples(variants: Dict[str, Any]) -> Dict[str, Any]:
    return {k: (v.key, v.value, v.payload, v.metadata) for k, v in variants.items()}


@pytest.fixture
def stand_in() -> Any:
    with AmplitudeStandIn(flags=FLAGS, deployment_key=KEY) as server:
        yield server


def test_fetch_v2_gets_what_local_evaluation_gives(stand_in: AmplitudeStandIn) -> None:
    compiled = compile_flags(FLAGS)
    with RemoteEvaluationClient(KEY, RemoteEvaluationConfig(server_url=stand_in.url)) as client:
        for user in USERS:
            assert _as_tuples(client.fetch_v2(user)) == _as_tuples(evaluate(compiled, user))
    seen = {v.key for user in USERS for v in evaluate(compiled, user).values()}
    assert {"on", "off", "control", "treatment"} <= seen  # the users cover every branch
    (request, *_) = stand_in.requests("vardata")
    assert (request.method, request.path, request.query) == ("POST", "/sdk/v2/vardata", {"v": "0"})


def test_flag_keys_are_honoured_with_dependencies(stand_in: AmplitudeStandIn) -> None:
    with RemoteEvaluationClient(KEY, RemoteEvaluationConfig(server_url=stand_in.url)) as client:
        variants = client.fetch_v2(USERS[1], FetchOptions(flagKeys=["child"]))
    assert sorted(variants) == ["child", "dark-mode"]


def test_a_wrong_deployment_key_is_a_401_and_an_empty_result(stand_in: AmplitudeStandIn) -> None:
    with RemoteEvaluationClient("server-wrong", RemoteEvaluationConfig(server_url=stand_in.url)) as client:
        assert client.fetch_v2(USERS[0]) == {}


def test_faults_on_the_vardata_route_drive_retries(stand_in: AmplitudeStandIn) -> None:
    stand_in.add_fault("vardata", status=503, times=2)
    clock = ManualClock()
    config = RemoteEvaluationConfig(server_url=stand_in.url, fetch_retries=2, clock=clock)
    with RemoteEvaluationClient(KEY, config) as client:
        future = client.fetch_async_v2(USERS[1])
        assert clock.wait_for_sleepers(1)
        clock.advance(0.5)  # the first backoff wait (fetch_retry_backoff_min_millis)
        assert clock.wait_for_sleepers(1)
        clock.advance(0.75)  # then times 1.5
        assert future.result(timeout=5)["dark-mode"].key == "on"
    assert len(stand_in.requests("vardata")) == 3

    stand_in.add_fault("vardata", status=500, times=None)
    with RemoteEvaluationClient(KEY, RemoteEvaluationConfig(server_url=stand_in.url, fetch_retries=1,
                                                            fetch_retry_backoff_min_millis=0)) as client:
        with pytest.raises(FetchException) as raised:
            client.fetch_v2(USERS[0])
    assert raised.value.status_code == 500


def test_answer_vardata_unit() -> None:
    body = json.dumps(FLAGS).encode()
    user = json.dumps({"user_id": "user-1", "user_properties": {"plan": "pro"}, "unknown": 1}).encode()
    status, answer = answer_vardata(body, {"x-amp-exp-flag-keys": "WyJkYXJrLW1vZGUiXQ"}, user)
    assert (status, answer) == (200, {"dark-mode": {"key": "on", "value": "on", "payload": {"theme": "dark"},
                                                    "metadata": {"deployed": True, "flagType": "release",
                                                                 "flagVersion": 2, "segmentName": "Pro"}}})
    assert answer_vardata(body, {"X-Amp-Exp-Flag-Keys": "%%%"}, user)[0] == 400
    assert answer_vardata(body, {}, b"[1]")[0] == 400
    assert answer_vardata(b"<html>", {}, user)[0] == 500
