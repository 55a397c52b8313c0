"""RemoteEvaluationConfig keeps the official 1.13 keywords and defaults (issue 11, point 1)."""

from __future__ import annotations

import inspect
import logging

import pytest
import requests

from amplitude_experiment import ConfigurationError, RemoteEvaluationConfig, ServerZone
from amplitude_experiment.testing import ManualClock

# Read off amplitude-experiment 1.13.0 with inspect.signature (black box), in this order.
OFFICIAL = [
    ("debug", False), ("server_url", "https://api.lab.amplitude.com"), ("fetch_timeout_millis", 10000),
    ("fetch_retries", 0), ("fetch_retry_backoff_min_millis", 500), ("fetch_retry_backoff_max_millis", 10000),
    ("fetch_retry_backoff_scalar", 1.5), ("fetch_retry_timeout_millis", 10000),
    ("fetch_pool_acquire_timeout_millis", None), ("server_zone", ServerZone.US), ("connection_pool_max_size", 1),
    ("logger", None),
]


def test_official_keywords_defaults_and_order() -> None:
    params = inspect.signature(RemoteEvaluationConfig).parameters
    assert [(name, p.default) for name, p in params.items()][:12] == OFFICIAL
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in list(params.values())[12:])


def test_defaults_are_applied() -> None:
    config = RemoteEvaluationConfig()
    assert (config.server_url, config.fetch_timeout_millis, config.fetch_retries,
            config.fetch_retry_backoff_min_millis, config.fetch_retry_backoff_max_millis,
            config.fetch_retry_backoff_scalar, config.fetch_retry_timeout_millis,
            config.fetch_pool_acquire_timeout_millis, config.server_zone, config.connection_pool_max_size) == (
        "https://api.lab.amplitude.com", 10000, 0, 500, 10000, 1.5, 10000, None, ServerZone.US, 1)
    assert config.session is None
    assert config.logger is logging.getLogger("amplitude_experiment")


def test_positional_arguments_keep_official_order() -> None:
    config = RemoteEvaluationConfig(True, "https://x.test", 100, 2, 10, 20, 2.0, 50, 5, ServerZone.US, 3)
    assert (config.debug, config.server_url, config.fetch_timeout_millis, config.fetch_retries,
            config.fetch_retry_backoff_min_millis, config.fetch_retry_backoff_max_millis,
            config.fetch_retry_backoff_scalar, config.fetch_retry_timeout_millis,
            config.fetch_pool_acquire_timeout_millis, config.connection_pool_max_size) == (
        True, "https://x.test", 100, 2, 10, 20, 2.0, 50, 5, 3)


def test_eu_zone_moves_the_default_url_only() -> None:
    # design.md §3: remote evaluation EU host.
    assert RemoteEvaluationConfig(server_zone=ServerZone.EU).server_url == "https://api.lab.eu.amplitude.com"
    assert RemoteEvaluationConfig(server_zone="eu").server_url == "https://api.lab.eu.amplitude.com"
    assert RemoteEvaluationConfig(server_zone=ServerZone.EU, server_url="https://proxy.test/").server_url == \
        "https://proxy.test"


@pytest.mark.parametrize(("field", "value"), [
    ("fetch_timeout_millis", 0), ("fetch_retries", -1), ("fetch_retries", 1.5), ("fetch_retry_backoff_scalar", 0.5),
    ("fetch_retry_backoff_min_millis", -1), ("connection_pool_max_size", 0), ("server_url", "api.lab.amplitude.com"),
    ("fetch_pool_acquire_timeout_millis", "10"), ("server_zone", "APAC"), ("logger", "amplitude"),
])
def test_bad_values_name_the_field(field: str, value: object) -> None:
    with pytest.raises(ConfigurationError, match=field):
        RemoteEvaluationConfig(**{field: value})  # type: ignore[arg-type]


def test_additions_are_keyword_only_and_checked() -> None:
    session = requests.Session()
    clock = ManualClock()
    config = RemoteEvaluationConfig(session=session, clock=clock)
    assert config.session is session and config.clock is clock
    with pytest.raises(ConfigurationError, match="session"):
        RemoteEvaluationConfig(session="not a session")  # type: ignore[arg-type]
    session.close()


def test_repr_shows_settings() -> None:
    text = repr(RemoteEvaluationConfig(fetch_retries=2))
    assert "fetch_retries=2" in text and "https://api.lab.amplitude.com" in text
