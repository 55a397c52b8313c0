"""The evaluate loop: segments, buckets, groups, dependencies, flag_keys and robustness."""

from __future__ import annotations

import collections
import logging
from typing import Any, Dict, List

import pytest

from amplitude_experiment import User, Variant
from amplitude_experiment.evaluation import compile_flags, evaluate
from amplitude_experiment.evaluation.bucketing import bucket_hash

from .helpers import ON_OFF, condition, prop, targeted_flag


def keys(result: Dict[str, Variant]) -> Dict[str, Any]:
    return {k: v.key for k, v in result.items()}


def rollout(key: str, percent_on: int, salt: str = "salt", selector: Any = None) -> Dict[str, Any]:
    """An experiment: ``percent_on`` % allocated, split 50/50 between control and treatment."""
    return {
        "key": key,
        "metadata": {"flagType": "experiment", "flagVersion": 4},
        "variants": {
            "control": {"key": "control", "value": "control"},
            "treatment": {"key": "treatment", "value": "treatment", "payload": {"color": ["red"]}},
            "off": {"key": "off", "metadata": {"default": True}},
        },
        "segments": [
            {
                "metadata": {"segmentName": "All Other Users"},
                "bucket": {
                    "selector": selector or ["context", "user", "device_id"],
                    "salt": salt,
                    "allocations": [{
                        "range": [0, percent_on],
                        "distributions": [
                            {"variant": "control", "range": [0, 21474837]},
                            {"variant": "treatment", "range": [21474837, 42949673]},
                        ],
                    }],
                },
                "variant": "off",
            }
        ],
    }


@pytest.mark.parametrize(
    "text, expected",
    [
        ("", 0),
        ("hello", 613153351),
        ("The quick brown fox jumps over the lazy dog", 776992547),
    ],
)
def test_bucket_hash_is_murmur3_x86_32_seed_0(text: str, expected: int) -> None:
    assert bucket_hash(text) == expected


def test_bucket_hash_handles_non_ascii_and_lone_surrogates() -> None:
    assert bucket_hash("s/日本") == 2252427704
    # design.md §4: encode with surrogatepass, so a lone surrogate hashes as its 3 UTF-8-style
    # bytes (ED A0 80) instead of crashing: murmur3(b"s/\xed\xa0\x80") = 133130816.
    assert bucket_hash("s/\ud800") == 133130816
    assert bucket_hash("s/\ud800") != bucket_hash("s/\ud801")


def test_bucketing_distribution_over_10000_devices() -> None:
    flags = compile_flags([rollout("exp", 100), rollout("half", 50, salt="other")])
    counts: Dict[str, collections.Counter] = {"exp": collections.Counter(), "half": collections.Counter()}
    for i in range(10_000):
        result = evaluate(flags, User(device_id=f"device-{i}"))
        for key in counts:
            counts[key][result[key].key] += 1
    # Exact counts pin the hash and the range arithmetic (the official SDK gives the same
    # counts for these flags and ids); the band shows the split is sane.
    assert dict(counts["exp"]) == {"control": 5051, "treatment": 4949}
    assert dict(counts["half"]) == {"off": 5021, "control": 2427, "treatment": 2552}
    for counter in counts.values():
        assert abs(counter["control"] - counter["treatment"]) < 200


def test_bucketing_uses_salt_slash_value() -> None:
    # design.md §4: h = murmur3(salt + "/" + value). Expected variants recorded from the official
    # SDK (amplitude-experiment 1.13.0) for devices 0..11; hashing "saltdevice-N" (no slash)
    # would give control, treatment, treatment, control, ... instead.
    flags = compile_flags([rollout("exp", 100), rollout("half", 50, salt="other")])
    results = [evaluate(flags, User(device_id=f"device-{i}")) for i in range(12)]
    assert [r["exp"].key for r in results] == [
        "control", "control", "control", "control", "treatment", "control", "control", "control", "treatment",
        "control", "treatment", "control"]
    assert [r["half"].key for r in results] == [
        "off", "control", "treatment", "control", "control", "treatment", "treatment", "off", "control", "off",
        "treatment", "off"]
    assert bucket_hash("salt/device-7") == 1405963375  # allocation 75, distribution 14059633: control


def test_missing_or_empty_bucketing_value_gets_segment_variant() -> None:
    flags = compile_flags([rollout("exp", 100)])
    assert keys(evaluate(flags, User(user_id="u"))) == {"exp": "off"}
    assert keys(evaluate(flags, User(device_id=""))) == {"exp": "off"}


def test_bucketing_value_is_coerced() -> None:
    flags = compile_flags([rollout("exp", 100, selector=prop("n"))])
    by_int = evaluate(flags, User(user_properties={"n": 12345}))["exp"].key
    by_str = evaluate(flags, User(user_properties={"n": "12345"}))["exp"].key
    by_bool = evaluate(flags, User(user_properties={"n": True}))["exp"].key
    assert by_int == by_str
    assert by_bool == evaluate(flags, User(user_properties={"n": "true"}))["exp"].key


def test_no_matching_distribution_falls_back_to_segment_variant_and_next_allocation() -> None:
    flag = rollout("exp", 100)
    allocations = flag["segments"][0]["bucket"]["allocations"]
    allocations[0]["distributions"] = [{"variant": "control", "range": [0, 0]}]
    flags = compile_flags([flag])
    assert keys(evaluate(flags, User(device_id="d"))) == {"exp": "off"}
    allocations.append({"range": [0, 100], "distributions": [{"variant": "treatment", "range": [0, 42949673]}]})
    flags = compile_flags([flag])
    assert keys(evaluate(flags, User(device_id="d"))) == {"exp": "treatment"}


def test_result_variant_fields_and_metadata_merge() -> None:
    flag = {
        "key": "f",
        "metadata": {"flagVersion": 7, "flagType": "release", "shared": "flag"},
        "variants": {"v": {"key": "v", "value": "val", "payload": [1, {"a": 2}],
                           "metadata": {"shared": "variant", "extra": 1}}},
        "segments": [{"metadata": {"segmentName": "Targeted", "shared": "segment"}, "variant": "v"}],
    }
    variant = evaluate(compile_flags([flag]), User())["f"]
    assert (variant.key, variant.value, variant.payload) == ("v", "val", [1, {"a": 2}])
    assert variant.metadata == {"flagVersion": 7, "flagType": "release", "shared": "variant",
                                "segmentName": "Targeted", "extra": 1}


def test_results_do_not_share_mutable_state_with_the_snapshot() -> None:
    flag = {"key": "f", "variants": {"v": {"key": "v", "payload": {"list": [1]}}},
            "segments": [{"variant": "v", "metadata": {"segmentName": "s"}}]}
    flags = compile_flags([flag])
    first = evaluate(flags, User())["f"]
    first.payload["list"].append(2)
    first.metadata["segmentName"] = "changed"
    second = evaluate(flags, User())["f"]
    assert second.payload == {"list": [1]}
    assert second.metadata == {"segmentName": "s"}


def test_an_evaluated_variant_owns_what_it_hands_out() -> None:
    flags = compile_flags([{"key": "f", "variants": {"v": {"key": "v", "value": "x", "payload": {"a": [1]}}},
                            "segments": [{"variant": "v", "metadata": {"segmentName": "s"}}]}])
    variant = evaluate(flags, User())["f"]
    assert repr(variant) == "Variant(key='v', value='x', payload={'a': [1]}, metadata={'segmentName': 's'})"
    assert variant.payload is variant.payload  # copied once, then the variant's own
    variant.metadata = {"m": 1}  # replacing one keeps the other
    variant.payload["a"].append(2)
    assert (variant.payload, variant.metadata) == ({"a": [1, 2]}, {"m": 1})
    assert variant == Variant("x", payload={"a": [1, 2]}, key="v") != evaluate(flags, User())["f"]
    fresh = evaluate(flags, User())["f"]
    fresh.payload = None  # set before ever being read
    assert (fresh.payload, fresh.metadata) == (None, {"segmentName": "s"})
    assert evaluate(flags, User())["f"].payload == {"a": [1]}


def test_segments_in_order_first_yielding_a_known_variant_wins() -> None:
    flag = {
        "key": "f",
        "variants": ON_OFF,
        "segments": [
            {"variant": "missing"},  # matches everyone but names no variant: skipped
            {"conditions": [[condition(["context", "user", "user_id"], "is", ["vip"])]], "variant": "on"},
            {"variant": "off"},
        ],
    }
    flags = compile_flags([flag])
    assert keys(evaluate(flags, User(user_id="vip"))) == {"f": "on"}
    assert keys(evaluate(flags, User(user_id="other"))) == {"f": "off"}
    flag["segments"].pop()
    assert keys(evaluate(compile_flags([flag]), User(user_id="other"))) == {}


def test_conditions_outer_or_inner_and() -> None:
    country = ["context", "user", "country"]
    conditions = [
        [condition(country, "is", ["US"]), condition(prop("plan"), "is", ["pro"])],
        [condition(country, "is", ["DE"])],
    ]
    flags = compile_flags([targeted_flag("f", conditions)])
    cases = [({"country": "US", "user_properties": {"plan": "pro"}}, "on"),
             ({"country": "US", "user_properties": {"plan": "free"}}, "off"),
             ({"country": "DE"}, "on"),
             ({"country": "FR", "user_properties": {"plan": "pro"}}, "off")]
    for fields, expected in cases:
        assert evaluate(flags, User(**fields))["f"].key == expected, fields


@pytest.mark.parametrize(
    "field", ["device_id", "user_id", "country", "city", "region", "dma", "language", "platform", "version", "os",
              "device_manufacturer", "device_brand", "device_model", "carrier", "library", "ip_address"],
)
def test_every_predefined_user_field_is_selectable(field: str) -> None:
    flags = compile_flags([targeted_flag("f", [[condition(["context", "user", field], "is", ["x1"])]])])
    assert evaluate(flags, User(**{field: "x1"}))["f"].key == "on"
    assert evaluate(flags, User(**{field: "x2"}))["f"].key == "off"


def test_group_selectors() -> None:
    org = ["context", "groups", "org"]
    flags = compile_flags([
        targeted_flag("name", [[condition(org + ["group_name"], "is", ["acme"])]]),
        targeted_flag("tier", [[condition(org + ["group_properties", "tier"], "is", ["gold"])]]),
        targeted_flag("cohort", [[condition(org + ["cohort_ids"], "set contains any", ["c1"])]]),
    ])
    user = User(
        groups={"org": ["acme", "second"]},
        group_properties={"org": {"acme": {"tier": "gold"}, "second": {"tier": "silver"}}},
        group_cohort_ids={"org": {"acme": ["c1"]}},
    )
    assert keys(evaluate(flags, user)) == {"name": "on", "tier": "on", "cohort": "on"}
    # only the first group name counts
    user.groups = {"org": ["second", "acme"]}
    assert keys(evaluate(flags, user)) == {"name": "off", "tier": "off", "cohort": "off"}
    # group properties without a group are not visible
    assert keys(evaluate(flags, User(group_properties=user.group_properties))) == {
        "name": "off", "tier": "off", "cohort": "off"}


def test_user_cohort_ids_selector() -> None:
    flags = compile_flags([targeted_flag("f", [[condition(["context", "user", "cohort_ids"],
                                                          "set contains any", ["c1", "c2"])]])])
    assert evaluate(flags, User(user_id="u", cohort_ids=["c2"]))["f"].key == "on"
    assert evaluate(flags, User(user_id="u", cohort_ids=["c3"]))["f"].key == "off"


def test_whole_context_selector_falls_back_to_the_context_dict() -> None:
    flags = compile_flags([targeted_flag("f", [[condition(["context", "user"], "contains", ['"user_id":"u1"'])]])])
    assert evaluate(flags, User(user_id="u1"))["f"].key == "on"
    assert evaluate(flags, User(user_id="u2"))["f"].key == "off"


def chain_flags() -> List[Dict[str, Any]]:
    def flag(key: str, deps: Any = None, conditions: Any = ...) -> Dict[str, Any]:
        f = targeted_flag(key, conditions)
        if deps is not None:
            f["dependencies"] = deps
        return f

    return [
        flag("z", ["y", "m"], [[condition(["result", "y", "key"], "is", ["on"]),
                                condition(["result", "m", "value"], "is", ["on"])]]),
        flag("a"),
        flag("m", ["q"]),
        flag("y"),
        flag("q"),
        flag("b", ["missing"]),
    ]


def test_dependencies_run_parents_first_in_config_order() -> None:
    flags = compile_flags(chain_flags())
    assert list(flags.flags) == ["y", "q", "m", "z", "a", "b"]
    result = evaluate(flags, User())
    assert list(result) == ["y", "q", "m", "z", "a", "b"]
    assert result["z"].key == "on"


def test_result_selector_sees_parent_results() -> None:
    parent = rollout("parent", 100)
    child = targeted_flag("child", [[condition(["result", "parent", "key"], "is", ["treatment"])]],
                          dependencies=["parent"])
    grandchild = targeted_flag("grandchild", [[condition(["result", "child", "metadata", "default"],
                                                         "is", ["true"])]], dependencies=["child"])
    flags = compile_flags([grandchild, child, parent])
    for i in range(50):
        result = evaluate(flags, User(device_id=f"d{i}"))
        child_on = result["parent"].key == "treatment"
        assert result["child"].key == ("on" if child_on else "off")
        assert result["grandchild"].key == ("off" if child_on else "on")


@pytest.mark.parametrize(
    "flag_keys, expected",
    [
        (None, ["y", "q", "m", "z", "a", "b"]),
        (["z"], ["y", "q", "m", "z"]),
        ({"m", "a"}, ["q", "m", "a"]),
        (("a",), ["a"]),
        ("a", ["a"]),  # a lone string is one key, not its characters
        ([], []),
        (set(), []),
        (["unknown"], []),
        (["unknown", "b"], ["b"]),
    ],
)
def test_flag_keys(flag_keys: Any, expected: List[str]) -> None:
    flags = compile_flags(chain_flags())
    assert list(evaluate(flags, User(), flag_keys)) == expected
    assert list(evaluate(flags, User(), flag_keys)) == expected  # cached subset, same answer


def test_dependency_cycles_skip_only_the_flags_in_the_cycle(caplog: pytest.LogCaptureFixture) -> None:
    raw = chain_flags() + [
        targeted_flag("c1", ..., dependencies=["c2"]),
        targeted_flag("c2", ..., dependencies=["c1"]),
        targeted_flag("self", ..., dependencies=["self"]),
        targeted_flag("after-cycle", ..., dependencies=["c1"]),
    ]
    with caplog.at_level(logging.WARNING, logger="amplitude_experiment"):
        flags = compile_flags(raw)
    assert set(flags.skipped) == {"c1", "c2", "self"}
    assert flags.skipped["c1"] == "dependency cycle: c1 -> c2 -> c1"
    assert sorted(r.getMessage() for r in caplog.records) == [
        "Skipping flag 'c1': dependency cycle: c1 -> c2 -> c1",
        "Skipping flag 'c2': dependency cycle: c1 -> c2 -> c1",
        "Skipping flag 'self': dependency cycle: self -> self",
    ]
    result = evaluate(flags, User())
    assert list(result) == ["y", "q", "m", "z", "a", "b", "after-cycle"]
    assert list(evaluate(flags, User(), ["c1", "after-cycle"])) == ["after-cycle"]


def test_long_dependency_chain_does_not_hit_recursion_limit() -> None:
    raw = [targeted_flag(f"f{i}", ..., dependencies=[f"f{i + 1}"]) for i in range(5000)]
    raw.append(targeted_flag("f5000", ...))
    flags = compile_flags(raw)
    assert list(flags.flags)[:2] == ["f5000", "f4999"]
    assert len(evaluate(flags, User(), ["f0"])) == 5001


@pytest.mark.parametrize(
    "bad, reason",
    [
        ("not a flag", "not an object with a string 'key'"),
        ({"variants": {}}, "not an object with a string 'key'"),
        ({"key": "bad", "variants": [], "segments": []}, "variants must be an object"),
        ({"key": "bad", "variants": {"v": "x"}, "segments": []}, "variant 'v' must be an object"),
        ({"key": "bad", "variants": {}, "segments": {}}, "segments must be a list"),
        ({"key": "bad", "variants": {}, "segments": ["x"]}, "segments[0] must be an object"),
        ({"key": "bad", "variants": {}, "segments": [{"conditions": [{"op": "is"}]}]},
         "segments[0] conditions must be a list of lists"),
        ({"key": "bad", "variants": {}, "segments": [{"conditions": [[{"selector": "x", "op": "is"}]]}]},
         "segments[0] condition selector must be a list of strings"),
        ({"key": "bad", "variants": {}, "segments": [{"conditions": [[{"selector": ["a"], "op": 3}]]}]},
         "segments[0] condition op must be a string"),
        ({"key": "bad", "variants": {}, "segments": [{"bucket": {"selector": ["a"], "salt": "s",
                                                                  "allocations": [{"range": [0, "100"]}]}}]},
         "segments[0] allocation range must be [start, end] integers"),
        ({"key": "bad", "variants": {}, "segments": [], "dependencies": "other"},
         "dependencies must be a list of flag keys"),
        ({"key": "bad", "variants": {}, "segments": [], "metadata": []}, "metadata must be an object"),
    ],
)
def test_malformed_flags_are_skipped_and_others_still_evaluate(bad: Any, reason: str) -> None:
    flags = compile_flags([targeted_flag("good", ...), bad])
    assert list(flags.skipped.values()) == [reason]
    assert keys(evaluate(flags, User())) == {"good": "on"}


def test_unknown_fields_are_ignored() -> None:
    flag = targeted_flag("f", [[dict(condition(prop("p"), "is", ["x"]), future="yes")]], future={"a": 1})
    flag["segments"][0]["future"] = 1
    flag["variants"]["on"]["future"] = True
    assert evaluate(compile_flags([flag]), User(user_properties={"p": "x"}))["f"].key == "on"


def test_non_string_condition_values_are_stringified() -> None:
    flags = compile_flags([targeted_flag("f", [[condition(prop("n"), "is", [5, None])]])])
    assert evaluate(flags, User(user_properties={"n": 5}))["f"].key == "on"


def test_evaluate_never_raises_on_odd_user_data() -> None:
    class Unprintable:
        def __str__(self) -> str:
            raise RuntimeError("boom")

    flags = compile_flags([
        targeted_flag("odd", [[condition(prop("p"), "is", ["x"])]]),
        targeted_flag("fine", ...),
        rollout("exp", 100, selector=prop("p")),
    ])
    circular: Dict[str, Any] = {}
    circular["self"] = circular
    for value in (Unprintable(), circular, object(), float("nan"), b"bytes", 10 ** 400, "\ud800"):
        result = evaluate(flags, User(device_id="d", user_properties={"p": value}))
        assert result["fine"].key == "on"
    for user in (User(user_properties="not a dict"), User(groups="nope"), User(groups={"org": None}), None, 42):
        assert keys(evaluate(flags, user))["fine"] == "on"  # type: ignore[arg-type]


def test_outcome_of_names_what_evaluation_made_the_variant_from_and_caller_changes_do_not_reach_it() -> None:
    from amplitude_experiment.evaluation.compiler import Outcome
    from amplitude_experiment.variant import outcome_of, variant_from_outcome

    compiled = compile_flags([rollout("exp", 100)])
    variant = next(iter(evaluate(compiled, User(user_id="u1", device_id="d1")).values()))
    outcome = outcome_of(variant)
    assert isinstance(outcome, Outcome) and outcome.key == variant.key == "treatment"
    assert outcome in [d[2] for a in compiled.flags["exp"].segments[0].bucket.allocations for d in a[2]]  # type: ignore[union-attr]
    variant.payload["color"].append("blue")  # the caller's copy
    variant.key = "changed"
    assert outcome_of(variant) is outcome and outcome.key != "changed"
    assert outcome.payload == {"color": ["red"]}
    assert outcome_of(Variant("on", key="on")) is None  # made by the caller, not by evaluation
    made = variant_from_outcome(outcome)
    assert (made.key, made.value, made.payload, outcome_of(made)) == (outcome.key, outcome.value, outcome.payload,
                                                                      outcome)
