"""FlagUpdater and FlagStore: forked workers' jittered refresh, unchanged re-polls, the publish rules."""

from __future__ import annotations

import json
import logging
from typing import Any, Iterator, List, Set
from unittest import mock

import pytest
import requests

from amplitude_experiment import LocalEvaluationConfig
from amplitude_experiment.exceptions import FlagConfigError
from amplitude_experiment.flags import FlagStore
from amplitude_experiment.flags.updater import FlagUpdater
from amplitude_experiment.testing import AmplitudeStandIn, ManualClock

from ..evaluation.helpers import targeted_flag

FLAGS = [targeted_flag("alpha", ...), targeted_flag("beta", ...)]


@pytest.fixture
def server() -> Iterator[AmplitudeStandIn]:
    with AmplitudeStandIn(flags=FLAGS) as stand_in:
        yield stand_in


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s


def body(flags: object) -> bytes:
    return json.dumps(flags).encode()


@pytest.mark.parametrize("draw", [0.01, 0.25, 0.999])
def test_a_forked_worker_refreshes_at_a_jittered_point_of_the_interval(
        server: AmplitudeStandIn, session: requests.Session, draw: float) -> None:
    # issue 10 point 8: workers forked together (gunicorn --preload) keep the parent's snapshot and
    # spread their first refresh over the polling interval instead of all downloading at once.
    clock = ManualClock()
    config = LocalEvaluationConfig(server_url=server.url, flag_config_polling_interval_millis=30_000, clock=clock)
    store = FlagStore(clock=clock)
    store.publish(body(FLAGS), "network")  # inherited from the parent
    updater = FlagUpdater(store, session, config, "server-key", random_fn=lambda: draw)
    updater.restart_background()
    try:
        assert clock.wait_for_sleepers(1)
        assert clock.next_deadline() == pytest.approx(30.0 * draw)
        assert server.requests("flags") == []  # nothing the instant it forks
        clock.advance(clock.next_deadline() or 0.0)
        assert clock.wait_for_sleepers(1)
        assert len(server.requests("flags")) == 1
        assert clock.next_deadline() == 30.0  # then the usual interval
    finally:
        updater.stop(1.0)


def test_an_unchanged_body_is_recognised_before_it_is_decoded() -> None:
    store = FlagStore()
    first = store.publish(body(FLAGS), "network")
    with mock.patch("amplitude_experiment.flags.store.iter_entries", side_effect=AssertionError("decoded")):
        again = store.publish(body(FLAGS), "network")
    assert again.flags is first.flags and again.digest == first.digest


def test_listeners_get_exactly_the_changed_keys() -> None:
    store = FlagStore()
    changes: List[Set[str]] = []
    store.add_listener(changes.append)
    store.publish(body(FLAGS), "network")
    # same content, other formatting: no change; alpha modified, beta removed, gamma added
    store.publish(json.dumps(FLAGS, indent=1).encode(), "network")
    store.publish(body([targeted_flag("alpha", []), targeted_flag("gamma", ...)]), "network")
    assert changes[0] == {"alpha", "beta"}
    assert changes[-1] == {"alpha", "beta", "gamma"}


def test_a_rejected_config_leaves_the_current_snapshot(caplog: pytest.LogCaptureFixture) -> None:
    store = FlagStore()
    good = store.publish(body(FLAGS), "network")
    for bad in ([None], [{}], [1, 2, 3]):
        with pytest.raises(FlagConfigError, match=f"all {len(bad)} flag entries were rejected"):
            store.publish(body(bad), "network")
        assert store.current is good
    with pytest.raises(FlagConfigError, match="nested too deeply"):
        store.publish(b"[" * 100_000, "network")
    assert store.current is good


def test_the_compiled_snapshot_keeps_no_raw_json() -> None:
    store = FlagStore()
    snapshot = store.publish(body(FLAGS), "network")
    compiled = snapshot.flags
    assert not hasattr(compiled, "raw") and not hasattr(compiled.flags["alpha"], "raw")


def test_the_cache_file_holds_the_bytes_as_downloaded(server: AmplitudeStandIn, session: requests.Session,
                                                      tmp_path: "object", caplog: pytest.LogCaptureFixture) -> None:
    import pathlib

    path = pathlib.Path(str(tmp_path)) / "flags.json"
    pretty = json.dumps(FLAGS, indent=2).encode()
    server.set_flags_raw(pretty)
    config = LocalEvaluationConfig(server_url=server.url, flag_cache_file=path, clock=ManualClock())
    updater = FlagUpdater(FlagStore(), session, config, "server-key")
    with caplog.at_level(logging.WARNING):
        updater.start()
    updater.stop(1.0)
    assert path.read_bytes() == pretty


def test_confirm_refreshes_the_age_and_source_of_the_same_flags() -> None:
    clock = ManualClock()
    store = FlagStore(clock=clock)
    assert store.confirm("network") is None  # nothing to confirm yet
    first = store.publish(body(FLAGS), "cache", age=30.0)
    assert first.age() == 30.0
    clock.advance(5.0)
    confirmed = store.confirm("network")
    assert confirmed is store.current and confirmed is not None
    assert (confirmed.flags, confirmed.digest, confirmed.source, confirmed.age()) == (
        first.flags, first.digest, "network", 0.0)


def test_a_flag_file_that_cannot_be_replaced_leaves_no_temporary_file(tmp_path: Any) -> None:
    from amplitude_experiment.flags.cache import write_flag_file

    target = tmp_path / "flags.json"
    target.mkdir()  # a directory where the file should go: os.replace fails
    with pytest.raises(OSError):
        write_flag_file(target, b"[]")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flags.json"]
