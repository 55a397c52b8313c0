"""examples/gunicorn_preload: a real gunicorn, app preloaded in the master, two forked workers.

The client is created (and downloads the flags) in the master; each worker must evaluate and send
its own assignment events, and a SIGTERM must stop everything promptly, each worker sending what
it still has queued as it exits.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import pathlib
import signal
import socket
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional

import pytest
import requests

from amplitude_experiment.testing import AmplitudeStandIn, wait_for

from .helpers import EXAMPLES, FLAG_KEY, assignments, check_event_requests, expected_variant, subprocess_env

gunicorn_config = pytest.importorskip("gunicorn.config")

APP_DIR = EXAMPLES / "gunicorn_preload"
WORKERS = 2


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _gunicorn_command(port: int) -> List[str]:
    # No app or worker options: app.py, preload_app and workers come from ./gunicorn.conf.py.
    command = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}"]
    if any(setting.name == "control_socket_disable" for setting in gunicorn_config.KNOWN_SETTINGS):
        command.append("--no-control-socket")  # gunicorn >= 25 would otherwise create ~/.gunicorn/gunicorn.ctl
    return command


def _get(base: str, user_id: str) -> Dict[str, Any]:
    # A new connection per request, so that either worker may accept it.
    response = requests.get(f"{base}/checkout", params={"user_id": user_id}, timeout=5,
                            headers={"Connection": "close"})
    assert response.status_code == 200, response.text
    return response.json()


def _wait_until_serving(base: str, server: "subprocess.Popen[bytes]", log: pathlib.Path, timeout: float) -> None:
    def answering() -> bool:
        assert server.poll() is None, f"gunicorn exited with {server.returncode}:\n{log.read_text()}"
        try:
            requests.get(f"{base}/healthcheck", timeout=1).close()  # any answer (a 404 here) will do
            return True
        except requests.ConnectionError:
            return False

    assert wait_for(answering, timeout=timeout, interval=0.05), (
        f"gunicorn did not answer within {timeout} s:\n{log.read_text()}")


@pytest.mark.parametrize("flush_interval_millis", [100, None], ids=["events-while-running", "events-at-exit"])
def test_gunicorn_preload(amplitude: AmplitudeStandIn, amplitude_env: Dict[str, str], tmp_path: pathlib.Path,
                          flush_interval_millis: Optional[int]) -> None:
    env = dict(amplitude_env)
    if flush_interval_millis is not None:
        env["AMPLITUDE_FLUSH_INTERVAL_MILLIS"] = str(flush_interval_millis)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "gunicorn.log"
    with log.open("wb") as log_file, subprocess.Popen(_gunicorn_command(port), cwd=APP_DIR,
                                                      env=subprocess_env(env), stdout=log_file,
                                                      stderr=subprocess.STDOUT) as server:
        try:
            _wait_until_serving(base, server, log, timeout=20)
            master = server.pid

            # Concurrent requests, so that a busy worker leaves the next connection to the other one.
            served: Dict[str, Dict[str, Any]] = {}
            users = (f"user-{n}" for n in itertools.count(1))
            deadline = time.monotonic() + 10
            with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
                while len({answer["pid"] for answer in served.values()}) < WORKERS:
                    assert time.monotonic() < deadline, f"only one worker answered: {served}"
                    batch = [next(users) for _ in range(4)]
                    for user_id, answer in zip(batch, pool.map(lambda u: _get(base, u), batch)):
                        served[user_id] = answer

            worker_pids = {answer["pid"] for answer in served.values()}
            assert len(worker_pids) == WORKERS and master not in worker_pids
            for user_id, answer in served.items():
                assert answer == {"user_id": user_id, "flag": FLAG_KEY, "variant": expected_variant(user_id),
                                  "pid": answer["pid"], "loaded_in_pid": master}  # preloaded: imported in the master
            expected_events = sorted((user_id, answer["variant"]) for user_id, answer in served.items())

            if flush_interval_millis is not None:
                # Each worker's (reinitialised) sender delivers its events while the worker runs.
                assert wait_for(lambda: assignments(amplitude) == expected_events, timeout=10), (
                    assignments(amplitude), expected_events)
            else:
                assert amplitude.events == []  # all queued: the default flush interval is 10 s

            started = time.monotonic()
            server.send_signal(signal.SIGTERM)
            assert server.wait(timeout=15) == 0
            assert time.monotonic() - started < 10
        finally:
            if server.poll() is None:
                server.kill()
                server.wait()

    output = log.read_text()
    assert "Traceback" not in output and "WARNING" not in output and "ERROR" not in output, output
    # Every served user was tracked exactly once, by the worker that served it, and sent by the time
    # gunicorn had stopped (at exit, when the flush interval had not come round yet).
    assert assignments(amplitude) == expected_events
    check_event_requests(amplitude)
    senders = set()
    for request in amplitude.requests("events"):
        pids = {served[event["user_id"]]["pid"] for event in request.json()["events"]}
        assert len(pids) == 1  # a batch comes from one worker's client
        senders |= pids
    assert senders == worker_pids
