"""Reading Amplitude's answers to an event upload (HTTP V2 API, design.md §3).

Pure functions over the decoded JSON body: which events a 400 names and why, which a 429
throttles or puts over the daily quota. Anything malformed (not an object, indexes that are
not ints or out of range, ids that are not strings) is ignored, never raised.
"""

from __future__ import annotations

from typing import Any, Dict, FrozenSet, List, Optional, Set

# 400 lists that name events (field name -> indexes), and the drop reason each one counts as.
# Checked in this order: an event named twice counts once, under the first reason.
_FIELD_LISTS = (
    ("events_with_invalid_id_lengths", "invalid_id_length"),
    ("events_with_missing_fields", "missing_fields"),
    ("events_with_invalid_fields", "invalid_fields"),
)
_SILENCED = ("silenced_events", "silenced")


def _indexes(value: Any, size: int) -> List[int]:
    if not isinstance(value, list):
        return []
    return [i for i in value if type(i) is int and 0 <= i < size]


def _keys(value: Any) -> FrozenSet[str]:
    if not isinstance(value, dict):
        return frozenset()
    return frozenset(k for k in value if isinstance(k, str))


class Rejection:
    """What a 400 says about one upload of ``size`` events.

    Attributes:
        reason: for a whole-request rejection: ``"invalid_api_key"``, ``"missing_field"`` or
            ``"bad_request"`` (a 400 that names no event); ``None`` when events are named.
        missing_field: the request field Amplitude reported missing, if any.
        named: event index -> drop reason (``invalid_id_length``, ``missing_fields``,
            ``invalid_fields``, ``silenced``).
        fields: drop reason -> field names the 400 gave for it (e.g. ``{"user_id"}``).
    """

    __slots__ = ("reason", "missing_field", "named", "fields")

    def __init__(self, body: Any, size: int) -> None:
        self.reason: Optional[str] = None
        self.missing_field: Optional[str] = None
        self.named: Dict[int, str] = {}
        self.fields: Dict[str, Set[str]] = {}
        if not isinstance(body, dict):
            self.reason = "bad_request"
            return
        error = body.get("error")
        if isinstance(error, str) and error.startswith("Invalid API key"):
            self.reason = "invalid_api_key"
            return
        missing = body.get("missing_field")
        if isinstance(missing, str) and missing:
            self.reason = "missing_field"
            self.missing_field = missing
            return
        for key, reason in _FIELD_LISTS:
            by_field = body.get(key)
            if not isinstance(by_field, dict):
                continue
            for field, value in by_field.items():
                for index in _indexes(value, size):
                    if index not in self.named:
                        self.named[index] = reason
                        self.fields.setdefault(reason, set()).add(str(field))
        for index in _indexes(body.get(_SILENCED[0]), size):
            self.named.setdefault(index, _SILENCED[1])
        if not self.named:
            self.reason = "bad_request"


class Throttling:
    """What a 429 says about one upload of ``size`` events.

    ``events`` are the throttled indexes; ``users``/``devices`` the throttled ids;
    ``quota_users``/``quota_devices`` the ids over their daily quota. ``specific`` is False
    when the body names nothing (then every event counts as throttled).
    """

    __slots__ = ("events", "users", "devices", "quota_users", "quota_devices", "specific")

    def __init__(self, body: Any, size: int) -> None:
        body = body if isinstance(body, dict) else {}
        self.events = frozenset(_indexes(body.get("throttled_events"), size))
        self.users = _keys(body.get("throttled_users"))
        self.devices = _keys(body.get("throttled_devices"))
        self.quota_users = _keys(body.get("exceeded_daily_quota_users"))
        self.quota_devices = _keys(body.get("exceeded_daily_quota_devices"))
        self.specific = bool(self.events or self.users or self.devices or self.quota_users or self.quota_devices)

    @property
    def needs_ids(self) -> bool:
        """Whether telling events apart needs their user_id/device_id."""
        return bool(self.users or self.devices or self.quota_users or self.quota_devices)

    def over_quota(self, user_id: Any, device_id: Any) -> bool:
        return _in(user_id, self.quota_users) or _in(device_id, self.quota_devices)

    def throttled(self, index: int, user_id: Any, device_id: Any) -> bool:
        if not self.specific:
            return True
        return index in self.events or _in(user_id, self.users) or _in(device_id, self.devices)


def _in(value: Any, ids: FrozenSet[str]) -> bool:
    return isinstance(value, str) and value in ids
