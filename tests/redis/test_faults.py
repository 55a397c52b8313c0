"""Redis down, slow, killed and restarted: callers get fallbacks at once, one log line each way (issue 14 point 4)."""

from __future__ import annotations

import hashlib
import logging
import socket
import threading
import time

import pytest

from amplitude_experiment.redis import RedisFleet
from amplitude_experiment.redis._link import describe_url
from amplitude_experiment.testing import ManualClock

from .conftest import wait_for

DEPLOYMENT = "server-SECRETdeploymentKEY"
API_KEY = "SECRETanalyticsAPIkey"
BODY = b'[{"key":"a","variants":{},"segments":[]}]'
DIGEST = hashlib.sha256(BODY).hexdigest()[:20]
ITEMS = [("u1 d1 1 19675", 19675), ("u2 d2 2 19675", 19675)]
#: The documented bound on any call (socket timeout) plus scheduling slack on a busy machine.
BOUND = 0.25 + 0.35


def _records(caplog, level):
    return [r for r in caplog.records if r.name.startswith("amplitude_experiment.redis") and r.levelno == level]


def _timed(fn):
    started = time.monotonic()
    result = fn()
    return result, time.monotonic() - started


def test_redis_down_every_call_answers_its_fallback_fast_and_one_warning(make_fleet, redis_server, caplog):
    caplog.set_level(logging.DEBUG, logger="amplitude_experiment.redis")
    fleet = make_fleet()
    reader = make_fleet(fetch=False)
    flags, cohorts, claims = fleet.flags(DEPLOYMENT), fleet.cohorts(API_KEY), fleet.claims(API_KEY)
    assert flags.try_lead() and reader.flags(DEPLOYMENT).current_version() is None  # connected and healthy
    redis_server.stop()
    for _ in range(3):
        # Events are never lost: every claim is ours while the fleet cannot tell.
        assert _timed(lambda: claims.claim(ITEMS))[0] == [True, True]
        # A fetching member falls back to its own downloads; a read-only one never downloads.
        assert flags.try_lead() is True
        assert reader.flags(DEPLOYMENT).try_lead() is False
        assert reader.flags(DEPLOYMENT).current_version() is None
        assert flags.publish(BODY, DIGEST) is False
        assert flags.current_version() is None and flags.latest() is None
        assert cohorts.publish("c1", 1, b"x") is False
        assert cohorts.versions(["c1"]) == {} and cohorts.get("c1") is None
        claims.release(["u1 d1 1 19675"])
        flags.resign()
    for call in (lambda: claims.claim(ITEMS), flags.try_lead, flags.current_version):
        assert _timed(call)[1] < BOUND
    assert not fleet.up
    warnings = _records(caplog, logging.WARNING)
    assert len(warnings) == 2  # one per RedisFleet (connection pool), not one per call
    text = warnings[0].getMessage()
    assert f"127.0.0.1:{redis_server.port}/0" in text and "unreachable" in text and "retrying" in text
    assert DEPLOYMENT not in caplog.text and API_KEY not in caplog.text

    redis_server.start()
    assert wait_for(lambda: flags.current_version() is None and fleet.up, timeout=5.0)
    assert claims.claim(ITEMS[:1]) == [True]  # the restarted Redis starts empty
    assert claims.claim(ITEMS[:1]) == [False]
    infos = [r for r in _records(caplog, logging.INFO) if "reachable again" in r.getMessage()]
    assert len(infos) == 1
    assert len(_records(caplog, logging.WARNING)) == 2  # no new warning after recovery


def test_reconnect_waits_for_the_backoff_then_rejoins(make_fleet, redis_server, admin, caplog):
    caplog.set_level(logging.DEBUG, logger="amplitude_experiment.redis")
    clock = ManualClock()
    fleet = make_fleet(clock=clock)
    claims = fleet.claims(API_KEY)
    assert claims.claim(ITEMS[:1]) == [True]
    redis_server.stop()
    assert claims.claim(ITEMS[1:]) == [True]  # the failure starts the outage
    clock.advance(0.5)  # the first backoff step is at most 0.5 s
    assert claims.claim(ITEMS[1:]) == [True]  # a second failed attempt: debug, not another warning
    assert len(_records(caplog, logging.WARNING)) == 1
    assert any("2 in a row" in r.getMessage() for r in _records(caplog, logging.DEBUG))
    redis_server.start()
    # Within the backoff no call goes to Redis, even though it is back.
    assert claims.claim(ITEMS[1:]) == [True]
    assert admin.exists(claims.key(ITEMS[1][0])) == 0
    assert not fleet.up
    clock.advance(1.0)  # the second step is at most 1 s
    assert claims.claim(ITEMS[1:]) == [True]
    assert admin.exists(claims.key(ITEMS[1][0])) == 1
    assert fleet.up
    assert claims.claim(ITEMS[1:]) == [False]


def test_slow_redis_never_blocks_past_the_socket_timeout(make_fleet, admin):
    fleet = make_fleet(socket_timeout=0.2)
    claims, flags = fleet.claims(API_KEY), fleet.flags(DEPLOYMENT)
    assert claims.claim(ITEMS[:1]) == [True]
    admin.execute_command("CLIENT", "PAUSE", "2000", "WRITE")
    try:
        result, took = _timed(lambda: claims.claim(ITEMS[1:]))
        assert result == [True]
        assert 0.15 < took < 0.2 + 0.35
        assert _timed(flags.try_lead) == (True, pytest.approx(0, abs=0.1))  # in backoff: instant fallback
    finally:
        admin.execute_command("CLIENT", "UNPAUSE")


def test_unreachable_wait_for_version_waits_its_timeout_then_resubscribes(make_fleet, redis_server):
    leader = make_fleet().flags(DEPLOYMENT)
    follower_fleet = make_fleet()
    follower = follower_fleet.flags(DEPLOYMENT)
    assert follower.wait_for_version(None, 0.01) is None  # subscribed
    redis_server.stop()
    result, took = _timed(lambda: follower.wait_for_version(None, 0.3))
    assert result is None and 0.29 <= took < 0.3 + BOUND  # no spinning while down
    redis_server.start()
    assert wait_for(lambda: follower.wait_for_version(None, 0.05) is None and follower_fleet.up, 5.0)
    seen = []
    thread = threading.Thread(target=lambda: seen.append(follower.wait_for_version(None, 5.0)))
    thread.start()
    assert wait_for(lambda: leader.try_lead() and leader.publish(BODY, DIGEST), 5.0)
    thread.join(5)
    assert seen == [DIGEST]


def test_killed_and_restarted_redis_the_lease_is_taken_again(make_fleet, redis_server, admin):
    fleet = make_fleet(lease_millis=500)
    flags = fleet.flags(DEPLOYMENT)
    assert flags.try_lead()
    redis_server.restart()  # no persistence: the lease and the config are gone
    assert wait_for(lambda: flags.try_lead() and fleet.up and admin.get(flags.lease.key) is not None, 5.0)
    assert admin.get(flags.lease.key) == flags.lease.token.encode()
    assert flags.publish(BODY, DIGEST)
    assert flags.latest() == (DIGEST, BODY)


def test_keys_and_channels_never_contain_a_key_and_prefixes_keep_deployments_apart(make_fleet, admin, prefix):
    fleet = make_fleet()
    flags, cohorts, claims = fleet.flags(DEPLOYMENT), fleet.cohorts(API_KEY), fleet.claims(API_KEY)
    assert flags.try_lead() and flags.publish(BODY, DIGEST) and cohorts.try_lead()
    assert cohorts.publish("c1", 1, b"m") and claims.claim(ITEMS) == [True, True]
    assert flags.wait_for_version(None, 0.01) == DIGEST  # subscribes
    names = [k.decode() for k in admin.keys("*")] + [c.decode() for c in admin.pubsub_channels()]
    assert len(names) == 7  # 2 leases, flags, cohort, 2 claims, 1 channel
    secrets = [DEPLOYMENT, API_KEY, hashlib.sha256(DEPLOYMENT.encode()).hexdigest(),
               hashlib.sha256(API_KEY.encode()).hexdigest()]
    for name in names:
        assert name.startswith(prefix + ":"), name
        assert not any(secret in name for secret in secrets), name
        assert "SECRET" not in name.upper()
    # Another prefix on the same Redis: a different deployment of the same keys sees none of it.
    other = make_fleet(prefix=prefix + "-other")
    assert other.flags(DEPLOYMENT).current_version() is None
    assert other.flags(DEPLOYMENT).try_lead() is True
    assert other.claims(API_KEY).claim(ITEMS) == [True, True]
    assert other.cohorts(API_KEY).versions(["c1"]) == {}


def test_log_lines_never_show_the_url_password(caplog):
    caplog.set_level(logging.WARNING, logger="amplitude_experiment.redis")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Nothing listens on ``port`` now: connection refused.
    fleet = RedisFleet(f"redis://user:hunter2@127.0.0.1:{port}/3", "p")
    try:
        assert fleet.claims(API_KEY).claim(ITEMS) == [True, True]
        assert "hunter2" not in repr(fleet)
        assert caplog.records and all("hunter2" not in r.getMessage() for r in caplog.records)
        assert f"127.0.0.1:{port}/3" in caplog.records[0].getMessage()
    finally:
        fleet.close()
    assert describe_url("rediss://:pw@cache.internal:6380/2") == "cache.internal:6380/2"
    assert describe_url("redis://localhost") == "localhost:6379/0"


def test_constructor_validates_its_arguments():
    with pytest.raises(TypeError):
        RedisFleet(None)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        RedisFleet("redis://127.0.0.1:1/0", prefix="")
    with pytest.raises(ValueError):
        RedisFleet("redis://127.0.0.1:1/0", lease_millis=0)
    with pytest.raises(ValueError):
        RedisFleet("redis://127.0.0.1:1/0", socket_timeout=0)
