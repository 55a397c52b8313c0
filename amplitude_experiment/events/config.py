"""Configuration of assignment and exposure tracking."""

from __future__ import annotations

from typing import Any, Callable, Optional

from .. import _validate
from ..server_zone import DEFAULT_BATCH_URL, DEFAULT_EVENTS_URL, ServerZone, coerce_zone

#: ``callback(event, status_code, message)``: called once per event when its fate is known.
EventCallback = Callable[[Any, int, Optional[str]], None]

# Accepted for compatibility with the official SDK's analytics options; they do not apply here.
_IGNORED_OFFICIAL_OPTIONS = frozenset({"logger", "storage_provider", "event_log_level", "opt_out"})

#: Default bound of the in-memory event queue (events waiting to be sent).
DEFAULT_MAX_QUEUE_SIZE = 200_000

#: ``AssignmentConfig(event_property_names=...)``: ``[Experiment] <flag>.variant`` and
#: ``[Experiment] <flag>.details``, as Amplitude's event tracking documentation names them.
PREFIXED_PROPERTY_NAMES = "prefixed"
#: ``AssignmentConfig(event_property_names=...)``: ``<flag>.variant`` and ``<flag>.details``, as
#: the official ``amplitude-experiment`` Python SDK (1.13.0) sends them.
OFFICIAL_PROPERTY_NAMES = "official"
EVENT_PROPERTY_NAMES = (PREFIXED_PROPERTY_NAMES, OFFICIAL_PROPERTY_NAMES)


class _TrackingConfig:
    """What assignment and exposure tracking share: where and how to send events."""

    def __init__(
        self,
        api_key: Optional[str] = None,
        cache_capacity: int = 65536,
        flush_queue_size: int = 200,
        flush_interval_millis: int = 10000,
        flush_max_retries: int = 12,
        server_url: Optional[str] = None,
        server_zone: "ServerZone | str" = "US",
        use_batch: bool = False,
        min_id_length: Optional[int] = None,
        callback: Optional[EventCallback] = None,
        max_queue_size: int = DEFAULT_MAX_QUEUE_SIZE,
        plan: Any = None,
        ingestion_metadata: Any = None,
        **official_only: Any,
    ) -> None:
        unknown = set(official_only) - _IGNORED_OFFICIAL_OPTIONS
        if unknown:
            raise TypeError(f"{type(self).__name__}() got unexpected keyword arguments: {sorted(unknown)}")
        if not isinstance(api_key, str) or not api_key:
            raise _validate.ConfigurationError(f"{type(self).__name__}.api_key must be a non-empty string")
        self.api_key = api_key
        self.cache_capacity = _validate.positive_int("cache_capacity", cache_capacity)
        self.flush_queue_size = _validate.positive_int("flush_queue_size", flush_queue_size)
        self.flush_interval_millis = _validate.positive_int("flush_interval_millis", flush_interval_millis)
        self.flush_max_retries = _validate.positive_int("flush_max_retries", flush_max_retries, minimum=0)
        self.server_zone = coerce_zone(server_zone)
        self.use_batch = bool(use_batch)
        self.server_url = _validate.url("server_url", server_url) if server_url is not None else None
        if min_id_length is not None:
            _validate.positive_int("min_id_length", min_id_length)
        self.min_id_length = min_id_length
        if callback is not None and not callable(callback):
            raise _validate.ConfigurationError("callback must be callable")
        self.callback = callback
        self.max_queue_size = _validate.positive_int("max_queue_size", max_queue_size)
        self.plan = plan
        self.ingestion_metadata = ingestion_metadata

    @property
    def events_url(self) -> str:
        """The ingestion endpoint events are POSTed to."""
        if self.server_url is not None:
            return self.server_url
        table = DEFAULT_BATCH_URL if self.use_batch else DEFAULT_EVENTS_URL
        return table[self.server_zone]

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(api_key={_validate.mask(self.api_key)}, cache_capacity={self.cache_capacity}, "
            f"flush_queue_size={self.flush_queue_size}, flush_interval_millis={self.flush_interval_millis}, "
            f"flush_max_retries={self.flush_max_retries}, events_url={self.events_url!r})"
        )


class AssignmentConfig(_TrackingConfig):
    """Track an ``[Experiment] Assignment`` event for evaluations (deduplicated per user, result and day).

    Args:
        api_key: the Amplitude analytics project API key events are sent with.
        cache_capacity: how many recent ``insert_id`` values are remembered for deduplication.
        send_evaluated_props: copy the user's fields and user properties onto each event.
        flush_queue_size: send as soon as this many events are waiting.
        flush_interval_millis: send at least this often while events are waiting.
        flush_max_retries: attempts per batch on throttling, server errors and network errors.
        server_url: full ingestion URL (e.g. ``https://host/2/httpapi``); overrides the zone.
        server_zone: ``"US"`` or ``"EU"``.
        use_batch: use the ``/batch`` endpoint instead of ``/2/httpapi``.
        min_id_length: sent as ``options.min_id_length`` (Amplitude's default minimum is 5).
        callback: ``callback(event, status_code, message)`` called once per event outcome.
        max_queue_size: events held in memory at most (~240-580 bytes each with 1 to 40 flags, see
            ``amplitude_experiment/events/sender.py``); beyond it new events are dropped and counted
            (``stats()["events"]["dropped"]["queue_full"]``).
        event_property_names: how the event properties of each flag are named (keyword only).
            ``"prefixed"`` (default): ``[Experiment] <flag>.variant`` and
            ``[Experiment] <flag>.details``, as Amplitude's documentation shows them.
            ``"official"``: ``<flag>.variant`` and ``<flag>.details``, exactly what the
            official ``amplitude-experiment`` SDK sends; choose it when existing charts use
            those names. User properties (``[Experiment] <flag>``) are the same either way.
    """

    def __init__(self, api_key: Optional[str] = None, cache_capacity: int = 65536, send_evaluated_props: bool = False,
                 *, event_property_names: str = PREFIXED_PROPERTY_NAMES, **kwargs: Any) -> None:
        super().__init__(api_key=api_key, cache_capacity=cache_capacity, **kwargs)
        self.send_evaluated_props = bool(send_evaluated_props)
        if event_property_names not in EVENT_PROPERTY_NAMES:
            raise _validate.ConfigurationError(
                f"event_property_names must be one of {', '.join(map(repr, EVENT_PROPERTY_NAMES))}, "
                f"not {event_property_names!r}")
        self.event_property_names = event_property_names


class ExposureConfig(_TrackingConfig):
    """Track ``$exposure`` events (see ``EvaluateOptions`` and ``LocalEvaluationClient.track_exposure``).

    Takes the same arguments as :class:`AssignmentConfig` except ``send_evaluated_props``.
    """
