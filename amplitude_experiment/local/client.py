"""LocalEvaluationClient: wires flag delivery, evaluation and tracking; owns the threads."""

from __future__ import annotations

import atexit
import functools
import logging
import threading
import time
import warnings
import weakref
from typing import Any, Collection, Dict, List, Optional, Union

import requests

from .._backoff import Backoff
from ..evaluation import evaluate
from ..events.assignment import AssignmentTracker
from ..events.config import _TrackingConfig
from ..events.exposure import ExposureTracker
from ..events.sender import EventSender
from ..exceptions import FetchError
from ..flags import FlagFetcher, FlagSnapshot, FlagStore
from ..flags.poller import FlagPoller
from ..user import User
from ..variant import Variant
from .config import LocalEvaluationConfig
from .evaluate_options import EvaluateOptions

logger = logging.getLogger("amplitude_experiment.local")

_NEW, _STARTED, _STOPPED = "new", "started", "stopped"

#: How long the interpreter-exit hook waits for a client that was never stopped.
ATEXIT_TIMEOUT = 5.0


def _stop_at_exit(client_ref: "weakref.ref[LocalEvaluationClient]") -> None:
    client = client_ref()
    if client is not None:
        client.stop(timeout=ATEXIT_TIMEOUT)


class LocalEvaluationClient:
    """Evaluates users against the deployment's flags locally, in microseconds.

    Create one per deployment key at process start (see ``Experiment.initialize_local``),
    call :meth:`start`, then :meth:`evaluate_v2` from any thread. The client is safe to share
    across threads: evaluation reads an immutable snapshot without locks, performs no I/O and
    never raises because of flag or user data.

    Args:
        api_key: the deployment key (``server-…``).
        config: a :class:`LocalEvaluationConfig`; defaults apply when omitted.
    """

    def __init__(self, api_key: str, config: Optional[LocalEvaluationConfig] = None) -> None:
        if not isinstance(api_key, str) or not api_key:
            raise ValueError("api_key (the deployment key) must be a non-empty string")
        self.api_key = api_key
        self.config = config if config is not None else LocalEvaluationConfig()
        self._logger = self.config.logger or logging.getLogger("amplitude_experiment")
        if self.config.debug:
            self._logger.setLevel(logging.DEBUG)
        self._state = _NEW
        self._lifecycle = threading.Lock()
        self._session = requests.Session()
        self._store = FlagStore()
        self._fetcher = FlagFetcher(
            self._session,
            self.config.server_url,
            api_key,
            timeout=self.config.flag_config_poller_request_timeout_millis / 1000,
        )
        interval = self.config.flag_config_polling_interval_millis / 1000
        self._poller = FlagPoller(self._refresh, interval, Backoff(base=1.0, cap=max(4.0, interval * 4)))
        self._senders: List[EventSender] = []
        self._assignment: Optional[AssignmentTracker] = None
        self._exposure: Optional[ExposureTracker] = None
        if self.config.assignment_config is not None:
            assignment = self.config.assignment_config
            self._assignment = AssignmentTracker(self._sender_for(assignment), assignment.cache_capacity,
                                                 assignment.send_evaluated_props)
        if self.config.exposure_config is not None:
            exposure = self.config.exposure_config
            self._exposure = ExposureTracker(self._sender_for(exposure), exposure.cache_capacity)
        self._atexit_hook = functools.partial(_stop_at_exit, weakref.ref(self))
        atexit.register(self._atexit_hook)

    def _sender_for(self, config: _TrackingConfig) -> EventSender:
        """One sender per destination: assignment and exposure share it when they match."""
        for sender in self._senders:
            if sender.destination == (config.events_url, config.api_key, config.min_id_length):
                return sender
        sender = EventSender(
            self._session,
            config.events_url,
            config.api_key,
            flush_queue_size=config.flush_queue_size,
            flush_interval=config.flush_interval_millis / 1000,
            max_retries=config.flush_max_retries,
            max_queue_size=config.max_queue_size,
            min_id_length=config.min_id_length,
            callback=config.callback,
            dedup_capacity=config.cache_capacity,
            name=f"amplitude_experiment-events-{len(self._senders)}",
        )
        self._senders.append(sender)
        return sender

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Download the flags, then keep them fresh in the background.

        Blocks for the first download only. If it fails, the background refresh still starts
        (retrying with backoff) so that a caller who catches the error gets flags as soon as
        Amplitude is reachable.

        Raises:
            FetchError: the first download failed (network, HTTP status or unusable body).
        """
        with self._lifecycle:
            if self._state == _STARTED:
                return
            if self._state == _STOPPED:
                raise RuntimeError("this client was stopped; create a new one")
            self._state = _STARTED
        for sender in self._senders:
            sender.start()
        try:
            self._refresh()
        except FetchError:
            self._poller.start(failures=1)
            raise
        self._poller.start()

    def stop(self, timeout: Optional[float] = 10.0) -> None:
        """Stop background work and flush pending events, within ``timeout`` seconds in all.

        Idempotent and bounded: events that cannot be delivered in time are dropped, counted
        and logged. After ``stop`` the client still evaluates with its last flags; tracking
        drops new events (counted as ``"stopped"``).
        """
        with self._lifecycle:
            if self._state == _STOPPED:
                return
            self._state = _STOPPED
        atexit.unregister(self._atexit_hook)
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self._poller.stop(0 if timeout is None else min(timeout, 1.0)):
            logger.warning("The flag poller did not stop promptly")
        for sender in self._senders:
            sender.stop(None if deadline is None else max(0.0, deadline - time.monotonic()))
        self._session.close()

    def flush(self, timeout: Optional[float] = 10.0) -> bool:
        """Send every queued event now and wait up to ``timeout`` seconds; True if all were sent."""
        deadline = None if timeout is None else time.monotonic() + timeout
        done = True
        for sender in self._senders:
            done = sender.flush(None if deadline is None else max(0.0, deadline - time.monotonic())) and done
        return done

    def __enter__(self) -> "LocalEvaluationClient":
        self.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    # -- flags -------------------------------------------------------------------------------

    def _refresh(self) -> None:
        flags, body = self._fetcher.fetch()
        self._store.publish(flags, body, source="network")

    @property
    def is_ready(self) -> bool:
        """Whether the client has flags to evaluate with."""
        return self._store.current is not None

    @property
    def snapshot(self) -> Optional[FlagSnapshot]:
        """The flag config currently used (``None`` before the first successful download)."""
        return self._store.current

    # -- evaluation --------------------------------------------------------------------------

    def evaluate_v2(
        self,
        user: User,
        flag_keys: Optional[Collection[str]] = None,
        options: Optional[EvaluateOptions] = None,
    ) -> Dict[str, Variant]:
        """Evaluate ``user`` locally.

        Args:
            user: the user to evaluate.
            flag_keys: ``None`` for all flags; otherwise these flags plus their dependencies.
            options: per-call options (exposure tracking).

        Returns:
            Variants by flag key; flags that do not apply are absent. Default variants (the
            "off" variant) are included. Never raises because of flags, user data or network
            state; before the first successful download the result is empty.
        """
        snapshot = self._store.current
        if snapshot is None:
            results: Dict[str, Variant] = {}
        else:
            try:
                results = evaluate(snapshot.flags, user, flag_keys)
            except Exception:  # noqa: BLE001 - evaluate must never raise into a request handler
                logger.exception("Unexpected error while evaluating flags; returning no variants")
                return {}
        try:
            if self._assignment is not None:
                self._assignment.track(user, results)
            if self._exposure is not None and options is not None and options.tracks_exposure:
                self._exposure.track_results(user, results)
        except Exception:  # noqa: BLE001 - tracking problems never reach the caller
            logger.exception("Unexpected error while tracking an evaluation")
        return results

    def track_exposure(self, user: User, flag_key: str, variant: Union[Variant, str, None] = None,
                       experiment_key: Optional[str] = None) -> bool:
        """Track a ``$exposure`` event (requires ``exposure_config``).

        Args:
            user: who was exposed.
            flag_key: the flag or experiment key.
            variant: the variant (or its key) shown; ``None`` unsets the user's variant.
            experiment_key: the experiment run; taken from the variant's metadata when omitted.

        Returns:
            True if an event was queued (False when deduplicated, not configured or dropped).
        """
        if self._exposure is None:
            logger.debug("track_exposure() called without an exposure_config; ignored")
            return False
        try:
            variant_key = variant.key if isinstance(variant, Variant) else variant
            if experiment_key is None and isinstance(variant, Variant) and variant.metadata:
                experiment_key = variant.metadata.get("experimentKey")
            return self._exposure.track(user, flag_key, variant_key, experiment_key)
        except Exception:  # noqa: BLE001
            logger.exception("Unexpected error while tracking an exposure")
            return False

    def stats(self) -> Dict[str, Any]:
        """Counters of tracking and delivery, for monitoring.

        Keys: ``assignment`` and ``exposure`` (evaluated/tracked, deduplicated, skipped by
        reason) when configured, and ``events`` (enqueued, sent, retried, duplicates,
        dropped by reason, queue depth, in flight) summed over senders.
        """
        out: Dict[str, Any] = {}
        if self._assignment is not None:
            out["assignment"] = self._assignment.stats()
        if self._exposure is not None:
            out["exposure"] = self._exposure.stats()
        events: Dict[str, Any] = {"enqueued": 0, "sent": 0, "retried": 0, "duplicates": 0, "dropped": {},
                                  "queue_depth": 0, "in_flight": 0}
        for sender in self._senders:
            for name, value in sender.stats().items():
                if name == "dropped":
                    for reason, n in value.items():
                        events["dropped"][reason] = events["dropped"].get(reason, 0) + n
                else:
                    events[name] += value
        out["events"] = events
        return out

    def evaluate(self, user: User, flag_keys: Optional[List[str]] = None) -> Dict[str, Variant]:
        """Deprecated: use :meth:`evaluate_v2`.

        Like ``evaluate_v2`` but leaves out default variants and undeployed flags.
        """
        warnings.warn("evaluate() is deprecated; use evaluate_v2()", DeprecationWarning, stacklevel=2)
        variants = self.evaluate_v2(user, flag_keys)
        return {
            key: variant
            for key, variant in variants.items()
            if not (variant.metadata and (variant.metadata.get("default") or variant.metadata.get("deployed") is False))
        }
