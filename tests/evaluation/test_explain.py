"""Evaluation details and explain agree with evaluate and say why."""

from __future__ import annotations

import json
import pathlib
from typing import Any, Dict

import pytest

from amplitude_experiment import User
from amplitude_experiment.evaluation import compile_flags, evaluate
from amplitude_experiment.evaluation.explain import (
    ALL_USERS,
    DEFAULT,
    FLAG_NOT_FOUND,
    FLAG_SKIPPED,
    NO_VARIANT,
    NOT_READY,
    SPLIT,
    TARGETING_MATCH,
    evaluate_details,
    explain,
)

from .helpers import condition, prop, targeted_flag
from .test_engine import rollout

FIXTURE = json.loads((pathlib.Path(__file__).parent / "fixtures" / "conformance.json").read_text("utf-8"))


@pytest.mark.parametrize("suite", FIXTURE["suites"][:12], ids=lambda s: s["name"])
def test_details_agree_with_evaluate(suite: Dict[str, Any]) -> None:
    compiled = compile_flags(suite["flags"])
    for case in suite["cases"][:60]:
        user = User(**case["user"])
        expected = evaluate(compiled, user, case["flag_keys"])
        details = evaluate_details(compiled, user, case["flag_keys"])
        got = {k: d.variant.key for k, d in details.items() if d.variant is not None}
        assert got == {k: v.key for k, v in expected.items()}


def test_reasons() -> None:
    flags = [
        targeted_flag("targeted", [[condition(prop("plan"), "is", ["pro"])]]),
        targeted_flag("everyone", ...),
        rollout("exp", 100),
        {"key": "nothing", "variants": {}, "segments": [{"variant": "missing"}]},
        {"key": "broken", "variants": [], "segments": []},
    ]
    compiled = compile_flags(flags)
    details = evaluate_details(compiled, User(device_id="device-7", user_properties={"plan": "pro"}),
                               ["targeted", "everyone", "exp", "nothing", "broken", "ghost"])
    assert {k: d.reason for k, d in details.items()} == {
        "targeted": TARGETING_MATCH, "everyone": ALL_USERS, "exp": SPLIT, "nothing": NO_VARIANT,
        "broken": FLAG_SKIPPED, "ghost": FLAG_NOT_FOUND}
    assert details["broken"].message == "variants must be an object"
    assert (details["targeted"].segment_index, details["exp"].segment_name) == (0, "All Other Users")
    assert evaluate_details(compiled, User(), ["targeted"])["targeted"].reason == DEFAULT
    assert evaluate_details(None, User(), ["x"])["x"].reason == NOT_READY


def test_explain_trace_shows_values_operators_and_bucket_numbers() -> None:
    flags = compile_flags([
        targeted_flag("parent", ...),
        {"key": "child", "dependencies": ["parent"],
         "variants": {"a": {"key": "a"}, "b": {"key": "b"}},
         "segments": [
             {"metadata": {"segmentName": "Pros"},
              "conditions": [[condition(prop("plan"), "is", ["pro"]), condition(["result", "parent", "key"], "is",
                                                                                ["on"])],
                             [condition(["context", "user", "country"], "is", ["DE"])]],
              "variant": "a"},
             {"metadata": {"segmentName": "Rest"},
              "bucket": {"selector": ["context", "user", "device_id"], "salt": "s1",
                         "allocations": [{"range": [0, 100], "distributions": [
                             {"variant": "a", "range": [0, 21474837]},
                             {"variant": "b", "range": [21474837, 42949673]}]}]},
              "variant": "a"},
         ]},
    ])
    user = User(device_id="device-7", user_properties={"plan": "free"})
    result = explain(flags, user, "child")
    data = result.to_dict()
    assert data["dependencies"] == {"parent": "on"}
    first, second = data["segments"]
    assert first["summary"] == "conditions not met"
    assert first["conditions"] == [
        [{"selector": ["context", "user", "user_properties", "plan"], "op": "is", "values": ["pro"], "value": "free",
          "matched": False},
         {"selector": ["result", "parent", "key"], "op": "is", "values": ["on"], "value": "on", "matched": True}],
        [{"selector": ["context", "user", "country"], "op": "is", "values": ["DE"], "value": None,
          "matched": False}],
    ]
    bucket = second["bucket"]
    assert bucket["hash"] == 1538963096 and bucket["allocation_value"] == 96  # mmh3.hash("s1/device-7")
    assert bucket["distribution_value"] == 15389630 and bucket["distribution"] == [0, 21474837]
    assert second["summary"] == "matched -> a"
    assert data["result"]["variant"]["key"] == "a" == evaluate(flags, user, ["child"])["child"].key
    text = result.to_text()
    assert text.splitlines()[0] == "flag child: a  [SPLIT]"
    assert "      ✗ context.user.user_properties.plan = 'free'  is ['pro']" in text
    assert "murmur3(s1/device-7) = 1538963096, allocation 96 (of 100) -> [0, 100], distribution 15389630" in text


def test_explain_unknown_and_skipped_flags() -> None:
    compiled = compile_flags([{"key": "broken", "segments": "nope"}])
    assert explain(compiled, User(), "ghost").detail.reason == FLAG_NOT_FOUND
    assert explain(compiled, User(), "broken").to_text() == "flag broken: (no variant)  [FLAG_SKIPPED]\n" \
        "  segments must be a list"


def test_explain_bucket_step_agrees_with_evaluate_for_every_user() -> None:
    # explain traces buckets with bucketing.locate, the rule the engine applies (design.md §4):
    # over 500 devices and a 3-allocation bucket, the traced variant is the evaluated one.
    flag = rollout("exp", 100)
    flag["segments"][0]["bucket"]["allocations"] = [
        {"range": [0, 30], "distributions": [{"variant": "control", "range": [0, 42949673]}]},
        {"range": [30, 60], "distributions": [{"variant": "treatment", "range": [0, 20000000]}]},
        {"range": [30, 100], "distributions": [{"variant": "control", "range": [0, 42949673]}]},
    ]
    compiled = compile_flags([flag])
    seen = set()
    for i in range(500):
        user = User(device_id=f"device-{i}")
        (segment,) = explain(compiled, user, "exp").to_dict()["segments"]
        expected = evaluate(compiled, user)["exp"].key
        assert segment["summary"] == f"matched -> {expected}"
        seen.add((tuple(segment["bucket"]["allocation"]), expected))
    # every allocation was hit, including the fall-through from [30, 60) to [30, 100)
    assert seen == {((0, 30), "control"), ((30, 60), "treatment"), ((30, 100), "control")}
