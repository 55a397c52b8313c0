"""Flag delivery that survives: backoff, bootstrap, cache file, listeners, sessions, threads, fork."""

from __future__ import annotations

import json
import logging
import os
import pathlib
import sys
import threading
import time
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
from amplitude_experiment.testing import AmplitudeStandIn, wait_for

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


def keys(client: LocalEvaluationClient, user: Optional[User] = None) -> Dict[str, str]:
    return {k: v.key for k, v in client.evaluate_v2(user or User(user_id="user-1")).items()}


def test_failing_server_is_polled_at_backoff_pace_not_server_speed(server: AmplitudeStandIn) -> None:
    server.add_fault("flags", status=500, times=None)
    client = make_client(server.url, flag_config_polling_interval_millis=10)
    began = time.monotonic()
    with pytest.raises(FetchError):
        client.start()
    time.sleep(2.5)  # measuring a rate over a fixed window, not synchronising
    client.stop()
    elapsed = time.monotonic() - began
    # backoff steps 1, 2, 4 s with waits in [step/2, step]: at most 4 attempts in 2.5 s;
    # without backoff a 10 ms interval would have made ~250
    assert 2 <= len(server.requests("flags")) <= 4, (len(server.requests("flags")), elapsed)
    server.clear_faults("flags")


def test_backoff_returns_to_the_interval_after_recovery(server: AmplitudeStandIn) -> None:
    client = make_client(server.url, flag_config_polling_interval_millis=20)
    client._updater.poller._backoff.base = client._updater.poller._backoff.cap = 0.05
    client.start()
    server.add_fault("flags", status=503, times=3)
    server.set_flags(NEW_FLAGS)
    assert wait_for(lambda: "gamma" in keys(client), timeout=5)
    assert client._updater.poller.failures == 0
    before = len(server.requests("flags"))
    assert wait_for(lambda: len(server.requests("flags")) >= before + 5, timeout=2)  # 20 ms pace again
    client.stop()


@pytest.mark.parametrize("fault", [dict(status=500), dict(action="garbage"), dict(action="hang", delay=2.0),
                                   dict(status=200, body=b'{"flags": "not an array"}')])
def test_start_failure_without_cache_raises(server: AmplitudeStandIn, fault: Dict[str, Any]) -> None:
    server.add_fault("flags", **fault)
    client = make_client(server.url)
    with pytest.raises(FetchError):
        client.start()
    assert not client.is_ready
    client.stop()


def test_cache_file_is_written_and_used_when_start_fails(server: AmplitudeStandIn, tmp_path: pathlib.Path,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    cache = tmp_path / "flags.json"
    with make_client(server.url, flag_cache_file=cache) as client:
        assert client.snapshot_source == "network"
    assert json.loads(cache.read_bytes()) == FLAGS
    assert [p.name for p in tmp_path.iterdir()] == ["flags.json"]  # no temporary files left behind
    old = time.time() - 3600
    os.utime(cache, (old, old))

    server.add_fault("flags", status=503, times=None)
    restarted = make_client(server.url, flag_cache_file=cache)
    with caplog.at_level(logging.WARNING, logger="amplitude_experiment"):
        restarted.start()  # no exception: it has real flags
    assert restarted.snapshot_source == "cache"
    assert 3590 < (restarted.snapshot_age or 0) < 3700
    assert keys(restarted, User(user_id="vip-user")) == {"alpha": "on", "beta": "on"}
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith(f"Evaluating with flags from the cache file {cache}, 36") for m in messages)
    # the outage ends: the background refresh replaces the cached flags
    restarted._updater.poller._backoff.base = restarted._updater.poller._backoff.cap = 0.05
    server.clear_faults("flags")
    server.set_flags(NEW_FLAGS)
    restarted._updater.poller.poll_now()
    assert wait_for(lambda: restarted.snapshot_source == "network", timeout=5)
    assert keys(restarted) == {"alpha": "off", "gamma": "on"}
    assert wait_for(lambda: json.loads(cache.read_bytes()) == NEW_FLAGS)
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
    with make_client(url, offline=True, bootstrap_flags=FLAGS) as client:
        assert client.snapshot_source == "bootstrap"
        assert keys(client, User(user_id="vip-user")) == {"alpha": "on", "beta": "on"}
        assert not client._updater.poller.running


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
    changes: List[Set[str]] = []
    client = make_client(server.url, flag_config_polling_interval_millis=20)
    client.add_flags_listener(changes.append)
    client.add_flags_listener(lambda changed: 1 / 0)  # a broken listener harms nothing
    client.start()
    server.set_flags(NEW_FLAGS)
    assert wait_for(lambda: len(changes) == 2)
    time.sleep(0.1)  # several unchanged polls happen here; none may notify
    client.stop()
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


def test_evaluations_see_exactly_one_snapshot_while_configs_swap_every_millisecond() -> None:
    def config(version: int) -> List[Dict[str, Any]]:
        variants = {"v": {"key": "v", "value": str(version)}}
        return [{"key": f"f{i}", "variants": variants, "segments": [{"variant": "v"}]} for i in range(10)]

    store = FlagStore()
    store.publish(config(0), b"0", "bootstrap")
    stop = threading.Event()
    errors: List[BaseException] = []
    seen: Set[str] = set()

    def swap() -> None:
        version = 1
        while not stop.is_set():
            store.publish(config(version), str(version).encode(), "stream")
            version += 1
            time.sleep(0.001)

    def read() -> None:
        try:
            while not stop.is_set():
                values = {v.value for v in evaluate(store.current.flags, User(user_id="u")).values()}  # type: ignore
                assert len(values) == 1, values
                seen.update(values)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=read) for _ in range(16)] + [threading.Thread(target=swap)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(0.0001)  # let the swapping thread in often despite 16 busy readers
    try:
        for t in threads:
            t.start()
        time.sleep(1.0)  # the length of the run, not a synchronisation
        stop.set()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert errors == []
    assert len(seen) > 20


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Python 3.12+ warns about fork with threads
def test_fork_child_refreshes_and_sends_its_own_events(server: AmplitudeStandIn) -> None:
    config = LocalEvaluationConfig(
        server_url=server.url,
        flag_config_polling_interval_millis=60_000,
        assignment_config=AssignmentConfig(api_key="analytics-key", server_url=server.url + "/2/httpapi",
                                           flush_interval_millis=3_600_000, flush_queue_size=1000),
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
            if not wait_for(lambda: "gamma" in keys(client), timeout=10):  # it refreshes on its own
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
