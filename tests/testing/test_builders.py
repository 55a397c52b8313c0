"""Flag builders produce valid v2 flags that evaluate exactly as described."""

from __future__ import annotations

import collections
import json
from typing import Any, Dict, List, Optional, cast

import mmh3
import pytest

from amplitude_experiment import LocalEvaluationClient, LocalEvaluationConfig, User
from amplitude_experiment.evaluation import compile_flags, evaluate
from amplitude_experiment.evaluation.explain import ALL_USERS, DEFAULT, SPLIT, TARGETING_MATCH, evaluate_details
from amplitude_experiment.evaluation.operators import KNOWN_OPERATORS
from amplitude_experiment.testing import AmplitudeStandIn
from amplitude_experiment.testing.builders import (
    ALL_OTHER_USERS,
    DISTRIBUTION_END,
    OFF,
    OPERATORS,
    FlagBuilder,
    any_of,
    cohorts,
    condition,
    distributions,
    experiment,
    group,
    group_prop,
    in_cohort,
    not_in_cohort,
    off_flag,
    on_flag,
    prop,
    result,
    rollout,
)

DEVICES = [f"device-{i}" for i in range(10_000)]


def compiled_ok(*flags: Dict[str, Any]) -> Any:
    """Compile through a JSON round trip, insisting that nothing is skipped or warned about."""
    wire = json.loads(json.dumps(list(flags), allow_nan=False))
    assert wire == list(flags)
    compiled = compile_flags(wire)
    assert compiled.skipped == {}
    assert compiled.warnings == []
    assert list(compiled.flags) == [f["key"] for f in flags]
    return compiled


def variant_key(flag: Dict[str, Any], user: User) -> Optional[str]:
    got = evaluate(compiled_ok(flag), user).get(flag["key"])
    return None if got is None else got.key


def expected_bucket(salt: str, value: str, percentage: int, ranges: List[Dict[str, Any]]) -> str:
    """Amplitude's bucketing computed independently of the engine: murmur3 of "salt/value"."""
    h = mmh3.hash(f"{salt}/{value}", 0, False)
    if h % 100 >= percentage:
        return OFF
    for entry in ranges:
        start, end = entry["range"]
        if start <= h // 100 < end:
            return str(entry["variant"])
    raise AssertionError("distributions do not cover the hash")


# ----- whole flags ---------------------------------------------------------------------------


def test_on_flag_serves_on_to_everyone() -> None:
    flag = on_flag("dark-mode", value="enabled", payload={"theme": "dark"}, version=4)
    compiled = compiled_ok(flag)
    for user in (User(), User(user_id="u1"), User(device_id="d1", country="DE")):
        detail = evaluate_details(compiled, user)["dark-mode"]
        assert detail.variant is not None
        assert (detail.variant.key, detail.variant.value, detail.variant.payload) == ("on", "enabled",
                                                                                      {"theme": "dark"})
        assert (detail.reason, detail.segment_name) == (ALL_USERS, ALL_OTHER_USERS)
        assert detail.variant.metadata == {"deployed": True, "evaluationMode": "local", "flagType": "release",
                                           "flagVersion": 4, "segmentName": ALL_OTHER_USERS}


def test_off_flag_serves_the_default_variant() -> None:
    flag = off_flag("legacy")
    assert flag["variants"][OFF] == {"key": "off", "metadata": {"default": True}}
    detail = evaluate_details(compiled_ok(flag), User(user_id="u1"))["legacy"]
    assert detail.variant is not None and detail.variant.key == OFF and detail.variant.value is None
    assert detail.reason == DEFAULT
    assert detail.variant.metadata is not None and detail.variant.metadata["default"] is True


def test_experiment_metadata_and_shape() -> None:
    flag = experiment("checkout", version=7, experiment_key="exp-42")
    assert flag["metadata"] == {"deployed": True, "evaluationMode": "local", "flagType": "experiment",
                                "flagVersion": 7, "experimentKey": "exp-42"}
    assert set(flag["variants"]) == {"control", "treatment", OFF}
    (segment,) = flag["segments"]
    assert segment["metadata"] == {"segmentName": ALL_OTHER_USERS}
    assert segment["variant"] == OFF
    assert segment["bucket"] == {
        "selector": ["context", "user", "device_id"], "salt": "checkout",
        "allocations": [{"range": [0, 100], "distributions": [
            {"variant": "control", "range": [0, 21474837]},
            {"variant": "treatment", "range": [21474837, DISTRIBUTION_END]}]}]}
    assert experiment("checkout")["metadata"]["experimentKey"] == "checkout"


@pytest.mark.parametrize("weights", [
    {"control": 50, "treatment": 50},
    {"a": 10, "b": 20, "c": 70},
    {"a": 1, "b": 1, "c": 1},
    {"small": 0.5, "big": 99.5},
])
def test_experiment_split_counts_match_the_weights(weights: Dict[str, float]) -> None:
    flag = experiment("exp", variants=weights, salt="s4lt")
    compiled = compiled_ok(flag)
    ranges = flag["segments"][0]["bucket"]["allocations"][0]["distributions"]
    counts: collections.Counter[str] = collections.Counter()
    for device in DEVICES:
        got = evaluate(compiled, User(device_id=device))["exp"].key
        assert got == expected_bucket("s4lt", device, 100, ranges)  # exactly Amplitude's bucketing
        counts[str(got)] += 1
    total = sum(weights.values())
    for name, weight in weights.items():
        assert abs(counts[name] / len(DEVICES) - weight / total) < 0.02, (name, counts)
    assert sum(counts.values()) == len(DEVICES)


def test_experiment_is_deterministic_across_builds_and_calls() -> None:
    first = compiled_ok(experiment("exp", variants={"a": 1, "b": 2, "c": 3}))
    second = compiled_ok(experiment("exp", variants={"a": 1, "b": 2, "c": 3}))
    users = [User(device_id=d) for d in DEVICES[:2000]]
    once = [evaluate(first, u)["exp"].key for u in users]
    assert once == [evaluate(first, u)["exp"].key for u in users]
    assert once == [evaluate(second, u)["exp"].key for u in users]
    # a different salt reshuffles users
    other = compiled_ok(experiment("exp", variants={"a": 1, "b": 2, "c": 3}, salt="other"))
    assert once != [evaluate(other, u)["exp"].key for u in users]


def test_experiment_percentage_and_users_without_the_bucketing_field() -> None:
    flag = experiment("exp", percentage=30)
    compiled = compiled_ok(flag)
    ranges = flag["segments"][0]["bucket"]["allocations"][0]["distributions"]
    counts: collections.Counter[str] = collections.Counter()
    for device in DEVICES:
        detail = evaluate_details(compiled, User(device_id=device))["exp"]
        assert detail.variant is not None
        assert detail.variant.key == expected_bucket("exp", device, 30, ranges)
        assert detail.reason == (DEFAULT if detail.variant.key == OFF else SPLIT)
        counts[str(detail.variant.key)] += 1
    assert abs(counts[OFF] / len(DEVICES) - 0.70) < 0.02
    assert abs(counts["control"] - counts["treatment"]) < 0.04 * len(DEVICES)
    assert variant_key(flag, User(user_id="no-device")) == OFF
    assert all(variant_key(experiment("none", percentage=0), User(device_id=d)) == OFF for d in DEVICES[:200])


def test_rollout_serves_on_to_exactly_the_allocated_users() -> None:
    flag = rollout("new-search", 25, payload=[1, 2])
    compiled = compiled_ok(flag)
    on = 0
    for device in DEVICES:
        variant = evaluate(compiled, User(device_id=device))["new-search"]
        in_rollout = mmh3.hash(f"new-search/{device}", 0, False) % 100 < 25
        assert variant.key == ("on" if in_rollout else OFF)
        on += in_rollout
        if in_rollout:
            assert variant.payload == [1, 2]
    assert abs(on / len(DEVICES) - 0.25) < 0.02


def test_bucket_by_user_id_and_by_group() -> None:
    by_user = compiled_ok(experiment("exp", bucket_by="user_id"))
    for i in range(50):
        keys = {evaluate(by_user, User(user_id=f"u{i}", device_id=f"d{i}-{j}"))["exp"].key for j in range(5)}
        assert len(keys) == 1
    by_company = compiled_ok(experiment("exp", bucket_by=group("company")))
    seen = set()
    for i in range(50):
        keys = {evaluate(by_company, User(user_id=f"u{i}-{j}", groups={"company": [f"c{i}"]}))["exp"].key
                for j in range(5)}
        assert len(keys) == 1
        seen |= keys
    assert seen == {"control", "treatment"}


def test_experiment_payloads_reach_the_variants() -> None:
    flag = experiment("exp", variants=["a", "b"], payloads={"b": {"price": 9}})
    compiled = compiled_ok(flag)
    payloads = {}
    for device in DEVICES[:200]:
        variant = evaluate(compiled, User(device_id=device))["exp"]
        payloads[variant.key] = variant.payload
    assert payloads == {"a": None, "b": {"price": 9}}


# ----- targeting rules -----------------------------------------------------------------------


def test_rules_in_order_then_the_catch_all() -> None:
    flag = (FlagBuilder("pricing", version=3)
            .variant("discount", payload={"pct": 20})
            .variant("premium", "premium-value")
            .rule("Staff", condition(prop("staff"), "is", True), "premium")
            .rule("Pro plan", condition(prop("plan"), "is", "pro", "team"), "discount")
            .everyone("discount", percentage=0)
            .build())
    compiled = compiled_ok(flag)

    def detail(**fields: Any) -> Any:
        return evaluate_details(compiled, User(device_id="d1", **fields))["pricing"]

    staff = detail(user_properties={"staff": "true", "plan": "pro"})
    assert (staff.variant.key, staff.variant.value, staff.reason, staff.segment_name) == (
        "premium", "premium-value", TARGETING_MATCH, "Staff")
    pro = detail(user_properties={"plan": "team"})
    assert (pro.variant.key, pro.variant.payload, pro.segment_name) == ("discount", {"pct": 20}, "Pro plan")
    assert pro.variant.metadata["segmentName"] == "Pro plan"
    assert pro.variant.metadata["flagVersion"] == 3
    other = detail(user_properties={"plan": "free"})
    assert (other.variant.key, other.reason, other.segment_name) == (OFF, DEFAULT, ALL_OTHER_USERS)


def test_all_of_and_any_of() -> None:
    german_pro = [condition("country", "is", "DE"), condition(prop("plan"), "is", "pro")]
    flag = (FlagBuilder("f").variant("on")
            .rule("German pros", german_pro, "on")
            .build())
    assert variant_key(flag, User(country="DE", user_properties={"plan": "pro"})) == "on"
    assert variant_key(flag, User(country="DE", user_properties={"plan": "free"})) == OFF
    either = FlagBuilder("f").variant("on").rule("Either", any_of(german_pro, in_cohort("vip")), "on").build()
    assert either["segments"][0]["conditions"] == [german_pro, [in_cohort("vip")]]
    assert variant_key(either, User(country="DE", user_properties={"plan": "pro"})) == "on"
    assert variant_key(either, User(cohort_ids=["vip"])) == "on"
    assert variant_key(either, User(country="DE", cohort_ids=["other"])) == OFF


def test_rule_with_a_percentage_does_not_fall_through() -> None:
    flag = (FlagBuilder("f").variant("on").variant("later")
            .rule("Beta", condition(prop("beta"), "is", True), "on", percentage=40)
            .everyone("later")
            .build())
    compiled = compiled_ok(flag)
    counts: collections.Counter[str] = collections.Counter()
    for device in DEVICES[:4000]:
        got = evaluate(compiled, User(device_id=device, user_properties={"beta": True}))["f"].key
        expected = "on" if mmh3.hash(f"f/{device}", 0, False) % 100 < 40 else OFF
        assert got == expected
        counts[str(got)] += 1
    assert set(counts) == {"on", OFF}
    assert evaluate(compiled, User(device_id="d1"))["f"].key == "later"


def test_rule_with_a_split() -> None:
    flag = (FlagBuilder("f", flag_type="experiment", salt="x").variant("a").variant("b")
            .rule("US", condition("country", "is", "US"), split={"a": 1, "b": 3}, bucket_by="user_id")
            .build())
    compiled = compiled_ok(flag)
    bucket = flag["segments"][0]["bucket"]
    assert bucket["selector"] == ["context", "user", "user_id"]
    counts: collections.Counter[str] = collections.Counter(
        str(evaluate(compiled, User(user_id=u, country="US"))["f"].key) for u in DEVICES)
    assert abs(counts["a"] / len(DEVICES) - 0.25) < 0.02
    assert evaluate(compiled, User(user_id="u1", country="FR"))["f"].key == OFF


def test_depends_on() -> None:
    parent = rollout("parent", 50)
    child = FlagBuilder("child").variant("on").depends_on("parent").everyone("on").build()
    assert child["dependencies"] == ["parent"]
    compiled = compiled_ok(parent, child)
    for device in DEVICES[:500]:
        got = evaluate(compiled, User(device_id=device), ["child"])
        assert got["child"].key == ("on" if got["parent"].key == "on" else OFF)
    specific = FlagBuilder("child").variant("on").depends_on("exp", "treatment").everyone("on").build()
    compiled = compiled_ok(experiment("exp"), specific)
    for device in DEVICES[:500]:
        got = evaluate(compiled, User(device_id=device))
        assert got["child"].key == ("on" if got["exp"].key == "treatment" else OFF)


USER = User(
    user_id="user-1", device_id="device-1", country="DE", version="2.10.3", os="iOS 17",
    user_properties={"plan": "pro", "age": 31, "tags": ["a", "b"], "beta": True, "email": "x@corp.example"},
    groups={"company": ["acme"]},
    group_properties={"company": {"acme": {"tier": "gold", "seats": 250}}},
    group_cohort_ids={"company": {"acme": ["gc1"]}},
    cohort_ids=["c1", "c2"],
)

OPERATOR_CASES = [
    # selector, op, values that match USER, values that do not
    ("country", "is", ["DE", "FR"], ["US"]),
    ("country", "is not", ["US"], ["DE"]),
    (prop("email"), "contains", ["@CORP."], ["@other."]),
    (prop("email"), "does not contain", ["@other."], ["corp"]),
    (prop("age"), "less", [40], [31]),
    (prop("age"), "less or equal", [31], [30]),
    (prop("age"), "greater", [30.5], [31]),
    (prop("age"), "greater or equal", [31], [32]),
    ("version", "version less", ["2.11.0"], ["2.9"]),
    ("version", "version less or equal", ["2.10.3"], ["2.10.2"]),
    ("version", "version greater", ["2.9.9"], ["2.10.3"]),
    ("version", "version greater or equal", ["2.10.3"], ["3.0"]),
    (prop("tags"), "set is", ["b", "a"], ["a"]),
    (prop("tags"), "set is not", ["a"], ["a", "b"]),
    (prop("tags"), "set contains", ["a"], ["a", "c"]),
    (prop("tags"), "set does not contain", ["c"], ["a"]),
    (prop("tags"), "set contains any", ["c", "b"], ["c", "d"]),
    (prop("tags"), "set does not contain any", ["c", "d"], ["b", "d"]),
    ("os", "regex match", [r"^iOS \d+$"], [r"^Android"]),
    ("os", "regex does not match", [r"^Android"], [r"iOS"]),
    (prop("beta"), "is", [True], [False]),
    (prop("missing"), "is", [None], ["x"]),
    (group("company"), "is", ["acme"], ["globex"]),
    (group_prop("company", "tier"), "is", ["gold"], ["silver"]),
    (group_prop("company", "seats"), "greater", [100], [1000]),
    (cohorts(), "set contains any", ["c2", "c9"], ["c9"]),
    (cohorts("company"), "set contains any", ["gc1"], ["gc2"]),
]


@pytest.mark.parametrize("selector, op, matching, other", OPERATOR_CASES,
                         ids=[f"{c[1]}-{i}" for i, c in enumerate(OPERATOR_CASES)])
def test_every_operator_and_selector(selector: Any, op: str, matching: List[Any], other: List[Any]) -> None:
    def flag(values: List[Any]) -> Dict[str, Any]:
        return FlagBuilder("f").variant("on").rule("r", condition(selector, op, values), "on").build()

    assert variant_key(flag(matching), USER) == "on"
    assert variant_key(flag(other), USER) == OFF


def test_the_operator_cases_cover_every_operator() -> None:
    assert set(OPERATORS) == KNOWN_OPERATORS
    assert {case[1] for case in OPERATOR_CASES} == set(OPERATORS)


def test_cohort_helpers() -> None:
    assert in_cohort("c1", "c2") == {"selector": ["context", "user", "cohort_ids"], "op": "set contains any",
                                     "values": ["c1", "c2"]}
    assert not_in_cohort("g", group_type="org") == {"selector": ["context", "groups", "org", "cohort_ids"],
                                                    "op": "set does not contain any", "values": ["g"]}
    flag = FlagBuilder("f").variant("on").rule("not c9", not_in_cohort("c9"), "on").build()
    assert variant_key(flag, USER) == "on"
    assert variant_key(flag, User(cohort_ids=["c9"])) == OFF


def test_condition_values_are_written_as_amplitude_strings() -> None:
    assert condition(prop("p"), "is", True, 3, 2.5, None, "x")["values"] == ["true", "3", "2.5", "(none)", "x"]
    assert condition("country", "is", ["US", "CA"], "MX")["values"] == ["US", "CA", "MX"]
    assert condition(result("parent"), "is", "on")["selector"] == ["result", "parent", "key"]
    assert condition(["context", "user", "user_properties", "x"], "is", "y")["selector"] == prop("x")


# ----- splits --------------------------------------------------------------------------------


@pytest.mark.parametrize("weights", [
    {"a": 50, "b": 50}, {"a": 1, "b": 2, "c": 3}, {"a": 33.3, "b": 33.3, "c": 33.4}, {"only": 5},
    {f"v{i}": i + 1 for i in range(17)}, ["x", "y", "z"],
])
def test_distributions_cover_the_range_exactly(weights: Any) -> None:
    entries = distributions(weights)
    ranges = [e["range"] for e in entries]
    assert ranges[0][0] == 0 and ranges[-1][1] == DISTRIBUTION_END
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
    assert all(start < end for start, end in ranges)
    shares = weights if isinstance(weights, dict) else dict.fromkeys(weights, 1)
    total = sum(shares.values())
    for entry in entries:
        start, end = entry["range"]
        assert abs((end - start) - DISTRIBUTION_END * shares[entry["variant"]] / total) <= 1


def test_distributions_are_normalised_and_skip_zero_weights() -> None:
    assert distributions({"a": 1, "b": 1}) == distributions({"a": 50, "b": 50}) == distributions(["a", "b"])
    assert [e["variant"] for e in distributions({"a": 0, "b": 1, "c": 0})] == ["b"]


# ----- validity ------------------------------------------------------------------------------


def test_built_flags_work_with_the_client_offline_and_through_the_stand_in() -> None:
    flags = [on_flag("a"), off_flag("b"), rollout("c", 100), experiment("d", percentage=100),
             FlagBuilder("e").variant("on").depends_on("a").rule("pro", condition(prop("plan"), "is", "pro"), "on")
             .build()]
    compiled_ok(*flags)
    user = User(device_id="d1", user_properties={"plan": "pro"})
    expected = {"a": "on", "b": OFF, "c": "on", "e": "on"}
    config = LocalEvaluationConfig(offline=True, bootstrap_flags=flags)
    with LocalEvaluationClient("server-test", config) as client:
        got = client.evaluate_v2(user)
        assert {k: v.key for k, v in got.items() if k != "d"} == expected
        assert got["d"].key in ("control", "treatment")
        with pytest.warns(DeprecationWarning):
            assert "b" not in client.evaluate(user)  # the deprecated API drops default variants
    with AmplitudeStandIn(flags=flags, deployment_key="server-test") as stand_in, \
            LocalEvaluationClient("server-test", LocalEvaluationConfig(server_url=stand_in.url)) as client:
        assert {k: v.key for k, v in client.evaluate_v2(user).items()} == {k: v.key for k, v in got.items()}


def test_build_returns_independent_copies() -> None:
    builder = FlagBuilder("f").variant("on", payload={"list": [1]}).rule("r", condition("country", "is", "DE"),
                                                                        "on")
    first = builder.build()
    first["variants"]["on"]["payload"]["list"].append(2)
    first["segments"][0]["conditions"][0][0]["values"].append("FR")
    second = builder.build()
    assert second["variants"]["on"]["payload"] == {"list": [1]}
    assert second["segments"][0]["conditions"] == [[condition("country", "is", "DE")]]


def test_extra_and_variant_metadata() -> None:
    flag = (FlagBuilder("f", metadata={"evaluationMode": "remote", "owner": "me"})
            .variant("on", metadata={"note": "x"}).everyone("on").build())
    assert flag["metadata"]["evaluationMode"] == "remote" and flag["metadata"]["owner"] == "me"
    variant = evaluate(compiled_ok(flag), User())["f"]
    assert variant.metadata is not None and variant.metadata["note"] == "x" and variant.metadata["owner"] == "me"


@pytest.mark.parametrize("make, message", [
    (lambda: condition("country", "equals", "US"), "unknown operator 'equals'"),
    (lambda: condition("plan", "is", "pro"), "prop('plan')"),
    (lambda: condition("country", "is"), "at least one value"),
    (lambda: condition("country", "is", []), "at least one value"),
    (lambda: condition("country", "is", {"a": 1}), "condition values"),
    (lambda: condition("country", "is", float("nan")), "condition values"),
    (lambda: condition("os", "regex match", "("), "invalid regex"),
    (lambda: condition(["user", "country"], "is", "x"), "selector"),
    (lambda: condition(["context"], "is", "x"), "selector"),
    (lambda: prop(""), "user property name"),
    (lambda: in_cohort(""), "cohort id"),
    (lambda: any_of(), "at least one alternative"),
    (lambda: distributions({}), "at least one variant"),
    (lambda: distributions({"a": -1}), "finite number >= 0"),
    (lambda: distributions({"a": True}), "finite number >= 0"),
    (lambda: distributions({"a": 0}), "all be zero"),
    (lambda: distributions("ab"), "mapping"),
    (lambda: distributions(["a", "a"]), "appears twice"),
    (lambda: experiment("e", percentage=101), "percentage"),
    (lambda: experiment("e", percentage=50.0), "percentage"),  # type: ignore[arg-type]
    (lambda: experiment("e", percentage=True), "percentage"),
    (lambda: experiment("e", payloads={"nope": 1}), "'nope'"),
    (lambda: experiment("e", variants={"off": 1}), "built in"),
    (lambda: experiment("e", bucket_by="plan"), "unknown user field"),
    (lambda: rollout("r", -1), "percentage"),
    (lambda: on_flag(""), "flag key"),
    (lambda: on_flag("a", version=0), "version"),
    (lambda: on_flag("a", payload={1, 2}), "JSON-serialisable"),
    (lambda: FlagBuilder("f", flag_type="feature"), "flag_type"),
    (lambda: FlagBuilder("f", salt=""), "salt"),
    (lambda: FlagBuilder("f").variant("on").variant("on"), "already defined"),
    (lambda: FlagBuilder("f").variant("on", 3), "variant value"),  # type: ignore[arg-type]
    (lambda: FlagBuilder("f").rule("r", condition("country", "is", "DE"), "missing").build(), "add .variant"),
    (lambda: FlagBuilder("f").everyone(split={"a": 1}).build(), "'a', which is not defined"),
    (lambda: FlagBuilder("f").variant("on").rule("r", [], "on"), "at least one condition"),
    (lambda: FlagBuilder("f").variant("on").rule("r", [[]], "on"), "non-empty lists"),
    (lambda: FlagBuilder("f").variant("on").rule(
        "r", cast(Any, [condition("os", "is", "x"), [condition("os", "is", "y")]]), "on"), "non-empty lists"),
    (lambda: FlagBuilder("f").variant("on").rule("r", {"selector": ["context"], "op": "is", "values": ["x"]},
                                                 "on"), "selector"),
    (lambda: FlagBuilder("f").variant("on").rule("", condition("os", "is", "x"), "on"), "segment name"),
    (lambda: FlagBuilder("f").variant("on").rule("r", condition("os", "is", "x")), "not both or neither"),
    (lambda: FlagBuilder("f").variant("on").everyone("on", split={"on": 1}), "not both or neither"),
    (lambda: FlagBuilder("f").variant("on").everyone("on").everyone("on"), "already called"),
    (lambda: FlagBuilder("f").depends_on("f"), "itself"),
    (lambda: FlagBuilder("f").depends_on("g").depends_on("g"), "already depends"),
])
def test_invalid_arguments_raise_clear_value_errors(make: Any, message: str) -> None:
    with pytest.raises(ValueError) as info:
        make()
    assert message in str(info.value)
