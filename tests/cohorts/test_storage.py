"""CohortStore: lookups, membership, copy-on-write publication."""

from __future__ import annotations

import threading
from typing import List

import pytest

from amplitude_experiment.cohorts import Cohort, CohortStore


def cohort(cid: str, members: List[str], group_type: str = "User", last_modified: int = 1) -> Cohort:
    return Cohort(id=cid, group_type=group_type, last_modified=last_modified, size=len(members),
                  members=frozenset(members))


@pytest.fixture
def store() -> CohortStore:
    s = CohortStore()
    s.put(cohort("a", ["u1", "u2"]))
    s.put(cohort("b", ["u2", "u3"]))
    s.put(cohort("org", ["u1", "acme"], group_type="org"))
    return s


def test_memberships_are_exact(store: CohortStore) -> None:
    candidates = ["a", "b", "org", "unknown"]
    assert store.memberships("u1", candidates) == frozenset({"a"})
    assert store.memberships("u2", candidates) == frozenset({"a", "b"})
    assert store.memberships("u3", candidates) == frozenset({"b"})
    assert store.memberships("nobody", candidates) == frozenset()
    assert store.memberships("u2", ["b"]) == frozenset({"b"})  # only candidates are considered
    assert store.memberships("u2", []) == frozenset()
    assert store.memberships("U2", candidates) == frozenset()  # ids are case-sensitive


def test_memberships_filter_by_group_type(store: CohortStore) -> None:
    candidates = {"a", "b", "org"}
    assert store.memberships("acme", candidates, group_type="org") == frozenset({"org"})
    assert store.memberships("u1", candidates, group_type="org") == frozenset({"org"})
    assert store.memberships("acme", candidates) == frozenset()
    assert store.memberships("u1", candidates, group_type="team") == frozenset()


def test_get_ids_last_modified_and_replace(store: CohortStore) -> None:
    assert store.ids() == frozenset({"a", "b", "org"})
    assert len(store) == 3 and "a" in store and "zzz" not in store
    assert store.get("a") == cohort("a", ["u1", "u2"])
    assert store.get("missing") is None
    assert store.last_modified("a") == 1
    assert store.last_modified("missing") is None
    store.put(cohort("a", ["u9"], last_modified=7))
    assert store.last_modified("a") == 7
    assert store.memberships("u1", ["a"]) == frozenset()
    assert store.memberships("u9", ["a"]) == frozenset({"a"})


def test_retain_drops_unreferenced(store: CohortStore) -> None:
    assert store.retain(["a", "not-stored"]) == frozenset({"b", "org"})
    assert store.ids() == frozenset({"a"})
    assert store.retain(["a"]) == frozenset()
    assert store.retain([]) == frozenset({"a"})
    assert len(store) == 0


def test_cohort_is_immutable_and_repr_is_short() -> None:
    c = cohort("big", [f"user-{i}" for i in range(10_000)])
    with pytest.raises(AttributeError):
        c.members = frozenset()  # type: ignore[misc]
    assert "user-" not in repr(c)
    assert repr(c) == "Cohort(id='big', group_type='User', last_modified=1, size=10000)"


def test_a_published_mapping_is_never_mutated(store: CohortStore) -> None:
    snapshot = store._cohorts
    store.put(cohort("c", ["x"]))
    store.retain(["c"])
    assert set(snapshot) == {"a", "b", "org"}
    assert store.ids() == frozenset({"c"})


def test_concurrent_writers_lose_nothing() -> None:
    store = CohortStore()
    start = threading.Barrier(8)

    def write(n: int) -> None:
        start.wait()
        for i in range(200):
            store.put(cohort(f"{n}-{i}", [str(i)]))

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(store) == 8 * 200
    assert store.memberships("5", ["3-5", "3-6", "7-5"]) == frozenset({"3-5", "7-5"})
