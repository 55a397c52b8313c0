"""Suite-wide settings."""

from __future__ import annotations

import os
import sys
from typing import Iterator

import pytest
import requests

from amplitude_experiment.testing import ManualClock

# Some environments set PYTHONDONTWRITEBYTECODE: then every test module is re-compiled by pytest's
# assertion rewriting on every run, and every subprocess a test starts (examples, the CLI, README
# blocks, fleet workers) compiles the whole package again. Caching bytecode here (in __pycache__,
# which git ignores) makes the suite several seconds faster and changes nothing it checks.
sys.dont_write_bytecode = False
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)


@pytest.fixture
def session() -> Iterator[requests.Session]:
    """A fresh HTTP session, closed after the test."""
    with requests.Session() as fresh:
        yield fresh


@pytest.fixture
def clock() -> ManualClock:
    """A clock that moves only when the test advances it."""
    return ManualClock()
