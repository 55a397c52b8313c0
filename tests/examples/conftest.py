"""Fixtures for the examples' smoke tests: a stand-in for Amplitude, and the environment pointing at it.

Every example reads the Amplitude URLs and keys from the environment; here they point at a
loopback stand-in, so nothing leaves the machine.
"""

from __future__ import annotations

from typing import Dict, Iterator

import pytest

from amplitude_experiment.testing import AmplitudeStandIn

from .helpers import ANALYTICS_KEY, DEPLOYMENT_KEY, FLAGS


@pytest.fixture
def amplitude() -> Iterator[AmplitudeStandIn]:
    # deployment_key: flag downloads without the right Authorization header get a 401.
    with AmplitudeStandIn(flags=FLAGS, deployment_key=DEPLOYMENT_KEY) as stand_in:
        yield stand_in


@pytest.fixture
def amplitude_env(amplitude: AmplitudeStandIn, monkeypatch: pytest.MonkeyPatch) -> Dict[str, str]:
    """The examples' environment variables, pointing at the stand-in (set in this process too)."""
    env = {
        "AMPLITUDE_SERVER_URL": amplitude.url,
        "AMPLITUDE_EVENTS_URL": amplitude.url + "/2/httpapi",
        "AMPLITUDE_DEPLOYMENT_KEY": DEPLOYMENT_KEY,
        "AMPLITUDE_API_KEY": ANALYTICS_KEY,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env
