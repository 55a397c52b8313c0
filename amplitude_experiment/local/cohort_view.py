"""A user as evaluation sees it once synced cohort memberships are added, for one evaluation.

The caller's ``User`` is never modified: a plain ``User`` is copied with its cohort ids set;
any other user object gets a view that answers ``cohort_ids`` and ``group_cohort_ids`` itself
and forwards every other attribute to the user.

User-supplied cohort ids are normalised before they are merged with the synced ones, so odd
data cannot empty a result: each id becomes text, ``None`` is skipped, a single value is one
id, any iterable is a list of ids. A value that needed fixing is logged once per kind, as one
line without a traceback.
"""

from __future__ import annotations

import logging
import operator
import threading
from typing import Any, Dict, FrozenSet, Iterable, List, Mapping, Optional, Set

from ..cohorts.storage import CohortStore
from ..evaluation.compiler import USER_GROUP_TYPE
from ..user import USER_CONTEXT_FIELDS, User, copy_with_cohort_ids

_default_logger = logging.getLogger("amplitude_experiment.local.cohort_view")
_warned: Set[str] = set()
_warned_lock = threading.Lock()


class CohortView:
    """``user`` as evaluation sees it once synced cohorts are known.

    The user's fields are read through C-level properties (evaluation reads several per
    call); any other attribute falls back to ``__getattr__``.
    """

    __slots__ = ("_user", "cohort_ids", "group_cohort_ids")

    def __init__(self, user: Any, cohort_ids: Optional[List[str]],
                 group_cohort_ids: Optional[Dict[str, Dict[str, List[str]]]]) -> None:
        self._user = user
        self.cohort_ids = cohort_ids
        self.group_cohort_ids = group_cohort_ids

    def __getattr__(self, name: str) -> Any:
        return getattr(self._user, name)


for _field in (*USER_CONTEXT_FIELDS, "groups", "group_properties"):
    if _field != "cohort_ids":
        setattr(CohortView, _field, property(operator.attrgetter(f"_user.{_field}")))


def forget_warnings() -> None:
    """Warn again about kinds of odd values already warned about (for tests)."""
    with _warned_lock:
        _warned.clear()


def _warn_once(kind: str, message: str, logger: logging.Logger) -> None:
    with _warned_lock:
        if kind in _warned:
            return
        _warned.add(kind)
    logger.warning("%s; this is logged once", message)


def normalize_cohort_ids(value: Any, field: str = "cohort_ids",
                         logger: Optional[logging.Logger] = None) -> FrozenSet[str]:
    """``value`` (as a user gave it) as a set of cohort id strings; never raises.

    Args:
        value: ``None``, one id, or an iterable of ids.
        field: names the field in the warning.
        logger: where the one warning per kind of odd value goes.
    """
    if value is None:
        return frozenset()
    log = logger or _default_logger
    if isinstance(value, (str, bytes, bytearray)) or not isinstance(value, Iterable):
        _warn_once(f"{field}:single:{type(value).__name__}",
                   f"User.{field} is a single {type(value).__name__}, not a list; it is used as one cohort id", log)
        return frozenset((_id_text(value),))
    try:
        items = list(value)
    except Exception as exc:  # noqa: BLE001 - a broken iterable is the caller's data problem
        _warn_once(f"{field}:unreadable:{type(value).__name__}",
                   f"User.{field} could not be read ({type(exc).__name__}); it is ignored", log)
        return frozenset()
    if all(type(item) is str for item in items):
        return frozenset(items)
    ids: Set[str] = set()
    for item in items:
        if type(item) is str:
            ids.add(item)
        elif item is None:
            _warn_once(f"{field}:none", f"User.{field} holds None; it is skipped", log)
        else:
            _warn_once(f"{field}:item:{type(item).__name__}",
                       f"User.{field} holds a value of type {type(item).__name__}; it is used as its text", log)
            ids.add(_id_text(item))
    return frozenset(ids)


def _id_text(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    try:
        return str(value)
    except Exception:  # noqa: BLE001 - an object whose str() fails still must not fail evaluation
        return object.__repr__(value)


def _group_name(names: Any) -> Optional[str]:
    """The group name evaluation uses: the first of the names (or the single name)."""
    if isinstance(names, str):
        return names
    if isinstance(names, (list, tuple)) and names:
        return names[0] if isinstance(names[0], str) else _id_text(names[0])
    return None


def _merge_groups(user: Any, targeted: Mapping[str, FrozenSet[str]], store: CohortStore,
                  logger: Optional[logging.Logger]) -> Any:
    """A copy of ``user.group_cohort_ids`` (normalised) with the synced memberships of the user's
    groups added; ``None`` when the user has neither."""
    group_cohort_ids = getattr(user, "group_cohort_ids", None)
    merged = None if group_cohort_ids is None else _copy_group_cohort_ids(group_cohort_ids, logger)
    groups = getattr(user, "groups", None)
    if not isinstance(groups, Mapping):
        return merged
    for group_type, names in groups.items():
        candidates = targeted.get(group_type)
        name = _group_name(names) if candidates else None
        if name is None or candidates is None:
            continue
        found = store.memberships(name, candidates, group_type)
        if not found:
            continue
        if merged is None:
            merged = {}
        existing = merged.setdefault(str(group_type), {}).get(name)
        merged[str(group_type)][name] = sorted(found.union(normalize_cohort_ids(existing, "group_cohort_ids", logger)))
    return merged


def _copy_group_cohort_ids(value: Any, logger: Optional[logging.Logger]) -> Dict[str, Dict[str, List[str]]]:
    """A copy of ``group_cohort_ids`` as ``{type: {name: [ids]}}``; malformed parts are dropped (logged once)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        _warn_once(f"group_cohort_ids:{type(value).__name__}",
                   f"User.group_cohort_ids is a {type(value).__name__}, not a dict; it is ignored",
                   logger or _default_logger)
        return {}
    copied: Dict[str, Dict[str, List[str]]] = {}
    for group_type, by_name in value.items():
        if isinstance(by_name, Mapping):
            copied[str(group_type)] = {str(name): sorted(normalize_cohort_ids(ids, "group_cohort_ids", logger))
                                       for name, ids in by_name.items()}
    return copied


def with_cohorts(user: Any, targeted: Mapping[str, FrozenSet[str]], store: CohortStore,
                 logger: Optional[logging.Logger] = None) -> Any:
    """``user`` plus the synced cohorts (among ``targeted``) it and its groups belong to.

    User-supplied ``cohort_ids`` / ``group_cohort_ids`` are kept and merged with the synced
    ones. Returns ``user`` itself when nothing is added or normalised. Never raises because of
    the user's data.

    Args:
        user: the caller's user (not modified).
        targeted: cohort ids the flags target, by group type (``"User"`` for users).
        store: the ``CohortStore`` to look memberships up in.
        logger: where a warning about odd cohort ids goes (once per kind).
    """
    # The common case first, and cheaply: a plain User with a text user_id and nothing of its own
    # to merge (the store remembers the answer per user id).
    if type(user) is User and user.cohort_ids is None and user.group_cohort_ids is None and not user.groups:
        user_id = user.user_id
        if type(user_id) is str:
            candidates = targeted.get(USER_GROUP_TYPE)
            if not candidates:
                return user
            ids = store.user_cohort_ids(user_id, candidates)
            # A copy rather than a view: evaluation reads the user's fields dozens of times a call,
            # and a view's forwarding costs ~40 ns a read, the copy ~0.2 µs once.
            return user if ids is None else copy_with_cohort_ids(user, ids)
    changed = False
    cohort_ids = getattr(user, "cohort_ids", None)
    if cohort_ids is not None and (type(cohort_ids) is not list or not all(type(c) is str for c in cohort_ids)):
        cohort_ids = sorted(normalize_cohort_ids(cohort_ids, "cohort_ids", logger))
        changed = True
    user_cohorts = targeted.get(USER_GROUP_TYPE)
    user_id = getattr(user, "user_id", None)
    if user_cohorts and user_id is not None:
        found = store.user_cohort_ids(user_id if type(user_id) is str else _id_text(user_id), user_cohorts)
        if found:
            cohort_ids = found if not cohort_ids else sorted(set(found).union(cohort_ids))
            changed = True
    group_cohort_ids = getattr(user, "group_cohort_ids", None)
    if group_cohort_ids is not None or getattr(user, "groups", None):
        group_cohort_ids = _merge_groups(user, targeted, store, logger)
        changed = True
    if not changed:
        return user
    if type(user) is User:
        copy = copy_with_cohort_ids(user, cohort_ids)
        copy.group_cohort_ids = group_cohort_ids
        return copy
    return CohortView(user, cohort_ids, group_cohort_ids)
