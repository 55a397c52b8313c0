"""Amplitude's event ingestion as documented (HTTP V2 API ``/2/httpapi`` and Batch ``/batch``).

Written from Amplitude's documentation (see ``BEHAVIOURS.md`` next to this file), never from
what our sender parses. :class:`Ingestion` takes a request body and answers with the status
and JSON body Amplitude documents, keeping the events it accepted.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any, Callable, Dict, Iterable, List, NamedTuple, Optional, Set, Tuple, Union

__all__ = [
    "BATCH_PATH",
    "HTTPAPI_PATH",
    "MAX_BATCH_BYTES",
    "MAX_EVENTS_PER_REQUEST",
    "MAX_HTTPAPI_BYTES",
    "DEFAULT_MIN_ID_LENGTH",
    "Ingestion",
]

HTTPAPI_PATH = "/2/httpapi"
BATCH_PATH = "/batch"
MAX_EVENTS_PER_REQUEST = 2000  # HTTP V2 and Batch: "fewer than 2000 events per request" -> 413
MAX_HTTPAPI_BYTES = 1_000_000  # HTTP V2: "Keep request sizes under 1 MB" -> 413
MAX_BATCH_BYTES = 20_000_000  # Batch: "must not exceed 20MB" -> 413
DEFAULT_MIN_ID_LENGTH = 5  # user_id / device_id, unless options.min_id_length says otherwise
EPS_THRESHOLD = 30  # HTTP V2: 30 events per second per user or device

Answer = Tuple[int, Dict[str, Any]]

_ID_FIELDS = ("user_id", "device_id")


def _error(status: int, error: str, **fields: Any) -> Answer:
    body: Dict[str, Any] = {"code": status, "error": error}
    body.update(fields)
    return status, body


def _non_empty(groups: Dict[str, List[int]]) -> Dict[str, List[int]]:
    return {name: indexes for name, indexes in groups.items() if indexes}


class _Limits:
    """Ids answered with 429: each for ``remaining`` more requests (``None``: until cleared)."""

    def __init__(self) -> None:
        self.ids: Dict[str, Optional[int]] = {}

    def add(self, ids: Iterable[str], times: Optional[int]) -> None:
        for value in ids:
            self.ids[str(value)] = times

    def used(self, matched: Set[str]) -> None:
        for value in matched:
            left = self.ids.get(value)
            if left is not None:
                if left <= 1:
                    del self.ids[value]
                else:
                    self.ids[value] = left - 1



class _Request(NamedTuple):
    events: List[Any]
    min_id_length: int


class _Problems:
    """What is wrong with the events of one request, by field and event index (design.md §3)."""

    def __init__(self) -> None:
        self.invalid: Dict[str, List[int]] = {}
        self.missing: Dict[str, List[int]] = {}
        self.short: Dict[str, List[int]] = {}

    @staticmethod
    def note(table: Dict[str, List[int]], field: str, index: int) -> None:
        table.setdefault(field, []).append(index)

    def check(self, index: int, event: Dict[str, Any], min_len: int) -> None:
        event_type = event.get("event_type")
        if event_type is None or event_type == "":
            self.note(self.missing, "event_type", index)
        elif not isinstance(event_type, str):
            self.note(self.invalid, "event_type", index)
        self._check_ids(index, event, min_len)
        time_value = event.get("time")
        if time_value is not None and (isinstance(time_value, bool) or not isinstance(time_value, int)):
            self.note(self.invalid, "time", index)
        for name in ("event_properties", "user_properties", "groups", "group_properties"):
            if event.get(name) is not None and not isinstance(event[name], dict):
                self.note(self.invalid, name, index)

    def _check_ids(self, index: int, event: Dict[str, Any], min_len: int) -> None:
        ids = [event.get(name) for name in _ID_FIELDS]
        if all(value is None or value == "" for value in ids):
            self.note(self.missing, "user_id", index)
        for name, value in zip(_ID_FIELDS, ids):
            if value is None or value == "":
                continue
            if not isinstance(value, str):
                self.note(self.invalid, name, index)
            elif len(value) < min_len:
                self.note(self.short, name, index)

    def answer(self) -> Optional[Answer]:
        if not (self.invalid or self.missing or self.short):
            return None
        if self.missing:
            error = "Request missing required field"
        elif self.short and not self.invalid:
            error = "Invalid id length for user_id or device_id"
        else:
            error = "Invalid field values on some events"
        fields: Dict[str, Any] = {}
        if self.invalid:
            fields["events_with_invalid_fields"] = _non_empty(self.invalid)
        if self.missing:
            fields["events_with_missing_fields"] = _non_empty(self.missing)
        if self.short:
            fields["events_with_invalid_id_lengths"] = _non_empty(self.short)
        return _error(400, error, **fields)

class Ingestion:
    """Validates and ingests event uploads the way Amplitude's ingestion API documents.

    Thread-safe. ``api_key``: the only key accepted (``None``: any non-empty key).
    ``max_payload_bytes``: overrides the documented byte limits of both endpoints.
    """

    def __init__(self, api_key: Optional[str] = None, min_id_length: int = DEFAULT_MIN_ID_LENGTH,
                 max_payload_bytes: Optional[int] = None,
                 now: Callable[[], float] = time.time) -> None:
        self.api_key = api_key
        self.min_id_length = min_id_length
        self.max_payload_bytes = max_payload_bytes
        self._now = now
        self._lock = threading.Lock()
        self._events: List[Dict[str, Any]] = []
        self._silenced_insert_ids: Set[str] = set()
        self._silenced_devices: Set[str] = set()
        self._throttled_users = _Limits()
        self._throttled_devices = _Limits()
        self._quota_users = _Limits()
        self._quota_devices = _Limits()

    # ----- scripting -------------------------------------------------------------------------

    def silence_insert_ids(self, insert_ids: Iterable[str]) -> None:
        with self._lock:
            self._silenced_insert_ids.update(insert_ids)

    def silence_devices(self, device_ids: Iterable[str]) -> None:
        with self._lock:
            self._silenced_devices.update(device_ids)

    def throttle(self, users: Iterable[str] = (), devices: Iterable[str] = (), times: Optional[int] = None) -> None:
        with self._lock:
            self._throttled_users.add(users, times)
            self._throttled_devices.add(devices, times)

    def exceed_daily_quota(self, users: Iterable[str] = (), devices: Iterable[str] = (),
                           times: Optional[int] = None) -> None:
        with self._lock:
            self._quota_users.add(users, times)
            self._quota_devices.add(devices, times)

    def clear_limits(self) -> None:
        with self._lock:
            for limits in (self._throttled_users, self._throttled_devices, self._quota_users, self._quota_devices):
                limits.ids.clear()
            self._silenced_insert_ids.clear()
            self._silenced_devices.clear()

    # ----- records ---------------------------------------------------------------------------

    @property
    def events(self) -> List[Dict[str, Any]]:
        with self._lock:
            return list(self._events)

    @property
    def count(self) -> int:
        with self._lock:
            return len(self._events)

    def reset(self) -> None:
        with self._lock:
            self._events.clear()

    # ----- the API ---------------------------------------------------------------------------

    def handle(self, path: str, body: bytes) -> Answer:
        """Answer one upload to ``path`` (``/2/httpapi`` or ``/batch``) with status and JSON body."""
        batch = path == BATCH_PATH
        request = self._read_request(body, batch)
        if not isinstance(request, _Request):
            return request
        events = request.events
        if batch:
            events = [self._strip_short_ids(e, request.min_id_length) for e in events]
        answer = self._validate(events, request.min_id_length)
        if answer is not None:
            return answer
        with self._lock:
            answer = self._silence(events) or self._limit(events)
            if answer is not None:
                return answer
            self._events.extend(events)
        return 200, {
            "code": 200,
            "events_ingested": len(events),
            "payload_size_bytes": len(body),
            "server_upload_time": int(self._now() * 1000),
        }

    def _read_request(self, body: bytes, batch: bool) -> "Union[_Request, Answer]":
        """The request's events and id-length rule, or the answer rejecting the request as such."""
        limit = self.max_payload_bytes
        if limit is None:
            limit = MAX_BATCH_BYTES if batch else MAX_HTTPAPI_BYTES
        if len(body) > limit:
            return _error(413, "Payload too large")
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return _error(400, "Invalid JSON request body")
        if not isinstance(payload, dict):
            return _error(400, "Invalid JSON request body")
        api_key = payload.get("api_key")
        if not isinstance(api_key, str) or not api_key:
            return _error(400, "Request missing required field", missing_field="api_key")
        if self.api_key is not None and api_key != self.api_key:
            return _error(400, "Invalid API key: " + api_key)
        events = payload.get("events")
        if not isinstance(events, list) or not events:
            return _error(400, "Request missing required field", missing_field="events")
        if len(events) > MAX_EVENTS_PER_REQUEST:
            return _error(413, "Payload too large")
        min_len = self._min_id_length(payload.get("options"))
        if min_len is None:
            return _error(400, "Invalid field values on some events",
                          events_with_invalid_fields={"options.min_id_length": []})
        return _Request(events, min_len)

    def _min_id_length(self, options: Any) -> Optional[int]:
        if not isinstance(options, dict) or options.get("min_id_length") is None:
            return self.min_id_length
        value = options["min_id_length"]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            return None
        return value

    @staticmethod
    def _strip_short_ids(event: Any, min_len: int) -> Any:
        # Batch API: "If an event contains a device or user ID that is too short, the ID value
        # will be removed from the event."
        if not isinstance(event, dict):
            return event
        kept = dict(event)
        for name in _ID_FIELDS:
            value = kept.get(name)
            if isinstance(value, str) and len(value) < min_len:
                del kept[name]
        return kept

    @staticmethod
    def _validate(events: List[Any], min_len: int) -> Optional[Answer]:
        problems = _Problems()
        for index, event in enumerate(events):
            if isinstance(event, dict):
                problems.check(index, event, min_len)
            else:
                problems.note(problems.invalid, "event", index)
        return problems.answer()

    def _silence(self, events: List[Dict[str, Any]]) -> Optional[Answer]:
        silenced: List[int] = []
        devices: List[str] = []
        for index, event in enumerate(events):
            device = event.get("device_id")
            if device in self._silenced_devices:
                silenced.append(index)
                if device not in devices:
                    devices.append(device)
            elif event.get("insert_id") in self._silenced_insert_ids:
                silenced.append(index)
        if not silenced:
            return None
        return _error(400, "Events silenced", silenced_events=silenced, silenced_devices=devices)

    def _limit(self, events: List[Dict[str, Any]]) -> Optional[Answer]:
        throttled_events: List[int] = []
        found: Dict[str, Dict[str, int]] = {
            "throttled_users": {}, "throttled_devices": {},
            "exceeded_daily_quota_users": {}, "exceeded_daily_quota_devices": {},
        }
        tables = (("throttled_users", "user_id", self._throttled_users),
                  ("throttled_devices", "device_id", self._throttled_devices),
                  ("exceeded_daily_quota_users", "user_id", self._quota_users),
                  ("exceeded_daily_quota_devices", "device_id", self._quota_devices))
        for index, event in enumerate(events):
            hit = False
            for key, field, limits in tables:
                value = event.get(field)
                if isinstance(value, str) and value in limits.ids:
                    found[key][value] = found[key].get(value, 0) + 1
                    hit = True
            if hit:
                throttled_events.append(index)
        if not throttled_events:
            return None
        for key, _, limits in tables:
            limits.used(set(found[key]))
        return _error(429, "Too many requests for some devices and users", eps_threshold=EPS_THRESHOLD,
                      throttled_events=throttled_events, **found)
