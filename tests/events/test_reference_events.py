"""Assignment events compared with the official SDK's, captured as a black box.

``tests/events/fixtures/assignment_events.json`` holds, per case, the flags, the calls made to
the official ``amplitude-experiment==1.13.0`` and the events it POSTed (see
``scripts/generate_event_fixtures.py``). We replay each case with the same wall-clock time so
insert_ids (day stamp included) must match byte for byte. Deliberate differences, applied to
the reference's events before comparing:

- event property keys carry the ``[Experiment] `` prefix the product spec names
  (``[Experiment] my-flag.variant``); the official SDK sends ``my-flag.variant``, and so do we
  with ``AssignmentConfig(event_property_names="official")`` (both are checked);
- ``library`` names this package;
- with ``send_evaluated_props`` the user's ``version``, ``os`` and ``ip_address`` are sent as
  ``app_version``, ``os_name`` and ``ip`` (the official SDK drops them);
- where the official SDK raised (``send_evaluated_props`` with no user properties) we send
  the event; those cases are covered by hand-written tests instead.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any, Dict, List

import pytest

from amplitude_experiment import User
from amplitude_experiment.evaluation import compile_flags, evaluate
from amplitude_experiment.events.assignment import AssignmentTracker
from amplitude_experiment.events.sender import pending_build, pending_json
from amplitude_experiment.testing import ManualClock
from amplitude_experiment.version import LIBRARY

FIXTURES = json.loads((pathlib.Path(__file__).parent / "fixtures" / "assignment_events.json").read_text("utf-8"))
CASES = [case for case in FIXTURES["cases"] if not case.get("reference_error")]
_RENAMED = {"version": "app_version", "os": "os_name", "ip_address": "ip"}


class Capture:
    def __init__(self) -> None:
        self.items: List[Any] = []

    def enqueue(self, item: Any) -> bool:
        self.items.append(item)
        return True


def corrected(event: Dict[str, Any], case: Dict[str, Any], names: str) -> Dict[str, Any]:
    out = dict(event)
    if names == "prefixed":
        out["event_properties"] = {f"[Experiment] {k}": v for k, v in event["event_properties"].items()}
    out["library"] = LIBRARY
    if case["send_evaluated_props"]:
        user = case["calls"][0]["user"]
        for field, name in _RENAMED.items():
            if user.get(field) is not None:
                out[name] = user[field]
    return out


def canonical(events: List[Dict[str, Any]]) -> List[str]:
    return sorted(json.dumps(e, sort_keys=True, ensure_ascii=False) for e in events)


def test_fixture_is_substantial() -> None:
    assert len(CASES) >= 60
    assert sum(len(c["events"]) for c in CASES) >= 70


@pytest.mark.parametrize("names", ["prefixed", "official"])
@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_events_match_the_official_sdk(case: Dict[str, Any], names: str) -> None:
    flags = compile_flags(case["flags"])
    capture = Capture()
    times = sorted(e["time"] for e in case["events"]) or [1_795_600_000_000]
    clock = ManualClock(start=0.0, epoch=times[0] / 1000)
    tracker = AssignmentTracker(capture, cache_capacity=1000,  # type: ignore[arg-type]
                                send_evaluated_props=case["send_evaluated_props"], event_property_names=names,
                                clock=clock)
    for index, call in enumerate(case["calls"]):
        clock.advance(times[min(index, len(times) - 1)] / 1000 - clock.time())
        user = User(**call["user"])
        keys = call["flag_keys"]
        results = evaluate(flags, user, set(keys) if keys is not None else None)
        returned = {k: v.key for k, v in results.items()}
        if call["method"] == "evaluate":  # the deprecated call hides default and undeployed variants
            returned = {k: v.key for k, v in results.items()
                        if not (v.metadata.get("default") or v.metadata.get("deployed") is False)}
        assert returned == {k: v["key"] for k, v in call["result"].items()}
        tracker.track(user, results)  # but tracks the full result, as evaluate_v2 does
    ours = [pending_build(item) for item in capture.items]
    assert canonical(ours) == canonical([corrected(e, case, names) for e in case["events"]])
    # What the sender posts: the JSON written from remembered fragments decodes to the same events.
    posted = [pending_json(item) for item in capture.items]
    assert [insert_id for insert_id, _ in posted] == [event["insert_id"] for event in ours]
    assert [json.loads(text) for _, text in posted] == ours
