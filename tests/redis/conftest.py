"""A real redis-server on a free loopback port for the fleet tests (no fakes)."""

from __future__ import annotations

import multiprocessing
import multiprocessing.context
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from typing import Iterator, List, Optional

import pytest

REDIS_SERVER = shutil.which("redis-server") or ("/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server")
                                                else None)

if REDIS_SERVER is None:
    pytest.skip("redis-server is not installed (Debian package redis-server); the fleet tests need a real one",
                allow_module_level=True)
pytest.importorskip("redis", reason="redis-py is not installed (the 'redis' extra)")

import redis  # noqa: E402

from amplitude_experiment import LocalEvaluationClient  # noqa: E402
from amplitude_experiment.testing import wait_for  # noqa: E402  (a condition wait, re-exported here)


def process_context() -> "multiprocessing.context.ForkServerContext":
    """Where the multi-process tests start their workers: fresh processes without the test process's threads.

    A fork server imports the workers' modules once; each worker is then forked from it, instead
    of a new interpreter per worker (spawn) that imports everything again (~0.2 s of CPU each).
    """
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["tests.redis._workers", "amplitude_experiment", "amplitude_experiment.redis"])
    return ctx


@pytest.fixture(scope="session", autouse=True)
def _fork_server_stopped_at_the_end() -> Iterator[None]:
    """Stop the fork server (if a test started one) and wait for it, before this process exits.

    Left alone it would exit on its own just after the test process, unwaited-for (and after
    ``coverage combine`` may already have read its half-written data file).
    """
    yield
    from multiprocessing import forkserver

    stop = getattr(forkserver._forkserver, "_stop", None)  # noqa: SLF001 - the only way to wait for it
    if stop is not None:
        stop()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """One redis-server process without persistence; can be stopped and started again on the same port."""

    def __init__(self, port: int, workdir: str) -> None:
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self._workdir = workdir
        self._process: Optional[subprocess.Popen[bytes]] = None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        if self.running:
            return
        assert REDIS_SERVER is not None
        args: List[str] = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                           "--appendonly", "no", "--dir", self._workdir, "--loglevel", "warning",
                           "--protected-mode", "yes"]
        self._process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = self.client()
        try:
            def ready() -> bool:
                try:
                    return bool(client.ping())
                except redis.RedisError:
                    return False
            if not wait_for(ready, 10.0):
                raise RuntimeError(f"redis-server did not start on port {self.port}")
        finally:
            client.close()

    def stop(self) -> None:
        """Kill the server (SIGKILL: as abrupt as a crash)."""
        process, self._process = self._process, None
        if process is not None:
            process.kill()
            process.wait(10)

    def restart(self) -> None:
        self.stop()
        self.start()

    def client(self) -> "redis.Redis":
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2.0)


@pytest.fixture(scope="session")
def redis_server_session() -> Iterator[RedisServer]:
    with tempfile.TemporaryDirectory(prefix="fleet-redis-") as workdir:
        server = RedisServer(_free_port(), workdir)
        server.start()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture()
def redis_server(redis_server_session: RedisServer) -> Iterator[RedisServer]:
    """The server, running (a test that stopped it gets it back), with an empty database."""
    redis_server_session.start()
    client = redis_server_session.client()
    client.flushall()
    client.close()
    yield redis_server_session
    redis_server_session.start()


@pytest.fixture()
def admin(redis_server: RedisServer) -> Iterator["redis.Redis"]:
    """A direct client for inspecting what the fleet stored."""
    client = redis_server.client()
    yield client
    client.close()


@pytest.fixture()
def prefix() -> str:
    return "t" + uuid.uuid4().hex[:8]


@pytest.fixture()
def make_fleet(redis_server: RedisServer, prefix: str) -> Iterator["object"]:
    """``make_fleet(**kwargs)``: a RedisFleet on the test server and prefix; all are closed afterwards."""
    from amplitude_experiment.redis import RedisFleet

    fleets: List[RedisFleet] = []

    def make(**kwargs: "object") -> RedisFleet:
        kwargs.setdefault("prefix", prefix)
        fleet = RedisFleet(redis_server.url, **kwargs)  # type: ignore[arg-type]
        fleets.append(fleet)
        return fleet

    yield make
    for fleet in fleets:
        fleet.close()


@pytest.fixture
def clients() -> Iterator[List["LocalEvaluationClient"]]:
    """Clients a test makes (it appends them); each is stopped after the test."""
    made: List["LocalEvaluationClient"] = []
    yield made
    for client in made:
        client.stop(2.0)
