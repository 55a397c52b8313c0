"""The fleet wired into LocalEvaluationClient (issue 14): shared flags, exactly-once assignments, Redis outages.

Each client gets its own RedisFleet, as separate processes would (one lease token per fleet object),
and a real redis-server (conftest). Amplitude is the in-process stand-in.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
from typing import Any, Callable, Dict, Iterator, List

import pytest

from amplitude_experiment import AssignmentConfig, LocalEvaluationClient, LocalEvaluationConfig, User
from amplitude_experiment.exceptions import ConfigurationError
from amplitude_experiment.testing import AmplitudeStandIn

from .conftest import RedisServer, wait_for

DEPLOYMENT = "server-fleetClientKey01"


def flag(value: str) -> Dict[str, Any]:
    return {"key": "exp", "metadata": {"flagType": "experiment", "flagVersion": 1, "experimentKey": "exp-1"},
            "variants": {value: {"key": value, "value": value}, "off": {"key": "off", "metadata": {"default": True}}},
            "segments": [{"variant": value}]}


@pytest.fixture
def amplitude() -> Iterator[Callable[[], AmplitudeStandIn]]:
    """``amplitude()``: a fresh stand-in (one per simulated process, so its requests can be told apart)."""
    with contextlib.ExitStack() as stack:
        yield lambda: stack.enter_context(AmplitudeStandIn(flags=[flag("blue")]))


def make_client(made: List[LocalEvaluationClient], stand_in: AmplitudeStandIn, fleet: Any,
                **options: Any) -> LocalEvaluationClient:
    client = LocalEvaluationClient(DEPLOYMENT, LocalEvaluationConfig(
        server_url=stand_in.url, flag_config_polling_interval_millis=100, fleet=fleet, **options))
    made.append(client)
    return client


def value(client: LocalEvaluationClient) -> Any:
    variant = client.evaluate_v2(User(user_id="u-1")).get("exp")
    return None if variant is None else variant.value


def test_fleet_must_offer_flags_and_claims() -> None:
    with pytest.raises(ConfigurationError, match="fleet must offer"):
        LocalEvaluationConfig(fleet=object())  # type: ignore[arg-type]


def test_one_client_downloads_the_other_serves_the_fleets_flags(make_fleet, amplitude, clients) -> None:
    # issue 14 pt 1: one member downloads and publishes; the others serve the published config.
    first_amp, second_amp = amplitude(), amplitude()
    first = make_client(clients, first_amp, make_fleet())
    first.start()
    second = make_client(clients, second_amp, make_fleet())
    second.start()
    assert (first.snapshot_source, second.snapshot_source) == ("network", "fleet")
    assert value(second) == "blue"
    assert second.snapshot is not None and first.snapshot is not None
    assert second.snapshot.digest == first.snapshot.digest

    first_amp.set_flags([flag("green")])  # the change reaches the second client through Redis only
    assert wait_for(lambda: value(second) == "green", 3.0)
    assert second_amp.requests("flags") == []
    assert len(first_amp.requests("flags")) >= 2

    # stop() resigns the lease: the survivor takes over and downloads from its own Amplitude.
    second_amp.set_flags([flag("red")])
    first.stop(2.0)
    assert wait_for(lambda: value(second) == "red", 3.0)
    assert len(second_amp.requests("flags")) >= 1


def test_a_member_starting_while_the_leader_downloads_waits_for_the_leaders_flags(make_fleet, amplitude, clients,
                                                                                  admin) -> None:
    # issue 14 pt 1 at start-up: the lease is held but nothing is published yet (the leader is still
    # downloading); a starting member waits for the leader's config instead of downloading its own.
    leader = make_fleet().flags(DEPLOYMENT)
    assert leader.try_lead()
    member_amp = amplitude()
    member = make_client(clients, member_amp, make_fleet())
    starting = threading.Thread(target=member.start)
    starting.start()
    # The member subscribed to the fleet's updates: it is waiting for the leader.
    assert wait_for(lambda: admin.pubsub_numsub(leader.channel)[0][1] == 1)
    body = json.dumps([flag("green")]).encode()
    assert leader.publish(body, hashlib.sha256(body).hexdigest())
    starting.join(5)
    assert not starting.is_alive()
    assert member.snapshot_source == "fleet" and value(member) == "green"
    assert member_amp.requests("flags") == []


def test_read_only_member_never_downloads(make_fleet, amplitude, clients) -> None:
    # issue 14 pt 3: fetch=False serves what the fleet publishes and never contacts Amplitude for flags.
    leader_amp, reader_amp = amplitude(), amplitude()
    make_client(clients, leader_amp, make_fleet()).start()
    reader = make_client(clients, reader_amp, make_fleet(fetch=False))
    reader.start()
    leader_amp.set_flags([flag("green")])
    assert wait_for(lambda: value(reader) == "green", 3.0)
    clients[0].stop(2.0)  # even without a leader the reader keeps its flags and downloads nothing
    assert value(reader) == "green"
    assert reader_amp.requests("flags") == []


def test_each_assignment_is_sent_once_across_clients(make_fleet, amplitude, clients) -> None:
    # issue 14 pt 2: an insert_id claimed by one member is not sent by another; design.md §5 insert_ids.
    stand_in = amplitude()
    tracked = [make_client(clients, stand_in, make_fleet(), assignment_config=AssignmentConfig(
        api_key="analytics-fleet-key", server_url=stand_in.events_url, flush_queue_size=20)) for _ in range(2)]
    for client in tracked:
        client.start()
    users = [User(user_id=f"user-{i:03d}", device_id=f"device-{i:03d}") for i in range(60)]
    for user in users:
        for client in tracked:
            client.evaluate_v2(user)
    for client in tracked:
        assert client.flush(5.0)
    ids = stand_in.accepted_insert_ids()
    assert len(ids) == 60 and len(set(ids)) == 60
    sent = [client.stats()["events"]["sent"] for client in tracked]
    elsewhere = [client.stats()["events"]["dropped"].get("claimed_elsewhere", 0) for client in tracked]
    assert sum(sent) == 60 and sum(elsewhere) == 60


def test_redis_outage_falls_back_and_the_fleet_rejoins(make_fleet, amplitude, clients,
                                                       redis_server: RedisServer) -> None:
    # issue 14 pt 4: Redis down never breaks evaluate_v2 and loses no event; members rejoin afterwards.
    first_amp, second_amp = amplitude(), amplitude()
    fleets = [make_fleet(socket_timeout=0.1), make_fleet(socket_timeout=0.1)]
    first, second = (make_client(clients, amp, fleet, assignment_config=AssignmentConfig(
        api_key="analytics-fleet-key", server_url=first_amp.events_url, flush_queue_size=10))
        for amp, fleet in zip((first_amp, second_amp), fleets))
    first.start()
    second.start()
    assert second.snapshot_source == "fleet"

    redis_server.stop()
    second_amp.set_flags([flag("green")])  # only the second's own download can bring this
    assert wait_for(lambda: value(second) == "green", 5.0)
    assert value(first) == "blue"
    users = [User(user_id=f"outage-{i:02d}", device_id=f"device-{i:02d}") for i in range(10)]
    for user in users:
        first.evaluate_v2(user)
        second.evaluate_v2(user)
    assert first.flush(5.0) and second.flush(5.0)
    # Without Redis each member sends its own: nothing lost (Amplitude removes the duplicates by insert_id).
    assert len(first_amp.accepted_insert_ids()) == 20

    redis_server.start()
    sources = [fleet.flags(DEPLOYMENT) for fleet in fleets]
    assert wait_for(lambda: all(fleet.up for fleet in fleets) and sum(s.leading for s in sources) == 1, 6.0)
    leader = 0 if sources[0].leading else 1
    (first_amp, second_amp)[leader].set_flags([flag("red")])
    assert wait_for(lambda: value(first) == value(second) == "red", 5.0)


def test_stop_ends_the_fleet_thread_and_resigns(make_fleet, amplitude, clients, admin) -> None:
    import threading

    fleet = make_fleet()
    client = make_client(clients, amplitude(), fleet)
    client.start()
    assert "amplitude_experiment-fleet" in {t.name for t in threading.enumerate()}
    source = fleet.flags(DEPLOYMENT)
    assert admin.get(source.lease.key) is not None
    client.stop(2.0)
    assert "amplitude_experiment-fleet" not in {t.name for t in threading.enumerate()}
    assert admin.get(source.lease.key) is None


def test_a_leader_republishes_after_redis_lost_its_data(make_fleet, amplitude, clients, admin) -> None:
    # issue 14 pt 4: Redis restarted empty; the leader's re-polls answer 304, yet the fleet gets the config back.
    stand_in = amplitude()
    fleet = make_fleet()
    client = make_client(clients, stand_in, fleet)
    client.start()
    source = fleet.flags(DEPLOYMENT)
    assert client.snapshot is not None and source.current_version() == client.snapshot.digest
    admin.flushall()
    assert wait_for(lambda: source.current_version() == client.snapshot.digest, 3.0)  # type: ignore[union-attr]


def test_claims_of_undelivered_events_are_released_not_those_amplitude_rejected(make_fleet, amplitude) -> None:
    # issue 14 pt 2: "a claim whose send ultimately fails is released"; a 400 drop keeps its claim
    # (design.md §3: 400 events_with_invalid_id_lengths -> drop exactly those).
    import requests

    from amplitude_experiment.events.sender import EventSender

    stand_in = amplitude()
    claims = make_fleet().claims("analytics-fleet-key")

    class Item:
        def __init__(self, insert_id: str) -> None:
            self.insert_id = insert_id

        def build(self) -> Dict[str, Any]:
            return {"event_type": "x", "user_id": "user-long-enough", "insert_id": self.insert_id}

    with requests.Session() as session:
        sender = EventSender(session, stand_in.events_url, "analytics-fleet-key", max_retries=0, claims=claims)
        sender.start()
        stand_in.add_fault("events", status=503)
        assert sender.enqueue(Item("failed-1"))
        assert sender.flush(5.0)
        assert sender.stats()["dropped"] == {"max_retries": 1}
        assert claims.claim([("failed-1", 0)]) == [True]  # released: anyone may claim it again

        stand_in.add_fault("events", status=400, body={"code": 400, "error": "Request missing required field",
                                                       "events_with_invalid_id_lengths": {"user_id": [0]}})
        assert sender.enqueue(Item("rejected-1"))
        assert sender.flush(5.0)
        assert sender.stats()["dropped"] == {"max_retries": 1, "invalid_id_length": 1}
        assert claims.claim([("rejected-1", 0)]) == [False]  # still claimed: nobody resends it
        sender.stop(1.0)


def test_only_the_leader_streams(make_fleet, amplitude, clients) -> None:
    # issue 14 pt 1 ("about the same number of Amplitude requests as one"): followers open no stream.
    first_amp, second_amp = amplitude(), amplitude()
    first = make_client(clients, first_amp, make_fleet(), stream_updates=True, stream_server_url=first_amp.url)
    first.start()
    second = make_client(clients, second_amp, make_fleet(), stream_updates=True, stream_server_url=second_amp.url)
    second.start()
    assert first.snapshot_source == "stream" and second.snapshot_source == "fleet"
    first_amp.set_flags([flag("green")])
    assert wait_for(lambda: value(second) == "green", 3.0)
    assert len(first_amp.requests("stream")) == 1
    assert second_amp.requests("stream") == [] and second_amp.requests("flags") == []
