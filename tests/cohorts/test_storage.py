"""CohortStore: lookups, membership, copy-on-write publication."""

from __future__ import annotations

import threading
from array import array
from typing import List

import pytest

from amplitude_experiment.cohorts import Cohort, CohortStore, Members


def cohort(cid: str, members: List[str], group_type: str = "User", last_modified: int = 1) -> Cohort:
    return Cohort.of(cid, members, group_type=group_type, last_modified=last_modified)


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
        c.members = Members.from_ids([])  # type: ignore[misc]
    assert "user-" not in repr(c)
    assert repr(c) == "Cohort(id='big', group_type='User', last_modified=1, size=10000)"


def test_a_reader_keeps_what_it_read_while_writers_change_the_store(store: CohortStore) -> None:
    before = store.get("a")
    store.put(cohort("a", ["someone-else"]))
    store.retain(["a"])
    assert before is not None and "u1" in before.members  # the cohort a reader holds never changes
    assert store.ids() == frozenset({"a"}) and store.memberships("u1", ["a"]) == frozenset()


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


def test_members_are_compact_exact_and_text_only() -> None:
    """Issue 12 point 7: 8 bytes per member; lookups exact for members and non-members."""
    ids = [f"user-{i}" for i in range(10_000)]
    members = Members.from_ids(ids + ids[:10])  # duplicates count once
    assert len(members) == 10_000 and members.nbytes == 80_000 + 1025 * 4  # keys + directory of 1024 buckets
    assert all(i in members for i in ids)
    assert not any(f"user-{i}" in members for i in range(10_000, 20_000))
    assert "" not in members and 5 not in members and None not in members  # type: ignore[operator]
    odd = Members.from_ids(["日本", "ünï", "a\ud800", ""])
    assert ["日本" in odd, "ünï" in odd, "a\ud800" in odd, "" in odd, "ü" in odd] == [True, True, True, True, False]
    assert Members.from_ids(["a", "b"]) == Members.from_ids(["b", "a"]) != Members.from_ids(["a"])
    assert repr(members) == "Members(10000 ids)"


@pytest.mark.parametrize("keys", [
    [],
    [0.0],
    [-2.0 ** 63, 2.0 ** 63],  # the extremes a 64-bit hash rounds to
    sorted({float((i * 0x9E3779B97F4A7C15) % 2 ** 64 - 2 ** 63) for i in range(50_000)}),
    [float(i) for i in range(-5000, 5000)],  # crowded into one bucket
])
def test_the_directory_never_hides_a_key(keys: List[float]) -> None:
    members = Members(array("d", keys))
    assert all(members.contains_key(k) for k in keys)
    near = [k + d for k in keys[:2000] for d in (-1e-3, 1e-3, -4096.0, 4096.0)] + [-2.0 ** 63 + 1e6, 2.0 ** 63 - 1e6]
    present = set(keys)
    assert [k for k in near if members.contains_key(k)] == [k for k in near if k in present]
