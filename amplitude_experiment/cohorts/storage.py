"""Downloaded cohorts, shared between the loader (writer) and evaluation (readers)."""

from __future__ import annotations

import threading
from array import array
from bisect import bisect_left
from dataclasses import dataclass, field
from typing import Any, Dict, FrozenSet, Iterable, List, Mapping, Optional, Tuple

from .members import Members, MembersUnion, member_key, release_freed_memory

#: The group type of user cohorts; group cohorts use their group type's name.
USER_GROUP_TYPE = "User"

_NONE: FrozenSet[str] = frozenset()
_OFFSET = 2.0 ** 63

#: Member ids whose cohorts a store remembers, per published set of cohorts (then it starts over).
MEMO_CAPACITY = 8192
# Longer ids are looked up every time: the memo keeps its ids alive.
_MEMO_MAX_ID_LENGTH = 256
_MISS: Any = object()


@dataclass(frozen=True)
class Cohort:
    """One cohort as downloaded: its id, group type, version (``last_modified``, ms) and members.

    ``members`` is compact (8 bytes per member, see :class:`Members`); build one from ids
    with :meth:`of`.
    """

    id: str
    group_type: str
    last_modified: int
    size: int
    # repr=False: a cohort can hold millions of members.
    members: Members = field(repr=False)

    @classmethod
    def of(cls, cohort_id: str, member_ids: Iterable[str], group_type: str = USER_GROUP_TYPE,
           last_modified: int = 0) -> "Cohort":
        """A cohort with these members."""
        members = Members.from_ids(member_ids)
        return cls(cohort_id, group_type, last_modified, len(members), members)


#: Cohorts of at most this many members are united (:class:`MembersUnion`): one search answers
#: for all of them, however many there are. Bigger cohorts are searched one by one.
MERGE_MAX_MEMBERS = 65_536
#: At most this many members in all are united (the smallest cohorts first). Uniting costs
#: 0.25-0.5 µs per member in Python (up to ~140 ms), on the cohort thread, each time the cohorts
#: change; request threads keep running meanwhile (the GIL passes every few ms).
MERGE_MAX_TOTAL = 262_144

# What a lookup needs of one cohort, unpacked so that the loop over cohorts makes no call but
# the binary search: (cohort id, keys, bounds, directory scale, size), where ``bounds`` is the
# directory with 0 before it and the size after it: the keys of buckets c-1 and c are
# ``keys[bounds[c]:bounds[c + 2]]`` for every bucket c.
_Entry = Tuple[str, Any, Any, float, int]
# The same of a union of cohorts: (the sets of cohort ids holding a key, the set of each key,
# keys, bounds, scale, size).
_United = Tuple[Tuple[Tuple[str, ...], ...], Any, Any, Any, float, int]
# Per group type: the union of its small cohorts (or None), and the entries of the others, in
# cohort id order.
_Lookup = Tuple[Optional[_United], Tuple[_Entry, ...]]
_Index = Mapping[str, _Lookup]


def _bounds(members: Members) -> Any:
    index = members.index
    return array(index.typecode, [0]) + index + array(index.typecode, [len(members)])


def _united(cohorts: List[Tuple[str, Members]]) -> List[Tuple[str, Members]]:
    """The cohorts (in id order) to unite: the smallest first, within the limits; none unless two."""
    picked: List[Tuple[str, Members]] = []
    total = 0
    for cid, members in sorted(cohorts, key=lambda pair: len(pair[1])):
        if len(members) > MERGE_MAX_MEMBERS or total + len(members) > MERGE_MAX_TOTAL:
            break
        picked.append((cid, members))
        total += len(members)
    return sorted(picked) if len(picked) >= 2 else []


def _index_of(cohorts: Mapping[str, Cohort], unite: bool = False) -> _Index:
    by_type: Dict[str, List[Tuple[str, Members]]] = {}
    for cid, cohort in sorted(cohorts.items()):
        by_type.setdefault(cohort.group_type, []).append((cid, cohort.members))
    index: Dict[str, _Lookup] = {}
    for group_type, members in by_type.items():
        together = _united(members) if unite else []
        united: Optional[_United] = None
        if together:
            union = MembersUnion(together)
            m = union.members
            united = (union.holders, union.owners, m.keys, _bounds(m), m.scale, len(m))
        apart = {cid for cid, _ in together}
        index[group_type] = (united, tuple((cid, m.keys, _bounds(m), m.scale, len(m))
                                           for cid, m in members if cid not in apart))
    return index


def _containing(lookup: _Lookup, key: float) -> List[str]:
    """Ids (sorted) of the cohorts of one group type that hold ``key``: :meth:`Members.contains_key`, inlined."""
    united, entries = lookup
    shifted = key + _OFFSET
    found: List[str] = []
    if united is not None:
        holders, owners, keys, bounds, scale, size = united
        c = int(shifted * scale)
        i = bisect_left(keys, key, bounds[c], bounds[c + 2])
        if i < size and keys[i] == key:
            found.extend(holders[owners[i]])
    for cid, keys, bounds, scale, size in entries:
        c = int(shifted * scale)
        i = bisect_left(keys, key, bounds[c], bounds[c + 2])
        if i < size and keys[i] == key:
            found.append(cid)
    if united is not None and entries and found:
        found.sort()  # united and separate ids interleave
    return found


# Sorted cohort id lists kept by content: few distinct ones occur, so memoised lookups share them.
_LISTS_CAPACITY = 1024


class _State:
    """One published set of cohorts, with what readers derive from it (never shared with another)."""

    __slots__ = ("cohorts", "index", "united", "memo")

    def __init__(self, cohorts: Mapping[str, Cohort]) -> None:
        self.cohorts = cohorts
        #: lookup index; built by the first lookup (a burst of writes builds it once), or with small
        #: cohorts united by :meth:`CohortStore.build_index`
        self.index: Optional[_Index] = None
        #: whether ``index`` has its small cohorts united
        self.united = False
        #: (the candidate ids it answers for, user id -> their sorted cohort ids or None); one
        #: attribute, so that a reader never pairs one set of candidates with another's answers
        self.memo: Tuple[object, Dict[str, Optional[List[str]]]] = (None, {})


class CohortStore:
    """Cohorts by id.

    Writers serialise on a lock and publish a new mapping in one assignment; readers use whatever
    is current without locking, so a reader never sees a half-applied write. The user cohorts of
    recently looked-up user ids are remembered (up to ``MEMO_CAPACITY`` ids) until the next write.
    A lookup hashes the id once and searches each cohort of the group type, or, once
    :meth:`build_index` has run, one union of the small cohorts and each big one.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # Never mutated once published: writers copy, change and swap.
        self._cohorts: Mapping[str, Cohort] = {}
        self._state = _State({})
        #: sorted cohort id lists by content (see ``_shared_list``)
        self._lists: Dict[Tuple[str, ...], List[str]] = {}

    def _publish(self, cohorts: Mapping[str, Cohort]) -> None:
        # Called with the lock held.
        self._cohorts = cohorts
        self._state = _State(cohorts)

    @staticmethod
    def _index(state: _State) -> _Index:
        index = state.index
        if index is None:
            index = state.index = _index_of(state.cohorts)  # racing readers build equal ones
        return index

    def build_index(self) -> None:
        """Build the lookup index of the current cohorts now, on the calling thread, uniting small
        cohorts so that one search answers for all of them (see ``MERGE_MAX_TOTAL``).

        The cohort thread calls it after each load. Until then a lookup builds an index itself,
        cheaply, and searches each cohort in turn: right, only slower with many cohorts.
        """
        state = self._state
        if not state.united:
            index = state.index = _index_of(state.cohorts, unite=True)
            state.united = True
            if any(united is not None for united, _ in index.values()):
                release_freed_memory()  # uniting allocates and frees ~100 bytes per member

    def reset_lock(self) -> None:
        """A fresh writer lock (after ``fork()``, where another thread may have held the old one)."""
        self._lock = threading.Lock()

    def get(self, cohort_id: str) -> Optional[Cohort]:
        """The stored cohort with this id, or None."""
        return self._cohorts.get(cohort_id)

    def put(self, cohort: Cohort) -> None:
        """Add or replace a cohort."""
        with self._lock:
            cohorts = dict(self._cohorts)
            cohorts[cohort.id] = cohort
            self._publish(cohorts)

    def retain(self, cohort_ids: Iterable[str]) -> FrozenSet[str]:
        """Drop every cohort whose id is not in ``cohort_ids``; returns the dropped ids."""
        keep = frozenset(cohort_ids)
        with self._lock:
            current = self._cohorts
            dropped = frozenset(cid for cid in current if cid not in keep)
            if dropped:
                self._publish({cid: c for cid, c in current.items() if cid in keep})
        return dropped

    def ids(self) -> FrozenSet[str]:
        """The ids of the stored cohorts."""
        return frozenset(self._cohorts)

    def last_modified(self, cohort_id: str) -> Optional[int]:
        """The ``last_modified`` (ms) of the stored cohort, or None when it is not stored."""
        cohort = self._cohorts.get(cohort_id)
        return None if cohort is None else cohort.last_modified

    def memberships(self, member_id: str, candidate_ids: Iterable[str],
                    group_type: str = USER_GROUP_TYPE) -> FrozenSet[str]:
        """Which of ``candidate_ids`` are stored cohorts of ``group_type`` that contain ``member_id``.

        One hash of ``member_id``, then one short binary search for the united small cohorts of the
        group type (see :meth:`build_index`) and one per other cohort of it.
        """
        lookup = self._index(self._state).get(group_type)
        if lookup is None or type(member_id) is not str:
            return _NONE
        found = _containing(lookup, member_key(member_id))
        if not found:
            return _NONE
        return frozenset(found).intersection(candidate_ids)

    def user_cohort_ids(self, user_id: str, candidates: FrozenSet[str]) -> Optional[List[str]]:
        """The sorted ids of the stored user cohorts among ``candidates`` that contain ``user_id``;
        None when there are none.

        The evaluation path: remembered per user id (for the same ``candidates`` object) until the
        next write, so a returning user costs one dict lookup. The list is shared: do not modify it.
        """
        state = self._state
        memo = state.memo
        if memo[0] is candidates:
            found = memo[1].get(user_id, _MISS)
            if found is not _MISS:
                return found  # type: ignore[no-any-return]
        else:
            memo = state.memo = (candidates, {})
        found = self._user_cohort_ids(state, user_id, candidates)
        if len(user_id) <= _MEMO_MAX_ID_LENGTH:
            remembered = memo[1]
            if len(remembered) >= MEMO_CAPACITY:
                remembered.clear()
            remembered[user_id] = found
        return found

    def _user_cohort_ids(self, state: _State, user_id: str, candidates: FrozenSet[str]) -> Optional[List[str]]:
        lookup = (state.index or self._index(state)).get(USER_GROUP_TYPE)
        if lookup is None:
            return None
        found = _containing(lookup, float(hash(user_id)))  # member_key(), inlined
        if not found:
            return None
        if not candidates.issuperset(found):
            found = [cid for cid in found if cid in candidates]
            if not found:
                return None
        return self._shared_list(tuple(found))

    def _shared_list(self, ids: Tuple[str, ...]) -> List[str]:
        lists = self._lists
        shared = lists.get(ids)
        if shared is None:
            if len(lists) >= _LISTS_CAPACITY:
                lists.clear()
            shared = lists[ids] = list(ids)
        return shared

    def __len__(self) -> int:
        return len(self._cohorts)

    def __contains__(self, cohort_id: object) -> bool:
        return cohort_id in self._cohorts

    def __repr__(self) -> str:
        cohorts = self._cohorts
        return f"CohortStore({len(cohorts)} cohorts, {sum(len(c.members) for c in cohorts.values())} members)"
