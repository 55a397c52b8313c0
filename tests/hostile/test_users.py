"""Odd user data through the whole client with tracking on (issue 15 points 4 and 7).

Every user below goes through ``evaluate_v2`` of a client with cohort sync, assignment and
exposure tracking, against the loopback stand-in: nothing may raise, every result is exact,
and the stand-in must receive exactly the events design.md §5 describes (exact bodies,
exact counts). Times come from the events themselves, so the day stamp of each insert_id is
checked against the event's own ``time``.
"""

from __future__ import annotations

import logging
import math
from datetime import datetime, timezone
from typing import Any, Dict, Iterator, List, Optional

import pytest

from amplitude_experiment import (
    AssignmentConfig,
    CohortSyncConfig,
    EvaluateOptions,
    ExposureConfig,
    LocalEvaluationClient,
    LocalEvaluationConfig,
    User,
)
from amplitude_experiment.events.insert_id import assignment_insert_id
from amplitude_experiment.testing import AmplitudeStandIn, ManualClock
from amplitude_experiment.version import LIBRARY

OFF = {"key": "off", "metadata": {"default": True}}
FLAGS: List[Dict[str, Any]] = [
    {"key": "everyone", "metadata": {"flagType": "release", "flagVersion": 1},
     "variants": {"on": {"key": "on", "value": "on"}, "off": OFF},
     "segments": [{"variant": "on", "metadata": {"segmentName": "All Other Users"}}]},
    {"key": "pro-plan", "metadata": {"flagType": "release", "flagVersion": 2},
     "variants": {"on": {"key": "on", "value": "on"}, "off": OFF},
     "segments": [{"conditions": [[{"selector": ["context", "user", "user_properties", "plan"], "op": "is",
                                    "values": ["pro"]}]], "variant": "on", "metadata": {"segmentName": "Pro"}},
                  {"variant": "off", "metadata": {"segmentName": "All Other Users"}}]},
    {"key": "vip", "metadata": {"flagType": "experiment", "flagVersion": 3, "experimentKey": "exp-3"},
     "variants": {"on": {"key": "on", "value": "on"}, "off": OFF},
     "segments": [{"conditions": [[{"selector": ["context", "user", "cohort_ids"], "op": "set contains any",
                                    "values": ["c-vip"]}]], "variant": "on", "metadata": {"segmentName": "VIP"}},
                  {"variant": "off", "metadata": {"segmentName": "All Other Users"}}]},
]
MEGABYTE = "m" * 1_000_000


@pytest.fixture
def server() -> Iterator[AmplitudeStandIn]:
    with AmplitudeStandIn(flags=FLAGS, cohort_api_key="cohort-key", cohort_secret_key="cohort-secret") as stand_in:
        stand_in.set_cohort("c-vip", ["user-vip", "12345"], last_modified=1000)
        yield stand_in


def make_client(server: AmplitudeStandIn, send_evaluated_props: bool = False) -> LocalEvaluationClient:
    config = LocalEvaluationConfig(
        server_url=server.url,
        flag_config_polling_interval_millis=3_600_000,
        cohort_sync_config=CohortSyncConfig("cohort-key", "cohort-secret", cohort_server_url=server.url),
        # min_id_length=1: short ids are delivered (design.md §3), so every count below is exact
        assignment_config=AssignmentConfig(api_key="analytics-key", server_url=server.events_url, min_id_length=1,
                                           send_evaluated_props=send_evaluated_props),
        exposure_config=ExposureConfig(api_key="analytics-key", server_url=server.events_url, min_id_length=1),
        clock=ManualClock(),
    )
    return LocalEvaluationClient("server-key", config)


# (user, expected variant keys); each is evaluated twice (the second call is deduplicated)
CASES: List[Any] = [
    (User(user_id="user-odd-1", device_id="device-1", cohort_ids=[1, "x"],  # type: ignore[list-item]
          user_properties={"plan": math.nan, "bytes": b"\xff\x00", "when": datetime(2024, 5, 1, tzinfo=timezone.utc),
                           "lone": "a\ud800b", "big": MEGABYTE, "inf": math.inf, "nested": [[[[{"x": None}]]]]}),
     {"everyone": "on", "pro-plan": "off", "vip": "off"}),
    (User(user_id=12345, cohort_ids=[None]),  # type: ignore[arg-type, list-item]
     {"everyone": "on", "pro-plan": "off", "vip": "on"}),  # "12345" is a member of c-vip
    (User(user_id="", device_id="device-3", cohort_ids=5, user_properties={"plan": "pro"}),  # type: ignore[arg-type]
     {"everyone": "on", "pro-plan": "on", "vip": "off"}),
    (User(user_id="user-vip", cohort_ids="c-vip"),  # type: ignore[arg-type]
     {"everyone": "on", "pro-plan": "off", "vip": "on"}),
    (User(user_id="  user-padded  ", device_id="\tdevice-5\n", user_properties={"plan": MEGABYTE}),
     {"everyone": "on", "pro-plan": "off", "vip": "off"}),
    (User(user_id="user-\ud800-lone", user_properties={"plan": "pro", 7: "int key"}),  # type: ignore[dict-item]
     {"everyone": "on", "pro-plan": "on", "vip": "off"}),
    (User(user_id=4.5, device_id=0, user_properties={"plan": None}),  # type: ignore[arg-type]
     {"everyone": "on", "pro-plan": "off", "vip": "off"}),
]
NO_IDS = [User(), User(user_id="", device_id=""), User(user_id=None, device_id="", user_properties={"plan": "pro"})]
DETAILS = {"everyone": "v1 rule:All Other Users", "pro-plan": {"on": "v2 rule:Pro", "off": "v2 rule:All Other Users"},
           "vip": {"on": "v3 rule:VIP", "off": "v3 rule:All Other Users"}}


def event_id(value: Any) -> Optional[str]:
    return None if value is None else value if isinstance(value, str) else str(value)


def expected_assignment(user: User, variants: Dict[str, str], time_millis: int) -> Dict[str, Any]:
    """design.md §5, written out for these three flags."""
    user_id, device_id = event_id(user.user_id), event_id(user.device_id)
    properties: Dict[str, str] = {}
    for flag, variant in variants.items():
        properties[f"[Experiment] {flag}.variant"] = variant
        detail = DETAILS[flag]
        properties[f"[Experiment] {flag}.details"] = detail if isinstance(detail, str) else detail[variant]
    event: Dict[str, Any] = {"event_type": "[Experiment] Assignment"}
    if user_id is not None:
        event["user_id"] = user_id
    if device_id is not None:
        event["device_id"] = device_id
    event["event_properties"] = properties
    event["user_properties"] = {
        "$set": {f"[Experiment] {f}": v for f, v in variants.items() if v != "off"},
        "$unset": {f"[Experiment] {f}": "-" for f, v in variants.items() if v == "off"},
    }
    event["insert_id"] = assignment_insert_id(user_id, device_id, variants.items(), time_millis)
    event["library"] = LIBRARY
    event["time"] = time_millis
    return event


def evaluate_all(client: LocalEvaluationClient) -> None:
    for user, expected in CASES:
        for _ in range(2):
            variants = client.evaluate_v2(user, options=EvaluateOptions(tracks_exposure=True))
            assert {k: v.key for k, v in variants.items()} == expected, user
    for user in NO_IDS:
        assert {k: v.key for k, v in client.evaluate_v2(user).items()} == {
            "everyone": "on", "pro-plan": "on" if user.user_properties else "off", "vip": "off"}


def test_odd_users_get_exact_results_and_exact_events(server: AmplitudeStandIn,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    client = make_client(server)
    with caplog.at_level(logging.WARNING, logger="amplitude_experiment"):
        client.start()
        evaluate_all(client)
        client.stop(10)
    assert all(r.exc_info is None for r in caplog.records)  # odd data is never a traceback

    assignments = [e for e in server.events if e["event_type"] == "[Experiment] Assignment"]
    exposures = [e for e in server.events if e["event_type"] == "$exposure"]
    assert len(assignments) == len(CASES)
    by_user = {(e.get("user_id"), e.get("device_id")): e for e in assignments}
    for user, expected in CASES:
        event = by_user[(event_id(user.user_id), event_id(user.device_id))]
        assert event == expected_assignment(user, expected, event["time"])

    non_default = sum(1 for _, expected in CASES for v in expected.values() if v != "off")
    assert len(exposures) == non_default
    assert sorted((e.get("user_id") or e.get("device_id"), e["event_properties"]["flag_key"]) for e in exposures) == \
        sorted((event_id(user.user_id) or event_id(user.device_id), flag)
               for user, expected in CASES for flag, v in expected.items() if v != "off")
    assert {e["event_properties"]["flag_key"]: e["event_properties"] for e in exposures}["vip"] == \
        {"flag_key": "vip", "variant": "on", "experiment_key": "exp-3"}

    stats = client.stats()
    evaluated = 2 * len(CASES) + len(NO_IDS)
    assert stats["assignment"] == {"evaluated": evaluated, "tracked": len(CASES), "deduplicated": len(CASES),
                                   "skipped": {"no_user_or_device_id": len(NO_IDS)}}
    assert stats["exposure"]["tracked"] == non_default and stats["exposure"]["deduplicated"] == non_default
    assert stats["events"]["sent"] == len(CASES) + non_default and stats["events"]["dropped"] == {}


def test_odd_user_properties_sent_as_evaluated_props(server: AmplitudeStandIn) -> None:
    """With send_evaluated_props the odd values go out as text JSON can carry; the event stays
    one valid request (a megabyte property makes that one event too large: counted, not raised)."""
    client = make_client(server, send_evaluated_props=True)
    client.start()
    odd, _ = CASES[0]
    small = User(user_id=odd.user_id, device_id=odd.device_id, cohort_ids=odd.cohort_ids,
                 user_properties={k: v for k, v in (odd.user_properties or {}).items() if k != "big"})
    variants = client.evaluate_v2(small)
    assert {k: v.key for k, v in variants.items()} == {"everyone": "on", "pro-plan": "off", "vip": "off"}
    client.evaluate_v2(User(user_id="user-huge", user_properties={"big": MEGABYTE}))
    client.stop(10)
    (event,) = [e for e in server.events if e["event_type"] == "[Experiment] Assignment"]
    assert event["user_properties"] == {
        "$set": {"[Experiment] everyone": "on"},
        "$unset": {"[Experiment] pro-plan": "-", "[Experiment] vip": "-"},
        "plan": "nan", "bytes": "b'\\xff\\x00'", "when": "2024-05-01 00:00:00+00:00", "lone": "a\ud800b",
        "inf": "inf", "nested": [[[[{"x": None}]]]],
    }
    stats = client.stats()
    assert stats["assignment"]["tracked"] == 2
    assert stats["events"]["sent"] == 1 and sum(stats["events"]["dropped"].values()) == 1
