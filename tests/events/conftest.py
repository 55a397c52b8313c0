"""Fixtures of the event tests."""

from __future__ import annotations

from typing import Iterator

import pytest

from amplitude_experiment.testing import AmplitudeStandIn


@pytest.fixture
def server() -> Iterator[AmplitudeStandIn]:
    """A stand-in for Amplitude with no flags: the ingestion endpoint is what these tests use."""
    with AmplitudeStandIn() as stand_in:
        yield stand_in
