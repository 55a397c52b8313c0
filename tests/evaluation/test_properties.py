"""Property tests: compiling and evaluating never raise, whatever the flags and users hold."""

from __future__ import annotations

from typing import Any, Dict

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from amplitude_experiment import User
from amplitude_experiment.evaluation import compile_flags, evaluate
from amplitude_experiment.evaluation.operators import KNOWN_OPERATORS

text = st.text(max_size=12)
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), text,
                    st.sampled_from(["1.2.3", "10", "-1e3", "[\"a\",1]", "[", "(none)", "true", "\ud800"]))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(text, inner, max_size=3),
                                                       st.tuples(inner), st.frozensets(st.text(max_size=3))),
                      max_leaves=8)
selectors = st.one_of(
    st.lists(text, max_size=5),
    st.tuples(st.just("context"), st.just("user"), st.sampled_from(["user_id", "device_id", "country",
                                                                     "cohort_ids"])).map(list),
    st.tuples(st.just("context"), st.just("user"), st.just("user_properties"), st.sampled_from("abc")).map(list),
    st.tuples(st.just("context"), st.just("groups"), st.sampled_from(["org", "team"]),
              st.sampled_from(["group_name", "group_properties", "cohort_ids"])).map(list),
    st.tuples(st.just("result"), st.sampled_from(["f0", "f1", "f2"]), st.sampled_from(["key", "value"])).map(list),
)
conditions = st.fixed_dictionaries({
    "selector": selectors,
    "op": st.one_of(st.sampled_from(sorted(KNOWN_OPERATORS)), text),
    "values": st.lists(st.one_of(text, st.sampled_from(["(none)", "a", "1", "1.2.3", "(", "[a-", "true"])),
                       max_size=4),
})
ranges = st.lists(st.integers(-5, 42949680), min_size=2, max_size=2)
buckets = st.fixed_dictionaries({
    "selector": selectors,
    "salt": text,
    "allocations": st.lists(st.fixed_dictionaries({
        "range": st.lists(st.integers(-5, 105), min_size=2, max_size=2),
        "distributions": st.lists(st.fixed_dictionaries({"variant": st.sampled_from(["a", "b", "zz"]),
                                                         "range": ranges}), max_size=3),
    }), max_size=3),
})
segments = st.fixed_dictionaries({}, optional={
    "conditions": st.one_of(st.none(), st.lists(st.lists(conditions, max_size=3), max_size=3)),
    "bucket": buckets,
    "variant": st.sampled_from(["a", "b", "zz"]),
    "metadata": st.dictionaries(text, scalars, max_size=2),
})
variant_dicts = st.fixed_dictionaries({"key": st.sampled_from(["a", "b"])},
                                      optional={"value": scalars, "payload": values,
                                                "metadata": st.dictionaries(text, scalars, max_size=2)})
flags = st.builds(
    lambda i, variants, segs, deps, extra: {"key": f"f{i}", "variants": variants, "segments": segs,
                                            "dependencies": deps, **extra},
    st.integers(0, 3),
    st.dictionaries(st.sampled_from(["a", "b"]), variant_dicts, max_size=2),
    st.lists(segments, max_size=3),
    st.lists(st.sampled_from(["f0", "f1", "f2", "f3", "nope"]), max_size=2),
    st.dictionaries(st.sampled_from(["metadata", "extra"]), values, max_size=1),
)
garbage = st.one_of(flags, values)
users = st.builds(
    User,
    user_id=st.one_of(st.none(), text),
    device_id=st.one_of(st.none(), text),
    country=st.one_of(st.none(), values),
    user_properties=st.one_of(st.none(), st.dictionaries(st.sampled_from("abc"), values, max_size=3), values),
    groups=st.one_of(st.none(), st.dictionaries(st.sampled_from(["org", "team"]), values, max_size=2)),
    group_properties=st.one_of(st.none(), values),
    cohort_ids=st.one_of(st.none(), values),
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(garbage, max_size=5), users, st.one_of(st.none(), st.lists(st.sampled_from(["f0", "f1", "x"]))))
def test_compile_and_evaluate_never_raise(raw: Any, user: User, flag_keys: Any) -> None:
    compiled = compile_flags(raw)
    result: Dict[str, Any] = evaluate(compiled, user, flag_keys)
    assert set(result) <= set(compiled.flags)
    for variant in result.values():
        assert isinstance(variant.metadata, dict)
