"""Assignment events: one ``[Experiment] Assignment`` per user, per unique result, per day.

The request thread does only the cheap part: a dedup check on a 60-bit key built from C-level
tuple operations, then (on a miss) it queues one small tuple holding references to what the
event needs: the user's ids, the time, and the compiled outcomes evaluation returned (shared
with the flag snapshot). The event's JSON and its insert_id are written on the sender thread.

What a queued event costs matters when events are made faster than they can be sent (a burst,
an outage): see :data:`QueuedAssignment`.

The rules of the event (design.md §5) are written once, in :func:`flag_entries`; the JSON
writer and the dict builder both use it.
"""

from __future__ import annotations

import itertools
import json
import math
import operator
import time
from json.encoder import encode_basestring
from typing import Any, Callable, Dict, List, Optional, Tuple

from .._clock import SYSTEM_CLOCK, Clock
from ..evaluation import Outcome
from ..variant import Variant, outcome_of
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
# An outcome's variant key (``Outcome.key``, its first field).
_outcome_key = operator.itemgetter(0)
_is = operator.is_
_first = operator.itemgetter(0)
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
# Distinct results whose outcomes tuple queued events share (see AssignmentTracker.track).
_SHARED_CAPACITY = 1024

#: (hash of the flag keys sorted, getter putting variant keys in that order or None when they
#: already are, the flag keys as first seen: one tuple shared by every event with these keys)
_Order = Tuple[int, Optional[Callable[[Any], Any]], Tuple[str, ...]]
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


#: A queued assignment: ``(writer, user_id, device_id, time in epoch ms, flag keys, outcomes, user
#: fields or None)``. A plain tuple (~4x cheaper to make than an object); the sender asks ``item[0]``
#: to write it. Everything in it but the tuple itself is shared or was made anyway: the ids are the
#: caller's strings, the time is one int per millisecond, the flag keys one tuple per flag order,
#: and ``outcomes`` (one per flag, shared with the flag snapshot) one tuple per distinct result
#: seen lately. So an event in the queue holds ~100 bytes of its own, plus its ids and, when its
#: result is new, its outcomes tuple (8 bytes a flag); measured in ``tests/events/test_assignment.py``.
QueuedAssignment = Tuple["EventWriter", Optional[str], Optional[str], int, Tuple[str, ...], Tuple[Outcome, ...],
                         Optional[Dict[str, Any]]]
#: What one flag outcome adds to an event, as JSON text: ``(outcome, flag key, event properties,
#: $set entry, $unset entry)``; each text ends with a comma, or is empty when there is none.
_Fragment = Tuple[Any, str, str, str, str]
#: A few flags of a result, written: ``(their outcomes, their flag keys, hash, power, event
#: properties, $set entries, $unset entries)``; see :class:`EventWriter`.
_Group = Tuple[Tuple[Outcome, ...], Tuple[str, ...], int, int, str, str, str]
#: How results with given flag keys are written: ``(the flag keys, a getter putting outcomes in
#: sorted flag order or None when they are, the slices of the sorted flags written together,
#: those flag keys)``.
_Layout = Tuple[Tuple[str, ...], Optional[Callable[[Any], Any]], Tuple[slice, ...], Tuple[Tuple[str, ...], ...]]
# Flags written together. Combinations of a few flags' outcomes repeat across users even when
# whole results do not: on benchmarks/deployment.py's realistic flags, 99% of groups of 3 are
# found in memory, 80% of groups of 4.
_GROUP_SIZE = 3
# Groups remembered (~1 KB each with their texts; the realistic 40-flag deployment uses ~2,300).
_GROUPS_CAPACITY = 4096
# Results of at most _GROUP_SIZE flags remembered whole.
_RESULTS_CAPACITY = 1024


class EventWriter:
    """Writes queued assignments as JSON text, a few flags at a time.

    Flags are written in sorted key order, the order the insert_id hashes them in (and the
    official SDK writes its properties in), in groups of three: the JSON of each group of
    outcomes, and its part of the insert_id hash, are remembered, so an event costs C-level
    ``map``, ``zip`` and ``join`` over its groups and a Python step per group (not per flag);
    each (flag, outcome) is written once. The memos hold the objects they describe, so an
    ``id()`` key always refers to the same live object; a group records its flag keys,
    checked against the event's.

    The sending threads share it: its memos are dicts whose entries are only ever correct (a
    race at worst writes something twice, or forgets it early).

    Args:
        capacity: how many (flag, outcome) fragments are remembered.
        prefix: the start of each event property name (``"[Experiment] "`` or ``""``).
    """

    def __init__(self, capacity: int = 16384, prefix: str = "[Experiment] ") -> None:
        self.hasher = AssignmentHasher()
        self.prefix = prefix
        # id(outcome) -> fragment
        self._fragments: Dict[int, _Fragment] = {}
        self._capacity = capacity
        # id(flag keys) -> layout (holding the flag keys)
        self._layouts: Dict[int, _Layout] = {}
        # ids of a group's outcomes -> the group (holding them)
        self._groups: Dict[Tuple[int, ...], _Group] = {}
        # id(outcomes) -> (outcomes, flag keys, written): the last results of a few flags written
        # (events with the same result share one outcomes tuple, see AssignmentTracker.track)
        self._results: Dict[int, Tuple[Tuple[Outcome, ...], Tuple[str, ...], Tuple[str, int, int]]] = {}

    def _fragment(self, flag_key: str, outcome: Outcome) -> _Fragment:
        found = self._fragments.get(id(outcome))
        if found is not None and found[1] == flag_key:
            return found
        variant_key = outcome.key
        if variant_key is None:
            found = (outcome, flag_key, "", "", "")
        else:
            properties, set_entry, unset_entry = flag_entries(flag_key, variant_key, outcome.metadata, self.prefix)
            found = (outcome, flag_key,
                     "".join(f"{_json(name)}:{_json(value)}," for name, value in properties),
                     "" if set_entry is None else f"{_json(set_entry[0])}:{_json(set_entry[1])},",
                     "" if unset_entry is None else f"{_json(unset_entry[0])}:{_json(unset_entry[1])},")
        if len(self._fragments) >= self._capacity:
            self._fragments.clear()
        self._fragments[id(outcome)] = found
        return found

    def _layout(self, flag_keys: Tuple[str, ...]) -> _Layout:
        positions = sorted(range(len(flag_keys)), key=flag_keys.__getitem__)
        # (one key is always in order: an itemgetter of several positions is what returns a tuple)
        in_order = None if positions == list(range(len(flag_keys))) else operator.itemgetter(*positions)
        ordered = tuple(flag_keys[i] for i in positions)
        slices = tuple(slice(start, start + _GROUP_SIZE) for start in range(0, len(ordered), _GROUP_SIZE))
        layout = (flag_keys, in_order, slices, tuple(ordered[part] for part in slices))
        if len(self._layouts) >= _ORDERS_CAPACITY:
            self._layouts.clear()
        self._layouts[id(flag_keys)] = layout
        return layout

    def _group(self, key: Tuple[int, ...], flag_keys: Tuple[str, ...], outcomes: Tuple[Outcome, ...]) -> _Group:
        """Write a group of flags (in sorted order) and remember it by its outcomes' ids."""
        _, _, properties, sets, unsets = zip(*map(self._fragment, flag_keys, outcomes))
        h, power = self.hasher.group_part(flag_keys, tuple(map(_outcome_key, outcomes)))
        group = (outcomes, flag_keys, h, power, "".join(properties), "".join(sets), "".join(unsets))
        groups = self._groups
        if len(groups) >= _GROUPS_CAPACITY:
            # The older half goes (dicts keep insertion order): forgetting all at once would make
            # every event after it write all its groups again.
            for old in list(itertools.islice(groups, _GROUPS_CAPACITY // 2)):
                groups.pop(old, None)
        groups[key] = group
        return group

    def _written(self, flag_keys: Tuple[str, ...], outcomes: Tuple[Outcome, ...]) -> Tuple[str, int, int]:
        """``"event_properties":{...},"user_properties":{...}`` of an event, and the (hash, power)
        of its flags' part of the insert_id."""
        if len(flag_keys) > _GROUP_SIZE:  # such results seldom repeat: remembering them costs more
            return self._write(flag_keys, outcomes)
        found = self._results.get(id(outcomes))
        if found is not None and found[0] is outcomes and found[1] is flag_keys:
            return found[2]
        written = self._write(flag_keys, outcomes)
        if len(self._results) >= _RESULTS_CAPACITY:
            self._results.clear()
        self._results[id(outcomes)] = (outcomes, flag_keys, written)
        return written

    def _write(self, flag_keys: Tuple[str, ...], outcomes: Tuple[Outcome, ...]) -> Tuple[str, int, int]:
        """:meth:`_written` for a result not written lately."""
        layout = self._layouts.get(id(flag_keys))
        if layout is None or layout[0] is not flag_keys:
            layout = self._layout(flag_keys)
        _, in_order, slices, group_keys = layout
        if in_order is not None:
            outcomes = in_order(outcomes)
        ids = tuple(map(id, outcomes))
        keys = list(map(ids.__getitem__, slices))
        groups = list(map(self._groups.get, keys))
        try:
            # columns: outcomes, flag keys, hashes, powers, event properties, $set entries, $unset entries
            _, found_keys, hashes, powers, properties, sets, unsets = zip(*groups)
        except TypeError:  # groups not written lately (a None among them)
            groups = [group or self._group(key, flag_group, outcomes[part])
                      for group, key, flag_group, part in zip(groups, keys, group_keys, slices)]
            _, found_keys, hashes, powers, properties, sets, unsets = zip(*groups)
        if found_keys != group_keys:  # outcomes shared by two flags: write this event's own groups
            groups = [self._group(key, flag_group, outcomes[part])
                      for key, flag_group, part in zip(keys, group_keys, slices)]
            _, found_keys, hashes, powers, properties, sets, unsets = zip(*groups)
        h = 0
        for part_hash, part_power in zip(hashes, powers):
            h = (h * part_power + part_hash) & _MASK32
        power = 1
        for part_power in powers:
            power = (power * part_power) & _MASK32
        # Each fragment ends with a comma: joined, the last one goes.
        return (f'"event_properties":{{{"".join(properties)[:-1]}}},'
                f'"user_properties":{{"$set":{{{"".join(sets)[:-1]}}},"$unset":{{{"".join(unsets)[:-1]}}}}}',
                h, power)

    def insert_id(self, item: QueuedAssignment) -> str:
        """The insert_id of a queued assignment (design.md §5)."""
        user_id, device_id, time_millis, flag_keys, outcomes = item[1], item[2], item[3], item[4], item[5]
        _, flags_hash, flags_power = self._written(flag_keys, outcomes)
        ids = f"{user_id.strip() if user_id else 'None'} {device_id.strip() if device_id else 'None'} "
        h = (java_string_hash(ids) * flags_power + flags_hash) & _MASK32
        return f"{user_id} {device_id} {h} {time_millis // DAY_MILLIS}"

    def ready(self, item: QueuedAssignment) -> Tuple[str, bytes]:
        """(insert_id, the event as JSON in UTF-8): what the sender posts."""
        _, user_id, device_id, time_millis, flag_keys, outcomes, fields = item
        properties, flags_hash, flags_power = self._written(flag_keys, outcomes)
        # The insert_id (design.md §5), as in :meth:`insert_id`, inlined: this runs once per event.
        h = java_string_hash(f"{user_id.strip() if user_id else 'None'} {device_id.strip() if device_id else 'None'} ")
        insert_id = f"{user_id} {device_id} {(h * flags_power + flags_hash) & _MASK32} {time_millis // DAY_MILLIS}"
        if fields is not None:
            return insert_id, _valid_utf8(encode_event(self.event(item, insert_id))).encode()
        if user_id is not None and device_id is not None:
            ids = f',"user_id":{encode_basestring(user_id)},"device_id":{encode_basestring(device_id)}'
        elif user_id is not None:
            ids = f',"user_id":{encode_basestring(user_id)}'
        else:  # a missing id is left out, not sent as null
            ids = "" if device_id is None else f',"device_id":{encode_basestring(device_id)}'
        text = (f'{{"event_type":"{ASSIGNMENT_EVENT_TYPE}"{ids},{properties},"insert_id":'
                f'{encode_basestring(insert_id)},"library":{_LIBRARY_JSON},"time":{time_millis:d}}}')
        return insert_id, text.encode() if text.isascii() else _valid_utf8(text).encode()

    def to_json(self, item: QueuedAssignment) -> Tuple[str, str]:
        """(insert_id, the event as JSON text); decodes to exactly ``build(item)``."""
        insert_id, data = self.ready(item)
        return insert_id, data.decode()

    def build(self, item: QueuedAssignment) -> Dict[str, Any]:
        """The event as sent to Amplitude (design.md §5)."""
        return self.event(item, self.insert_id(item))

    def event(self, item: QueuedAssignment, insert_id: str) -> Dict[str, Any]:
        """The event dict, with its insert_id already computed."""
        _, user_id, device_id, time_millis, flag_keys, outcomes, user_fields = item
        event_properties: Dict[str, Any] = {}
        set_properties: Dict[str, Any] = {}
        unset_properties: Dict[str, Any] = {}
        prefix = self.prefix
        for flag_key, outcome in sorted(zip(flag_keys, outcomes), key=_first):  # in the order written
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
        # flag keys in result order -> (hash of the keys sorted, a getter putting variant keys in that
        # order, the first tuple of these keys)
        self._orders: Dict[Tuple[str, ...], _Order] = {}
        # result hash -> (flag keys, outcomes) of the latest event queued with that result
        self._shared: Dict[int, Tuple[Tuple[str, ...], Tuple[Outcome, ...]]] = {}
        # the time of the latest event: events of the same millisecond share one int
        self._last_millis = 0
        self.__init_counters()

    def __init_counters(self) -> None:
        self.tracked = Counter()
        self.deduplicated = Counter()
        self.skipped = ReasonCounters()

    def _sorted_order(self, flag_keys: Tuple[str, ...]) -> _Order:
        """How to hash a result with these flag keys regardless of their order (the hash of the
        keys sorted, and a getter putting variant keys alike, None when they already are), and
        ``flag_keys`` itself (kept, so events with these keys share one tuple)."""
        positions = sorted(range(len(flag_keys)), key=flag_keys.__getitem__)
        if positions == list(range(len(flag_keys))):
            order: _Order = (hash(flag_keys), None, flag_keys)
        else:
            order = (hash(tuple(flag_keys[i] for i in positions)), operator.itemgetter(*positions), flag_keys)
        if len(self._orders) >= _ORDERS_CAPACITY:
            self._orders.clear()
        self._orders[flag_keys] = order
        return order

    def _shared_outcomes(self, flag_keys: Tuple[str, ...], outcomes: Tuple[Outcome, ...],
                         result_hash: int) -> Tuple[Outcome, ...]:
        """``outcomes``, or the equal tuple an earlier event with the same result holds (the very
        same objects): one tuple less in the queue, and the sender writes the result once."""
        shared = self._shared.get(result_hash)
        if shared is not None and shared[0] is flag_keys and all(map(_is, shared[1], outcomes)):
            return shared[1]
        if len(self._shared) >= _SHARED_CAPACITY:
            self._shared.clear()
        self._shared[result_hash] = (flag_keys, outcomes)
        return outcomes

    def track(self, user: Any, results: Dict[str, Variant]) -> None:
        """Queue an assignment event for this evaluation unless one was already sent today.

        Called on the request path and written for speed: a dedup hit costs two attribute
        reads, a clock read, three tuples built in C, one dict lookup, two hashes and two set
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
        keys = tuple(results)
        variant_keys = tuple(map(_variant_key, results.values()))
        sorted_hash, in_order, flag_keys = self._orders.get(keys) or self._sorted_order(keys)
        # The key does not depend on the order of the results (the insert_id sorts flags too),
        # and ids are compared trimmed, as the insert_id hash sees them.
        result_hash = hash((sorted_hash, variant_keys if in_order is None else in_order(variant_keys)))
        key = hash((user_id.strip() if user_id else user_id, device_id.strip() if device_id else device_id, day,
                    result_hash)) & KEY_MASK
        seen = self._seen
        if key in seen.current or key in seen.previous or not seen.first_time(key, day):
            self.deduplicated.increment()
            return
        self.tracked.increment()
        millis = int(now * 1000)
        last = self._last_millis
        if millis == last:
            millis = last
        else:
            self._last_millis = millis
        # The compiled outcomes the variants came from: the event is written from them later,
        # not from the caller's variants (which the caller may change meanwhile).
        outcomes = tuple(map(outcome_of, results.values()))
        if all(outcomes):  # an outcome is a non-empty tuple: only a missing one (None) is false
            outcomes = self._shared_outcomes(flag_keys, outcomes, result_hash)
        else:  # variants evaluation did not make: their fields are copied now
            outcomes = tuple(o if o is not None else _outcome_from(v) for o, v in zip(outcomes, results.values()))
        self.sender.enqueue((self._writer, user_id, device_id, millis, flag_keys, outcomes,
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
