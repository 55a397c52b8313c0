"""Shared flag configs: leader publishes, versions by digest, followers learn within a second (issue 14 pt 1)."""

from __future__ import annotations

import hashlib
import threading
import time
from typing import List, Optional

import pytest

from amplitude_experiment.flags.shared import SharedFlagSource

DEPLOYMENT = "server-deploymentKEY0001"
BODY_1 = b'[{"key":"a","variants":{"on":{"key":"on"}},"segments":[{"variant":"on"}]}]'
BODY_2 = b'[{"key":"a","variants":{"off":{"key":"off"}},"segments":[{"variant":"off"}]}]'


def digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()[:20]


def test_is_a_shared_flag_source(make_fleet):
    assert isinstance(make_fleet().flags(DEPLOYMENT), SharedFlagSource)


def test_leader_publishes_and_followers_read_the_same_bytes(make_fleet):
    leader = make_fleet().flags(DEPLOYMENT)
    follower = make_fleet().flags(DEPLOYMENT)
    assert follower.current_version() is None and follower.latest() is None
    assert leader.try_lead()
    assert leader.publish(BODY_1, digest(BODY_1)) is True
    assert follower.current_version() == digest(BODY_1)
    assert follower.latest() == (digest(BODY_1), BODY_1)
    assert leader.publish(BODY_2, digest(BODY_2)) is True
    assert follower.latest() == (digest(BODY_2), BODY_2)


def test_only_the_lease_holder_publishes(make_fleet):
    leader = make_fleet().flags(DEPLOYMENT)
    other = make_fleet().flags(DEPLOYMENT)
    assert leader.try_lead() and not other.try_lead()
    assert leader.publish(BODY_1, digest(BODY_1))
    assert other.publish(BODY_2, digest(BODY_2)) is False
    assert other.latest() == (digest(BODY_1), BODY_1)


def test_a_stalled_former_leader_cannot_overwrite_its_successor(make_fleet):
    from .conftest import wait_for

    old = make_fleet(lease_millis=100).flags(DEPLOYMENT)
    new = make_fleet(lease_millis=100).flags(DEPLOYMENT)
    assert old.try_lead()
    assert wait_for(new.try_lead, 2.0)  # old stopped renewing (stalled); new took over
    assert new.publish(BODY_2, digest(BODY_2))
    assert old.publish(BODY_1, digest(BODY_1)) is False  # fenced by the lease token in the script
    assert new.latest() == (digest(BODY_2), BODY_2)


def test_publish_rejects_a_digest_that_is_not_the_bodys(make_fleet):
    source = make_fleet().flags(DEPLOYMENT)
    assert source.try_lead()
    with pytest.raises(ValueError):
        source.publish(BODY_1, digest(BODY_2))
    with pytest.raises(ValueError):
        source.publish(BODY_1, digest(BODY_1)[:8])  # too short to identify a version
    with pytest.raises(TypeError):
        source.publish("text", digest(BODY_1))  # type: ignore[arg-type]


def test_unchanged_republish_sends_no_notification(make_fleet, admin):
    leader = make_fleet().flags(DEPLOYMENT)
    pubsub = admin.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(leader.channel)
    assert leader.try_lead()
    for _ in range(3):
        assert leader.publish(BODY_1, digest(BODY_1))
    messages = []
    deadline = time.monotonic() + 0.3  # a repeated notification would arrive well within this
    while time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.05)
        if message is not None:
            messages.append(message["data"])
    pubsub.close()
    assert messages == [digest(BODY_1).encode()]


def test_follower_learns_a_new_version_within_a_second(make_fleet):
    leader = make_fleet().flags(DEPLOYMENT)
    follower = make_fleet().flags(DEPLOYMENT)
    assert leader.try_lead() and leader.publish(BODY_1, digest(BODY_1))
    # Known version current: the wait blocks until news arrives.
    assert follower.wait_for_version(digest(BODY_1), 0.05) == digest(BODY_1)
    seen: List[Optional[str]] = []
    waited: List[float] = []
    subscribed = threading.Event()

    def follow() -> None:
        started = time.monotonic()
        subscribed.set()
        seen.append(follower.wait_for_version(digest(BODY_1), 5.0))
        waited.append(time.monotonic() - started)

    thread = threading.Thread(target=follow)
    thread.start()
    subscribed.wait(5)
    published_at = time.monotonic()
    assert leader.publish(BODY_2, digest(BODY_2))
    thread.join(5)
    assert seen == [digest(BODY_2)]
    assert time.monotonic() - published_at < 1.0
    assert waited[0] < 1.0


def test_wait_returns_at_once_when_the_fleet_already_has_another_version(make_fleet):
    leader = make_fleet().flags(DEPLOYMENT)
    follower = make_fleet().flags(DEPLOYMENT)
    assert leader.try_lead() and leader.publish(BODY_2, digest(BODY_2))
    started = time.monotonic()
    assert follower.wait_for_version(None, 5.0) == digest(BODY_2)
    assert follower.wait_for_version(digest(BODY_1), 5.0) == digest(BODY_2)
    assert time.monotonic() - started < 0.5


def test_wait_times_out_with_the_current_version_and_stops_on_request(make_fleet):
    follower = make_fleet().flags(DEPLOYMENT)
    started = time.monotonic()
    assert follower.wait_for_version(None, 0.15) is None
    assert 0.14 <= time.monotonic() - started < 1.0
    stop = threading.Event()
    stop.set()
    started = time.monotonic()
    assert follower.wait_for_version(None, 5.0, stop=stop) is None
    assert time.monotonic() - started < 0.5
