"""Assignment events: one ``[Experiment] Assignment`` per user, per unique result, per day.

The request thread does only the cheap part: a dedup check on a key built from C-level tuple
operations, then (on a miss) it captures what the event needs and queues it. The event dict,
its insert_id and its JSON are built on the sender thread.
"""

from __future__ import annotations

import operator
import time
from typing import Any, Callable, Dict, Optional, Tuple

from ..variant import Variant
from ..version import LIBRARY
from .dedup import SeenCache
from .insert_id import AssignmentHasher, assignment_insert_id
from .sender import EventSender
from .stats import Counter, ReasonCounters

ASSIGNMENT_EVENT_TYPE = "[Experiment] Assignment"
_MUTUAL_EXCLUSION_GROUP = "mutual-exclusion-group"
_variant_key = operator.attrgetter("key")
# User fields copied onto the event with send_evaluated_props, under their HTTP API names.
# (``library`` stays ours: it names the SDK that sent the event.)
_EVENT_USER_FIELDS = (
    ("country", "country"), ("city", "city"), ("region", "region"), ("dma", "dma"), ("language", "language"),
    ("platform", "platform"), ("version", "app_version"), ("os", "os_name"),
    ("device_manufacturer", "device_manufacturer"), ("device_brand", "device_brand"),
    ("device_model", "device_model"), ("carrier", "carrier"), ("ip_address", "ip"),
)

# (flag key, variant key, metadata) of each evaluated flag
FlagAssignment = Tuple[str, Optional[str], Dict[str, Any]]
_outcome_of = operator.attrgetter("_outcome")


class Assignment:
    """What one tracked evaluation needs to become an event (immutable once queued)."""

    __slots__ = ("user_id", "device_id", "time", "flags", "user_fields", "hasher")

    def __init__(self, user_id: Optional[str], device_id: Optional[str], time_millis: int,
                 flags: Tuple[FlagAssignment, ...], user_fields: Optional[Dict[str, Any]],
                 hasher: Optional[AssignmentHasher] = None) -> None:
        self.user_id = user_id
        self.device_id = device_id
        self.time = time_millis
        self.flags = flags
        self.user_fields = user_fields
        self.hasher = hasher

    @property
    def insert_id(self) -> str:
        pairs = ((f[0], f[1]) for f in self.flags)
        if self.hasher is not None:
            return self.hasher.insert_id(self.user_id, self.device_id, pairs, self.time)
        return assignment_insert_id(self.user_id, self.device_id, pairs, self.time)

    def build(self) -> Dict[str, Any]:
        """The event as sent to Amplitude (design.md §5)."""
        event_properties: Dict[str, Any] = {}
        set_properties: Dict[str, Any] = {}
        unset_properties: Dict[str, Any] = {}
        for flag_key, variant_key, metadata in self.flags:
            if variant_key is None:
                continue
            version = metadata.get("flagVersion")
            segment = metadata.get("segmentName")
            flag_type = metadata.get("flagType")
            is_default = metadata.get("default")
            event_properties[f"[Experiment] {flag_key}.variant"] = variant_key
            if version is not None and segment is not None:
                event_properties[f"[Experiment] {flag_key}.details"] = f"v{version} rule:{segment}"
            if flag_type == _MUTUAL_EXCLUSION_GROUP:
                continue
            if is_default:
                unset_properties[f"[Experiment] {flag_key}"] = "-"
            else:
                set_properties[f"[Experiment] {flag_key}"] = variant_key
        event: Dict[str, Any] = {"event_type": ASSIGNMENT_EVENT_TYPE}
        if self.user_id is not None:
            event["user_id"] = self.user_id
        if self.device_id is not None:
            event["device_id"] = self.device_id
        event["event_properties"] = event_properties
        user_properties: Dict[str, Any] = {"$set": set_properties, "$unset": unset_properties}
        if self.user_fields is not None:
            fields = dict(self.user_fields)
            # The evaluated user properties go beside the operations, as the official SDK sends them.
            user_properties.update(fields.pop("user_properties", None) or {})
            event.update(fields)
        event["user_properties"] = user_properties
        event["insert_id"] = self.insert_id
        event["library"] = LIBRARY
        event["time"] = self.time
        return event


def flag_assignments(results: Dict[str, Variant]) -> Tuple[FlagAssignment, ...]:
    """(flag, variant key, metadata) per result, from the compiled outcomes the variants came from.

    A variant not made by evaluation (no outcome) is read from its own fields, copied.
    """
    outcomes = tuple(map(_outcome_of, results.values()))
    if None not in outcomes:
        return tuple(zip(results, map(_first, outcomes), map(_fourth, outcomes)))
    return tuple((flag_key, variant.key, dict(variant.metadata or {})) for flag_key, variant in results.items())


_first = operator.itemgetter(0)
_fourth = operator.itemgetter(3)


def evaluated_user_fields(user: Any) -> Dict[str, Any]:
    """A copy of the user's predefined fields and user properties, for the event."""
    fields = {name: value for field, name in _EVENT_USER_FIELDS if (value := getattr(user, field, None)) is not None}
    properties = getattr(user, "user_properties", None)
    if isinstance(properties, dict) and properties:
        fields["user_properties"] = {k: v for k, v in properties.items() if not str(k).startswith("$")}
    return fields


class AssignmentTracker:
    """Decides, per evaluation, whether an assignment event is due, and queues it.

    Args:
        sender: where events go.
        cache_capacity: how many recent (user, result, day) keys are remembered.
        send_evaluated_props: copy the user's fields and properties onto events.
        clock: wall-clock seconds (``time.time``); injectable for tests.
        dedup_timer: the TTL cache's clock; injectable for tests.
    """

    def __init__(self, sender: EventSender, cache_capacity: int, send_evaluated_props: bool = False,
                 clock: Callable[[], float] = time.time) -> None:
        self.sender = sender
        # The dedup TTL runs on the same wall clock as the day stamp: one clock read per call.
        self._seen = SeenCache(cache_capacity, timer=clock)
        self._seen_get = self._seen._expiry.get
        self._send_evaluated_props = send_evaluated_props
        self._clock = clock
        self._hasher = AssignmentHasher()
        self.__init_counters()

    def __init_counters(self) -> None:
        self.tracked = Counter()
        self.deduplicated = Counter()
        self.skipped = ReasonCounters()

    def track(self, user: Any, results: Dict[str, Variant]) -> None:
        """Queue an assignment event for this evaluation unless one was already sent today.

        Called on the request path and written for speed: a dedup hit costs two attribute
        reads, a clock read, a tuple built in C and one dict lookup. No I/O, never blocks.
        """
        if not results:
            self.skipped.add("empty_result")
            return
        user_id = getattr(user, "user_id", None)
        device_id = getattr(user, "device_id", None)
        if not user_id and not device_id:
            self.skipped.add("no_user_or_device_id")
            return
        now = self._clock()
        # Ids are compared trimmed, as the insert_id hash sees them (and the official SDK dedups).
        key = (user_id.strip() if type(user_id) is str else user_id,
               device_id.strip() if type(device_id) is str else device_id,
               now // 86_400.0, tuple(results), tuple(map(_variant_key, results.values())))
        expires = self._seen_get(key)
        if (expires is not None and expires > now) or not self._seen.first_time(key, now):
            self.deduplicated.increment()
            return
        self.tracked.increment()
        fields = evaluated_user_fields(user) if self._send_evaluated_props else None
        self.sender.enqueue(Assignment(user_id, device_id, int(now * 1000), flag_assignments(results), fields,
                                       self._hasher))

    def reinit_after_fork(self, sender: EventSender) -> None:
        """Use a fresh sender and lock in a forked child; dedup memory is kept, counters restart."""
        self.sender = sender
        self._seen.reset_lock()
        self.__init_counters()

    def stats(self) -> Dict[str, Any]:
        tracked, deduplicated, skipped = self.tracked.value, self.deduplicated.value, self.skipped.snapshot()
        return {
            "evaluated": tracked + deduplicated + sum(skipped.values()),
            "tracked": tracked,
            "deduplicated": deduplicated,
            "skipped": skipped,
        }
