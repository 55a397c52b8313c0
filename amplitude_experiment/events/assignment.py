"""Assignment events: one ``[Experiment] Assignment`` per user, per unique result, per day.

The request thread does only the cheap part: a dedup check on a key built from C-level tuple
operations, then (on a miss) it captures what the event needs and queues it. The event dict,
its insert_id and its JSON are built on the sender thread.
"""

from __future__ import annotations

import operator
import time
from json.encoder import encode_basestring
from typing import Any, Callable, Dict, List, Optional, Tuple

from ..variant import Variant
from ..version import LIBRARY
from .dedup import SeenCache
from .insert_id import AssignmentHasher, assignment_insert_id
from .sender import EventSender, encode_event
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

_outcome_of = operator.attrgetter("_outcome")
_LIBRARY_JSON = encode_basestring(LIBRARY)


def _json(value: Any) -> str:
    return encode_basestring(value) if type(value) is str else encode_event(value)


class EventWriter:
    """Writes assignment events as JSON text, from fragments remembered per flag outcome.

    An event's properties depend only on each flag's compiled outcome, so each (flag, outcome)
    is written once as JSON and every later event joins the fragments: several times cheaper
    than building dicts and encoding them. The memo holds the outcomes it describes, so an
    ``id()`` in a key always refers to the same live object.

    Not thread-safe: one writer serves one sending thread.

    Args:
        capacity: how many (flag, outcome) fragments are remembered.
    """

    def __init__(self, capacity: int = 16384) -> None:
        self.hasher = AssignmentHasher()
        # (flag key, variant key, id(outcome)) -> (outcome, event properties, $set entry, $unset entry)
        self._fragments: Dict[Tuple[str, str, int], Tuple[Any, str, Optional[str], Optional[str]]] = {}
        self._capacity = capacity

    def _fragment(self, flag_key: str, variant_key: str,
                  outcome: Any) -> Tuple[Any, str, Optional[str], Optional[str]]:
        key = (flag_key, variant_key, id(outcome))
        found = self._fragments.get(key)
        if found is None:
            metadata = outcome[3]
            version = metadata.get("flagVersion")
            segment = metadata.get("segmentName")
            properties = f"{_json(f'[Experiment] {flag_key}.variant')}:{_json(variant_key)}"
            if version is not None and segment is not None:
                properties += f",{_json(f'[Experiment] {flag_key}.details')}:{_json(f'v{version} rule:{segment}')}"
            set_entry = unset_entry = None
            if metadata.get("flagType") != _MUTUAL_EXCLUSION_GROUP:
                if metadata.get("default"):
                    unset_entry = f'{_json(f"[Experiment] {flag_key}")}:"-"'
                else:
                    set_entry = f"{_json(f'[Experiment] {flag_key}')}:{_json(variant_key)}"
            found = (outcome, properties, set_entry, unset_entry)
            if len(self._fragments) >= self._capacity:
                self._fragments.clear()
            self._fragments[key] = found
        return found

    def to_json(self, assignment: "Assignment") -> Tuple[str, str]:
        """(insert_id, the event as JSON text); decodes to exactly ``assignment.build()``."""
        insert_id = self.hasher.insert_id(assignment.user_id, assignment.device_id, assignment.flag_keys,
                                          assignment.variant_keys, assignment.time)
        if assignment.user_fields is not None:
            return insert_id, encode_event(assignment.event(insert_id))
        properties: List[str] = []
        set_entries: List[str] = []
        unset_entries: List[str] = []
        for flag_key, variant_key, outcome in zip(assignment.flag_keys, assignment.variant_keys,
                                                  assignment.outcomes):
            if variant_key is None:
                continue
            _, flag_properties, set_entry, unset_entry = self._fragment(flag_key, variant_key, outcome)
            properties.append(flag_properties)
            if set_entry is not None:
                set_entries.append(set_entry)
            elif unset_entry is not None:
                unset_entries.append(unset_entry)
        ids = ""
        if assignment.user_id is not None:
            ids += f',"user_id":{_json(assignment.user_id)}'
        if assignment.device_id is not None:
            ids += f',"device_id":{_json(assignment.device_id)}'
        return insert_id, (
            f'{{"event_type":"{ASSIGNMENT_EVENT_TYPE}"{ids},"event_properties":{{{",".join(properties)}}},'
            f'"user_properties":{{"$set":{{{",".join(set_entries)}}},"$unset":{{{",".join(unset_entries)}}}}},'
            f'"insert_id":{_json(insert_id)},"library":{_LIBRARY_JSON},"time":{assignment.time:d}}}'
        )


class Assignment:
    """What one tracked evaluation needs to become an event (immutable once queued).

    The request thread hands over tuples it already built for the dedup key (flag keys and
    variant keys) plus the immutable compiled outcomes the variants were made from (shared with
    the flag snapshot, so a queued event costs a few pointers per flag, not copies); the
    metadata is read from those outcomes here, on the sending thread.
    """

    __slots__ = ("user_id", "device_id", "time", "flag_keys", "variant_keys", "outcomes", "user_fields", "writer")

    def __init__(self, user_id: Optional[str], device_id: Optional[str], time_millis: int,
                 flag_keys: Tuple[str, ...], variant_keys: Tuple[Optional[str], ...],
                 outcomes: Tuple[Any, ...], user_fields: Optional[Dict[str, Any]],
                 writer: Optional[EventWriter] = None) -> None:
        self.user_id = user_id
        self.device_id = device_id
        self.time = time_millis
        self.flag_keys = flag_keys
        self.variant_keys = variant_keys
        self.outcomes = outcomes
        self.user_fields = user_fields
        self.writer = writer

    @property
    def insert_id(self) -> str:
        if self.writer is not None:
            return self.writer.hasher.insert_id(self.user_id, self.device_id, self.flag_keys, self.variant_keys,
                                                self.time)
        return assignment_insert_id(self.user_id, self.device_id, zip(self.flag_keys, self.variant_keys), self.time)

    def to_json(self) -> Tuple[str, str]:
        """(insert_id, the event as JSON text): what the sender posts."""
        if self.writer is not None:
            return self.writer.to_json(self)
        insert_id = self.insert_id
        return insert_id, encode_event(self.event(insert_id))

    def build(self) -> Dict[str, Any]:
        """The event as sent to Amplitude (design.md §5)."""
        return self.event(self.insert_id)

    def event(self, insert_id: str) -> Dict[str, Any]:
        """The event dict, with its insert_id already computed."""
        event_properties: Dict[str, Any] = {}
        set_properties: Dict[str, Any] = {}
        unset_properties: Dict[str, Any] = {}
        for flag_key, variant_key, outcome in zip(self.flag_keys, self.variant_keys, self.outcomes):
            if variant_key is None:
                continue
            metadata = outcome[3]
            version = metadata.get("flagVersion")
            segment = metadata.get("segmentName")
            event_properties[f"[Experiment] {flag_key}.variant"] = variant_key
            if version is not None and segment is not None:
                event_properties[f"[Experiment] {flag_key}.details"] = f"v{version} rule:{segment}"
            if metadata.get("flagType") == _MUTUAL_EXCLUSION_GROUP:
                continue
            if metadata.get("default"):
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
        event["insert_id"] = insert_id
        event["library"] = LIBRARY
        event["time"] = self.time
        return event


def _outcome_from(variant: Variant) -> Any:
    """An outcome built from a variant that evaluation did not make (its fields copied now,
    so later changes to it cannot alter the queued event)."""
    return (variant.key, variant.value, None, dict(variant.metadata or {}))


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
        self._writer = EventWriter()
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
        flag_keys = tuple(results)
        variant_keys = tuple(map(_variant_key, results.values()))
        # Ids are compared trimmed, as the insert_id hash sees them (and the official SDK dedups).
        # The result is remembered by its 64-bit hash: an entry costs ~250 bytes instead of
        # ~850 with 40 flags. A wrong "seen" would need one user, one day and two results with
        # the same hash; Amplitude's own insert_id dedup already trusts a 32-bit hash.
        key = (user_id.strip() if type(user_id) is str else user_id,
               device_id.strip() if type(device_id) is str else device_id,
               now // 86_400.0, hash((flag_keys, variant_keys)))
        expires = self._seen_get(key)
        if (expires is not None and expires > now) or not self._seen.first_time(key, now):
            self.deduplicated.increment()
            return
        self.tracked.increment()
        outcomes = tuple(map(_outcome_of, results.values()))
        if None in outcomes:
            outcomes = tuple(o if o is not None else _outcome_from(v) for o, v in zip(outcomes, results.values()))
        fields = evaluated_user_fields(user) if self._send_evaluated_props else None
        self.sender.enqueue(Assignment(user_id, device_id, int(now * 1000), flag_keys, variant_keys, outcomes,
                                       fields, self._writer))

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
