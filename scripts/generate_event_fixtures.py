#!/usr/bin/env python3
"""Capture the official SDK's ``[Experiment] Assignment`` events as test fixtures.

Usage (from the repository root, with our normal python3)::

    python3 scripts/generate_event_fixtures.py --reference-python /work/refvenv/bin/python
    python3 scripts/generate_event_fixtures.py --output tests/events/fixtures/assignment_events.json

``--reference-python`` is the interpreter of a separate virtualenv that has
``amplitude-experiment==1.13.0`` installed; ``scripts/reference_events_oracle.py`` runs
inside it, serves each case's flags from a local HTTP server, evaluates with a fresh
``LocalEvaluationClient`` configured with ``AssignmentConfig(api_key="a-key",
server_url=<local>/2/httpapi, flush_queue_size=1, send_evaluated_props=...)`` and records
every event POSTed until ``stop()`` has flushed.

Each fixture case holds ``name``, ``description``, ``send_evaluated_props``, ``flags``,
``calls`` (``method`` ``evaluate_v2`` or the deprecated ``evaluate``, ``user`` as ``User``
keyword arguments, ``flag_keys``, and the ``result`` the reference returned), ``events``
(exact event dicts, sorted by ``time`` then ``insert_id``: with ``flush_queue_size=1`` they
arrive in separate requests whose order is not meaningful, so compare them as a multiset)
and ``requests`` (each request body without its events). When the reference raised (it does
for ``send_evaluated_props=True`` and a user without ``user_properties``), the case has
``reference_error`` instead of call results, and no events. ``time`` and the day stamp at the
end of ``insert_id`` come from the clock when the fixture was made; everything else is
deterministic. Only the standard library is used.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

REPO = Path(__file__).resolve().parent.parent
ORACLE = REPO / "scripts" / "reference_events_oracle.py"
DEFAULT_OUTPUT = REPO / "tests" / "events" / "fixtures" / "assignment_events.json"
DEFAULT_REFERENCE_PYTHON = "/work/refvenv/bin/python"
REFERENCE = "amplitude-experiment==1.13.0"
DAY_MILLIS = 86_400_000

Flag = Dict[str, Any]


# --------------------------------------------------------------------------------------------
# Flags.


def off_variant() -> Dict[str, Any]:
    return {"key": "off", "metadata": {"default": True}}


def flag(key: str, variant: Optional[str], *, flag_type: Optional[str] = "release",
         version: Optional[int] = 1, segment_name: Optional[str] = "All Other Users",
         variants: Optional[Dict[str, Any]] = None, extra_metadata: Optional[Dict[str, Any]] = None,
         **fields: Any) -> Flag:
    """A flag whose only segment serves ``variant`` (``None``: no segment, so no result)."""
    metadata: Dict[str, Any] = {"deployed": True, "evaluationMode": "local"}
    if flag_type is not None:
        metadata["flagType"] = flag_type
    if version is not None:
        metadata["flagVersion"] = version
    metadata.update(extra_metadata or {})
    if variants is None:
        variants = {"off": off_variant()}
        if variant not in (None, "off"):
            variants[variant] = {"key": variant, "value": variant}
    segment: Dict[str, Any] = {"variant": variant}
    if segment_name is not None:
        segment["metadata"] = {"segmentName": segment_name}
    result = {"key": key, "metadata": metadata, "variants": variants,
              "segments": [segment] if variant else []}
    result.update(fields)
    return result


MY_FLAG = flag("my-flag", "off", flag_type="release", version=1)
MY_EXPERIMENT = flag(
    "my-experiment", "treatment", flag_type="experiment", version=12,
    extra_metadata={"experimentKey": "exp-1"},
    variants={"off": off_variant(), "control": {"key": "control", "value": "control"},
              "treatment": {"key": "treatment", "value": "treatment", "payload": {"discount": 10}}},
)
EXAMPLE = [MY_FLAG, MY_EXPERIMENT]

# Twelve flags whose keys sort differently by code point, by case and by number.
MANY = [
    flag("zeta", "on", version=3),
    flag("alpha", "off", version=7),
    flag("Beta", "treatment", flag_type="experiment", version=2, extra_metadata={"experimentKey": "exp-b"}),
    flag("_private", "on", version=None),
    flag("10-flag", "on", segment_name=None),
    flag("2-flag", "control", flag_type="experiment", version=5),
    flag("ä-flag", "on", version=9, segment_name="Umlaut users"),
    flag("a-flag", "off", version=4),
    flag("A-flag", "on", version=4),
    flag("flag.dot", "variant-b", flag_type="experiment", version=21, segment_name="Segment 1"),
    flag("flag-with-dash", "on", version=1),
    flag("flag_with_underscore", "on", version=100),
    flag("no-match", None),
]

UNICODE_KEYS = [
    flag("ünï-flag", "on", version=2),
    flag("日本-flag", "treatment", flag_type="experiment", version=3, segment_name="日本のユーザー"),
    flag("🚀-rocket", "on", version=4, segment_name="🚀 launch"),
    flag("emoji-😀-inside", "off", version=5),
    flag("Ωmega", "on", version=6),
]

TYPES = [
    flag("mutex-group", "slot-1", flag_type="mutual-exclusion-group", version=8, segment_name="Allocated"),
    flag("holdout", "holdout", flag_type="holdout-group", version=3, segment_name="Holdout"),
    flag("holdout-out", "off", flag_type="holdout-group", version=3),
    flag("experiment-in-mutex", "treatment", flag_type="experiment", version=4,
         extra_metadata={"experimentKey": "exp-mx"}),
    flag("release-flag", "on", flag_type="release", version=10),
    flag("untyped-flag", "on", flag_type=None, version=2),
    flag("not-deployed", "on", version=1, extra_metadata={"deployed": False}),
]

DETAILS = [
    flag("both", "on", version=3, segment_name="Rule A"),
    flag("no-version", "on", version=None, segment_name="Rule B"),
    flag("no-segment-name", "on", version=4, segment_name=None),
    flag("neither", "on", version=None, segment_name=None),
    flag("default-no-details", "off", version=None, segment_name=None),
    {"key": "no-metadata", "variants": {"on": {"key": "on", "value": "on"}}, "segments": [{"variant": "on"}]},
]

DEFAULTS = [
    flag("default-off", "off", version=2),
    flag("default-with-value", None, version=2),  # segment filled in below
    flag("off-not-default", None, version=2),
    flag("served-on", "on", version=2),
]
DEFAULTS[1]["variants"] = {"off": {"key": "off", "value": "off", "metadata": {"default": True}}}
DEFAULTS[1]["segments"] = [{"variant": "off", "metadata": {"segmentName": "All Other Users"}}]
DEFAULTS[2]["variants"] = {"off": {"key": "off", "value": "off"}}
DEFAULTS[2]["segments"] = [{"variant": "off", "metadata": {"segmentName": "All Other Users"}}]

ODD_VARIANTS = [
    {"key": "variant-without-key", "metadata": {"flagType": "release", "flagVersion": 1},
     "variants": {"a": {"value": "a-value"}},
     "segments": [{"variant": "a", "metadata": {"segmentName": "S"}}]},
    {"key": "variant-key-differs", "metadata": {"flagType": "release", "flagVersion": 1},
     "variants": {"a": {"key": "b", "value": "b-value"}}, "segments": [{"variant": "a"}]},
    {"key": "variant-without-value", "metadata": {"flagType": "experiment", "flagVersion": 2},
     "variants": {"t": {"key": "t"}}, "segments": [{"variant": "t"}]},
    flag("ordinary", "on", version=1),
]

DEPENDENCIES = [
    flag("child", None, version=2, dependencies=["parent"]),
    flag("parent", "on", version=1),
    flag("unrelated", "on", version=3),
]
DEPENDENCIES[0]["variants"]["on"] = {"key": "on", "value": "on"}
DEPENDENCIES[0]["segments"] = [
    {"conditions": [[{"selector": ["result", "parent", "key"], "op": "is", "values": ["on"]}]],
     "variant": "on", "metadata": {"segmentName": "Parent on"}},
    {"variant": "off"},
]

TARGETED = [
    {"key": "targeted", "metadata": {"flagType": "experiment", "flagVersion": 6, "deployed": True},
     "variants": {"off": off_variant(), "treatment": {"key": "treatment", "value": "treatment"}},
     "segments": [
         {"conditions": [[{"selector": ["context", "user", "user_properties", "plan"], "op": "is",
                           "values": ["premium"]}]],
          "variant": "treatment", "metadata": {"segmentName": "Premium"}},
         {"variant": "off", "metadata": {"segmentName": "All Other Users"}},
     ]},
    flag("everyone", "on", version=1),
]

FLAG_SETS: Dict[str, List[Flag]] = {
    "example": EXAMPLE, "many": MANY, "unicode-keys": UNICODE_KEYS, "types": TYPES, "details": DETAILS,
}

# --------------------------------------------------------------------------------------------
# Users.

USERS: Dict[str, Dict[str, Any]] = {
    "user-id-only": {"user_id": "user-1"},
    "device-id-only": {"device_id": "device-1"},
    "both-ids": {"user_id": "user-1", "device_id": "device-1"},
    "whitespace-ids": {"user_id": "  user-1 ", "device_id": "\tdevice-1  "},
    "unicode-ids": {"user_id": "ünï", "device_id": "日本"},
    "emoji-ids": {"user_id": "😀 emoji-user", "device_id": "device-🚀"},
    "no-ids": {"country": "United States"},
}

FULL_USER: Dict[str, Any] = {
    "user_id": "props-user", "device_id": "props-device", "country": "United States", "city": "San Francisco",
    "region": "California", "dma": "San Francisco-Oakland-San Jose, CA", "language": "English",
    "platform": "iOS", "version": "1.2.3", "os": "ios 17.1", "device_manufacturer": "Apple",
    "device_brand": "apple", "device_model": "iPhone15,2", "carrier": "Verizon",
    "library": "experiment-python-server/1.13.0", "ip_address": "192.168.1.10",
    "user_properties": {"plan": "premium", "age": 33, "score": 9.5, "tags": ["a", "b"], "unicode": "ünï"},
}


def call(user: Dict[str, Any], method: str = "evaluate_v2",
         flag_keys: Optional[List[str]] = None) -> Dict[str, Any]:
    return {"method": method, "user": copy.deepcopy(user), "flag_keys": flag_keys}


def case(name: str, description: str, flags: Sequence[Flag], calls: List[Dict[str, Any]],
         send_evaluated_props: bool = False) -> Dict[str, Any]:
    return {"name": name, "description": description, "send_evaluated_props": send_evaluated_props,
            "flags": copy.deepcopy(list(flags)), "calls": calls}


def build_cases() -> List[Dict[str, Any]]:
    """Every case, in a fixed order."""
    cases: List[Dict[str, Any]] = []
    # Every flag set with every kind of user, through evaluate_v2; the deprecated evaluate for some.
    for set_name, flags in FLAG_SETS.items():
        for user_name, user in USERS.items():
            description = f"evaluate_v2, all flags of '{set_name}', {user_name}"
            cases.append(case(f"{set_name}/{user_name}", description, flags, [call(user)]))
        for user_name in ("both-ids", "device-id-only", "emoji-ids"):
            cases.append(case(f"{set_name}/{user_name}/deprecated-evaluate",
                              f"deprecated evaluate(), all flags of '{set_name}', {user_name}",
                              flags, [call(USERS[user_name], "evaluate")]))
    for set_name, flags in (("defaults", DEFAULTS), ("odd-variants", ODD_VARIANTS)):
        for user_name in ("both-ids", "user-id-only"):
            cases.append(case(f"{set_name}/{user_name}", f"evaluate_v2, '{set_name}', {user_name}", flags,
                              [call(USERS[user_name])]))
        cases.append(case(f"{set_name}/both-ids/deprecated-evaluate", f"deprecated evaluate(), '{set_name}'",
                          flags, [call(USERS["both-ids"], "evaluate")]))

    # More id shapes on the two-flag example (the insert_id hash covers ids and results).
    for i, (uid, did) in enumerate([
        ("user@example.com", None), (None, "4c1e9a2b-5f0d-4c49-9d55-1d0b8e3f7a61"), ("123", "456"),
        ("a" * 200, "b" * 5), ("quote\"and\\backslash", "tab\there"), ("ß", "ǅ"),
        ("𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "\U0010fffd"),
        ("None", "null"), (" ", "x"),
    ]):
        user = {k: v for k, v in (("user_id", uid), ("device_id", did)) if v is not None}
        cases.append(case(f"ids/{i}", f"ids {user!r}", EXAMPLE, [call(user)]))

    # flag_keys subsets.
    both = USERS["both-ids"]
    cases += [
        case("flag-keys/one", "evaluate_v2 with one flag key", EXAMPLE,
             [call(both, flag_keys=["my-experiment"])]),
        case("flag-keys/default-only", "only the default-variant flag", EXAMPLE,
             [call(both, flag_keys=["my-flag"])]),
        case("flag-keys/empty", "empty flag_keys", EXAMPLE, [call(both, flag_keys=[])]),
        case("flag-keys/unknown", "unknown flag key", EXAMPLE, [call(both, flag_keys=["does-not-exist"])]),
        case("flag-keys/mixed", "known and unknown keys", MANY,
             [call(both, flag_keys=["zeta", "Beta", "nope", "no-match"])]),
        case("flag-keys/deprecated", "deprecated evaluate() with flag keys", MANY,
             [call(both, "evaluate", ["alpha", "a-flag", "A-flag"])]),
        case("flag-keys/dependency", "a dependent flag only: its dependency is evaluated too", DEPENDENCIES,
             [call(both, flag_keys=["child"])]),
        case("dependencies/all", "dependencies, all flags", DEPENDENCIES, [call(both)]),
    ]

    # send_evaluated_props.
    cases += [
        case("evaluated-props/full-user",
             "send_evaluated_props with every predefined field and user properties", TARGETED,
             [call(FULL_USER)], send_evaluated_props=True),
        case("evaluated-props/ids-only", "send_evaluated_props with ids only", EXAMPLE, [call(both)],
             send_evaluated_props=True),
        case("evaluated-props/no-props", "send_evaluated_props, fields but no user_properties", EXAMPLE,
             [call({"user_id": "u-2", "country": "Germany", "platform": "Android", "version": "10.0.0"})],
             send_evaluated_props=True),
        case("evaluated-props/groups", "send_evaluated_props with groups and group properties", EXAMPLE,
             [call({"user_id": "u-3", "device_id": "d-3", "groups": {"org": ["acme"]},
                    "group_properties": {"org": {"acme": {"tier": "gold"}}},
                    "user_properties": {"plan": "free"}, "cohort_ids": ["c-1"]})],
             send_evaluated_props=True),
        case("evaluated-props/many-flags", "send_evaluated_props with many flags", MANY, [call(FULL_USER)],
             send_evaluated_props=True),
        case("evaluated-props/deprecated", "send_evaluated_props, deprecated evaluate()", TARGETED,
             [call(FULL_USER, "evaluate")], send_evaluated_props=True),
        case("evaluated-props/off", "send_evaluated_props False with the full user", TARGETED,
             [call(FULL_USER)]),
        case("evaluated-props/device-only", "send_evaluated_props, device id only, unicode property",
             UNICODE_KEYS, [call({"device_id": "d-4", "user_properties": {"ünï": "日本", "n": 1.5}})],
             send_evaluated_props=True),
    ]

    # Several calls on one client: deduplication per user, result and day.
    free = dict(FULL_USER, user_properties={"plan": "free"})
    cases += [
        case("dedup/same-twice", "the same user twice: one event", EXAMPLE, [call(both), call(both)]),
        case("dedup/v2-then-deprecated", "evaluate_v2 then evaluate() for the same user", EXAMPLE,
             [call(both), call(both, "evaluate")]),
        case("dedup/two-users", "two users: two events", EXAMPLE, [call(both), call(USERS["user-id-only"])]),
        case("dedup/subset-after-all", "all flags, then a subset", EXAMPLE,
             [call(both), call(both, flag_keys=["my-flag"]), call(both)]),
        case("dedup/result-changes", "same ids, different result", TARGETED, [call(FULL_USER), call(free)]),
        case("dedup/props-change-same-result", "same ids and result, different properties", EXAMPLE,
             [call(dict(both, user_properties={"p": "1"})), call(dict(both, user_properties={"p": "2"}))],
             send_evaluated_props=True),
        case("dedup/whitespace-variants", "ids differing only by whitespace", EXAMPLE,
             [call({"user_id": "user-1"}), call({"user_id": "user-1 "}), call({"user_id": " user-1"})]),
        case("dedup/no-ids-then-ids", "no ids, then ids", EXAMPLE, [call(USERS["no-ids"]), call(both)]),
    ]
    names = [c["name"] for c in cases]
    assert len(names) == len(set(names)), "duplicate case names"
    return cases


# --------------------------------------------------------------------------------------------
# Running the reference and writing the fixture.


def run_oracle(reference_python: str, cases: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    request = {"cases": [{k: c[k] for k in ("flags", "calls", "send_evaluated_props")} for c in cases]}
    env = dict(os.environ, PYTHONHASHSEED="0", PYTHONDONTWRITEBYTECODE="1")
    proc = subprocess.run([reference_python, str(ORACLE)], input=json.dumps(request), capture_output=True,
                          text=True, env=env, check=False, cwd="/")
    if proc.returncode != 0:
        raise RuntimeError(f"events oracle failed:\n{proc.stderr}")
    results = json.loads(proc.stdout)
    assert len(results) == len(cases)
    return results


def check_event(event: Dict[str, Any]) -> List[str]:
    """Problems with the clock-dependent parts of an event (the day stamp must match ``time``)."""
    problems = []
    day = event["time"] // DAY_MILLIS
    if not str(event.get("insert_id", "")).endswith(f" {day}"):
        problems.append(f"insert_id {event.get('insert_id')!r} does not end with day {day}")
    return problems


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference-python", default=DEFAULT_REFERENCE_PYTHON,
                        help="python of a venv with amplitude-experiment==1.13.0 (default: %(default)s)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)

    cases = build_cases()
    outcomes = run_oracle(args.reference_python, cases)
    problems: List[str] = []
    notes: List[str] = []
    for c, outcome in zip(cases, outcomes):
        if "error" in outcome:  # a reference bug worth pinning: record it, no events were sent
            notes.append(f"{c['name']}: reference raised {outcome['error']}")
            c["reference_error"] = outcome["error"]
            c["events"], c["requests"] = [], []
            continue
        for one_call, result in zip(c["calls"], outcome["results"]):
            one_call["result"] = result
        c["events"] = sorted(outcome["events"], key=lambda e: (e.get("time", 0), e.get("insert_id", "")))
        c["requests"] = outcome["requests"]
        for event in c["events"]:
            problems += [f"{c['name']}: {p}" for p in check_event(event)]

    document = {
        "generated_by": "scripts/generate_event_fixtures.py",
        "reference": REFERENCE,
        "config": {"deployment_key": "server-events-oracle", "api_key": "a-key", "flush_queue_size": 1},
        "note": "time and the insert_id day stamp depend on the clock; events are sorted by "
                "(time, insert_id) and should be compared as a multiset; a case with no events means the "
                "reference sent nothing; reference_error: the reference raised during the call "
                "(no results, no events).",
        "cases": cases,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(document, ensure_ascii=False, indent=1) + "\n"
    args.output.write_text(text, encoding="utf-8")
    n_events = sum(len(c["events"]) for c in cases)
    silent = sum(1 for c in cases if not c["events"])
    print(f"wrote {args.output} ({len(text.encode()) / 1e3:.0f} kB): {len(cases)} cases, {n_events} events, "
          f"{silent} cases without events", file=sys.stderr)
    for note in notes:
        print(f"  note: {note}", file=sys.stderr)
    for problem in problems:
        print(f"  problem: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
