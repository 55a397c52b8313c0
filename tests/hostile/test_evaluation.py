"""Hostile and odd user data in evaluate, evaluate_details and explain (issues 15 points 5 and 7).

design.md §1/§4: evaluation never raises; a value is coerced to text by fixed rules
(corrections a-c, g-i) and a value with no string form (evaluation/coerce.py: circular, too
deep, a failing ``str()``, an int longer than ``MAX_INT_DIGITS``) makes its condition false
and buckets as no value. ``explain()`` accepts whatever ``evaluate`` accepts (issue 15 point 5)
and always agrees with it. Every test states the exact variants.
"""

from __future__ import annotations

import datetime
import json
import logging
import sys
from typing import Any, Dict, List, Optional

import pytest

from amplitude_experiment import LocalEvaluationClient, LocalEvaluationConfig, User
from amplitude_experiment.evaluation import compile_flags, evaluate
from amplitude_experiment.evaluation.coerce import MAX_INT_DIGITS
from amplitude_experiment.evaluation.explain import DEFAULT, TARGETING_MATCH, evaluate_details, explain
from amplitude_experiment.evaluation.operators import KNOWN_OPERATORS
from amplitude_experiment.testing import AmplitudeStandIn

from ..evaluation.helpers import condition, prop, targeted_flag
from ..evaluation.test_engine import rollout


def outcome(flags: List[Dict[str, Any]], user: User) -> Dict[str, Optional[str]]:
    """Variant keys from evaluate, after checking that details and explain say exactly the same."""
    compiled = compile_flags(flags)
    variants = {key: v.key for key, v in evaluate(compiled, user).items()}
    details = evaluate_details(compiled, user)
    assert {key: d.variant.key for key, d in details.items() if d.variant is not None} == variants
    for key in compiled.flags:
        explanation = explain(compiled, user, key)
        assert (explanation.detail.variant.key if explanation.detail.variant else None) == variants.get(key)
        json.dumps(explanation.to_dict())  # JSON-safe, whatever the user held
        assert explanation.to_text().startswith(f"flag {key}: ")
    return variants


def deep_list(depth: int) -> List[Any]:
    value: List[Any] = []
    for _ in range(depth):
        value = [value]
    return value


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no text for you")


# (value, its text): the text a condition compares and a bucket hashes.
COERCED = [
    pytest.param(float("nan"), "nan", id="nan"),
    pytest.param(float("inf"), "inf", id="inf"),
    pytest.param(float("-inf"), "-inf", id="-inf"),
    pytest.param(b"bytes", "b'bytes'", id="bytes"),
    pytest.param(datetime.datetime(2024, 1, 2, 3, 4, 5), "2024-01-02 03:04:05", id="datetime"),
    pytest.param(datetime.date(2024, 1, 2), "2024-01-02", id="date"),
    pytest.param("lone \ud800 surrogate", "lone \ud800 surrogate", id="lone-surrogate"),
    # past Python's 4300-digit int-to-str limit, written exactly (issue 15 point 5)
    pytest.param(10 ** 5000, "1" + "0" * 5000, id="int-5001-digits"),
    pytest.param(-(10 ** 5000), "-1" + "0" * 5000, id="negative-int-5001-digits"),
]


@pytest.mark.parametrize("value, text", COERCED)
def test_odd_values_are_compared_and_bucketed_as_their_text(value: Any, text: str) -> None:
    flags = [
        targeted_flag("is", [[condition(prop("p"), "is", [text])]]),
        targeted_flag("is-not", [[condition(prop("p"), "is not", [text])]]),
        targeted_flag("regex", [[condition(prop("p"), "regex match", ["^"])]]),
        rollout("bucket", 100, selector=prop("p")),
    ]
    odd = outcome(flags, User(device_id="d", user_properties={"p": value}))
    as_text = outcome(flags, User(device_id="d", user_properties={"p": text}))
    assert odd == as_text == {"is": "on", "is-not": "off", "regex": "on", "bucket": as_text["bucket"]}
    assert as_text["bucket"] in ("control", "treatment")


def test_a_list_holding_a_huge_int() -> None:
    # its elements have a text form (the int's exact digits), so element-wise operators work;
    # as a whole it has none (json cannot write the int), so it buckets as no value
    huge = "1" + "0" * 5000
    flags = [targeted_flag("is", [[condition(prop("p"), "is", [huge])]]),
             targeted_flag("set", [[condition(prop("p"), "set contains", ["a", huge])]]),
             rollout("bucket", 100, selector=prop("p"))]
    user = User(device_id="d", user_properties={"p": ["a", 10 ** 5000]})
    assert outcome(flags, user) == {"is": "on", "set": "on", "bucket": "off"}


def circular_dict() -> Dict[str, Any]:
    value: Dict[str, Any] = {"name": "loop"}
    value["self"] = value
    return value


def circular_list() -> List[Any]:
    value: List[Any] = ["loop"]
    value.append(value)
    return value


WITHOUT_TEXT = [
    pytest.param(circular_dict, id="circular-dict"),
    pytest.param(circular_list, id="circular-list"),
    pytest.param(lambda: deep_list(100_000), id="nested-100000-deep"),
    pytest.param(lambda: {"deep": deep_list(5_000)}, id="dict-nesting-5000-deep"),
    pytest.param(Unprintable, id="str-raises"),
    pytest.param(lambda: 10 ** (MAX_INT_DIGITS + 10), id="int-past-MAX_INT_DIGITS"),
    pytest.param(lambda: [[10 ** 5000]], id="nested-huge-int"),
    pytest.param(lambda: ["x", circular_dict()], id="list-with-circular-element"),
]


@pytest.mark.parametrize("make", WITHOUT_TEXT)
def test_values_without_a_string_form_make_every_condition_false(make: Any) -> None:
    value = make()
    ops = sorted(KNOWN_OPERATORS)
    flags = [targeted_flag(op, [[condition(prop("p"), op, ["x"])]]) for op in ops]
    flags.append(rollout("bucket", 100, selector=prop("p")))
    # design.md §4: a bucket without a value gives the segment's variant ("off")
    expected = dict.fromkeys(ops, "off") | {"bucket": "off"}
    assert outcome(flags, User(device_id="d", user_properties={"p": value})) == expected


def test_explain_shows_values_without_a_string_form_and_huge_ints() -> None:
    compiled = compile_flags([targeted_flag("f", [[condition(prop("a"), "is", ["x"])],
                                                  [condition(prop("b"), "is", ["x"])],
                                                  [condition(prop("c"), "is", ["x"])]])])
    user = User(user_properties={"a": circular_dict(), "b": 10 ** 5000, "c": 10 ** (MAX_INT_DIGITS + 10)})
    data = explain(compiled, user, "f").to_dict()
    values = [group[0]["value"] for group in data["segments"][0]["conditions"]]
    assert values == ["<dict without a string form>", "1" + "0" * 5000, "<int without a string form>"]
    assert data["result"]["variant"]["key"] == "off"
    assert evaluate_details(compiled, user)["f"].reason == DEFAULT


def test_a_circular_user_through_the_whole_context_selector() -> None:
    # a selector of the whole user builds the context dict, which holds the circular value
    flags = [targeted_flag("whole", [[condition(["context", "user"], "does not contain", ["zzz"])]]),
             targeted_flag("id", [[condition(["context", "user", "user_id"], "is", ["u1"])]])]
    assert outcome(flags, User(user_id="u1", user_properties={"p": circular_dict()})) == {"whole": "off", "id": "on"}


@pytest.mark.parametrize("pattern", ["(unclosed", "[z-a]", "a{2,1}", "(?P<1>x)", "*", "a{4294967296}"])
def test_bad_regexes_make_the_condition_false(pattern: str, caplog: pytest.LogCaptureFixture) -> None:
    # design.md §4 correction (f): false for both regex operators, logged once, never raised
    flags = [targeted_flag("match", [[condition(prop("p"), "regex match", [pattern, "a"])]]),
             targeted_flag("no-match", [[condition(prop("p"), "regex does not match", [pattern])]])]
    with caplog.at_level(logging.WARNING, logger="amplitude_experiment"):
        assert outcome(flags, User(user_properties={"p": "a"})) == {"match": "off", "no-match": "off"}
    regex_warnings = [r for r in caplog.records if "invalid regex" in r.getMessage()]
    assert len(regex_warnings) == 2  # one per condition, however many evaluations ran


MEGABYTE = 1_000_000


@pytest.mark.parametrize(
    "op, values, value, expected",
    [
        ("is", ["a" * MEGABYTE], "a" * MEGABYTE, "on"),
        ("is not", ["a"], "a" * MEGABYTE, "on"),
        ("contains", ["AAB"], "a" * MEGABYTE + "b", "on"),
        ("does not contain", ["b"], "a" * MEGABYTE, "on"),
        ("less", ["2"], "1" * MEGABYTE, "off"),  # a 1 MB decimal is a (huge) number
        ("greater", ["2"], "1" * MEGABYTE, "on"),
        ("greater", ["2"], " " * MEGABYTE + "x", "off"),  # not a number: " " < "2" as strings
        ("version greater", ["1.2.3"], "2." * (MEGABYTE // 2) + "x", "on"),  # not a version: "2.2..." > "1.2.3"
        ("version less", ["1.0.0"], "1" * 5000 + ".0.0", "off"),  # too long for int(): compared as text
        ("regex match", ["b$"], "a" * MEGABYTE + "b", "on"),
        ("set contains any", ["a"], "[" + "a" * MEGABYTE, "off"),  # not JSON: a plain string, not a set
        ("set contains any", ["x"], json.dumps(["a"] * (MEGABYTE // 8) + ["x"]), "on"),
        ("is", ["x"], json.dumps(["a"] * (MEGABYTE // 8) + ["x"]), "on"),
        # JSON nested past the recursion limit is not read as an array: a plain string
        ("is", ["[" * 100_000], "[" * 100_000, "on"),
        ("set contains any", ["a"], "[" * 100_000 + "]" * 100_000, "off"),
        ("is not", ["a"], "[" * 100_000 + "]" * 100_000, "on"),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 30 else None,
)
def test_megabyte_strings(op: str, values: List[str], value: str, expected: str) -> None:
    flags = [targeted_flag("f", [[condition(prop("p"), op, values)]])]
    assert outcome(flags, User(user_properties={"p": value})) == {"f": expected}


def test_long_texts_are_not_kept_by_the_number_and_version_memo() -> None:
    # operators.py memoizes parsed numbers and versions of short texts only: 1,024 distinct
    # 1 MB properties must not pin 1 GB
    compiled = compile_flags([targeted_flag("v", [[condition(prop("p"), "version less", ["1.0.0"])]]),
                              targeted_flag("n", [[condition(prop("p"), "less", ["2"])]])])
    long_text = "9." * (MEGABYTE // 2)
    short_text = "9.9.9"
    before = sys.getrefcount(long_text), sys.getrefcount(short_text)
    for text in (long_text, short_text):
        assert {k: v.key for k, v in evaluate(compiled, User(user_properties={"p": text})).items()} == {
            "v": "off", "n": "off"}
    del text
    # the short text is kept as a memo key (once per operator memo), the long one is not
    assert (sys.getrefcount(long_text), sys.getrefcount(short_text)) == (before[0], before[1] + 2)


def test_megabyte_bucketing_value() -> None:
    # murmur3("salt/" + "é" * 10**6) = 618740888: allocation 88, distribution 6187408 -> control
    flags = [rollout("exp", 100, selector=prop("p"))]
    assert outcome(flags, User(user_properties={"p": "é" * MEGABYTE})) == {"exp": "control"}


def test_details_reasons_for_odd_values() -> None:
    compiled = compile_flags([targeted_flag("f", [[condition(prop("p"), "is", ["nan"])]])])
    assert evaluate_details(compiled, User(user_properties={"p": float("nan")}))["f"].reason == TARGETING_MATCH
    assert evaluate_details(compiled, User(user_properties={"p": circular_list()}))["f"].reason == DEFAULT


def test_the_client_explains_whatever_it_evaluates() -> None:
    # issue 15 point 5: evaluate_v2, evaluate_details and explain of the public client accept
    # the same users; deep, circular and huge-int properties raise nowhere.
    flags = [targeted_flag("t", [[condition(prop("p"), "is", ["x"])]]), rollout("b", 100, selector=prop("p"))]
    with AmplitudeStandIn(flags=flags, keepalive_interval=3600) as server:
        client = LocalEvaluationClient("server-hostile-key", LocalEvaluationConfig(server_url=server.url))
        client.start()
        try:
            for value, bucket in ((circular_dict(), "off"), (deep_list(100_000), "off"),
                                  (10 ** (MAX_INT_DIGITS + 10), "off"), (10 ** 5000, "treatment")):
                user = User(user_id="user-1", device_id="device-1", user_properties={"p": value})
                assert {k: v.key for k, v in client.evaluate_v2(user).items()} == {"t": "off", "b": bucket}
                assert {k: d.variant.key for k, d in client.evaluate_details(user).items() if d.variant} == {
                    "t": "off", "b": bucket}
                explanation = client.explain(user, "b")
                assert explanation is not None and explanation.detail.variant is not None
                assert explanation.detail.variant.key == bucket
                json.dumps(explanation.to_dict())
        finally:
            client.stop()
