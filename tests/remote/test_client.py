"""RemoteEvaluationClient: arguments, async fetches, the pooled session, lifecycle (issue 11, points 1, 2, 5)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import pickle
import threading
from typing import Any, List, Tuple

import pytest
import requests
import responses

from amplitude_experiment import (
    Experiment,
    FetchException,
    FetchOptions,
    RemoteEvaluationClient,
    RemoteEvaluationConfig,
    User,
)

from .helpers import KEY, SERVER, VARDATA, RecordingClock

OK = {"flag": {"key": "on", "value": "on"}, "old": {"key": "off", "metadata": {"default": True, "deployed": False}}}


def _client(**config: Any) -> RemoteEvaluationClient:
    return RemoteEvaluationClient(KEY, RemoteEvaluationConfig(server_url=SERVER, clock=RecordingClock(), **config))


def _ok(times: int = 1) -> None:
    for _ in range(times):
        responses.add(responses.POST, VARDATA, json=OK)


@pytest.mark.parametrize("bad", [None, {"user_id": "u"}, "u1"])
def test_a_user_that_is_not_a_user_is_a_type_error(bad: Any) -> None:
    with _client() as client:
        for call in (client.fetch_v2, client.fetch_async_v2):
            with pytest.raises(TypeError, match="User"):
                call(bad)
        with pytest.raises(TypeError, match="User"), pytest.deprecated_call():
            client.fetch(bad)
        with pytest.raises(TypeError, match="User"):
            asyncio.run(client.afetch_v2(bad))
        with pytest.raises(TypeError, match="FetchOptions"):
            client.fetch_v2(User(user_id="u"), {"flagKeys": ["a"]})  # type: ignore[arg-type]


@responses.activate
def test_fetch_async_v2_calls_back_with_user_and_variants_on_a_pool_thread() -> None:
    _ok()
    calls: List[Tuple[Any, ...]] = []
    threads: List[str] = []
    user = User(user_id="u")

    def callback(*args: Any) -> None:
        calls.append(args)
        threads.append(threading.current_thread().name)

    with _client() as client:
        future = client.fetch_async_v2(user, callback)
        variants = future.result(timeout=5)
    assert list(variants) == ["flag", "old"]
    ((called_user, called_variants),) = calls
    assert called_user is user and called_variants is variants
    assert threads[0].startswith("amplitude_experiment-remote")


@responses.activate
def test_fetch_async_v2_failure_calls_back_with_the_error() -> None:
    responses.add(responses.POST, VARDATA, status=500, json={})
    responses.add(responses.POST, VARDATA, status=500, json={})
    calls: List[Tuple[Any, ...]] = []
    with _client(fetch_retries=1) as client:
        future = client.fetch_async_v2(User(user_id="u"), lambda *a: calls.append(a))
        with pytest.raises(FetchException):
            future.result(timeout=5)
    ((_, variants, error),) = calls
    assert variants == {} and isinstance(error, FetchException) and error.status_code == 500


@responses.activate
def test_deprecated_fetch_async_filters_and_calls_back_with_three_arguments() -> None:
    # Observed on the official client: its deprecated fetch_async calls callback(user, variants, None).
    _ok()
    calls: List[Tuple[Any, ...]] = []
    with _client() as client:
        with pytest.deprecated_call():
            future = client.fetch_async(User(user_id="u"), lambda *a: calls.append(a))
        future.result(timeout=5)
    ((_, variants, error),) = calls
    assert list(variants) == ["flag"] and error is None


@responses.activate
def test_a_raising_callback_is_logged_and_does_not_kill_the_pool(caplog: pytest.LogCaptureFixture) -> None:
    _ok(2)

    def boom(*args: Any) -> None:
        raise RuntimeError("callback bug")

    with _client() as client:
        client.fetch_async_v2(User(user_id="u"), boom).result(timeout=5)
        assert list(client.fetch_async_v2(User(user_id="u")).result(timeout=5)) == ["flag", "old"]
    assert "A fetch_async_v2 callback raised" in caplog.text


@responses.activate
def test_async_pool_is_bounded() -> None:
    # At most max(4, connection_pool_max_size) threads, however many fetches are queued.
    release = threading.Event()
    entered: List[str] = []

    def answer(request: Any) -> Any:
        entered.append(threading.current_thread().name)
        release.wait(5)
        return 200, {}, "{}"

    responses.add_callback(responses.POST, VARDATA, callback=answer)
    with _client(connection_pool_max_size=10) as client:
        futures = [client.fetch_async_v2(User(user_id=str(i))) for i in range(30)]
        release.set()
        done, _ = concurrent.futures.wait(futures, timeout=10)
    assert len(done) == 30 and len(entered) == 30
    assert len(set(entered)) == 10


@responses.activate
def test_afetch_v2_does_not_block_the_event_loop() -> None:
    release = threading.Event()

    def answer(request: Any) -> Any:
        release.wait(5)
        return 200, {}, '{"flag": {"key": "on"}}'

    responses.add_callback(responses.POST, VARDATA, callback=answer)

    async def main(client: RemoteEvaluationClient) -> Any:
        task = asyncio.ensure_future(client.afetch_v2(User(user_id="u"), FetchOptions(flagKeys=["flag"])))
        await asyncio.sleep(0)  # the fetch is now waiting on the server; the loop still runs
        ticks = 0
        while not task.done() and ticks < 3:
            ticks += 1
            await asyncio.sleep(0)
        assert not task.done()
        release.set()
        return ticks, await task

    with _client() as client:
        ticks, variants = asyncio.run(main(client))
    assert ticks == 3 and variants["flag"].key == "on"
    assert responses.calls[0].request.headers["X-Amp-Exp-Flag-Keys"] == "WyJmbGFnIl0"


@responses.activate
def test_afetch_v2_raises_like_fetch_v2() -> None:
    responses.add(responses.POST, VARDATA, status=503, json={})
    responses.add(responses.POST, VARDATA, status=503, json={})
    with _client(fetch_retries=1) as client, pytest.raises(FetchException):
        asyncio.run(client.afetch_v2(User(user_id="u")))


def test_a_given_session_is_never_closed() -> None:
    given = requests.Session()
    closed: List[str] = []
    given.close = lambda: closed.append("given")  # type: ignore[method-assign]
    with _client(session=given):
        pass
    assert closed == []


@responses.activate
def test_connection_pool_max_size_bounds_requests_in_flight() -> None:
    inside = threading.Semaphore(0)
    release = threading.Event()

    def answer(request: Any) -> Any:
        inside.release()
        release.wait(5)
        return 200, {}, "{}"

    responses.add_callback(responses.POST, VARDATA, callback=answer)
    with _client(connection_pool_max_size=2, fetch_pool_acquire_timeout_millis=0) as client:
        held = [client.fetch_async_v2(User(user_id=str(i))) for i in range(2)]
        assert inside.acquire(timeout=5) and inside.acquire(timeout=5)
        assert client.fetch_v2(User(user_id="third")) == {}  # no third connection
        release.set()
        concurrent.futures.wait(held, timeout=5)
    assert len(responses.calls) == 2


@responses.activate
def test_given_session_is_used_for_requests() -> None:
    _ok()
    session = requests.Session()
    session.headers["X-Proxy-Auth"] = "corp"
    with _client(session=session) as client:
        client.fetch_v2(User(user_id="u"))
    assert responses.calls[0].request.headers["X-Proxy-Auth"] == "corp"
    session.close()


@responses.activate
def test_pool_acquire_timeout_fails_the_fetch_when_every_connection_is_busy() -> None:
    inside, release = threading.Event(), threading.Event()

    def answer(request: Any) -> Any:
        inside.set()
        release.wait(5)
        return 200, {}, "{}"

    responses.add_callback(responses.POST, VARDATA, callback=answer)
    with _client(connection_pool_max_size=1, fetch_pool_acquire_timeout_millis=0) as client:
        first = client.fetch_async_v2(User(user_id="first"))
        assert inside.wait(5)
        # The only connection is busy: the second fetch cannot get one and fails (fetch_retries=0 -> {}).
        assert client.fetch_v2(User(user_id="second")) == {}
        release.set()
        assert first.result(timeout=5) == {}
    assert len(responses.calls) == 1


@responses.activate
def test_close_is_idempotent_and_fetches_after_close_return_empty() -> None:
    client = _client()
    with client:
        pass
    client.close()
    assert client.closed
    assert client.fetch_v2(User(user_id="u")) == {}
    assert client.fetch_async_v2(User(user_id="u")).result(timeout=5) == {}
    assert asyncio.run(client.afetch_v2(User(user_id="u"))) == {}
    assert len(responses.calls) == 0


def test_initialize_remote_one_client_per_key_until_closed() -> None:
    first = Experiment.initialize_remote("server-factory-test-1", RemoteEvaluationConfig(server_url=SERVER))
    assert Experiment.initialize_remote("server-factory-test-1") is first
    other = Experiment.initialize_remote("server-factory-test-2")
    assert other is not first and other.config.server_url == "https://api.lab.amplitude.com"
    first.close()
    again = Experiment.initialize_remote("server-factory-test-1")
    assert again is not first and not again.closed
    again.close()
    other.close()


def test_repr_and_config_repr_never_show_the_key() -> None:
    with _client() as client:
        assert KEY not in repr(client) and KEY not in repr(client.config)


def test_official_names_and_import_paths() -> None:
    import amplitude_experiment
    from amplitude_experiment.cookie import AmplitudeCookie
    from amplitude_experiment.exception import FetchException as OfficialPathFetchException
    from amplitude_experiment.factory import Experiment as FactoryExperiment
    from amplitude_experiment.remote.client import RemoteEvaluationClient as Client
    from amplitude_experiment.remote.config import RemoteEvaluationConfig as Config
    from amplitude_experiment.remote.fetch_options import FetchOptions as Options

    # dir(amplitude_experiment) of the official 1.13 package, classes only.
    official = {"AmplitudeCookie", "AssignmentConfig", "CohortSyncConfig", "Experiment", "LocalEvaluationClient",
                "LocalEvaluationConfig", "RemoteEvaluationClient", "RemoteEvaluationConfig", "ServerZone", "User",
                "Variant"}
    assert official <= set(amplitude_experiment.__all__)
    assert (Client, Config, Options, OfficialPathFetchException, FactoryExperiment) == (
        RemoteEvaluationClient, RemoteEvaluationConfig, FetchOptions, FetchException, Experiment)
    assert AmplitudeCookie is amplitude_experiment.AmplitudeCookie
    # Official signatures (read with inspect.signature on 1.13).
    assert list(inspect.signature(RemoteEvaluationClient).parameters) == ["api_key", "config"]
    assert list(inspect.signature(RemoteEvaluationClient.fetch_v2).parameters) == ["self", "user", "fetch_options"]
    assert list(inspect.signature(RemoteEvaluationClient.fetch).parameters) == ["self", "user", "fetch_options"]
    assert list(inspect.signature(RemoteEvaluationClient.fetch_async_v2).parameters)[:3] == ["self", "user",
                                                                                              "callback"]
    assert list(inspect.signature(RemoteEvaluationClient.fetch_async).parameters) == ["self", "user", "callback"]
    assert list(inspect.signature(FetchOptions).parameters) == ["tracksAssignment", "tracksExposure", "flagKeys"]
    assert list(inspect.signature(FetchException).parameters) == ["status_code", "message"]
    error = FetchException(503, "boom")
    assert (error.status_code, str(error), error.args) == (503, "boom", ("boom",))
    copy = pickle.loads(pickle.dumps(error))  # e.g. across a process pool
    assert (type(copy), copy.status_code, str(copy)) == (FetchException, 503, "boom")


@responses.activate
def test_async_fetches_send_the_user_as_it_was_at_the_call() -> None:
    release = threading.Event()
    bodies: List[Any] = []

    def answer(request: Any) -> Any:
        release.wait(5)
        bodies.append(request.body)
        return 200, {}, "{}"

    responses.add_callback(responses.POST, VARDATA, callback=answer)
    with _client(connection_pool_max_size=1) as client:
        user = User(user_id="before")
        blocker = client.fetch_async_v2(User(user_id="first"))
        queued = client.fetch_async_v2(user)
        user.user_id = "after"
        release.set()
        concurrent.futures.wait([blocker, queued], timeout=5)
    assert len(bodies) == 2
    assert any(b'"user_id": "before"' in body for body in bodies)
    assert not any(b'"after"' in body for body in bodies)
