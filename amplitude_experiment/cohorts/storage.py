"""Downloaded cohorts, shared between the loader (writer) and evaluation (readers)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import FrozenSet, Iterable, Mapping, Optional

#: The group type of user cohorts; group cohorts use their group type's name.
USER_GROUP_TYPE = "User"

_NONE: FrozenSet[str] = frozenset()


@dataclass(frozen=True)
class Cohort:
    """One cohort as downloaded: its id, group type, version (``last_modified``, ms) and members."""

    id: str
    group_type: str
    last_modified: int
    size: int
    # repr=False: a cohort can hold millions of members.
    members: FrozenSet[str] = field(repr=False)


class CohortStore:
    """Cohorts by id.

    Writers serialise on a lock and publish a new mapping; readers use whatever mapping is
    current without locking, so a reader never sees a half-applied write.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # Never mutated once published: writers copy, change and swap.
        self._cohorts: Mapping[str, Cohort] = {}

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
            self._cohorts = cohorts

    def retain(self, cohort_ids: Iterable[str]) -> FrozenSet[str]:
        """Drop every cohort whose id is not in ``cohort_ids``; returns the dropped ids."""
        keep = frozenset(cohort_ids)
        with self._lock:
            current = self._cohorts
            dropped = frozenset(cid for cid in current if cid not in keep)
            if dropped:
                self._cohorts = {cid: c for cid, c in current.items() if cid in keep}
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
        """Which of ``candidate_ids`` are stored cohorts of ``group_type`` that contain ``member_id``."""
        cohorts = self._cohorts  # one snapshot for the whole call
        found = [
            cid for cid in candidate_ids
            if (c := cohorts.get(cid)) is not None and c.group_type == group_type and member_id in c.members
        ]
        return frozenset(found) if found else _NONE

    def __len__(self) -> int:
        return len(self._cohorts)

    def __contains__(self, cohort_id: object) -> bool:
        return cohort_id in self._cohorts

    def __repr__(self) -> str:
        cohorts = self._cohorts
        return f"CohortStore({len(cohorts)} cohorts, {sum(len(c.members) for c in cohorts.values())} members)"
