"""Flag delivery that survives: backoff, bootstrap, cache file, listeners, sessions, threads, fork.

Polling is driven by a ``ManualClock`` (``config.clock``): no test sleeps to wait for a poll.
"""

from __future__ import annotations

import json
import logging
import os
import pathlib
import sys
import threading
from typing import Any, Dict, Iterator, List, Optional, Set

import pytest
import requests

from amplitude_experiment import (
    AssignmentConfig,
    ConfigurationError,
    FetchError,
    FlagConfigError,
    LocalEvaluationClient,
    LocalEvaluationConfig,
    User,
)
from amplitude_experiment.evaluation import evaluate
from amplitude_experiment.flags import FlagStore
from amplitude_experiment.testing import AmplitudeStandIn, ManualClock, wait_for

from ..evaluation.helpers import targeted_flag

FLAGS = [targeted_flag("alpha", ...), targeted_flag("beta", [[{"selector": ["context", "user", "user_id"],
                                                             "op": "is", "values": ["vip-user"]}]])]
NEW_FLAGS = [targeted_flag("alpha", []), targeted_flag("gamma", ...)]


@pytest.fixture
def server() -> Iterator[AmplitudeStandIn]:
    with AmplitudeStandIn(flags=FLAGS) as stand_in:
        yield stand_in


def closed_port_url() -> str:
    with AmplitudeStandIn() as gone:
        url = gone.url
    return url  # nothing listens there any more: connections are refused


def make_client(server_url: str, **options: Any) -> LocalEvaluationClient:
    options.setdefault("flag_config_polling_interval_millis", 60_000)
    options.setdefault("flag_config_poller_request_timeout_millis", 500)
    return LocalEvaluationClient("server-key", LocalEvaluationConfig(server_url=server_url, **options))


def tick(clock: ManualClock) -> float:
    """Move the clock to the poller's next run and wait until that run is over; returns the wait."""
    assert clock.wait_for_sleepers(1)
    due = clock.next_deadline()
    assert due is not None
    clock.advance(due)
    assert clock.wait_for_sleepers(1)  # the poller sleeps again: its run is done
    return due


def keys(client: LocalEvaluationClient, user: Optional[User] = None) -> Dict[str, str]:
    return {k: v.key for k, v in client.evaluate_v2(user or User(user_id="user-1")).items()}


def test_failing_server_is_polled_at_backoff_pace_not_server_speed(server: AmplitudeStandIn) -> None:
    server.add_fault("flags", status=500, times=None)
    clock = ManualClock()
    client = make_client(server.url, flag_config_polling_interval_millis=10, clock=clock)
    with pytest.raises(FetchError):
        client.start()
    waits = [tick(clock) for _ in range(5)]
    client.stop()
    # Backoff steps 1, 2, 4, 4, 4 s (cap: max(4 s, 4 x interval)) with each wait in [step/2, step]:
    # a 10 ms interval would otherwise poll a failing server 100 times a second.
    for wait, step in zip(waits, [1, 2, 4, 4, 4]):
        assert step / 2 <= wait <= step, waits
    assert len(server.requests("flags")) == 1 + 5


def test_backoff_returns_to_the_interval_after_recovery(server: AmplitudeStandIn) -> None:
    clock = ManualClock()
    client = make_client(server.url, flag_config_polling_interval_millis=20_000, clock=clock)
    client.start()
    server.add_fault("flags", status=503, times=3)
    server.set_flags(NEW_FLAGS)
    assert tick(clock) == 20.0  # healthy: the interval (this run fails)
    assert 0.5 <= tick(clock) <= 1.0 and 1.0 <= tick(clock) <= 2.0  # failing: backoff
    assert "gamma" not in keys(client)
    assert 2.0 <= tick(clock) <= 4.0
    assert "gamma" in keys(client)  # the fourth run got through
    assert clock.next_deadline() == pytest.approx(20.0)  # healthy again: back to the interval (approx: the
    # clock reads 1000 + 20 + three random backoff waits, so now + 20 - now may differ in the last bits)
    assert len(server.requests("flags")) == 5
    client.stop()


@pytest.mark.parametrize("fault", [dict(status=500), dict(action="garbage"), dict(action="hang", delay=2.0),
                                   dict(status=200, body=b'{"flags": "not an array"}')])
def test_start_failure_without_cache_raises(server: AmplitudeStandIn, fault: Dict[str, Any]) -> None:
    server.add_fault("flags", **fault)
    client = make_client(server.url, flag_config_poller_request_timeout_millis=100, clock=ManualClock())
    with pytest.raises(FetchError):
        client.start()
    assert not client.is_ready
    client.stop()


def test_cache_file_is_written_and_used_when_start_fails(server: AmplitudeStandIn, tmp_path: pathlib.Path,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    cache = tmp_path / "flags.json"
    clock = ManualClock(epoch=1_800_000_000.0)
    with make_client(server.url, flag_cache_file=cache, clock=clock) as client:
        assert client.snapshot_source == "network"
    assert cache.read_bytes() == json.dumps(FLAGS, separators=(",", ":")).encode()  # the bytes as downloaded
    assert [p.name for p in tmp_path.iterdir()] == ["flags.json"]  # no temporary files left behind
    os.utime(cache, (1_800_000_000.0 - 3600, 1_800_000_000.0 - 3600))

    server.add_fault("flags", status=503, times=None)
    restarted = make_client(server.url, flag_cache_file=cache, clock=clock)
    with caplog.at_level(logging.WARNING, logger="amplitude_experiment"):
        restarted.start()  # no exception: it has real flags
    assert restarted.snapshot_source == "cache"
    assert restarted.snapshot_age == pytest.approx(3600, abs=0.01)
    assert keys(restarted, User(user_id="vip-user")) == {"alpha": "on", "beta": "on"}
    messages = [r.getMessage() for r in caplog.records]
    assert f"Evaluating with flags from the cache file {cache}, 3600 seconds old" in messages
    # the outage ends: the background refresh (first retry after a backoff wait) replaces the cached flags
    server.clear_faults("flags")
    server.set_flags(NEW_FLAGS)
    assert 0.5 <= tick(clock) <= 1.0
    assert restarted.snapshot_source == "network"
    assert keys(restarted) == {"alpha": "off", "gamma": "on"}
    assert json.loads(cache.read_bytes()) == NEW_FLAGS
    restarted.stop()


def test_unusable_cache_file_falls_back_to_the_error(server: AmplitudeStandIn, tmp_path: pathlib.Path) -> None:
    cache = tmp_path / "flags.json"
    cache.write_text("{ truncated")
    server.add_fault("flags", status=500, times=None)
    client = make_client(server.url, flag_cache_file=cache)
    with pytest.raises(FetchError):
        client.start()
    client.stop()


def test_offline_bootstrap_makes_no_request() -> None:
    url = closed_port_url()
    clock = ManualClock()
    with make_client(url, offline=True, bootstrap_flags=FLAGS, clock=clock) as client:
        assert client.snapshot_source == "bootstrap"
        assert keys(client, User(user_id="vip-user")) == {"alpha": "on", "beta": "on"}
        assert clock.sleepers == 0  # no poller waiting for its next run


def test_bootstrap_file_and_json_text(tmp_path: pathlib.Path, server: AmplitudeStandIn) -> None:
    path = tmp_path / "boot.json"
    path.write_text(json.dumps(NEW_FLAGS))
    with make_client(closed_port_url(), offline=True, bootstrap_file=path) as client:
        assert keys(client) == {"alpha": "off", "gamma": "on"}
    with make_client(closed_port_url(), offline=True, bootstrap_flags=json.dumps(NEW_FLAGS)) as client:
        assert keys(client) == {"alpha": "off", "gamma": "on"}
    # bootstrap first, then the network replaces it
    with make_client(server.url, bootstrap_flags=NEW_FLAGS) as client:
        assert client.snapshot_source == "network"
        assert keys(client) == {"alpha": "on", "beta": "off"}
    # bootstrap and a dead network: start() succeeds with the bootstrap flags
    with make_client(closed_port_url(), bootstrap_flags=NEW_FLAGS) as client:
        assert client.snapshot_source == "bootstrap"


def test_bad_bootstrap_is_a_clear_error(tmp_path: pathlib.Path) -> None:
    with pytest.raises(FlagConfigError, match="JSON array"):
        make_client(closed_port_url(), offline=True, bootstrap_flags='{"not": "a list"}').start()
    with pytest.raises(FlagConfigError, match="cannot read bootstrap_file"):
        make_client(closed_port_url(), offline=True, bootstrap_file=tmp_path / "missing.json").start()
    with pytest.raises(ConfigurationError, match="offline=True needs bootstrap_flags or bootstrap_file"):
        LocalEvaluationConfig(offline=True)


def test_listeners_hear_changed_flag_keys(server: AmplitudeStandIn) -> None:
    clock = ManualClock()
    changes: List[Set[str]] = []
    client = make_client(server.url, clock=clock)
    client.add_flags_listener(changes.append)
    client.add_flags_listener(lambda changed: 1 / 0)  # a broken listener harms nothing
    client.start()
    server.set_flags(NEW_FLAGS)
    tick(clock)
    for _ in range(3):
        tick(clock)  # unchanged polls: none may notify
    client.stop()
    assert len(server.requests("flags")) == 5
    # beta removed, gamma added, alpha modified (its targeting changed)
    assert changes == [{"alpha", "beta"}, {"alpha", "beta", "gamma"}]


def test_user_session_is_used_and_never_closed(server: AmplitudeStandIn) -> None:
    session = requests.Session()
    session.headers["X-Corp-Proxy-Auth"] = "token"
    with make_client(server.url, session=session) as client:
        assert client.is_ready
    assert server.requests("flags")[0].header("X-Corp-Proxy-Auth") == "token"
    assert session.get(server.url + "/sdk/v2/flags", timeout=5).status_code == 200  # still usable
    session.close()


def test_proxy_environment_variables_are_honoured(server: AmplitudeStandIn, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", server.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with make_client("http://flags.invalid") as client:
        assert client.is_ready
    (request,) = server.requests("flags")
    assert request.path == "/sdk/v2/flags"
    assert request.header("Host") == "flags.invalid"


def test_evaluations_see_exactly_one_snapshot_while_configs_swap() -> None:
    def config(version: int) -> bytes:
        variants = {"v": {"key": "v", "value": str(version)}}
        return json.dumps([{"key": f"f{i}", "variants": variants, "segments": [{"variant": "v"}]}
                           for i in range(10)]).encode()

    store = FlagStore()
    store.publish(config(0), "bootstrap")
    stop = threading.Event()
    errors: List[BaseException] = []
    seen: Set[str] = set()

    def read() -> None:
        try:
            while not stop.is_set():
                values = {v.value for v in evaluate(store.current.flags, User(user_id="u")).values()}  # type: ignore
                assert len(values) == 1, values
                seen.update(values)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    readers = [threading.Thread(target=read) for _ in range(8)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(0.0001)  # switch threads often, so swaps land in the middle of evaluations
    try:
        for t in readers:
            t.start()
        for version in range(1, 121):
            store.publish(config(version), "stream")
        stop.set()
        for t in readers:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert errors == []
    assert store.current is not None and store.current.flags.fingerprints["f0"] is not None
    assert len(seen) > 2  # the readers really ran while configs swapped


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Python 3.12+ warns about fork with threads
def test_fork_child_refreshes_and_sends_its_own_events(server: AmplitudeStandIn) -> None:
    clock = ManualClock()  # in the child, a copy with none of the parent's sleepers
    config = LocalEvaluationConfig(
        server_url=server.url,
        flag_config_polling_interval_millis=1_000,  # the child's first refresh comes within one interval
        assignment_config=AssignmentConfig(api_key="analytics-key", server_url=server.url + "/2/httpapi",
                                           flush_interval_millis=3_600_000, flush_queue_size=1000),
        clock=clock,
    )
    client = LocalEvaluationClient("server-key", config)
    client.start()
    for i in range(5):
        client.evaluate_v2(User(user_id=f"parent-user-{i}"))
    assert client.stats()["events"]["queue_depth"] == 5  # queued in the parent, not sent yet
    server.set_flags(NEW_FLAGS)

    pid = os.fork()
    if pid == 0:  # the child: report through the exit code only
        code = 1
        try:
            code = 2
            if keys(client) != {"alpha": "on", "beta": "off"}:  # inherited snapshot still there
                os._exit(code)
            code = 3
            # The child's own poller and event sender (the parent's threads did not survive the fork);
            # the poller's first wait is within one interval (jittered, so forked workers spread out).
            first_refresh = clock.next_deadline() if clock.wait_for_sleepers(2) else None
            if first_refresh is None or not 0 < first_refresh <= 1.0:
                os._exit(code)
            clock.advance(first_refresh)  # the child refreshes on its own
            code = 6
            if not wait_for(lambda: "gamma" in keys(client), timeout=10):
                os._exit(code)
            code = 4
            client.evaluate_v2(User(user_id="child-user-1"))
            client.stop(10)
            stats = client.stats()["events"]
            # user-1 before and after the refresh, and child-user-1; nothing of the parent's
            code = 0 if stats["sent"] == 3 and stats["dropped"] == {} else 5
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    client.stop(10)
    users = sorted(e["user_id"] for e in server.events)
    assert users == ["child-user-1"] + [f"parent-user-{i}" for i in range(5)] + ["user-1", "user-1"]
    assert len(set(server.accepted_insert_ids())) == 8
