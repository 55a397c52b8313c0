"""Assignment events: one ``[Experiment] Assignment`` per user, per unique result, per day.

The request thread does only the cheap part: a dedup check on a 60-bit key built from C-level
tuple operations, then (on a miss) it captures what the event needs and queues it. The event
dict, its insert_id and its JSON are built on the sender thread.

The rules of the event (design.md §5) are written once, in :func:`flag_entries`; the JSON
writer and the dict builder both use it.
"""

from __future__ import annotations

import json
import math
import operator
from json.encoder import encode_basestring
from typing import Any, Callable, Dict, List, Optional, Tuple

from .._clock import SYSTEM_CLOCK, Clock
from ..evaluation import Outcome
from ..variant import Variant
from ..version import LIBRARY
from .config import OFFICIAL_PROPERTY_NAMES, PREFIXED_PROPERTY_NAMES
from .dedup import KEY_MASK, SeenKeys
from .insert_id import AssignmentHasher
from .sender import EventSender, encode_event
from .stats import Counter, ReasonCounters

ASSIGNMENT_EVENT_TYPE = "[Experiment] Assignment"
DAY_SECONDS = 86_400.0
_MUTUAL_EXCLUSION_GROUP = "mutual-exclusion-group"
_PREFIXES = {PREFIXED_PROPERTY_NAMES: "[Experiment] ", OFFICIAL_PROPERTY_NAMES: ""}
_variant_key = operator.attrgetter("key")
# The compiled outcome evaluation attached to each variant it returned (see ``Variant``).
_outcome_of = operator.attrgetter("_outcome")
# User fields copied onto the event with send_evaluated_props, under their HTTP API names.
# (``library`` stays ours: it names the SDK that sent the event.)
_EVENT_USER_FIELDS = (
    ("country", "country"), ("city", "city"), ("region", "region"), ("dma", "dma"), ("language", "language"),
    ("platform", "platform"), ("version", "app_version"), ("os", "os_name"),
    ("device_manufacturer", "device_manufacturer"), ("device_brand", "device_brand"),
    ("device_model", "device_model"), ("carrier", "carrier"), ("ip_address", "ip"),
)
_LIBRARY_JSON = encode_basestring(LIBRARY)
# Nesting kept in copied user properties; deeper values are sent as their text.
_MAX_DEPTH = 32
# Distinct result orders remembered for the dedup key (a handful per flag config in practice).
_ORDERS_CAPACITY = 1024

#: One entry of an event property or user property map: (name, value).
Entry = Tuple[str, str]


def flag_entries(flag_key: str, variant_key: str, metadata: Dict[str, Any],
                 prefix: str = "[Experiment] ") -> Tuple[List[Entry], Optional[Entry], Optional[Entry]]:
    """What one evaluated flag adds to an assignment event (design.md §5).

    Returns:
        ``(event properties, $set entry, $unset entry)``: ``<prefix><flag>.variant`` always,
        ``<prefix><flag>.details`` (``v<flagVersion> rule:<segmentName>``) when both are known;
        mutual-exclusion groups set nothing, a default variant unsets ``[Experiment] <flag>``,
        any other variant sets it to the variant key.
    """
    properties = [(f"{prefix}{flag_key}.variant", variant_key)]
    version = metadata.get("flagVersion")
    segment = metadata.get("segmentName")
    if version is not None and segment is not None:
        properties.append((f"{prefix}{flag_key}.details", f"v{version} rule:{segment}"))
    if metadata.get("flagType") == _MUTUAL_EXCLUSION_GROUP:
        return properties, None, None
    if metadata.get("default"):
        return properties, None, (f"[Experiment] {flag_key}", "-")
    return properties, (f"[Experiment] {flag_key}", variant_key), None


def _json(value: Any) -> str:
    return encode_basestring(value) if type(value) is str else encode_event(value)


def _valid_utf8(text: str) -> str:
    """``text`` unless it holds a lone surrogate (not encodable as UTF-8): then with ``\\u`` escapes."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(json.loads(text), ensure_ascii=True, separators=(",", ":"))
    return text


class EventWriter:
    """Writes assignment events as JSON text, from fragments remembered per flag outcome.

    An event's properties depend only on each flag's compiled outcome, so each (flag, outcome)
    is written once as JSON and every later event joins the fragments: several times cheaper
    than building dicts and encoding them. The memo holds the outcomes it describes, so an
    ``id()`` in a key always refers to the same live object.

    Not thread-safe: one writer serves one sending thread.

    Args:
        capacity: how many (flag, outcome) fragments are remembered.
        prefix: the start of each event property name (``"[Experiment] "`` or ``""``).
    """

    def __init__(self, capacity: int = 16384, prefix: str = "[Experiment] ") -> None:
        self.hasher = AssignmentHasher()
        self.prefix = prefix
        # (flag key, variant key, id(outcome)) -> (outcome, event properties, $set entry, $unset entry)
        self._fragments: Dict[Tuple[str, str, int], Tuple[Any, str, Optional[str], Optional[str]]] = {}
        self._capacity = capacity

    def _fragment(self, flag_key: str, variant_key: str,
                  outcome: Outcome) -> Tuple[Any, str, Optional[str], Optional[str]]:
        key = (flag_key, variant_key, id(outcome))
        found = self._fragments.get(key)
        if found is None:
            properties, set_entry, unset_entry = flag_entries(flag_key, variant_key, outcome.metadata, self.prefix)
            found = (outcome,
                     ",".join(f"{_json(name)}:{_json(value)}" for name, value in properties),
                     None if set_entry is None else f"{_json(set_entry[0])}:{_json(set_entry[1])}",
                     None if unset_entry is None else f"{_json(unset_entry[0])}:{_json(unset_entry[1])}")
            if len(self._fragments) >= self._capacity:
                self._fragments.clear()
            self._fragments[key] = found
        return found

    def insert_id(self, assignment: "Assignment") -> str:
        return self.hasher.insert_id(assignment.user_id, assignment.device_id, assignment.flag_keys,
                                     assignment.variant_keys, assignment.time)

    def to_json(self, assignment: "Assignment") -> Tuple[str, str]:
        """(insert_id, the event as JSON text); decodes to exactly ``assignment.build()``."""
        insert_id = self.insert_id(assignment)
        if assignment.user_fields is not None:
            return insert_id, _valid_utf8(encode_event(assignment.event(insert_id)))
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
        return insert_id, _valid_utf8(
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
                 outcomes: Tuple[Outcome, ...], user_fields: Optional[Dict[str, Any]],
                 writer: EventWriter) -> None:
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
        return self.writer.insert_id(self)

    def to_json(self) -> Tuple[str, str]:
        """(insert_id, the event as JSON text): what the sender posts."""
        return self.writer.to_json(self)

    def build(self) -> Dict[str, Any]:
        """The event as sent to Amplitude (design.md §5)."""
        return self.event(self.insert_id)

    def event(self, insert_id: str) -> Dict[str, Any]:
        """The event dict, with its insert_id already computed."""
        event_properties: Dict[str, Any] = {}
        set_properties: Dict[str, Any] = {}
        unset_properties: Dict[str, Any] = {}
        prefix = self.writer.prefix
        for flag_key, variant_key, outcome in zip(self.flag_keys, self.variant_keys, self.outcomes):
            if variant_key is None:
                continue
            properties, set_entry, unset_entry = flag_entries(flag_key, variant_key, outcome.metadata, prefix)
            event_properties.update(properties)
            if set_entry is not None:
                set_properties[set_entry[0]] = set_entry[1]
            elif unset_entry is not None:
                unset_properties[unset_entry[0]] = unset_entry[1]
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
            user_properties.update(json_safe(fields.pop("user_properties", None) or {}))
            event.update(json_safe(fields))
        event["user_properties"] = user_properties
        event["insert_id"] = insert_id
        event["library"] = LIBRARY
        event["time"] = self.time
        return event


def json_safe(value: Any) -> Any:
    """A copy of ``value`` that JSON can encode: non-finite floats, cycles, nesting deeper than
    32 and any other non-JSON value become their text; dict keys become text. Iterative, so no
    user value can exhaust the stack."""
    root: List[Any] = [None]
    # (parent container, key or index in it, value to convert, depth, ids of the containers above)
    pending: List[Tuple[Any, Any, Any, int, Tuple[int, ...]]] = [(root, 0, value, 0, ())]
    while pending:
        parent, slot, item, depth, above = pending.pop()
        if item is None or type(item) in (str, bool, int):
            parent[slot] = item
        elif type(item) is float:
            parent[slot] = item if math.isfinite(item) else str(item)
        elif isinstance(item, (dict, list, tuple, set, frozenset)) and depth < _MAX_DEPTH and id(item) not in above:
            inner = above + (id(item),)
            pairs: List[Tuple[Any, Any]]
            if isinstance(item, dict):
                copied: Any = {}
                pairs = [(k if type(k) is str else str(k), v) for k, v in item.items()]
            else:
                copied = [None] * len(item)
                pairs = list(enumerate(item))
            parent[slot] = copied
            pending.extend((copied, k, v, depth + 1, inner) for k, v in pairs)
        else:
            parent[slot] = str(item)
    return root[0]


def _outcome_from(variant: Variant) -> Outcome:
    """An outcome built from a variant that evaluation did not make (its fields copied now,
    so later changes to it cannot alter the queued event)."""
    return Outcome(variant.key, variant.value, None, dict(variant.metadata or {}), False)


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
        event_property_names: ``"prefixed"`` (``[Experiment] <flag>.variant``, default) or
            ``"official"`` (``<flag>.variant``, as the official SDK); see ``AssignmentConfig``.
        clock: gives the wall-clock time of events and their day; tests pass a ``ManualClock``.
    """

    def __init__(self, sender: EventSender, cache_capacity: int, send_evaluated_props: bool = False, *,
                 event_property_names: str = PREFIXED_PROPERTY_NAMES, clock: Clock = SYSTEM_CLOCK) -> None:
        self.sender = sender
        self._seen = SeenKeys(cache_capacity)
        self._send_evaluated_props = send_evaluated_props
        self._time: Callable[[], float] = clock.time
        self._writer = EventWriter(prefix=_PREFIXES[event_property_names])
        # flag keys in result order -> (the same keys sorted, a getter putting variant keys in that order)
        self._orders: Dict[Tuple[str, ...], Tuple[Tuple[str, ...], Optional[Callable[[Any], Any]]]] = {}
        self.__init_counters()

    def __init_counters(self) -> None:
        self.tracked = Counter()
        self.deduplicated = Counter()
        self.skipped = ReasonCounters()

    def _sorted_order(self, flag_keys: Tuple[str, ...]) -> Tuple[Tuple[str, ...], Optional[Callable[[Any], Any]]]:
        """The result's flag keys sorted, and how to reorder its variant keys alike (None: already sorted)."""
        positions = sorted(range(len(flag_keys)), key=flag_keys.__getitem__)
        if positions == list(range(len(flag_keys))):
            order: Tuple[Tuple[str, ...], Optional[Callable[[Any], Any]]] = (flag_keys, None)
        else:
            order = (tuple(flag_keys[i] for i in positions), operator.itemgetter(*positions))
        if len(self._orders) >= _ORDERS_CAPACITY:
            self._orders.clear()
        self._orders[flag_keys] = order
        return order

    def track(self, user: Any, results: Dict[str, Variant]) -> None:
        """Queue an assignment event for this evaluation unless one was already sent today.

        Called on the request path and written for speed: a dedup hit costs two attribute
        reads, a clock read, tuples built in C, one hash and two set lookups. No I/O, never blocks.
        """
        if not results:
            self.skipped.add("empty_result")
            return
        user_id = getattr(user, "user_id", None)
        device_id = getattr(user, "device_id", None)
        if not user_id and not device_id:
            self.skipped.add("no_user_or_device_id")
            return
        # Amplitude takes ids as text only: anything else (e.g. a number) is sent as its text.
        if type(user_id) is not str and user_id is not None:
            user_id = str(user_id)
        if type(device_id) is not str and device_id is not None:
            device_id = str(device_id)
        now = self._time()
        day = now // DAY_SECONDS
        flag_keys = tuple(results)
        variant_keys = tuple(map(_variant_key, results.values()))
        order = self._orders.get(flag_keys) or self._sorted_order(flag_keys)
        # The key does not depend on the order of the results (the insert_id sorts flags too),
        # and ids are compared trimmed, as the insert_id hash sees them.
        key = hash((user_id.strip() if user_id else user_id, device_id.strip() if device_id else device_id, day,
                    order[0], variant_keys if order[1] is None else order[1](variant_keys))) & KEY_MASK
        seen = self._seen
        if key in seen.current or key in seen.previous or not seen.first_time(key, day):
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
