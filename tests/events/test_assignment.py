"""Assignment and exposure events: exact bodies, insert_ids, dedup, skips."""

from __future__ import annotations

import json
import math
import sys
from datetime import datetime, timezone
from typing import Any, Dict, List

import pytest

from amplitude_experiment import AssignmentConfig, User, Variant
from amplitude_experiment.events.assignment import AssignmentTracker, json_safe
from amplitude_experiment.events.dedup import SeenKeys
from amplitude_experiment.events.exposure import ExposureTracker
from amplitude_experiment.events.insert_id import assignment_canonical, java_string_hash
from amplitude_experiment.events.sender import pending_build, pending_json
from amplitude_experiment.exceptions import ConfigurationError
from amplitude_experiment.testing import ManualClock
from amplitude_experiment.version import LIBRARY

NOW = 1_795_592_290.745  # seconds; day stamp 20782


class FakeSender:
    def __init__(self) -> None:
        self.items: List[Any] = []

    def enqueue(self, item: Any) -> bool:
        self.items.append(item)
        return True

    def events(self) -> List[Dict[str, Any]]:
        """The queued events; the JSON the sender would post must decode to the same dicts.

        (Compared as JSON carries them: a lone surrogate goes out as a ``\\u`` escape, and two
        adjacent ones read back as the character they encode.)
        """
        built = [pending_build(item) for item in self.items]
        posted = [pending_json(item) for item in self.items]
        for _, text in posted:
            text.encode("utf-8")  # what the sender posts is valid UTF-8
        assert [json.loads(text) for _, text in posted] == [json.loads(json.dumps(event)) for event in built]
        assert [insert_id for insert_id, _ in posted] == [event["insert_id"] for event in built]
        return built


def Clock(now: float = NOW) -> ManualClock:  # noqa: N802 - reads like the class it makes
    return ManualClock(epoch=now)


def seed_results() -> Dict[str, Variant]:
    return {
        "my-flag": Variant(key="off", metadata={"default": True, "flagType": "release", "flagVersion": 3,
                                                "segmentName": "All Other Users"}),
        "my-experiment": Variant(key="treatment", value="treatment",
                                 metadata={"flagType": "experiment", "flagVersion": 7, "segmentName": "Targeted"}),
    }


def tracker(**options: Any) -> AssignmentTracker:
    """A tracker on a fake sender, at ``NOW`` unless told otherwise."""
    options.setdefault("clock", Clock())
    return AssignmentTracker(FakeSender(), cache_capacity=100, **options)  # type: ignore[arg-type]


def test_java_hash_and_canonical_string() -> None:
    canonical = assignment_canonical("u1", "d1", [("my-flag", "off"), ("my-experiment", "treatment")])
    assert canonical == "u1 d1 my-experiment treatment my-flag off "
    assert java_string_hash(canonical) == 1708274269
    assert java_string_hash("") == 0
    assert java_string_hash("a") == 97
    assert java_string_hash("hello") == 99162322  # Java: "hello".hashCode()
    assert java_string_hash("polygenelubricants") == 2**31  # Java: Integer.MIN_VALUE, unsigned
    assert assignment_canonical(None, " d1 ", [("b ", " x"), ("a", None)]) == "None d1 b x "


def test_seed_example_event_is_exact() -> None:
    t = tracker()
    t.track(User(user_id="u1", device_id="d1"), seed_results())
    (event,) = t.sender.events()  # type: ignore[attr-defined]
    assert event == {
        "event_type": "[Experiment] Assignment",
        "user_id": "u1",
        "device_id": "d1",
        "event_properties": {
            "[Experiment] my-flag.variant": "off",
            "[Experiment] my-flag.details": "v3 rule:All Other Users",
            "[Experiment] my-experiment.variant": "treatment",
            "[Experiment] my-experiment.details": "v7 rule:Targeted",
        },
        "user_properties": {"$set": {"[Experiment] my-experiment": "treatment"},
                            "$unset": {"[Experiment] my-flag": "-"}},
        "insert_id": "u1 d1 1708274269 20782",
        "library": LIBRARY,
        "time": 1795592290745,
    }


def test_mutual_exclusion_groups_set_nothing_and_details_need_version_and_segment() -> None:
    t = tracker()
    t.track(User(user_id="user-1"), {
        "mx": Variant(key="slot-1", metadata={"flagType": "mutual-exclusion-group", "flagVersion": 2,
                                              "segmentName": "s"}),
        "no-version": Variant(key="on", metadata={"segmentName": "Everyone"}),
        "no-metadata": Variant(key="on"),
        "keyless": Variant(value="x"),
    })
    (event,) = t.sender.events()  # type: ignore[attr-defined]
    assert event["event_properties"] == {
        "[Experiment] mx.variant": "slot-1",
        "[Experiment] mx.details": "v2 rule:s",
        "[Experiment] no-version.variant": "on",
        "[Experiment] no-metadata.variant": "on",
    }
    assert event["user_properties"] == {"$set": {"[Experiment] no-version": "on", "[Experiment] no-metadata": "on"},
                                        "$unset": {}}
    assert "device_id" not in event  # a missing id is left out, not sent as null
    canonical = "user-1 None mx slot-1 no-metadata on no-version on "
    assert event["insert_id"] == f"user-1 None {java_string_hash(canonical)} 20782"


def test_one_event_per_user_result_and_day() -> None:
    clock = Clock()
    t = tracker(clock=clock)
    user = User(user_id="user-1", device_id="device-1")
    t.track(user, seed_results())
    t.track(user, seed_results())
    t.track(User(user_id="user-1", device_id="device-1"), seed_results())
    other = seed_results()
    other["my-experiment"] = Variant(key="control", metadata={"flagType": "experiment"})
    t.track(user, other)  # a different result: a new event
    clock.advance(86_400)  # the next day: a new event
    t.track(user, seed_results())
    assert len(t.sender.items) == 3  # type: ignore[attr-defined]
    assert t.stats() == {"evaluated": 5, "tracked": 3, "deduplicated": 2, "skipped": {}}
    days = [e["insert_id"].split()[-1] for e in t.sender.events()]  # type: ignore[attr-defined]
    assert days == ["20782", "20782", "20783"]


def test_seen_keys_generations_and_days() -> None:
    seen = SeenKeys(capacity=4)  # two generations of two keys
    assert seen.first_time(1, day=10) and not seen.first_time(1, day=10) and seen.seen(1)
    assert seen.first_time(2, day=10)  # the first generation is full: it becomes the previous one
    assert seen.first_time(3, day=10) and not seen.first_time(1, day=10) and not seen.first_time(2, day=10)
    assert seen.first_time(4, day=10)  # {1, 2} dropped, {3, 4} previous
    assert len(seen) == 2 and not seen.seen(1) and seen.seen(3) and seen.seen(4)
    assert seen.first_time(1, day=10)
    assert not seen.first_time(3, day=9)  # a late caller of the day before changes nothing
    assert seen.first_time(3, day=11) and len(seen) == 1  # a new day: everything earlier is forgotten
    with pytest.raises(ValueError):
        SeenKeys(0)


def test_dedup_costs_at_most_150_bytes_per_entry_at_the_default_capacity() -> None:
    """Issue 12 point 3, at the fullest moment (both generations full), keys included.

    Counted with ``sys.getsizeof`` (the set tables and the int keys: all the cache holds);
    ``benchmarks/bench_dedup.py`` measures the same with tracemalloc (~100 B), too slow for here.
    """
    capacity = AssignmentConfig(api_key="k").cache_capacity
    seen = SeenKeys(capacity)
    step = 0x9E3779B97F4A7  # about 2**52: keys spread over 60 bits like real ones
    fullest = 0
    for key in range(1 << 59, (1 << 59) + step * 2 * capacity, step):
        seen.first_time(key, day=1.0)
        if len(seen) >= capacity - 1:
            fullest = max(fullest, sum(sys.getsizeof(g) + sum(map(sys.getsizeof, g))
                                       for g in (seen.current, seen.previous)))
    assert fullest > 0
    assert fullest / capacity <= 150


def test_dedup_cache_is_bounded() -> None:
    t = AssignmentTracker(FakeSender(), cache_capacity=2, clock=Clock())  # type: ignore[arg-type]
    for name in ("a", "b", "c", "a"):
        t.track(User(user_id=name * 5), seed_results())
    assert len(t.sender.items) == 4  # "a" was evicted by "c"  # type: ignore[attr-defined]


def test_skips_are_counted() -> None:
    t = tracker()
    t.track(User(user_id="user-1"), {})
    t.track(User(), seed_results())
    t.track(User(user_id="", device_id=""), seed_results())
    assert t.sender.items == []  # type: ignore[attr-defined]
    assert t.stats()["skipped"] == {"empty_result": 1, "no_user_or_device_id": 2}


def test_send_evaluated_props_copies_without_mutating_the_user() -> None:
    t = tracker(send_evaluated_props=True)
    properties = {"plan": "pro", "[Experiment] my-experiment": "stale", "$set": {"sneaky": 1}}
    user = User(user_id="user-1", device_id="device-1", country="DE", platform="iOS", version="2.1.0",
                os="iOS 17", ip_address="203.0.113.9", library="my-app/1.0", user_properties=properties,
                groups={"org": ["acme"]})
    t.track(user, seed_results())
    properties["plan"] = "changed-later"
    (event,) = t.sender.events()  # type: ignore[attr-defined]
    assert {k: v for k, v in event.items() if k not in ("event_properties", "insert_id", "time")} == {
        "event_type": "[Experiment] Assignment",
        "user_id": "user-1",
        "device_id": "device-1",
        "country": "DE",
        "platform": "iOS",
        "app_version": "2.1.0",
        "os_name": "iOS 17",
        "ip": "203.0.113.9",
        "library": LIBRARY,
        "user_properties": {
            "$set": {"[Experiment] my-experiment": "treatment"},
            "$unset": {"[Experiment] my-flag": "-"},
            "plan": "pro",
            "[Experiment] my-experiment": "stale",
        },
    }
    assert user.user_properties == {"plan": "changed-later", "[Experiment] my-experiment": "stale",
                                    "$set": {"sneaky": 1}}


def test_send_evaluated_props_without_user_properties() -> None:
    # The official SDK raises TypeError from evaluate_v2 here; we send the event.
    t = tracker(send_evaluated_props=True)
    t.track(User(user_id="user-1", device_id="device-1"), seed_results())
    (event,) = t.sender.events()  # type: ignore[attr-defined]
    assert event["user_properties"] == {"$set": {"[Experiment] my-experiment": "treatment"},
                                        "$unset": {"[Experiment] my-flag": "-"}}


def test_exposure_events_and_dedup() -> None:
    sender = FakeSender()
    clock = Clock()
    exposures = ExposureTracker(sender, cache_capacity=100, clock=clock)  # type: ignore[arg-type]
    user = User(user_id="user-1", device_id="device-1")
    results = seed_results()
    results["my-experiment"].metadata["experimentKey"] = "exp-7"  # type: ignore[index]
    exposures.track_results(user, results)
    exposures.track_results(user, results)
    exposures.track(user, "my-experiment", None, None)
    events = sender.events()
    assert [e["event_properties"] for e in events] == [
        {"flag_key": "my-experiment", "variant": "treatment", "experiment_key": "exp-7"},
        {"flag_key": "my-experiment"},
    ]
    assert events[0]["event_type"] == "$exposure"
    assert events[0]["insert_id"].startswith("user-1 device-1 ") and events[0]["insert_id"].endswith(" 20782")
    assert events[0]["insert_id"] != events[1]["insert_id"]
    assert exposures.stats() == {"tracked": 2, "deduplicated": 1, "skipped": {"default_variant": 2}}


@pytest.mark.parametrize("user_id, device_id", [("user-1", None), (None, "device-1")])
def test_exposure_insert_id_differs_from_assignment_insert_id(user_id: Any, device_id: Any) -> None:
    sender = FakeSender()
    user = User(user_id=user_id, device_id=device_id)
    AssignmentTracker(sender, 10, clock=Clock()).track(user, {"f": Variant(key="on")})  # type: ignore[arg-type]
    ExposureTracker(sender, 10, clock=Clock()).track(user, "f", "on", None)  # type: ignore[arg-type]
    first, second = sender.events()
    assert first["insert_id"] != second["insert_id"]


def test_fast_hasher_equals_the_plain_formula() -> None:
    """The flags' part of the insert_id hashed from remembered (flag, variant) parts equals the plain
    hash of the canonical string, for odd keys and ids, with the memo cleared along the way."""
    import random

    from amplitude_experiment.events.insert_id import AssignmentHasher

    rng = random.Random(7)
    hasher = AssignmentHasher(capacity=8)  # small: the memo is cleared along the way
    alphabet = "ab -_.ü日😀\ud800"
    seen: List[Any] = []
    for _ in range(500):
        if seen and rng.random() < 0.3:  # the same result again: the remembered parts
            flag_keys, variant_keys = rng.choice(seen)
        else:
            n = rng.randint(0, 15)
            flag_keys = tuple(sorted("".join(rng.choices(alphabet, k=rng.randint(0, 12))) for _ in range(n)))
            variant_keys = tuple(rng.choice([None, "".join(rng.choices(alphabet, k=rng.randint(0, 6)))])
                                 for _ in range(n))
            seen.append((flag_keys, variant_keys))
        ids = [rng.choice([None, "", " u-1 ", "日本", "user-" + "x" * rng.randint(0, 700)]) for _ in range(2)]
        flags_hash, flags_power = hasher.group_part(flag_keys, variant_keys)
        prefix = assignment_canonical(ids[0], ids[1], [])
        assert (java_string_hash(prefix) * flags_power + flags_hash) & 0xFFFFFFFF == \
            java_string_hash(assignment_canonical(ids[0], ids[1], zip(flag_keys, variant_keys)))


def test_java_string_hash_fast_path_equals_the_loop() -> None:
    import random

    def loop(text: str) -> int:
        h = 0
        for ch in text:
            h = (31 * h + ord(ch)) & 0xFFFFFFFF
        return h

    rng = random.Random(11)
    for length in [0, 1, 2, 30, 31, 32, 255, 599, 600, 601, 2500]:
        for _ in range(20):
            ascii_text = "".join(chr(rng.randint(0, 127)) for _ in range(length))
            assert java_string_hash(ascii_text) == loop(ascii_text)
            mixed = ascii_text + chr(rng.randint(128, 0x10FFFF))
            assert java_string_hash(mixed) == loop(mixed)


def test_queued_event_is_not_changed_by_later_changes_to_the_variants() -> None:
    t = tracker()
    results = seed_results()
    t.track(User(user_id="u1", device_id="d1"), results)
    results["my-experiment"].key = "control"
    results["my-experiment"].metadata["segmentName"] = "changed"  # type: ignore[index]
    results["my-flag"].metadata.clear()  # type: ignore[union-attr]
    (event,) = t.sender.events()  # type: ignore[attr-defined]
    assert event["event_properties"]["[Experiment] my-experiment.variant"] == "treatment"
    assert event["event_properties"]["[Experiment] my-experiment.details"] == "v7 rule:Targeted"
    assert event["user_properties"]["$unset"] == {"[Experiment] my-flag": "-"}


def test_json_writer_matches_build_for_odd_keys_ids_and_repeated_outcomes() -> None:
    from amplitude_experiment.evaluation import compile_flags, evaluate

    flags = compile_flags([
        {"key": 'quote"and\\back\nslash', "variants": {'v"1': {"key": 'v"1'}},
         "segments": [{"variant": 'v"1', "metadata": {"segmentName": "s\u00e9g \ud83d\ude00"}}],
         "metadata": {"flagVersion": 4, "flagType": "experiment"}},
        {"key": "日本", "variants": {"off": {"key": "off"}},
         "segments": [{"variant": "off", "metadata": {"segmentName": "All Other Users"}}],
         "metadata": {"default": True, "flagVersion": 1}},
    ])
    t = tracker()
    users = [User(user_id="ü-1", device_id=None), User(user_id=None, device_id="d\t2"),
             User(user_id=12345, device_id="d3"), User(user_id="u4", device_id="d4")]  # type: ignore[arg-type]
    for user in users + users:  # the second round reuses remembered fragments (and is deduplicated)
        t.track(user, evaluate(flags, user))
    events = t.sender.events()  # type: ignore[attr-defined]
    assert len(events) == 4
    assert events[0]["event_properties"] == {
        '[Experiment] quote"and\\back\nslash.variant': 'v"1',
        '[Experiment] quote"and\\back\nslash.details': "v4 rule:s\u00e9g \ud83d\ude00",  # lone surrogates kept
        "[Experiment] 日本.variant": "off",
        "[Experiment] 日本.details": "v1 rule:All Other Users",
    }
    assert events[0]["user_properties"] == {"$set": {'[Experiment] quote"and\\back\nslash': 'v"1'},
                                            "$unset": {"[Experiment] 日本": "-"}}
    # design.md §3: Amplitude rejects a non-text user_id as an invalid field: a number goes out as text.
    assert events[2]["user_id"] == "12345"


def test_a_queued_event_holds_the_shared_outcomes_not_the_callers_variants() -> None:
    """A backlog (an outage, a burst) must not keep every caller's Variant objects alive."""
    import gc

    from amplitude_experiment.evaluation import compile_flags, evaluate

    flags = compile_flags([{"key": f"f{n}", "variants": {"on": {"key": "on"}},
                            "segments": [{"variant": "on"}], "metadata": {"flagVersion": 1}} for n in range(3)])
    t = tracker()
    for user_id in ("u1", "u2"):
        t.track(User(user_id=user_id), evaluate(flags, User(user_id=user_id)))
    first, second = t.sender.items  # type: ignore[attr-defined]
    reachable = list(gc.get_referents(first))
    reachable += [inner for outer in reachable if isinstance(outer, tuple) for inner in outer]
    assert not any(isinstance(obj, Variant) for obj in reachable)
    # one shared tuple of the compiled outcomes (shared with the flags), not copies made per event
    assert first[4] is second[4] and first[5] is second[5] and len(first[5]) == 3
    assert all(outcome is flag.segments[0].default for outcome, flag in zip(first[5], flags.order))


def test_java_string_hash_works_under_the_lowest_int_digit_limit() -> None:
    import sys

    if not hasattr(sys, "set_int_max_str_digits"):
        pytest.skip("this Python has no int digit limit")
    text = "x" * 600
    expected = java_string_hash(text)
    old_limit = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(640)
    try:
        assert java_string_hash(text) == expected
        assert java_string_hash("y" * 5000) == java_string_hash("y" * 4999) * 31 + 121 & 0xFFFFFFFF
    finally:
        sys.set_int_max_str_digits(old_limit)


def test_dedup_key_does_not_depend_on_the_order_of_the_results() -> None:
    """Issue 10 point 4: the same result in another order is the same (user, result, day)."""
    t = tracker()
    user = User(user_id="user-1", device_id="device-1")
    forward = seed_results()
    t.track(user, forward)
    t.track(user, dict(reversed(list(forward.items()))))
    three = dict(forward, **{"a-flag": Variant(key="on")})
    t.track(user, three)  # a different result
    t.track(user, {"a-flag": three["a-flag"], "my-experiment": three["my-experiment"], "my-flag": three["my-flag"]})
    events = t.sender.events()  # type: ignore[attr-defined]
    assert len(events) == 2
    assert t.stats() == {"evaluated": 4, "tracked": 2, "deduplicated": 2, "skipped": {}}
    canonical = "user-1 device-1 my-experiment treatment my-flag off "
    assert events[0]["insert_id"] == f"user-1 device-1 {java_string_hash(canonical)} 20782"


def test_official_event_property_names_option() -> None:
    """Issue 10 point 4: ``event_property_names="official"`` sends ``<flag>.variant``/``.details``
    exactly as amplitude-experiment 1.13.0 does (see tests/events/test_reference_events.py);
    user properties keep their ``[Experiment] `` prefix either way."""
    assert AssignmentConfig(api_key="k").event_property_names == "prefixed"
    assert AssignmentConfig(api_key="k", event_property_names="official").event_property_names == "official"
    with pytest.raises(ConfigurationError, match="event_property_names must be one of 'prefixed', 'official'"):
        AssignmentConfig(api_key="k", event_property_names="legacy")
    t = tracker(event_property_names="official")
    t.track(User(user_id="u1", device_id="d1"), seed_results())
    (event,) = t.sender.events()  # type: ignore[attr-defined]
    assert event["event_properties"] == {
        "my-flag.variant": "off",
        "my-flag.details": "v3 rule:All Other Users",
        "my-experiment.variant": "treatment",
        "my-experiment.details": "v7 rule:Targeted",
    }
    assert event["user_properties"] == {"$set": {"[Experiment] my-experiment": "treatment"},
                                        "$unset": {"[Experiment] my-flag": "-"}}
    assert event["insert_id"] == "u1 d1 1708274269 20782"


def test_exposure_is_skipped_when_the_variant_says_track_exposure_false() -> None:
    """Issue 10 point 4: amplitude-experiment 1.13.0 (run as a black box) sends no exposure when the
    merged metadata has ``trackExposure`` exactly ``False``; ``0``, ``None`` or ``"false"`` are tracked."""
    sender = FakeSender()
    exposures = ExposureTracker(sender, cache_capacity=100, clock=Clock())  # type: ignore[arg-type]
    results = {
        "silent": Variant(key="on", metadata={"trackExposure": False}),
        "zero": Variant(key="on", metadata={"trackExposure": 0}),
        "null": Variant(key="on", metadata={"trackExposure": None}),
        "text": Variant(key="on", metadata={"trackExposure": "false"}),
        "loud": Variant(key="on", metadata={"trackExposure": True}),
        "off": Variant(key="off", metadata={"default": True, "trackExposure": False}),
    }
    exposures.track_results(User(user_id="user-1"), results)
    assert [e["event_properties"]["flag_key"] for e in sender.events()] == ["zero", "null", "text", "loud"]
    assert exposures.stats()["skipped"] == {"default_variant": 1, "track_exposure_false": 1}


def test_numeric_ids_and_keys_go_out_as_text() -> None:
    sender = FakeSender()
    user = User(user_id=12345, device_id=6.5)  # type: ignore[arg-type]
    AssignmentTracker(sender, 10, clock=Clock()).track(user, {"f": Variant(key="on")})  # type: ignore[arg-type]
    ExposureTracker(sender, 10, clock=Clock()).track(user, "f", 7, 8)  # type: ignore[arg-type]
    assignment, exposure = sender.events()
    assert (assignment["user_id"], assignment["device_id"]) == ("12345", "6.5")
    assert assignment["insert_id"] == f"12345 6.5 {java_string_hash('12345 6.5 f on ')} 20782"
    assert (exposure["user_id"], exposure["device_id"]) == ("12345", "6.5")
    assert exposure["event_properties"] == {"flag_key": "f", "variant": "7", "experiment_key": "8"}


def test_evaluated_properties_json_cannot_represent_are_sent_as_text() -> None:
    circular: Dict[str, Any] = {"name": "loop"}
    circular["self"] = circular
    deep: Any = "bottom"
    for _ in range(40):
        deep = [deep]
    t = tracker(send_evaluated_props=True)
    t.track(User(user_id="user-1", user_properties={
        "nan": math.nan, "inf": -math.inf, "bytes": b"\x00ab", "when": datetime(2024, 5, 1, tzinfo=timezone.utc),
        "lone": "a\ud800b", "circular": circular, "deep": deep, 3: "number key", "set": {"x"}, "ok": [1, 2.5, None],
    }), {"f": Variant(key="on")})
    (event,) = t.sender.events()  # type: ignore[attr-defined]
    properties = event["user_properties"]
    assert properties["nan"] == "nan" and properties["inf"] == "-inf"
    assert properties["bytes"] == "b'\\x00ab'"
    assert properties["when"] == "2024-05-01 00:00:00+00:00"
    assert properties["lone"] == "a\ud800b"
    assert properties["circular"] == {"name": "loop", "self": "{'name': 'loop', 'self': {...}}"}
    assert properties["3"] == "number key" and properties["set"] == ["x"] and properties["ok"] == [1, 2.5, None]
    depth = 0
    node = properties["deep"]
    while isinstance(node, list):
        node, depth = node[0], depth + 1
    assert depth == 31 and isinstance(node, str)  # 32 levels kept (the properties dict is the first)
    _, text = pending_json(t.sender.items[0])  # type: ignore[attr-defined]
    assert '"lone":"a\\ud800b"' in text  # escaped: the posted body stays valid UTF-8


def test_json_safe_keeps_plain_json_as_is() -> None:
    value = {"a": [1, "x", {"b": None, "c": True}], "d": 1.5}
    assert json_safe(value) == value and json_safe(value) is not value
    assert json_safe("text") == "text"


def test_same_variants_from_another_rule_keep_their_own_details() -> None:
    """design.md §5: ``.details`` names the rule (segment) that gave each variant. Events share the
    written text of a result only when they came from the very same compiled outcomes."""
    from amplitude_experiment.evaluation import compile_flags, evaluate

    flags = compile_flags([{
        "key": "f", "variants": {"on": {"key": "on"}},
        "segments": [
            {"conditions": [[{"selector": ["context", "user", "user_id"], "op": "is", "values": ["user-1"]}]],
             "variant": "on", "metadata": {"segmentName": "Staff"}},
            {"variant": "on", "metadata": {"segmentName": "All Other Users"}},
        ],
        "metadata": {"flagVersion": 2, "flagType": "release"},
    }])
    t = tracker()
    for user_id in ("user-2", "user-1", "user-3", "user-4"):
        user = User(user_id=user_id)
        t.track(user, evaluate(flags, user))
    events = t.sender.events()  # type: ignore[attr-defined]
    assert [e["event_properties"]["[Experiment] f.details"] for e in events] == [
        "v2 rule:All Other Users", "v2 rule:Staff", "v2 rule:All Other Users", "v2 rule:All Other Users"]
    assert all(e["user_properties"] == {"$set": {"[Experiment] f": "on"}, "$unset": {}} for e in events)
    first, staff, third, fourth = t.sender.items  # type: ignore[attr-defined]
    assert first[4] is staff[4] is third[4] is fourth[4]  # one tuple of flag keys ...
    assert staff[5] is not first[5] and staff[5] is not third[5]  # ... the outcomes of each rule ...
    assert fourth[5] is third[5]  # ... shared by consecutive events with the very same outcomes


def _four_way_flags(n: int) -> List[Dict[str, Any]]:
    """``n`` flags splitting users four ways by device_id: nearly every user gets a result of their own."""
    third = 42949673 // 4
    return [{"key": f"flag-{i:02d}", "metadata": {"flagVersion": i + 1, "flagType": "experiment"},
             "variants": {v: {"key": v} for v in ("a", "b", "c", "d")},
             "segments": [{"metadata": {"segmentName": "All Other Users"},
                           "bucket": {"selector": ["context", "user", "device_id"], "salt": f"salt-{i}",
                                      "allocations": [{"range": [0, 100], "distributions": [
                                          {"variant": v, "range": [k * third, (k + 1) * third if k < 3 else 42949673]}
                                          for k, v in enumerate(("a", "b", "c", "d"))]}]}}]}
            for i in range(n)]


def test_a_queued_event_holds_little_of_its_own() -> None:
    """Above the sustainable rate the queue is what memory holds: per event, one tuple and (when its
    result is new) the tuple of outcomes, ~230 bytes with 10 flags; its dedup entry ~70-140. The time
    is one int per millisecond, the flag keys one tuple, nothing else is made per event."""
    import gc
    import tracemalloc

    from amplitude_experiment.evaluation import compile_flags, evaluate

    flags = compile_flags(_four_way_flags(10))
    users = [User(user_id=f"user-{i:06d}", device_id=f"device-{i:06d}") for i in range(4000)]
    results = [evaluate(flags, user) for user in users]  # made before measuring: they are the caller's
    t = AssignmentTracker(FakeSender(), cache_capacity=65536, clock=Clock())  # type: ignore[arg-type]
    t.track(users[0], results[0])
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for user, result in zip(users[1:], results[1:]):
            t.track(user, result)
        gc.collect()
        per_event = (tracemalloc.get_traced_memory()[0] - before) / (len(users) - 1)
    finally:
        tracemalloc.stop()
    assert len(t.sender.items) == len(users)  # type: ignore[attr-defined]
    assert len({id(item[5]) for item in t.sender.items}) > 3000  # type: ignore[attr-defined]
    assert per_event < 400  # each event here has a result of its own; ~580 bytes with a Result object each


def test_event_properties_are_written_in_sorted_flag_order() -> None:
    """The order the insert_id hashes flags in, and the official SDK writes its properties in (see the
    fixture's ``many`` cases): not the evaluation order."""
    from amplitude_experiment.evaluation import compile_flags, evaluate

    keys = ["zeta", "alpha", "Beta", "mid", "_private", "10-flag"]
    flags = compile_flags([{"key": k, "variants": {"on": {"key": "on"}}, "segments": [{"variant": "on"}],
                            "metadata": {"flagVersion": 1, "segmentName": "All"}} for k in keys])
    t = tracker()
    user = User(user_id="user-1", device_id="device-1")
    assert list(evaluate(flags, user)) == keys
    t.track(user, evaluate(flags, user))
    (item,) = t.sender.items  # type: ignore[attr-defined]
    event = json.loads(pending_json(item)[1])
    assert [name[len("[Experiment] "):-len(".variant")] for name in event["event_properties"]
            if name.endswith(".variant")] == sorted(keys)
    assert list(event["user_properties"]["$set"]) == [f"[Experiment] {k}" for k in sorted(keys)]
    assert list(pending_build(item)["event_properties"]) == list(event["event_properties"])


def test_written_json_equals_the_event_for_random_results() -> None:
    """The writer joins remembered groups of flags; whatever the mix of flags, orders, repeated and new
    outcomes, keyless variants and outcomes shared by two flags, the JSON posted is the event and
    the insert_id the plain formula's."""
    import random

    from amplitude_experiment.evaluation import compile_flags, evaluate
    from amplitude_experiment.events.insert_id import assignment_insert_id

    rng = random.Random(5)
    raw = _four_way_flags(9) + [
        {"key": "mx", "metadata": {"flagType": "mutual-exclusion-group", "flagVersion": 3},
         "variants": {"slot": {"key": "slot"}}, "segments": [{"variant": "slot", "metadata": {"segmentName": "s"}}]},
        {"key": "off-flag", "metadata": {"default": True}, "variants": {"off": {"key": "off"}},
         "segments": [{"variant": "off"}]},
    ]
    flags = compile_flags(raw)
    t = tracker()
    expected_ids = []
    for i in range(300):
        user = User(user_id=f"user-{i % 120}", device_id=rng.choice([None, f"device-{i}"]))
        keys = rng.sample([f["key"] for f in raw], rng.randint(1, len(raw)))
        results = evaluate(flags, user, keys)
        if rng.random() < 0.2:  # a variant evaluation did not make, and one flag's outcome under two keys
            results["hand-made"] = Variant(key=rng.choice(["x", None]), metadata={"flagVersion": 9})
        if rng.random() < 0.2 and len(results) > 1:
            first, second = list(results)[:2]
            results[second] = results[first]
        results = dict(rng.sample(list(results.items()), len(results)))  # any order
        before = len(t.sender.items)  # type: ignore[attr-defined]
        t.track(user, results)
        if len(t.sender.items) > before:  # type: ignore[attr-defined]
            pairs = [(k, v.key) for k, v in results.items()]
            expected_ids.append(assignment_insert_id(user.user_id, user.device_id, pairs, int(NOW * 1000)))
    events = t.sender.events()  # type: ignore[attr-defined]  # checks the JSON against build() too
    assert len(events) > 150
    assert [e["insert_id"] for e in events] == expected_ids
