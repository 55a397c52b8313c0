"""What flags of one config share once compiled, and that sharing never changes an answer.

Equal conditions and equal merged metadata compile to one object (memory, and fewer objects
for evaluation to read on big deployments); only exactly equal ones are shared.
"""

from __future__ import annotations

from typing import Any, Dict, List

from amplitude_experiment import User
from amplitude_experiment.evaluation import compile_flags, evaluate

from .helpers import ON_OFF, condition, prop, targeted_flag


def plan_flag(key: str, values: List[str]) -> Dict[str, Any]:
    return targeted_flag(key, [[condition(prop("plan"), "is", values)]])


def test_equal_conditions_in_different_flags_compile_to_one_object() -> None:
    flags = compile_flags([plan_flag("a", ["pro"]), plan_flag("b", ["pro"]), plan_flag("c", ["team"])])
    a, b, c = (flags.flags[k].segments[0].conditions for k in "abc")
    assert a is not None and b is not None and c is not None
    assert a[0][0] is b[0][0]
    assert a[0][0] is not c[0][0]
    user = User(user_properties={"plan": "team"})
    assert {k: v.key for k, v in evaluate(flags, user).items()} == {"a": "off", "b": "off", "c": "on"}


def test_metadata_equal_only_by_value_is_not_shared() -> None:
    # True == 1 and 1.0 == 1 in Python, but each flag must return its own metadata as written.
    variants = {"on": {"key": "on", "metadata": {"x": True}}, "off": {"key": "off", "metadata": {"x": 1}}}
    flags = compile_flags([
        {"key": "t", "variants": variants, "segments": [{"variant": "on"}]},
        {"key": "i", "variants": variants, "segments": [{"variant": "off"}]},
        {"key": "f", "variants": {"on": {"key": "on", "metadata": {"x": 1.0}}}, "segments": [{"variant": "on"}]},
    ])
    results = evaluate(flags, User())
    assert [(k, repr(v.metadata)) for k, v in results.items()] == [
        ("t", "{'x': True}"), ("i", "{'x': 1}"), ("f", "{'x': 1.0}")]


def test_shared_metadata_is_copied_into_each_result() -> None:
    flags = compile_flags([targeted_flag("a", ...), targeted_flag("b", ...)])  # both merge to {}
    results = evaluate(flags, User())
    assert results["a"].metadata is not None
    results["a"].metadata["changed"] = True
    assert results["b"].metadata == {}
    assert evaluate(flags, User())["a"].metadata == {}


def test_an_invalid_regex_shared_by_two_flags_is_reported_for_each() -> None:
    bad = [[condition(prop("email"), "regex match", ["("])]]
    flags = compile_flags([targeted_flag("a", bad), targeted_flag("b", bad)], report=False)
    assert len(flags.warnings) == 2
    assert "'a'" in flags.warnings[0] and "'b'" in flags.warnings[1]
    assert {k: v.key for k, v in evaluate(flags, User(user_properties={"email": "("})).items()} == {
        "a": "off", "b": "off"}


def test_sharing_across_many_flags_keeps_every_answer() -> None:
    raw = [plan_flag(f"f{i}", ["pro", "team"] if i % 2 else ["free"]) for i in range(50)]
    raw.append({"key": "exp", "variants": ON_OFF, "segments": [{"conditions": [[
        condition(prop("plan"), "is", ["pro", "team"])]], "variant": "on", "metadata": {"segmentName": "s"}}]})
    flags = compile_flags(raw)
    for plan, expected_odd in (("pro", "on"), ("free", "off")):
        results = evaluate(flags, User(user_properties={"plan": plan}))
        assert all(results[f"f{i}"].key == (expected_odd if i % 2 else ("off" if plan == "pro" else "on"))
                   for i in range(50))
        assert ("exp" in results) == (plan == "pro")


def test_a_condition_with_non_string_values_is_found_only_by_its_string_form() -> None:
    # Values compare as text (numbers written as numbers, nulls dropped); a condition written
    # with strings only is looked up as written, which must never reach one that differs.
    raw = [
        plan_flag("numbers", [1, None, True]),  # type: ignore[list-item]
        plan_flag("strings", ["1", "True"]),
        plan_flag("lower", ["1", "true"]),
        targeted_flag("cohort", [[condition(["context", "user", "cohort_ids"], "set contains any", [7, "c2"])]]),  # type: ignore[list-item]
        targeted_flag("cohort2", [[condition(["context", "user", "cohort_ids"], "set contains any", ["7", "c2"])]]),
    ]
    flags = compile_flags(raw)
    first = {k: flags.flags[k].segments[0].conditions[0][0] for k in ("numbers", "strings", "lower")}  # type: ignore[index]
    assert first["numbers"] is first["strings"]
    assert first["lower"] is not first["strings"]
    assert flags.flags["cohort"].cohort_ids == flags.flags["cohort2"].cohort_ids == {"User": frozenset({"7", "c2"})}
    for plan, expected in (("1", "on"), ("True", "on"), ("true", "on"), ("2", "off")):
        assert evaluate(flags, User(user_properties={"plan": plan}))["numbers"].key == expected


def test_malformed_conditions_are_still_rejected_after_a_valid_one_was_shared() -> None:
    good = plan_flag("good", ["pro"])
    bad_selector = targeted_flag("bad_selector", [[condition(["context", "user", 5], "is", ["pro"])]])  # type: ignore[list-item]
    bad_op = targeted_flag("bad_op", [[{"selector": prop("plan"), "op": None, "values": ["pro"]}]])
    unhashable = targeted_flag("unhashable", [[condition(prop("plan"), "is", [{"a": 1}])]])  # type: ignore[list-item]
    flags = compile_flags([good, bad_selector, bad_op, unhashable], report=False)
    assert list(flags.flags) == ["good", "unhashable"]
    assert flags.skipped == {
        "bad_selector": "segments[0] condition selector must be a list of strings",
        "bad_op": "segments[0] condition op must be a string",
    }


def test_merged_metadata_keeps_its_order_and_types_whether_shared_or_not() -> None:
    # design.md §4: flag, then segment, then variant metadata merged, later wins.
    variants = {"on": {"key": "on", "metadata": {"b": "variant", "d": 1}}}
    segment_shared = {"metadata": {"c": "segment", "b": "segment"}, "variant": "on"}
    segment_float = {"metadata": {"c": 0.5, "b": "segment"}, "variant": "on"}
    raw = [
        {"key": "x", "variants": variants, "segments": [segment_shared], "metadata": {"a": True, "b": "flag"}},
        {"key": "y", "variants": variants, "segments": [segment_float], "metadata": {"a": True, "b": "flag"}},
        {"key": "z", "variants": variants, "segments": [dict(segment_shared)], "metadata": {"a": True, "b": "flag"}},
    ]
    results = evaluate(compile_flags(raw), User())
    assert [(k, repr(v.metadata)) for k, v in results.items()] == [
        ("x", "{'a': True, 'b': 'variant', 'c': 'segment', 'd': 1}"),
        ("y", "{'a': True, 'b': 'variant', 'c': 0.5, 'd': 1}"),
        ("z", "{'a': True, 'b': 'variant', 'c': 'segment', 'd': 1}"),
    ]
    assert raw[0]["metadata"] == {"a": True, "b": "flag"}  # the caller's objects are never changed


def test_conditions_on_different_properties_with_the_same_test_share_the_matcher_only() -> None:
    flags = compile_flags([
        targeted_flag("a", [[condition(prop("plan"), "is", ["pro", "team"])]]),
        targeted_flag("b", [[condition(prop("tier"), "is", ["pro", "team"])]]),
        targeted_flag("c", [[condition(prop("tier"), "is not", ["pro", "team"])]]),
    ])
    a, b, c = (flags.flags[k].segments[0].conditions[0][0] for k in "abc")  # type: ignore[index]
    # (field, key, get, match, members): the matcher and the `is` members are shared, the getters are not
    assert a[3] is b[3] and a[4] is b[4] == frozenset({"pro", "team"})
    assert a[2] is not b[2] and (a[1], b[1]) == ("plan", "tier")
    assert c[3] is not b[3] and c[4] is None
    user = User(user_properties={"plan": "pro", "tier": "free"})
    assert {k: v.key for k, v in evaluate(flags, user).items()} == {"a": "on", "b": "off", "c": "on"}
