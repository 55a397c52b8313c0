"""Shared cohort membership (issue 14 point 1: "Cohort membership is shared the same way"; point 3: read-only
members; point 4: Redis down falls back).

A real redis-server (conftest) and the in-process Amplitude stand-in. ``CohortSync`` tests drive time with a
``ManualClock``; client tests count the stand-in's cohort requests.
"""

from __future__ import annotations

import contextlib
import itertools
import json
from typing import Any, Iterator, List

import pytest
import requests

from amplitude_experiment import CohortSyncConfig, LocalEvaluationClient, LocalEvaluationConfig, User
from amplitude_experiment.cohorts import storage
from amplitude_experiment.cohorts.sync import CohortSync
from amplitude_experiment.evaluation import CompiledFlags, compile_flags
from amplitude_experiment.testing import AmplitudeStandIn, FlagBuilder, ManualClock, in_cohort

from .conftest import RedisServer, wait_for

DEPLOYMENT = "server-fleetCohortKey1"
COHORT_KEY = "cohort-api-key-1"
COHORT_SECRET = "cohort-secret-1"


def members_flag() -> Any:
    return (FlagBuilder("members").variant("on")
            .rule("VIP", [in_cohort("c-vip")], "on")
            .rule("Beta", [in_cohort("c-beta")], "on").build())


def beta_only_flag() -> Any:
    return FlagBuilder("members").variant("on").rule("Gamma", [in_cohort("c-gamma")], "on").build()


@pytest.fixture
def amplitude() -> Iterator["contextlib.ExitStack"]:
    with contextlib.ExitStack() as stack:
        yield stack


def stand_in(stack: "contextlib.ExitStack") -> AmplitudeStandIn:
    """A stand-in (one per simulated process, so whose requests they were can be told apart)."""
    amp = stack.enter_context(AmplitudeStandIn(flags=[members_flag()], cohort_api_key=COHORT_KEY,
                                               cohort_secret_key=COHORT_SECRET))
    amp.set_cohort("c-vip", ["user-vip"], last_modified=1000)
    amp.set_cohort("c-beta", ["user-beta"], last_modified=1000)
    amp.set_cohort("c-gamma", ["user-gamma"], last_modified=1000)
    return amp


def cohort_ids_requested(amp: AmplitudeStandIn) -> List[str]:
    return sorted(r.path.rsplit("/", 1)[-1] for r in amp.requests("cohort"))


def make_client(made: List[LocalEvaluationClient], amp: AmplitudeStandIn, fleet: Any,
                **options: Any) -> LocalEvaluationClient:
    client = LocalEvaluationClient(DEPLOYMENT, LocalEvaluationConfig(
        server_url=amp.url, flag_config_polling_interval_millis=100, fleet=fleet,
        cohort_sync_config=CohortSyncConfig(COHORT_KEY, COHORT_SECRET, cohort_server_url=amp.url), **options))
    made.append(client)
    return client


def variant(client: LocalEvaluationClient, user_id: str) -> Any:
    found = client.evaluate_v2(User(user_id=user_id)).get("members")
    return None if found is None else found.key


def test_two_clients_download_each_cohort_once_and_both_target_it(make_fleet, amplitude, clients, admin) -> None:
    # issue 14 pt 1: the first member downloads and publishes each cohort; the second takes them from Redis.
    first_amp, second_amp = stand_in(amplitude), stand_in(amplitude)
    first_fleet, second_fleet = make_fleet(), make_fleet()
    first = make_client(clients, first_amp, first_fleet)
    first.start()
    second = make_client(clients, second_amp, second_fleet)
    second.start()
    assert second.snapshot_source == "fleet"
    # The fleet watcher keeps the cohort lease too: the first member holds it, so it alone refreshes.
    first_lease = first_fleet.cohorts(COHORT_KEY).lease
    assert wait_for(lambda: first_lease.held, 3.0) and admin.get(first_lease.key) is not None
    assert not second_fleet.cohorts(COHORT_KEY).lease.held
    for client in (first, second):
        assert (variant(client, "user-vip"), variant(client, "user-beta"), variant(client, "user-none")) == \
            ("on", "on", "off")
    assert cohort_ids_requested(first_amp) == ["c-beta", "c-vip"]
    assert cohort_ids_requested(second_amp) == []
    # What Redis holds is the cohort API's JSON body (member ids), never the process-local compact keys.
    stored = json.loads(admin.hget(make_fleet().cohorts(COHORT_KEY).key("c-vip"), "body"))
    assert (stored["memberIds"], stored["lastModified"]) == (["user-vip"], 1000)
    first.stop(2.0)
    assert admin.get(first_lease.key) is None  # resigned at stop(): another member takes over at once


def test_read_only_member_never_requests_cohorts(make_fleet, amplitude, clients) -> None:
    # issue 14 pt 3: fetch=False serves the fleet's cohorts and never contacts Amplitude for them.
    leader_amp, reader_amp = stand_in(amplitude), stand_in(amplitude)
    make_client(clients, leader_amp, make_fleet()).start()
    reader = make_client(clients, reader_amp, make_fleet(fetch=False))
    reader.start()
    assert variant(reader, "user-vip") == "on"
    leader_amp.set_flags([beta_only_flag()])  # a newly targeted cohort arrives through the fleet only
    assert wait_for(lambda: variant(reader, "user-gamma") == "on", 5.0)
    assert variant(reader, "user-vip") == "off"
    assert reader_amp.requests("cohort") == [] and reader_amp.requests("flags") == []
    assert cohort_ids_requested(leader_amp) == ["c-beta", "c-gamma", "c-vip"]


def test_redis_down_each_member_downloads_its_own_cohorts(make_fleet, amplitude, clients,
                                                          redis_server: RedisServer) -> None:
    # issue 14 pt 4: while Redis is down a member falls back to its own flag and cohort downloads.
    first_amp, second_amp = stand_in(amplitude), stand_in(amplitude)
    make_client(clients, first_amp, make_fleet(socket_timeout=0.1)).start()
    second = make_client(clients, second_amp, make_fleet(socket_timeout=0.1))
    second.start()
    assert variant(second, "user-vip") == "on" and second_amp.requests("cohort") == []

    redis_server.stop()
    second_amp.set_flags([beta_only_flag()])  # only the second's own downloads can bring flag and cohort
    assert wait_for(lambda: variant(second, "user-gamma") == "on", 5.0)
    assert cohort_ids_requested(second_amp) == ["c-gamma"]


# -- CohortSync on its own, time on a ManualClock -------------------------------------------------------------


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s


def compiled(flag: Any) -> CompiledFlags:
    return compile_flags([flag])


def make_sync(session: requests.Session, amp: AmplitudeStandIn, fleet: Any, clock: ManualClock) -> CohortSync:
    return CohortSync(session, CohortSyncConfig(COHORT_KEY, COHORT_SECRET, cohort_server_url=amp.url),
                      clock=clock, shared=fleet.cohorts(COHORT_KEY))


def test_a_change_reaches_the_follower_through_the_leaders_refresh(make_fleet, amplitude, session,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    # issue 14 pt 1: only the lease holder refreshes from Amplitude (once per interval); followers take newer
    # versions from the fleet at their next check.
    clock = ManualClock()
    leader_amp, follower_amp = stand_in(amplitude), stand_in(amplitude)
    leader, follower = make_sync(session, leader_amp, make_fleet(), clock), make_sync(session, follower_amp,
                                                                                     make_fleet(), clock)
    try:
        leader.renew_lease()
        follower.renew_lease()
        flags = compiled(members_flag())
        leader.prepare(flags)
        follower.prepare(flags)
        assert cohort_ids_requested(follower_amp) == []
        leader.start()
        follower.start()
        assert clock.wait_for_sleepers(2)

        leader_amp.set_cohort("c-vip", ["user-new"], last_modified=2000)
        follower_amp.set_cohort("c-vip", ["user-wrong"], last_modified=3000)  # the follower must never ask
        clock.advance(30.0)  # fleet checks, but no refresh from Amplitude before the 60 s interval
        assert clock.wait_for_sleepers(2)
        assert cohort_ids_requested(leader_amp) == ["c-beta", "c-vip"]
        clock.advance(30.0)
        assert wait_for(lambda: len(leader_amp.requests("cohort")) == 4, 5.0)
        assert wait_for(lambda: leader.store.last_modified("c-vip") == 2000, 5.0)
        clock.advance(1.0)  # the follower's next version check takes it
        assert wait_for(lambda: follower.store.last_modified("c-vip") == 2000, 5.0)
        follower_vip = follower.store.get("c-vip")
        assert follower_vip is not None and "user-new" in follower_vip.members and \
            "user-vip" not in follower_vip.members
        assert follower_amp.requests("cohort") == []
        # ... and unites what it took: a lookup is one search for both cohorts (once the check ends).
        searches: List[float] = []
        real = storage.bisect_left
        monkeypatch.setattr(storage, "bisect_left",
                            lambda keys, key, lo, hi: searches.append(key) or real(keys, key, lo, hi))
        fresh = (f"fresh-{n}" for n in itertools.count())

        def one_search() -> bool:
            searches.clear()
            follower.store.user_cohort_ids(next(fresh), frozenset({"c-vip", "c-beta"}))
            return len(searches) == 1

        assert wait_for(one_search, 5.0)
        # The refresh asked with lastModified: the unchanged cohort cost a 204, not a body.
        assert sorted(r.query.get("lastModified") for r in leader_amp.requests("cohort")[2:]) == ["1000", "1000"]
    finally:
        leader.stop(1.0)
        follower.stop(1.0)


def test_prepare_downloads_only_what_the_fleet_lacks_and_publishes_it(make_fleet, amplitude, session) -> None:
    clock = ManualClock()
    first_amp, second_amp = stand_in(amplitude), stand_in(amplitude)
    first, second = make_sync(session, first_amp, make_fleet(), clock), make_sync(session, second_amp,
                                                                                 make_fleet(), clock)
    try:
        first.prepare(compiled(beta_only_flag()))
        second.prepare(compiled(members_flag()))  # c-vip and c-beta: nobody published them yet
        assert cohort_ids_requested(second_amp) == ["c-beta", "c-vip"]
        first.prepare(compiled(members_flag()))
        assert cohort_ids_requested(first_amp) == ["c-gamma"]  # both taken from the fleet
        assert first.store.ids() == {"c-vip", "c-beta"}
    finally:
        first.stop(1.0)
        second.stop(1.0)


def test_a_fleet_copy_larger_than_max_cohort_size_is_skipped(make_fleet, amplitude, session) -> None:
    # CohortSyncConfig.max_cohort_size holds for what the fleet shares too (another member may allow more).
    clock = ManualClock()
    amp = stand_in(amplitude)
    amp.set_cohort("c-vip", ["a", "b", "c"], last_modified=1000)
    roomy = make_sync(session, amp, make_fleet(), clock)
    strict = CohortSync(session, CohortSyncConfig(COHORT_KEY, COHORT_SECRET, max_cohort_size=2,
                                                  cohort_server_url=amp.url),
                        clock=clock, shared=make_fleet(fetch=False).cohorts(COHORT_KEY))
    try:
        roomy.prepare(compiled(members_flag()))
        strict.prepare(compiled(members_flag()))
        assert roomy.store.ids() == {"c-vip", "c-beta"}
        assert strict.store.ids() == {"c-beta"}
    finally:
        roomy.stop(1.0)
        strict.stop(1.0)
