"""CohortStore: lookups, membership, copy-on-write publication."""

from __future__ import annotations

import math
import threading
from array import array
from typing import Any, Callable, List, Optional

import pytest

from amplitude_experiment.cohorts import Cohort, CohortStore, Members, storage


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
    assert len(members) == 10_000 and members.nbytes == 80_000 + 257 * 4  # keys + directory of 256 buckets
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


def _ulps(key: float, n: int) -> float:
    """The double ``n`` steps above (``n < 0``: below) ``key``."""
    for _ in range(abs(n)):
        key = math.nextafter(key, math.inf if n > 0 else -math.inf)
    return key


def _through_the_store(members: Members) -> Callable[[float], bool]:
    """The store's lookup (``_containing``, which inlines ``Members.contains_key``) of one cohort."""
    entries = storage._index_of({"c": Cohort("c", "User", 1, len(members), members)})["User"]
    return lambda key: storage._containing(entries, key) == ["c"]


@pytest.mark.parametrize("lookup", ["Members.contains_key", "CohortStore"])
def test_the_directory_is_exact_at_bucket_edges(lookup: str) -> None:
    """A lookup searches the computed bucket and the one before: keys on and beside every bucket
    start (where key + 2**63 rounds up to the next bucket) are found, their neighbours are not."""
    # 64 * 64 keys spread over the key space (a directory of 64 or more buckets), plus the keys
    # on and one step beside the starts of 64 equal slices of the key space.
    spread = [float(i * 2 ** 52 - 2 ** 63) + 12345.0 for i in range(64 * 64)]
    starts = [b * 2.0 ** 58 - 2.0 ** 63 for b in range(1, 64)]
    edges = [_ulps(start, n) for start in starts for n in (-1, 0, 1)] + [-2.0 ** 63, 2.0 ** 63]
    members = Members(array("d", sorted(set(spread + edges))))
    assert len(members.index) == 129  # 4096 + 191 keys: 128 buckets
    contains = members.contains_key if lookup == "Members.contains_key" else _through_the_store(members)
    assert all(contains(k) for k in edges + spread)
    assert not any(contains(_ulps(start, n)) for start in starts for n in (-3, -2, 2, 3))


# -- the evaluation path: user_cohort_ids ---------------------------------------------------------


def counting_lookups(monkeypatch: pytest.MonkeyPatch, during: Optional[Callable[[], None]] = None) -> List[str]:
    """Record every uncached lookup (the ids searched for in the cohorts' keys)."""
    calls: List[str] = []
    real = storage._containing

    def containing(entries: Any, key: float) -> List[str]:
        calls.append(str(key))
        if during is not None:
            during()
        return real(entries, key)

    monkeypatch.setattr(storage, "_containing", containing)
    return calls


def test_user_cohort_ids_are_sorted_candidates_and_shared(store: CohortStore) -> None:
    everything = frozenset({"a", "b", "org"})
    assert store.user_cohort_ids("u2", everything) == ["a", "b"]
    assert store.user_cohort_ids("u1", everything) == ["a"]  # "org" holds u1 too, but it is an org cohort
    assert store.user_cohort_ids("u3", everything) == ["b"]
    assert store.user_cohort_ids("nobody", everything) is None
    assert store.user_cohort_ids("u2", frozenset({"b"})) == ["b"]  # only candidates
    assert store.user_cohort_ids("u1", frozenset({"b"})) is None
    # users with the same memberships share one list
    store.put(cohort("c", ["x1", "x2"]))
    assert store.user_cohort_ids("x1", everything | {"c"}) is store.user_cohort_ids("x2", everything | {"c"})


def test_user_cohort_ids_are_remembered_until_the_next_write(store: CohortStore,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    lookups = counting_lookups(monkeypatch)
    candidates = frozenset({"a", "b"})
    for _ in range(3):
        assert store.user_cohort_ids("u1", candidates) == ["a"]
        assert store.user_cohort_ids("nobody", candidates) is None
    assert len(lookups) == 2
    store.put(cohort("b", ["u1"], last_modified=2))  # a write forgets every answer
    assert store.user_cohort_ids("u1", candidates) == ["a", "b"]
    assert store.user_cohort_ids("nobody", candidates) is None
    assert len(lookups) == 4
    store.retain(["b"])
    assert store.user_cohort_ids("u1", candidates) == ["b"]
    # other candidates (a new flag config): answered afresh, for those candidates
    assert store.user_cohort_ids("u1", frozenset({"a"})) is None
    assert len(lookups) == 6


def test_the_memory_of_answers_is_bounded(store: CohortStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(storage, "MEMO_CAPACITY", 4)
    lookups = counting_lookups(monkeypatch)
    candidates = frozenset({"a", "b"})
    for i in range(10):
        assert store.user_cohort_ids(f"user-{i}", candidates) is None
    assert len(lookups) == 10
    assert store.user_cohort_ids("user-9", candidates) is None and len(lookups) == 10  # still remembered
    assert store.user_cohort_ids("user-0", candidates) is None and len(lookups) == 11  # forgotten
    long_id = "u" * 257  # too long to keep
    assert store.user_cohort_ids(long_id, candidates) is None
    assert store.user_cohort_ids(long_id, candidates) is None
    assert len(lookups) == 13


def test_an_answer_computed_while_a_writer_publishes_is_not_kept(store: CohortStore,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A lookup that read the cohorts before a write keeps its answer with those cohorts only."""
    written: List[bool] = []

    def write_once() -> None:
        if not written:
            written.append(True)
            store.put(cohort("a", ["u1", "late"], last_modified=2))

    counting_lookups(monkeypatch, during=write_once)
    candidates = frozenset({"a"})
    assert store.user_cohort_ids("late", candidates) is None  # answered from the cohorts it started with
    assert store.user_cohort_ids("late", candidates) == ["a"]  # the next lookup sees the write


def test_concurrent_readers_agree(store: CohortStore) -> None:
    candidates = frozenset({"a", "b"})
    start = threading.Barrier(4)
    answers: List[List[Optional[List[str]]]] = []

    def read() -> None:
        start.wait()
        answers.append([store.user_cohort_ids(uid, candidates) for uid in ("u1", "u2", "u3", "x") * 500])

    threads = [threading.Thread(target=read) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(a == [["a"], ["a", "b"], ["b"], None] * 500 for a in answers)


def test_sorted_keys_are_the_ids_hashes_in_order_and_free_the_ids() -> None:
    from amplitude_experiment.cohorts.members import sorted_keys

    ids = ["u3", "日本", "u1", "u3", "", "a\ud800"]
    expected = sorted(float(hash(i)) for i in ids)
    keys = sorted_keys(ids)
    assert ids == []  # the ids go as soon as their keys exist
    assert keys.typecode == "d" and keys.tolist() == expected  # duplicates kept: a parse counts what it got
    assert sorted_keys([]).tolist() == []


# -- small cohorts united: one search for all of them ---------------------------------------------


def counting_searches(monkeypatch: pytest.MonkeyPatch) -> List[float]:
    """Record every binary search the store's lookups make (the keys searched for)."""
    searches: List[float] = []
    real = storage.bisect_left

    def bisect_left(keys: Any, key: float, lo: int, hi: int) -> int:
        searches.append(key)
        return real(keys, key, lo, hi)

    monkeypatch.setattr(storage, "bisect_left", bisect_left)
    return searches


# Twelve cohorts: user-i is a member of cohort c<j> when j + 2 divides i, so ids belong to none,
# one or several of them (user-0 to all twelve).
TWELVE = [cohort(f"c{j:02d}", [f"user-{i}" for i in range(60) if i % (j + 2) == 0]) for j in range(12)]


def twelve_expected(i: int) -> Optional[List[str]]:
    return [f"c{j:02d}" for j in range(12) if i % (j + 2) == 0 and i < 60] or None


def test_build_index_unites_small_cohorts_so_one_search_answers_for_all(monkeypatch: pytest.MonkeyPatch) -> None:
    separate, united = CohortStore(), CohortStore()
    for c in TWELVE + [cohort("org-1", ["acme"], group_type="org"), cohort("org-2", ["acme", "globex"], "org")]:
        separate.put(c)
        united.put(c)
    united.build_index()
    searches = counting_searches(monkeypatch)
    everything = frozenset(c.id for c in TWELVE)
    assert [separate.user_cohort_ids(f"user-{i}", everything) for i in range(61)] == [twelve_expected(i)
                                                                                      for i in range(61)]
    assert len(searches) == 61 * 12  # without build_index: one search per cohort
    searches.clear()
    assert [united.user_cohort_ids(f"user-{i}", everything) for i in range(61)] == [twelve_expected(i)
                                                                                    for i in range(61)]
    assert len(searches) == 61
    assert united.user_cohort_ids("user-12", frozenset({"c00", "c04", "c11"})) == ["c00", "c04"]  # candidates only
    # group cohorts are united per group type, and memberships() uses the union too
    searches.clear()
    assert united.memberships("acme", ["org-1", "org-2"], "org") == frozenset({"org-1", "org-2"})
    assert united.memberships("globex", ["org-1", "org-2"], "org") == frozenset({"org-2"})
    assert united.memberships("user-0", ["org-1", "org-2"], "org") == frozenset()
    assert len(searches) == 3


def test_only_small_cohorts_are_united_the_smallest_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(storage, "MERGE_MAX_MEMBERS", 3)
    monkeypatch.setattr(storage, "MERGE_MAX_TOTAL", 5)
    store = CohortStore()
    store.put(cohort("a", ["u1", "u2"]))
    store.put(cohort("b", ["u1"]))
    store.put(cohort("c", ["u1", "u2", "u3"]))  # small, but 1 + 2 + 2 + 3 is over the total: alone
    store.put(cohort("d", ["u1", "u2", "u3", "u4"]))  # not small: alone
    store.put(cohort("e", ["u2", "u9"]))
    store.build_index()
    searches = counting_searches(monkeypatch)
    every = frozenset("abcde")
    assert store.user_cohort_ids("u1", every) == ["a", "b", "c", "d"]
    assert store.user_cohort_ids("u2", every) == ["a", "c", "d", "e"]  # united and separate ids, in order
    assert store.user_cohort_ids("u9", every) == ["e"]
    assert store.user_cohort_ids("u4", every) == ["d"]
    assert store.user_cohort_ids("nobody", every) is None
    assert len(searches) == 5 * 3  # the union of a, b and e; then c; then d


def test_a_write_after_build_index_is_seen_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The union belongs to the cohorts it was built from: a write publishes cohorts without one
    (searched one by one, right at once) until the next build_index()."""
    store = CohortStore()
    for c in TWELVE:
        store.put(c)
    store.build_index()
    store.build_index()  # again: nothing to do
    everything = frozenset(c.id for c in TWELVE)
    assert store.user_cohort_ids("user-6", everything) == ["c00", "c01", "c04"]
    store.put(cohort("c01", ["user-7"], last_modified=2))
    searches = counting_searches(monkeypatch)
    assert store.user_cohort_ids("user-6", everything) == ["c00", "c04"]
    assert store.user_cohort_ids("user-7", everything) == ["c01", "c05"]
    assert len(searches) == 2 * 12
    store.build_index()
    assert store.user_cohort_ids("user-8", everything) == ["c00", "c02", "c06"]
    assert len(searches) == 2 * 12 + 1


def test_members_union_names_the_cohorts_of_each_member() -> None:
    from amplitude_experiment.cohorts.members import MembersUnion

    union = MembersUnion([(c.id, c.members) for c in TWELVE[:3]])  # c00 (even), c01 (thirds), c02 (fourths)
    assert [union.cohorts_of(f"user-{i}") for i in (0, 2, 3, 4, 6, 8, 12, 1, 59)] == [
        ("c00", "c01", "c02"), ("c00",), ("c01",), ("c00", "c02"), ("c00", "c01"), ("c00", "c02"),
        ("c00", "c01", "c02"), (), ()]
    assert union.cohorts_of(0) == () and union.cohorts_of(None) == ()  # ids are text
    assert len(union) == 40  # distinct members of the three (0..58)
    assert union.owners.typecode == "H" and len(union.holders) == 5  # {00}, {01}, {00,01}, {00,02}, all
    assert repr(union) == "MembersUnion(40 ids, 5 sets of cohorts)"


def test_uniting_hands_its_freed_memory_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """Uniting allocates and frees ~100 bytes per member: build_index() asks glibc to give them back
    (20 cohorts of 10,000: ~18 MB of RSS after start() without it, ~8 MB with it), and only then."""
    trims: List[int] = []
    monkeypatch.setattr(storage, "release_freed_memory", lambda: trims.append(1))
    store = CohortStore()
    store.put(cohort("only", ["u1"]))
    store.build_index()
    assert trims == []  # one cohort: nothing united
    for c in TWELVE:
        store.put(c)
    store.build_index()
    store.build_index()
    assert trims == [1]
