"""A read-only view of a user with synced cohort memberships added, for one evaluation.

The caller's ``User`` is never modified: the view answers ``cohort_ids`` and
``group_cohort_ids`` itself and forwards every other attribute to the user.
"""

from __future__ import annotations

from typing import Any, Dict, FrozenSet, List, Mapping, Optional

from ..evaluation.compiler import USER_GROUP_TYPE


class CohortView:
    """``user`` as evaluation sees it once synced cohorts are known."""

    __slots__ = ("_user", "cohort_ids", "group_cohort_ids")

    def __init__(self, user: Any, cohort_ids: Optional[List[str]],
                 group_cohort_ids: Optional[Dict[str, Dict[str, List[str]]]]) -> None:
        self._user = user
        self.cohort_ids = cohort_ids
        self.group_cohort_ids = group_cohort_ids

    def __getattr__(self, name: str) -> Any:
        return getattr(self._user, name)


def with_cohorts(user: Any, targeted: Mapping[str, FrozenSet[str]], store: Any) -> Any:
    """``user`` plus the synced cohorts (among ``targeted``) it and its groups belong to.

    User-supplied ``cohort_ids`` / ``group_cohort_ids`` are kept and merged with the synced ones.
    """
    cohort_ids = getattr(user, "cohort_ids", None)
    user_cohorts = targeted.get(USER_GROUP_TYPE)
    user_id = getattr(user, "user_id", None)
    if user_cohorts and user_id is not None:
        found = store.memberships(str(user_id), user_cohorts, USER_GROUP_TYPE)
        if found:
            cohort_ids = sorted(found.union(cohort_ids or ()))
    group_cohort_ids = getattr(user, "group_cohort_ids", None)
    groups = getattr(user, "groups", None)
    if isinstance(groups, Mapping):
        for group_type, names in groups.items():
            candidates = targeted.get(group_type)
            if not candidates:
                continue
            name = names if isinstance(names, str) else (names[0] if isinstance(names, (list, tuple)) and names
                                                           else None)
            if name is None:
                continue
            found = store.memberships(str(name), candidates, group_type)
            if not found:
                continue
            merged = {k: dict(v) for k, v in group_cohort_ids.items()} if isinstance(group_cohort_ids, Mapping) else {}
            existing = merged.setdefault(group_type, {}).get(name) or ()
            merged[group_type][name] = sorted(found.union(existing))
            group_cohort_ids = merged
    return CohortView(user, cohort_ids, group_cohort_ids)
