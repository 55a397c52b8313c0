"""Logs reach people: an app that configured nothing sees our warnings; debug=True shows debug lines.

Each case runs in a fresh interpreter, because logging configuration is process-global and
pytest installs its own handlers.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap

import pytest

from amplitude_experiment import LocalEvaluationClient, LocalEvaluationConfig, User
from amplitude_experiment.testing import AmplitudeStandIn

from ..evaluation.helpers import targeted_flag


def run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=60, check=False)


def test_an_unconfigured_app_sees_warnings_on_stderr() -> None:
    # Nothing configures logging here: no NullHandler of ours may swallow the warning.
    done = run("""
        from amplitude_experiment import LocalEvaluationClient, LocalEvaluationConfig, FetchError
        from amplitude_experiment.testing import AmplitudeStandIn
        with AmplitudeStandIn(flags=[]) as server:
            server.add_fault("flags", status=503, times=None)
            client = LocalEvaluationClient("server-secret-key", LocalEvaluationConfig(
                server_url=server.url, flag_config_poller_request_timeout_millis=2000))
            try:
                client.start()
            except FetchError as exc:
                print("raised", exc.status_code)
            client.stop(1)
    """)
    assert done.stdout.strip() == "raised 503"
    assert "503" in done.stderr and "/sdk/v2/flags" in done.stderr
    assert "server-secret-key" not in done.stderr


def test_debug_true_prints_debug_lines_to_stderr() -> None:
    done = run("""
        from amplitude_experiment import LocalEvaluationClient, LocalEvaluationConfig, User
        from amplitude_experiment.testing import AmplitudeStandIn, on_flag
        with AmplitudeStandIn(flags=[on_flag("f")]) as server:
            client = LocalEvaluationClient("server-secret-key", LocalEvaluationConfig(
                debug=True, server_url=server.url))
            client.start()
            client.stop(1)
    """)
    assert done.returncode == 0, done.stderr
    assert " DEBUG amplitude_experiment" in done.stderr
    assert "server-secret-key" not in done.stderr


def test_default_config_logger_is_a_real_logger() -> None:
    # Official-SDK code calls config.logger.info(...) directly.
    logger = LocalEvaluationConfig().logger
    assert isinstance(logger, logging.Logger)
    assert logger.name == "amplitude_experiment"


def test_a_given_logger_receives_the_clients_messages(caplog: pytest.LogCaptureFixture) -> None:
    mine = logging.getLogger("myapp.experiment")
    with AmplitudeStandIn(flags=[targeted_flag("f", ...)]) as server:
        server.add_fault("flags", status=503, times=None)
        client = LocalEvaluationClient("server-key", LocalEvaluationConfig(
            server_url=server.url, logger=mine, flag_config_polling_interval_millis=60_000))
        with caplog.at_level(logging.DEBUG, logger="myapp.experiment"):
            try:
                client.start()
            except OSError:
                pass
            client.stop(1)
    ours = [r for r in caplog.records if r.name.startswith("myapp.experiment")]
    assert ours, "the client's messages must go to the logger given as logger="
    assert all(not r.name.startswith("amplitude_experiment") for r in caplog.records)
    assert client.evaluate_v2(User(user_id="u")) == {}
