"""Configuration of the local-evaluation client."""

from __future__ import annotations

import logging
import os
from typing import Any, List, Optional, Union

import requests

from .. import _validate
from .._clock import SYSTEM_CLOCK, Clock
from ..cohorts.config import DEFAULT_COHORT_SERVER_URL, CohortSyncConfig
from ..events.config import AssignmentConfig, ExposureConfig
from ..server_zone import DEFAULT_COHORT_URL, DEFAULT_FLAGS_URL, DEFAULT_STREAM_URL, ServerZone, coerce_zone
from .fleet import Fleet

DEFAULT_SERVER_URL = DEFAULT_FLAGS_URL[ServerZone.US]
DEFAULT_STREAM_SERVER_URL = DEFAULT_STREAM_URL[ServerZone.US]


class LocalEvaluationConfig:
    """How the local-evaluation client gets flags and what it tracks.

    The keyword arguments and defaults are those of the official SDK. With
    ``server_zone=ServerZone.EU`` every URL left at its US default moves to the EU host
    (flags, stream and cohorts).

    Args:
        debug: log at DEBUG level through the ``amplitude_experiment`` logger.
        server_url: where flag configs are downloaded from.
        server_zone: ``ServerZone.US`` or ``ServerZone.EU`` (a string is accepted too).
        flag_config_polling_interval_millis: how often flags are refreshed.
        flag_config_poller_request_timeout_millis: timeout of one flag download.
        stream_updates: receive flag updates over a stream instead of only polling.
        stream_server_url: where the flag stream is.
        stream_flag_conn_timeout: how long ``start()`` waits for the stream, in milliseconds.
        assignment_config: enable assignment tracking.
        exposure_config: enable exposure tracking.
        cohort_sync_config: enable cohort membership download.
        logger: accepted for compatibility; ``debug=True`` sets this logger (default: the
            ``amplitude_experiment`` logger) to DEBUG. The SDK's own messages always go to the
            ``amplitude_experiment.<module>`` loggers: attach handlers there to collect them.

    Additions to the official options (keyword-only):

    Args:
        session: a ``requests.Session`` for every request (proxies, CA bundle, client
            certificates, adapters). It is never closed by the client. Without it the client
            makes its own, which honours the standard proxy environment variables.
        bootstrap_flags: flag configs to start from (the decoded JSON list, or JSON text);
            evaluation works before (or without) any download.
        bootstrap_file: a file holding flag configs (JSON array) to start from.
        offline: never download flags (requires a bootstrap); for tests and air-gapped runs.
        flag_cache_file: where every good config is saved (atomically); at ``start()``, if the
            download fails, the client starts from this file instead of failing.
        stream_keepalive_timeout_millis: silence after which the stream counts as dead.
        clock: the time source and waiter of every background worker; tests pass
            :class:`amplitude_experiment.testing.ManualClock` to drive polling, backoff and
            event batching without sleeping.
        fleet: share flag and cohort downloads and assignment dedup with the other processes of
            this deployment, e.g. ``amplitude_experiment.redis.RedisFleet(url)`` (any object with
            its ``flags(deployment_key)``, ``cohorts(api_key)`` and ``claims(api_key)`` methods).
            Never closed by the client.
    """

    def __init__(
        self,
        debug: bool = False,
        server_url: str = DEFAULT_SERVER_URL,
        server_zone: "ServerZone | str" = ServerZone.US,
        flag_config_polling_interval_millis: int = 30000,
        flag_config_poller_request_timeout_millis: int = 10000,
        stream_updates: bool = False,
        stream_server_url: str = DEFAULT_STREAM_SERVER_URL,
        stream_flag_conn_timeout: int = 1500,
        assignment_config: Optional[AssignmentConfig] = None,
        exposure_config: Optional[ExposureConfig] = None,
        cohort_sync_config: Optional[CohortSyncConfig] = None,
        logger: Optional[logging.Logger] = None,
        *,
        session: Optional[requests.Session] = None,
        bootstrap_flags: Union[List[Any], str, bytes, None] = None,
        bootstrap_file: Union[str, "os.PathLike[str]", None] = None,
        offline: bool = False,
        flag_cache_file: Union[str, "os.PathLike[str]", None] = None,
        stream_keepalive_timeout_millis: int = 17000,
        clock: Clock = SYSTEM_CLOCK,
        fleet: Optional[Fleet] = None,
    ) -> None:
        self.debug = bool(debug)
        self.server_zone = coerce_zone(server_zone)
        if self.server_zone is ServerZone.EU and server_url == DEFAULT_SERVER_URL:
            server_url = DEFAULT_FLAGS_URL[ServerZone.EU]
        if self.server_zone is ServerZone.EU and stream_server_url == DEFAULT_STREAM_SERVER_URL:
            stream_server_url = DEFAULT_STREAM_URL[ServerZone.EU]
        self.server_url = _validate.url("server_url", server_url)
        self.stream_server_url = _validate.url("stream_server_url", stream_server_url)
        self.flag_config_polling_interval_millis = _validate.positive_int(
            "flag_config_polling_interval_millis", flag_config_polling_interval_millis
        )
        self.flag_config_poller_request_timeout_millis = _validate.positive_int(
            "flag_config_poller_request_timeout_millis", flag_config_poller_request_timeout_millis
        )
        self.stream_updates = bool(stream_updates)
        self.stream_flag_conn_timeout = _validate.positive_int("stream_flag_conn_timeout", stream_flag_conn_timeout)
        self._set_feature_configs(assignment_config, exposure_config, cohort_sync_config)
        #: Every message of this client goes to this logger or its children
        #: (``<logger>.flags``, ``<logger>.events``, ...).
        self.logger: logging.Logger = _validate.logger_or_default(logger)
        self.session = _validate.optional_session(session)
        self._set_bootstrap(bootstrap_flags, bootstrap_file, offline)
        self.flag_cache_file = flag_cache_file
        self.stream_keepalive_timeout_millis = _validate.positive_int(
            "stream_keepalive_timeout_millis", stream_keepalive_timeout_millis)
        if not isinstance(clock, Clock):
            raise _validate.ConfigurationError("clock must be an amplitude_experiment Clock (e.g. testing.ManualClock)")
        self.clock = clock
        if fleet is not None and not isinstance(fleet, Fleet):
            raise _validate.ConfigurationError("fleet must offer flags(deployment_key), cohorts(api_key) and "
                                               "claims(api_key), e.g. amplitude_experiment.redis.RedisFleet(url)")
        self.fleet = fleet

    def _set_feature_configs(self, assignment_config: Optional[AssignmentConfig],
                             exposure_config: Optional[ExposureConfig],
                             cohort_sync_config: Optional[CohortSyncConfig]) -> None:
        for name, value, kind in (
            ("assignment_config", assignment_config, AssignmentConfig),
            ("exposure_config", exposure_config, ExposureConfig),
            ("cohort_sync_config", cohort_sync_config, CohortSyncConfig),
        ):
            if value is not None and not isinstance(value, kind):
                raise _validate.ConfigurationError(f"{name} must be a {kind.__name__} or None")
        if (
            cohort_sync_config is not None
            and self.server_zone is ServerZone.EU
            and cohort_sync_config.cohort_server_url == DEFAULT_COHORT_SERVER_URL
        ):
            cohort_sync_config.cohort_server_url = DEFAULT_COHORT_URL[ServerZone.EU]
        self.assignment_config = assignment_config
        self.exposure_config = exposure_config
        self.cohort_sync_config = cohort_sync_config

    def _set_bootstrap(self, bootstrap_flags: Union[List[Any], str, bytes, None],
                       bootstrap_file: Union[str, "os.PathLike[str]", None], offline: bool) -> None:
        if bootstrap_flags is not None and not isinstance(bootstrap_flags, (list, str, bytes)):
            raise _validate.ConfigurationError("bootstrap_flags must be a list of flags or JSON text")
        if bootstrap_flags is not None and bootstrap_file is not None:
            raise _validate.ConfigurationError("give bootstrap_flags or bootstrap_file, not both")
        self.bootstrap_flags = bootstrap_flags
        self.bootstrap_file = bootstrap_file
        self.offline = bool(offline)
        if self.offline and bootstrap_flags is None and bootstrap_file is None:
            raise _validate.ConfigurationError("offline=True needs bootstrap_flags or bootstrap_file")

    def __repr__(self) -> str:
        return (
            f"LocalEvaluationConfig(server_url={self.server_url!r}, server_zone={self.server_zone.value!r}, "
            f"flag_config_polling_interval_millis={self.flag_config_polling_interval_millis}, "
            f"stream_updates={self.stream_updates}, assignment_config={self.assignment_config!r}, "
            f"exposure_config={self.exposure_config!r}, cohort_sync_config={self.cohort_sync_config!r})"
        )
