"""Configuration of cohort membership sync."""

from __future__ import annotations

from .. import _validate

DEFAULT_COHORT_SERVER_URL = "https://cohort-v2.lab.amplitude.com"
MIN_COHORT_POLLING_INTERVAL_MILLIS = 60_000


class CohortSyncConfig:
    """Download members of the cohorts that flags target.

    Args:
        api_key: the Amplitude project API key.
        secret_key: the Amplitude project secret key (never logged).
        max_cohort_size: cohorts larger than this are not downloaded.
        cohort_polling_interval_millis: refresh interval; at least 60000.
        cohort_server_url: the cohort API host (EU projects use the EU host).
    """

    def __init__(
        self,
        api_key: str,
        secret_key: str,
        max_cohort_size: int = 2147483647,
        cohort_polling_interval_millis: int = 60000,
        cohort_server_url: str = DEFAULT_COHORT_SERVER_URL,
    ) -> None:
        if not isinstance(api_key, str) or not api_key:
            raise _validate.ConfigurationError("CohortSyncConfig.api_key must be a non-empty string")
        if not isinstance(secret_key, str) or not secret_key:
            raise _validate.ConfigurationError("CohortSyncConfig.secret_key must be a non-empty string")
        self.api_key = api_key
        self.secret_key = secret_key
        self.max_cohort_size = _validate.positive_int("max_cohort_size", max_cohort_size)
        self.cohort_polling_interval_millis = max(
            MIN_COHORT_POLLING_INTERVAL_MILLIS,
            _validate.positive_int("cohort_polling_interval_millis", cohort_polling_interval_millis),
        )
        self.cohort_server_url = _validate.url("cohort_server_url", cohort_server_url)

    def __repr__(self) -> str:
        return (
            f"CohortSyncConfig(api_key={_validate.mask(self.api_key)}, secret_key='***', "
            f"max_cohort_size={self.max_cohort_size}, "
            f"cohort_polling_interval_millis={self.cohort_polling_interval_millis}, "
            f"cohort_server_url={self.cohort_server_url!r})"
        )
