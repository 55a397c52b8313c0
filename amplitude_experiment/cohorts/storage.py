"""Downloaded cohorts, shared between the loader (writer) and evaluation (readers)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable, Dict, FrozenSet, Iterable, List, Mapping, Optional, Tuple

from .members import Members, member_key

#: The group type of user cohorts; group cohorts use their group type's name.
USER_GROUP_TYPE = "User"

_NONE: FrozenSet[str] = frozenset()


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


# Per group type: (cohort id, its membership test by key) of every stored cohort of that type.
_Index = Mapping[str, Tuple[Tuple[str, Callable[[float], bool]], ...]]


def _index_of(cohorts: Mapping[str, Cohort]) -> _Index:
    by_type: Dict[str, List[Tuple[str, Callable[[float], bool]]]] = {}
    for cid, cohort in sorted(cohorts.items()):
        by_type.setdefault(cohort.group_type, []).append((cid, cohort.members.contains_key))
    return {group_type: tuple(entries) for group_type, entries in by_type.items()}


class CohortStore:
    """Cohorts by id.

    Writers serialise on a lock and publish a new mapping (with its lookup index) in one
    assignment; readers use whatever is current without locking, so a reader never sees a
    half-applied write.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # Never mutated once published: writers copy, change and swap.
        self._cohorts: Mapping[str, Cohort] = {}
        # (cohorts, their lookup index or None until the first lookup after a write)
        self._state: Tuple[Mapping[str, Cohort], Optional[_Index]] = ({}, {})

    def _publish(self, cohorts: Mapping[str, Cohort]) -> None:
        # Called with the lock held; the index is built by the next lookup (a burst of writes
        # builds it once).
        self._cohorts = cohorts
        self._state = (cohorts, None)

    def _index(self) -> _Index:
        state = self._state
        index = state[1]
        if index is None:
            index = _index_of(state[0])
            with self._lock:
                if self._state is state:  # not replaced meanwhile by a writer
                    self._state = (state[0], index)
        return index

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

        On the evaluation path: one hash of ``member_id``, then one short binary search per
        stored cohort of the group type.
        """
        entries = self._index().get(group_type)
        if not entries or type(member_id) is not str:
            return _NONE
        key = member_key(member_id)
        found = [cid for cid, contains_key in entries if contains_key(key)]
        if not found:
            return _NONE
        return frozenset(found).intersection(candidate_ids)

    def __len__(self) -> int:
        return len(self._cohorts)

    def __contains__(self, cohort_id: object) -> bool:
        return cohort_id in self._cohorts

    def __repr__(self) -> str:
        cohorts = self._cohorts
        return f"CohortStore({len(cohorts)} cohorts, {sum(len(c.members) for c in cohorts.values())} members)"
