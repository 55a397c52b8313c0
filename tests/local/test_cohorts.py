"""Cohort targeting end to end: users and groups, refresh, bounded start, the caller's User untouched.

Time is a ``ManualClock`` given as ``LocalEvaluationConfig(clock=...)`` (the documented seam):
refreshes happen when a test advances it, never by sleeping.
"""

from __future__ import annotations

import itertools
import logging
import threading
from typing import Any, Dict, Iterator, List, Optional

import pytest

from amplitude_experiment import CohortSyncConfig, LocalEvaluationClient, LocalEvaluationConfig, ServerZone, User
from amplitude_experiment.local.cohort_view import forget_warnings
from amplitude_experiment.testing import AmplitudeStandIn, ManualClock, wait_for

from ..evaluation.helpers import condition, targeted_flag

USER_COHORT_FLAG = targeted_flag("vip", [[condition(["context", "user", "cohort_ids"], "set contains any",
                                                    ["cohort-vip", "cohort-beta"])]])
GROUP_COHORT_FLAG = targeted_flag("enterprise", [[condition(["context", "groups", "org", "cohort_ids"],
                                                            "set contains any", ["cohort-big-orgs"])]])
NOT_IN_FLAG = targeted_flag("not-blocked", [[condition(["context", "user", "cohort_ids"], "set does not contain any",
                                                       ["cohort-blocked"])]])


@pytest.fixture
def server() -> Iterator[AmplitudeStandIn]:
    with AmplitudeStandIn(flags=[USER_COHORT_FLAG, GROUP_COHORT_FLAG, NOT_IN_FLAG], cohort_api_key="cohort-key",
                          cohort_secret_key="cohort-secret") as stand_in:
        stand_in.set_cohort("cohort-vip", ["user-vip", "user-both"], last_modified=1000)
        stand_in.set_cohort("cohort-beta", ["user-beta"], last_modified=1000)
        stand_in.set_cohort("cohort-blocked", ["user-both"], last_modified=1000)
        stand_in.set_cohort("cohort-big-orgs", ["acme"], group_type="org", last_modified=1000)
        yield stand_in


FLAG_POLL_SECONDS = 30  # below the cohort refresh interval (60 s) so the two can be told apart


def make_client(server: AmplitudeStandIn, cohort_url: str = "", clock: Optional[ManualClock] = None,
                **sync: Any) -> LocalEvaluationClient:
    config = LocalEvaluationConfig(
        server_url=server.url,
        flag_config_polling_interval_millis=FLAG_POLL_SECONDS * 1000,
        cohort_sync_config=CohortSyncConfig("cohort-key", "cohort-secret", cohort_server_url=cohort_url or server.url,
                                            **sync),
        clock=clock or ManualClock(),
    )
    return LocalEvaluationClient("server-key", config)


def keys(client: LocalEvaluationClient, user: User) -> Dict[str, str]:
    return {k: v.key for k, v in client.evaluate_v2(user).items()}


def test_user_and_group_cohorts_target_without_touching_the_user(server: AmplitudeStandIn) -> None:
    with make_client(server) as client:
        vip = User(user_id="user-vip")
        assert keys(client, vip) == {"vip": "on", "enterprise": "off", "not-blocked": "on"}
        assert keys(client, User(user_id="user-beta")) == {"vip": "on", "enterprise": "off", "not-blocked": "on"}
        assert keys(client, User(user_id="user-both")) == {"vip": "on", "enterprise": "off", "not-blocked": "off"}
        assert keys(client, User(user_id="nobody")) == {"vip": "off", "enterprise": "off", "not-blocked": "on"}
        org_user = User(user_id="nobody", groups={"org": ["acme"]})
        assert keys(client, org_user) == {"vip": "off", "enterprise": "on", "not-blocked": "on"}
        assert keys(client, User(user_id="nobody", groups={"org": ["globex"]}))["enterprise"] == "off"
        assert vip.cohort_ids is None and org_user.group_cohort_ids is None  # the caller's objects are unchanged
        assert client.explain(vip, "vip").segments[0]["conditions"][0][0]["value"] == '["cohort-vip"]'
    requests = server.requests("cohort")
    assert sorted(r.path for r in requests) == ["/sdk/v1/cohort/cohort-beta", "/sdk/v1/cohort/cohort-big-orgs",
                                                "/sdk/v1/cohort/cohort-blocked", "/sdk/v1/cohort/cohort-vip"]
    assert all(r.query["maxCohortSize"] == "2147483647" for r in requests)
    assert requests[0].header("Authorization") == "Basic Y29ob3J0LWtleTpjb2hvcnQtc2VjcmV0"


def test_user_supplied_cohorts_are_merged(server: AmplitudeStandIn) -> None:
    with make_client(server) as client:
        user = User(user_id="nobody", cohort_ids=["cohort-beta", "cohort-blocked"])
        assert keys(client, user) == {"vip": "on", "enterprise": "off", "not-blocked": "off"}
        assert user.cohort_ids == ["cohort-beta", "cohort-blocked"]


def test_incremental_refresh_uses_last_modified(server: AmplitudeStandIn) -> None:
    # design.md §3: GET .../sdk/v1/cohort/{id}?maxCohortSize=N&lastModified=ms, refreshed every
    # cohort_polling_interval_millis (60 s)
    clock = ManualClock()
    with make_client(server, clock=clock) as client:
        assert keys(client, User(user_id="user-new"))["vip"] == "off"
        server.set_cohort("cohort-vip", ["user-new"], last_modified=2000)
        before = len(server.requests("cohort"))
        assert clock.wait_for_sleepers(2)  # the flag poller and the cohort refresh
        clock.advance(FLAG_POLL_SECONDS)
        assert keys(client, User(user_id="user-new"))["vip"] == "off"  # a flag poll is not a cohort refresh
        clock.advance(60 - FLAG_POLL_SECONDS)
        # The four cohorts download in parallel: wait until all were asked for and the change is in.
        assert wait_for(lambda: len(server.requests("cohort")) - before == 4
                        and keys(client, User(user_id="user-new"))["vip"] == "on")
        assert keys(client, User(user_id="user-vip"))["vip"] == "off"  # no longer a member
        refresh = server.requests("cohort")[before:]
        assert sorted(r.path for r in refresh) == ["/sdk/v1/cohort/cohort-beta", "/sdk/v1/cohort/cohort-big-orgs",
                                                   "/sdk/v1/cohort/cohort-blocked", "/sdk/v1/cohort/cohort-vip"]
        assert {r.query.get("lastModified") for r in refresh} == {"1000"}


def test_start_and_each_refresh_unite_the_small_cohorts(server: AmplitudeStandIn,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """After start() and after each refresh the cohort thread unites the small cohorts
    (``CohortStore.build_index``): a never-seen user costs one search, not one per cohort."""
    from amplitude_experiment.cohorts import storage

    searches: List[float] = []
    real = storage.bisect_left
    monkeypatch.setattr(storage, "bisect_left",
                        lambda keys, key, lo, hi: searches.append(key) or real(keys, key, lo, hi))
    clock = ManualClock()
    with make_client(server, clock=clock) as client:
        assert keys(client, User(user_id="user-both")) == {"vip": "on", "enterprise": "off", "not-blocked": "off"}
        assert len(searches) == 1  # cohort-vip, cohort-beta and cohort-blocked at once
        server.set_cohort("cohort-beta", ["user-new"], last_modified=2000)
        assert clock.wait_for_sleepers(2)  # the flag poller and the cohort refresh
        clock.advance(60)
        assert wait_for(lambda: keys(client, User(user_id="user-new"))["vip"] == "on")
        fresh = (f"fresh-{n}" for n in itertools.count())

        def one_search() -> bool:  # until the refresh has built the new union (on its own thread)
            searches.clear()
            client.evaluate_v2(User(user_id=next(fresh)))
            return len(searches) == 1

        assert wait_for(one_search)
        searches.clear()
        assert keys(client, User(user_id="user-beta"))["vip"] == "off"  # no longer a member
        assert len(searches) == 1


def test_newly_targeted_cohorts_load_before_the_flags_are_published(server: AmplitudeStandIn) -> None:
    clock = ManualClock()
    with make_client(server, clock=clock) as client:
        server.set_cohort("cohort-new", ["user-x"], last_modified=5)
        server.set_flags([targeted_flag("fresh", [[condition(["context", "user", "cohort_ids"], "set contains any",
                                                             ["cohort-new"])]])])
        assert clock.wait_for_sleepers(2)
        clock.advance(FLAG_POLL_SECONDS)
        assert wait_for(lambda: "fresh" in client.evaluate_v2(User(user_id="user-x")))
        # the first evaluation that sees the new flag already sees its cohort
        assert keys(client, User(user_id="user-x")) == {"fresh": "on"}
        assert server.requests("cohort")[-1].path == "/sdk/v1/cohort/cohort-new"


def test_unreachable_cohort_host_keeps_start_bounded(server: AmplitudeStandIn,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    with AmplitudeStandIn() as gone:
        dead_url = gone.url
    clock = ManualClock()
    client = make_client(server, cohort_url=dead_url, clock=clock)
    started = threading.Event()
    with caplog.at_level(logging.WARNING, logger="amplitude_experiment"):
        thread = threading.Thread(target=lambda: (client.start(), started.set()))
        thread.start()
        # start() waits for the cohorts at most 10 s (cohorts/sync.py LOAD_TIMEOUT), on the clock
        clock.run_until_idle(limit=10.0, sleepers=1)
        assert started.wait(5)
    assert keys(client, User(user_id="user-vip")) == {"vip": "off", "enterprise": "off", "not-blocked": "on"}
    warnings = [r.getMessage() for r in caplog.records if r.name.startswith("amplitude_experiment")]
    assert any(m.startswith("Cohorts cohort-beta, cohort-big-orgs, cohort-blocked, cohort-vip could not be loaded")
               for m in warnings)
    client.stop(2)


def test_too_large_cohort_is_skipped_with_a_warning(server: AmplitudeStandIn) -> None:
    with make_client(server, max_cohort_size=1) as client:
        # cohort-vip has 2 members: too large; cohort-beta has 1
        assert keys(client, User(user_id="user-vip"))["vip"] == "off"
        assert keys(client, User(user_id="user-beta"))["vip"] == "on"


def test_cohort_targeting_without_sync_warns_once_per_config(server: AmplitudeStandIn,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    clock = ManualClock()
    config = LocalEvaluationConfig(server_url=server.url, flag_config_polling_interval_millis=20, clock=clock)
    with caplog.at_level(logging.WARNING, logger="amplitude_experiment"):
        with LocalEvaluationClient("server-key", config) as client:
            before = len(server.requests("flags"))
            for _ in range(3):
                assert clock.wait_for_sleepers(1)
                clock.advance(0.02)
            assert wait_for(lambda: len(server.requests("flags")) >= before + 3)
            for _ in range(100):
                client.evaluate_v2(User(user_id="user-vip"))
            assert keys(client, User(user_id="x", cohort_ids=["cohort-vip"]))["vip"] == "on"
    messages: List[str] = [r.getMessage() for r in caplog.records]
    assert messages == ["Flags enterprise, not-blocked, vip target cohorts but no cohort_sync_config was given; "
                        "only cohort_ids set on the User are used"]


def test_eu_zone_uses_the_eu_cohort_host() -> None:
    config = LocalEvaluationConfig(server_zone=ServerZone.EU, cohort_sync_config=CohortSyncConfig("k", "s"))
    assert config.cohort_sync_config is not None
    assert config.cohort_sync_config.cohort_server_url == "https://cohort-v2.lab.eu.amplitude.com"


@pytest.mark.parametrize("cohort_ids, blocked, warning", [
    ([1, "x"], False, "User.cohort_ids holds a value of type int; it is used as its text"),
    ([None], False, "User.cohort_ids holds None; it is skipped"),
    (5, False, "User.cohort_ids is a single int, not a list; it is used as one cohort id"),
    ("cohort-blocked", True, "User.cohort_ids is a single str, not a list; it is used as one cohort id"),
    (("cohort-blocked", None), True, "User.cohort_ids holds None; it is skipped"),
])
def test_odd_user_cohort_ids_never_empty_the_result(server: AmplitudeStandIn, caplog: pytest.LogCaptureFixture,
                                                    cohort_ids: Any, blocked: bool, warning: str) -> None:
    """Issue 15 point 4: ids become text, None is skipped, a single value is one id; one warning
    line per kind of odd value (not per call), no traceback; the caller's User is untouched."""
    forget_warnings()
    expected = {"vip": "on", "enterprise": "off", "not-blocked": "off" if blocked else "on"}
    with make_client(server) as client:
        user = User(user_id="user-vip", cohort_ids=cohort_ids)
        with caplog.at_level(logging.WARNING, logger="amplitude_experiment"):
            for _ in range(3):
                assert keys(client, user) == expected
        assert user.cohort_ids == cohort_ids
    assert all(r.exc_info is None for r in caplog.records)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == [f"{warning}; this is logged once"]


def test_odd_group_cohort_ids_are_normalised_too(server: AmplitudeStandIn) -> None:
    with make_client(server) as client:
        user = User(user_id="nobody", groups={"org": ["acme"]},
                    group_cohort_ids={"org": {"acme": [7, None, "cohort-x"]}, "team": 5})  # type: ignore[dict-item]
        assert keys(client, user) == {"vip": "off", "enterprise": "on", "not-blocked": "on"}
        user = User(user_id="nobody", groups={"org": "acme"}, group_cohort_ids="junk")  # type: ignore[arg-type]
        assert keys(client, user)["vip"] == "off" and len(client.evaluate_v2(user)) == 3


def test_a_plain_user_gets_a_copy_with_cohort_ids_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """The evaluation path: a User with nothing of its own to merge gets its synced user cohorts
    in a copy (the caller's User untouched), looked up once per user id until the store changes."""
    from amplitude_experiment.cohorts import Cohort, CohortStore, storage
    from amplitude_experiment.local.cohort_view import CohortView, with_cohorts

    store = CohortStore()
    store.put(Cohort.of("cohort-vip", ["user-vip", "user-both"]))
    store.put(Cohort.of("cohort-blocked", ["user-both"]))
    store.put(Cohort.of("cohort-big-orgs", ["user-both"], group_type="org"))
    targeted = {"User": frozenset({"cohort-vip", "cohort-blocked"}), "org": frozenset({"cohort-big-orgs"})}
    searches: List[float] = []
    real = storage._containing
    monkeypatch.setattr(storage, "_containing", lambda entries, key: searches.append(key) or real(entries, key))

    both = User(user_id="user-both", device_id="d1", user_properties={"plan": "pro"})
    for _ in range(3):
        view = with_cohorts(both, targeted, store)
        assert type(view) is User and view is not both
        assert view.to_dict() == dict(both.to_dict(), cohort_ids=["cohort-blocked", "cohort-vip"])
        assert view.user_properties is both.user_properties  # shallow, like User.copy()
        nobody = User(user_id="nobody")
        assert with_cohorts(nobody, targeted, store) is nobody
    assert len(searches) == 2  # one per user id
    assert both.cohort_ids is None
    store.put(Cohort.of("cohort-vip", ["user-vip"], last_modified=2))
    assert with_cohorts(both, targeted, store).cohort_ids == ["cohort-blocked"]
    assert len(searches) == 3
    # anything else takes the general path, with the same answers
    assert with_cohorts(User(user_id="user-both", cohort_ids=["own"]), targeted, store).cohort_ids == [
        "cohort-blocked", "own"]
    grouped = with_cohorts(User(user_id="user-both", groups={"org": ["user-both"]}), targeted, store)
    assert type(grouped) is User
    assert (grouped.cohort_ids, grouped.group_cohort_ids) == (["cohort-blocked"],
                                                              {"org": {"user-both": ["cohort-big-orgs"]}})

    class Custom:  # any other user object gets a view that forwards what it does not answer
        user_id, device_id, cohort_ids, group_cohort_ids, groups, extra = "user-vip", "d9", None, None, None, 5

    viewed = with_cohorts(Custom(), targeted, store)
    assert type(viewed) is CohortView
    assert (viewed.cohort_ids, viewed.device_id, viewed.extra) == (["cohort-vip"], "d9", 5)
