"""examples/remote_evaluation.py: fetch_v2, FetchOptions and afetch_v2 against the stand-in."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from typing import Dict

import pytest

from amplitude_experiment import RemoteEvaluationClient, RemoteEvaluationConfig
from amplitude_experiment.testing import AmplitudeStandIn

from .helpers import DEPLOYMENT_KEY, EXAMPLES, EXPECTED, FLAG_KEY, expected_variant, load_example, subprocess_env

EXAMPLE = load_example("remote_evaluation.py")


def test_runs_offline_and_prints_the_engines_variants() -> None:
    done = subprocess.run([sys.executable, str(EXAMPLES / "remote_evaluation.py")], capture_output=True, text=True,
                          timeout=60, check=True, env=subprocess_env({}))
    lines = done.stdout.splitlines()
    for user_id in EXAMPLE.USERS:
        variant = expected_variant(user_id)
        assert any(line.strip().startswith(f"{user_id}: {FLAG_KEY}={variant}") for line in lines), done.stdout
    assert f"only {FLAG_KEY}, untracked: ['{FLAG_KEY}']" in lines
    assert "async: " + ", ".join(f"{u}={expected_variant(u)}" for u in EXAMPLE.USERS) in lines


def test_requests_against_the_stand_in(amplitude: AmplitudeStandIn, amplitude_env: Dict[str, str],
                                       capsys: pytest.CaptureFixture[str]) -> None:
    with EXAMPLE.experiment_from_env() as experiment:
        assert isinstance(experiment, RemoteEvaluationClient)
        assert isinstance(experiment.config, RemoteEvaluationConfig)
        EXAMPLE.run(experiment)
    out = capsys.readouterr().out
    for user_id in set(EXAMPLE.USERS) & set(EXPECTED):
        assert f"{user_id}: {FLAG_KEY}={EXPECTED[user_id]}" in out
    requests = amplitude.requests("vardata")
    assert len(requests) == 2 * len(EXAMPLE.USERS) + 1  # sync, one with options, async
    assert {r.header("Authorization") for r in requests} == {"Api-Key " + DEPLOYMENT_KEY}
    (with_options,) = [r for r in requests if r.header("X-Amp-Exp-Flag-Keys")]
    keys = with_options.header("X-Amp-Exp-Flag-Keys") or ""
    assert json.loads(base64.urlsafe_b64decode(keys + "=" * (-len(keys) % 4))) == [FLAG_KEY]
    assert with_options.header("X-Amp-Exp-Track") == "no-track"
    assert with_options.json()["user_id"] == "alice"
