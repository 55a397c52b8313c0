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
import time
from json.encoder import encode_basestring
from typing import Any, Callable, Dict, List, Optional, Tuple

from .._clock import SYSTEM_CLOCK, Clock
from ..evaluation import Outcome
from ..variant import Variant
from ..version import LIBRARY
from .config import OFFICIAL_PROPERTY_NAMES, PREFIXED_PROPERTY_NAMES
from .dedup import KEY_MASK, SeenKeys
from .insert_id import DAY_MILLIS, AssignmentHasher, java_string_hash
from .sender import EventSender, encode_event
from .stats import Counter, ReasonCounters

ASSIGNMENT_EVENT_TYPE = "[Experiment] Assignment"
DAY_SECONDS = 86_400.0
_MASK32 = 0xFFFFFFFF
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
# Distinct results remembered (a few per flag config when targeting is coarse; when nearly every
# user gets a result of their own, a miss only costs building one more small object).
_RESULTS_CAPACITY = 1024

#: (flag keys sorted, getter putting variant keys in that order or None, the flag keys as first seen)
_Order = Tuple[Tuple[str, ...], Optional[Callable[[Any], Any]], Tuple[str, ...]]
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


class Result:
    """One distinct (flag keys, variant keys) result, shared by every queued event that has it.

    Made on the request thread from tuples it builds anyway; the sending thread fills in the
    flags' part of the insert_id hash once, and the JSON of the event's properties once for
    the first outcomes seen with this result (``outcomes``): later events with those same
    outcome objects share the text. (The same variant keys may come from other rules, so an
    event carries its own outcomes tuple too.)
    """

    __slots__ = ("flag_keys", "variant_keys", "outcomes", "dedup_hash", "json", "flags_hash", "flags_power")

    def __init__(self, flag_keys: Tuple[str, ...], variant_keys: Tuple[Optional[str], ...], dedup_hash: int) -> None:
        self.flag_keys = flag_keys
        self.variant_keys = variant_keys
        #: the first outcomes queued with this result (set once, by the request thread)
        self.outcomes: Tuple[Outcome, ...] = ()
        #: hash of the result in sorted flag order: equal for equal (flag, variant) sets
        self.dedup_hash = dedup_hash
        #: ``"event_properties":{...},"user_properties":{...}`` for ``outcomes`` (sending thread)
        self.json: Optional[str] = None
        #: the flags' part of the insert_id hash; power 0 until computed (sending thread)
        self.flags_hash = 0
        self.flags_power = 0


#: A queued assignment: ``(writer, user_id, device_id, time in epoch ms, result, outcomes, user fields
#: or None)``. A plain tuple (~4x cheaper to make than an object); the sender asks ``item[0]`` to
#: write it. ``outcomes`` (one per flag, shared with the flag snapshot) is ``result.outcomes``
#: itself whenever the objects are the same.
QueuedAssignment = Tuple["EventWriter", Optional[str], Optional[str], int, Result, Tuple[Outcome, ...],
                         Optional[Dict[str, Any]]]



class EventWriter:
    """Writes queued assignments as JSON text, from fragments remembered per flag outcome.

    An event's properties depend only on each flag's compiled outcome, so each (flag, outcome)
    is written once as JSON and an event joins its flags' fragments with C-level ``map`` and
    ``join`` (no Python loop per flag), or reuses its result's text when its outcomes are the
    result's. The memo holds the outcomes it describes, so an ``id()`` key always refers to the
    same live object; each fragment records its flag key, checked against the event's.

    Not thread-safe: one writer serves one sending thread.

    Args:
        capacity: how many (flag, outcome) fragments are remembered.
        prefix: the start of each event property name (``"[Experiment] "`` or ``""``).
    """

    def __init__(self, capacity: int = 16384, prefix: str = "[Experiment] ") -> None:
        self.hasher = AssignmentHasher()
        self.prefix = prefix
        # id(outcome) -> (outcome, flag key, event properties, $set entry, $unset entry); "" for none
        self._fragments: Dict[int, Tuple[Any, str, str, str, str]] = {}
        self._capacity = capacity

    def _fragment(self, flag_key: str, outcome: Outcome) -> Tuple[Any, str, str, str, str]:
        if len(self._fragments) >= self._capacity:
            self._fragments.clear()
        variant_key = outcome.key
        if variant_key is None:
            found: Tuple[Any, str, str, str, str] = (outcome, flag_key, "", "", "")
        else:
            properties, set_entry, unset_entry = flag_entries(flag_key, variant_key, outcome.metadata, self.prefix)
            found = (outcome, flag_key,
                     ",".join(f"{_json(name)}:{_json(value)}" for name, value in properties),
                     "" if set_entry is None else f"{_json(set_entry[0])}:{_json(set_entry[1])}",
                     "" if unset_entry is None else f"{_json(unset_entry[0])}:{_json(unset_entry[1])}")
        self._fragments[id(outcome)] = found
        return found

    def _properties(self, flag_keys: Tuple[str, ...], outcomes: Tuple[Outcome, ...]) -> str:
        """``"event_properties":{...},"user_properties":{...}`` of one event."""
        fragments = list(map(self._fragments.get, map(id, outcomes)))
        if None in fragments:
            fragments = [self._fragment(flag_key, outcome) for flag_key, outcome in zip(flag_keys, outcomes)]
        # columns: outcomes, flag keys, event properties, $set entries, $unset entries
        columns = tuple(zip(*fragments))
        if columns[1] != flag_keys:  # an outcome shared by two flags: write this event's own
            columns = tuple(zip(*[self._fragment(flag_key, outcome) for flag_key, outcome in zip(flag_keys, outcomes)]))
        return (f'"event_properties":{{{",".join(filter(None, columns[2]))}}},'
                f'"user_properties":{{"$set":{{{",".join(filter(None, columns[3]))}}},'
                f'"$unset":{{{",".join(filter(None, columns[4]))}}}}}')

    def insert_id(self, item: QueuedAssignment) -> str:
        """The insert_id of a queued assignment (design.md §5)."""
        user_id, device_id, time_millis, result = item[1], item[2], item[3], item[4]
        if not result.flags_power:
            result.flags_hash, result.flags_power = self.hasher.flags_part(result.flag_keys, result.variant_keys)
        ids = f"{user_id.strip() if user_id else 'None'} {device_id.strip() if device_id else 'None'} "
        h = (java_string_hash(ids) * result.flags_power + result.flags_hash) & _MASK32
        return f"{user_id} {device_id} {h} {time_millis // DAY_MILLIS}"

    def to_json(self, item: QueuedAssignment) -> Tuple[str, str]:
        """(insert_id, the event as JSON text); decodes to exactly ``build(item)``."""
        _, user_id, device_id, time_millis, result, outcomes, fields = item
        if outcomes is result.outcomes:
            properties = result.json
            if properties is None:
                properties = result.json = self._properties(result.flag_keys, outcomes)
        else:
            properties = self._properties(result.flag_keys, outcomes)
        if not result.flags_power:
            result.flags_hash, result.flags_power = self.hasher.flags_part(result.flag_keys, result.variant_keys)
        # The insert_id (design.md §5), as in :meth:`insert_id`, inlined: this runs once per event.
        h = java_string_hash(f"{user_id.strip() if user_id else 'None'} {device_id.strip() if device_id else 'None'} ")
        insert_id = f"{user_id} {device_id} {(h * result.flags_power + result.flags_hash) & _MASK32} " \
                    f"{time_millis // DAY_MILLIS}"
        if fields is not None:
            return insert_id, _valid_utf8(encode_event(self.event(item, insert_id)))
        ids = ""
        if user_id is not None:
            ids += f',"user_id":{encode_basestring(user_id)}'
        if device_id is not None:
            ids += f',"device_id":{encode_basestring(device_id)}'
        text = (f'{{"event_type":"{ASSIGNMENT_EVENT_TYPE}"{ids},{properties},"insert_id":'
                f'{encode_basestring(insert_id)},"library":{_LIBRARY_JSON},"time":{time_millis:d}}}')
        return insert_id, text if text.isascii() else _valid_utf8(text)

    def build(self, item: QueuedAssignment) -> Dict[str, Any]:
        """The event as sent to Amplitude (design.md §5)."""
        return self.event(item, self.insert_id(item))

    def event(self, item: QueuedAssignment, insert_id: str) -> Dict[str, Any]:
        """The event dict, with its insert_id already computed."""
        _, user_id, device_id, time_millis, result, outcomes, user_fields = item
        event_properties: Dict[str, Any] = {}
        set_properties: Dict[str, Any] = {}
        unset_properties: Dict[str, Any] = {}
        prefix = self.prefix
        for flag_key, outcome in zip(result.flag_keys, outcomes):
            variant_key = outcome.key
            if variant_key is None:
                continue
            properties, set_entry, unset_entry = flag_entries(flag_key, variant_key, outcome.metadata, prefix)
            event_properties.update(properties)
            if set_entry is not None:
                set_properties[set_entry[0]] = set_entry[1]
            elif unset_entry is not None:
                unset_properties[unset_entry[0]] = unset_entry[1]
        event: Dict[str, Any] = {"event_type": ASSIGNMENT_EVENT_TYPE}
        if user_id is not None:
            event["user_id"] = user_id
        if device_id is not None:
            event["device_id"] = device_id
        event["event_properties"] = event_properties
        user_properties: Dict[str, Any] = {"$set": set_properties, "$unset": unset_properties}
        if user_fields is not None:
            fields = dict(user_fields)
            # The evaluated user properties go beside the operations, as the official SDK sends them.
            user_properties.update(json_safe(fields.pop("user_properties", None) or {}))
            event.update(json_safe(fields))
        event["user_properties"] = user_properties
        event["insert_id"] = insert_id
        event["library"] = LIBRARY
        event["time"] = time_millis
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
        # time.time itself for the real clock: one call less on the request path
        self._time: Callable[[], float] = time.time if type(clock) is Clock else clock.time
        self._writer = EventWriter(prefix=_PREFIXES[event_property_names])
        # flag keys in result order -> (the same keys sorted, a getter putting variant keys in that order,
        # the first tuple of these keys)
        self._orders: Dict[Tuple[str, ...], _Order] = {}
        # (flag keys, variant keys) in result order -> the latest Result with them
        self._results: Dict[Tuple[Tuple[str, ...], Tuple[Optional[str], ...]], Result] = {}
        self.__init_counters()

    def __init_counters(self) -> None:
        self.tracked = Counter()
        self.deduplicated = Counter()
        self.skipped = ReasonCounters()

    def _sorted_order(self, flag_keys: Tuple[str, ...]) -> "_Order":
        """The result's flag keys sorted, how to reorder its variant keys alike (None: already sorted),
        and ``flag_keys`` itself (kept, so results with these keys share one tuple)."""
        positions = sorted(range(len(flag_keys)), key=flag_keys.__getitem__)
        if positions == list(range(len(flag_keys))):
            order: _Order = (flag_keys, None, flag_keys)
        else:
            order = (tuple(flag_keys[i] for i in positions), operator.itemgetter(*positions), flag_keys)
        if len(self._orders) >= _ORDERS_CAPACITY:
            self._orders.clear()
        self._orders[flag_keys] = order
        return order

    def _new_result(self, flag_keys: Tuple[str, ...], variant_keys: Tuple[Optional[str], ...]) -> Result:
        """A result not seen lately."""
        order = self._orders.get(flag_keys) or self._sorted_order(flag_keys)
        dedup_hash = hash((order[0], variant_keys if order[1] is None else order[1](variant_keys)))
        # order[2]: the first tuple of these flag keys, shared by every result that has them
        result = Result(order[2], variant_keys, dedup_hash)
        if len(self._results) >= _RESULTS_CAPACITY:
            self._results.clear()
        self._results[(flag_keys, variant_keys)] = result
        return result

    @staticmethod
    def _outcomes(result: Result, results: Dict[str, Variant]) -> Tuple[Outcome, ...]:
        """The compiled outcomes the variants came from (``result.outcomes`` itself when the same)."""
        values = results.values()
        outcomes = tuple(map(_outcome_of, values))
        if None in outcomes:  # variants evaluation did not make: their fields are copied now
            return tuple(o if o is not None else _outcome_from(v) for o, v in zip(outcomes, values))
        known = result.outcomes
        if not known:
            result.outcomes = outcomes
        elif all(map(operator.is_, outcomes, known)):
            return known
        return outcomes

    def track(self, user: Any, results: Dict[str, Variant]) -> None:
        """Queue an assignment event for this evaluation unless one was already sent today.

        Called on the request path and written for speed: a dedup hit costs two attribute
        reads, a clock read, two tuples built in C, one dict lookup, one hash and two set
        lookups; a miss adds a tuple of outcomes and queues a tuple. No I/O, never blocks.
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
        result = self._results.get((flag_keys, variant_keys)) or self._new_result(flag_keys, variant_keys)
        # The key does not depend on the order of the results (the insert_id sorts flags too),
        # and ids are compared trimmed, as the insert_id hash sees them.
        key = hash((user_id.strip() if user_id else user_id, device_id.strip() if device_id else device_id, day,
                    result.dedup_hash)) & KEY_MASK
        seen = self._seen
        if key in seen.current or key in seen.previous or not seen.first_time(key, day):
            self.deduplicated.increment()
            return
        self.tracked.increment()
        self.sender.enqueue((self._writer, user_id, device_id, int(now * 1000), result, self._outcomes(result, results),
                             evaluated_user_fields(user) if self._send_evaluated_props else None))

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
