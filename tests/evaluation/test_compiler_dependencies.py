"""The compiler's dependency handling: memory linear in flags + edges, bounded select() caching."""

from __future__ import annotations

import gc
import tracemalloc
from typing import Any, Dict, List

from amplitude_experiment import User
from amplitude_experiment.evaluation import Outcome, compile_flags, evaluate

from .helpers import targeted_flag


def chain(n: int) -> List[Dict[str, Any]]:
    """n flags, each depending on the one before (issue 15 point 3's shape)."""
    flags = [targeted_flag("f0", ...)]
    flags += [targeted_flag(f"f{i}", ..., dependencies=[f"f{i - 1}"]) for i in range(1, n)]
    return flags


def retained_bytes(raw: List[Dict[str, Any]]) -> int:
    # Only blocks allocated after start() are traced, so garbage from before cannot skew the count.
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        compiled = compile_flags(raw)
        evaluate(compiled, User(user_id="u"), [f"f{len(raw) - 1}"])
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


def test_a_dependency_chain_costs_memory_linear_in_its_length() -> None:
    # Each flag used to keep the closure of all its ancestors: 1,000 chained flags then cost
    # ~500,000 set entries (>25 MB). Linear: doubling the chain about doubles the memory (~0.7 MB here).
    small, large = retained_bytes(chain(500)), retained_bytes(chain(1000))
    assert large < 2.6 * small, (small, large)
    assert large < 6_000_000, large


def test_the_tail_of_a_chain_evaluates_every_ancestor_in_order() -> None:
    compiled = compile_flags(chain(3000))
    result = evaluate(compiled, User(user_id="u"), ["f2999"])
    assert list(result) == [f"f{i}" for i in range(3000)]


def test_select_does_not_remember_huge_requests() -> None:
    compiled = compile_flags(chain(10))
    huge = frozenset(f"unknown-{i}" for i in range(100_000)) | {"f3"}
    assert [f.key for f in compiled.select(huge)] == ["f0", "f1", "f2", "f3"]
    assert huge not in compiled._subsets  # noqa: SLF001 - the cache bound is this module's own contract
    assert [f.key for f in compiled.select(["f1"])] == ["f0", "f1"]
    assert frozenset(["f1"]) in compiled._subsets  # noqa: SLF001


def test_the_outcome_a_variant_comes_from_is_a_named_type() -> None:
    flag = targeted_flag("f", ..., metadata={"flagVersion": 3})
    compiled = compile_flags([flag])
    outcome = compiled.flags["f"].segments[0].default
    assert isinstance(outcome, Outcome)
    assert (outcome.key, outcome.value, outcome.metadata, outcome.payload_shared) == (
        "on", "on", {"flagVersion": 3}, False)
    # distributions and the segment default of one segment share one outcome per variant
    bucketed = {"key": "b", "variants": {"on": {"key": "on"}}, "segments": [{"variant": "on", "bucket": {
        "selector": ["context", "user", "user_id"], "salt": "s",
        "allocations": [{"range": [0, 100], "distributions": [{"variant": "on", "range": [0, 42949673]}]}]}}]}
    segment = compile_flags([bucketed]).flags["b"].segments[0]
    assert segment.bucket is not None and segment.bucket.allocations[0][2][0][2] is segment.default
