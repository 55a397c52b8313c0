"""LocalEvaluationClient: wires flag delivery, evaluation and tracking; owns the threads."""

from __future__ import annotations

import atexit
import functools
import logging
import os
import random
import threading
import time
import warnings
import weakref
from typing import Any, Callable, Collection, Dict, List, Optional, Set, Union

import requests

from ..cohorts.sync import CohortSync
from ..evaluation import CompiledFlags, evaluate
from ..evaluation.explain import EvaluationDetail, Explanation, evaluate_details, explain
from ..events.assignment import AssignmentTracker
from ..events.config import _TrackingConfig
from ..events.exposure import ExposureTracker
from ..events.sender import EventSender
from ..exceptions import ConfigurationError
from ..flags import FlagSnapshot, FlagStore
from ..flags.updater import FlagUpdater
from ..user import User
from ..variant import Variant
from .cohort_view import with_cohorts
from .config import LocalEvaluationConfig
from .evaluate_options import EvaluateOptions
from .fleet import FleetWatcher

logger = logging.getLogger("amplitude_experiment.local")

_NEW, _STARTED, _STOPPED = "new", "started", "stopped"

#: How long the interpreter-exit hook waits for a client that was never stopped.
ATEXIT_TIMEOUT = 5.0


def _stop_at_exit(client_ref: "weakref.ref[LocalEvaluationClient]") -> None:
    client = client_ref()
    if client is not None:
        client.stop(timeout=ATEXIT_TIMEOUT)


def _warn_about_cohort_targeting(log: logging.Logger, flags: CompiledFlags) -> None:
    """Without cohort sync, cohort conditions see only user-supplied cohort_ids: say so once per config."""
    targeting = sorted(flag.key for flag in flags.order if flag.cohort_ids)
    if targeting:
        log.warning("Flags %s target cohorts but no cohort_sync_config was given; only cohort_ids set on the "
                       "User are used", ", ".join(targeting))


def _check_arguments(user: Any, flag_keys: Any) -> None:
    """Wrong argument types are programming errors: say so instead of returning defaults."""
    if not isinstance(user, User):
        raise TypeError(f"user must be an amplitude_experiment.User, not {type(user).__name__}; "
                        "build one with User(user_id=..., device_id=..., user_properties={...})")
    if flag_keys is not None and not isinstance(flag_keys, str):
        try:
            iter(flag_keys)
        except TypeError:
            raise TypeError(f"flag_keys must be a collection of flag keys or None, not {type(flag_keys).__name__}"
                            ) from None


def enable_debug_logging(target: logging.Logger) -> None:
    """``debug=True``: log at DEBUG, and print to stderr when nothing else would show the lines."""
    target.setLevel(logging.DEBUG)
    if not target.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        target.addHandler(handler)


def _after_fork_in_child(client_ref: "weakref.ref[LocalEvaluationClient]") -> None:
    client = client_ref()
    if client is None:
        return
    try:
        client._reinit_after_fork()
    except Exception:  # noqa: BLE001 - never break the child process over this
        logger.exception("Could not reinitialise the Experiment client after fork")


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
            raise ConfigurationError("api_key (the deployment key) must be a non-empty string")
        if not api_key.isprintable() or api_key != api_key.strip():
            raise ConfigurationError("api_key (the deployment key) contains whitespace or control characters")
        self.api_key = api_key
        self.config = config if config is not None else LocalEvaluationConfig()
        self._logger = self.config.logger
        if self.config.debug:
            enable_debug_logging(self._logger)
        self._log = self._logger.getChild("local")
        self._state = _NEW
        self._lifecycle = threading.Lock()
        self._owns_session = self.config.session is None
        self._session = self.config.session or requests.Session()
        self._store = FlagStore(clock=self.config.clock, logger=self._logger.getChild("flags"))
        fleet = self.config.fleet
        cohort_config = self.config.cohort_sync_config
        self._cohorts: Optional[CohortSync] = None
        if cohort_config is not None:
            self._cohorts = CohortSync(self._session, cohort_config, clock=self.config.clock,
                                       logger=self._logger.getChild("cohorts"),
                                       shared=fleet.cohorts(cohort_config.api_key) if fleet is not None else None)
            self._store.prepare = self._cohorts.prepare
        else:
            self._store.prepare = functools.partial(_warn_about_cohort_targeting, self._log)
        shared = fleet.flags(api_key) if fleet is not None else None
        self._updater = FlagUpdater(self._store, self._session, self.config, api_key, shared=shared)
        self._fleet_watcher: Optional[FleetWatcher] = None
        if shared is not None:
            self._fleet_watcher = FleetWatcher(self._store, shared, on_lead=self._updater.poller.run_now,
                                               clock=self.config.clock, logger=self._logger.getChild("fleet"),
                                               on_renew=self._cohorts.renew_lease if self._cohorts else None)
        self._senders: List[EventSender] = []
        self._assignment: Optional[AssignmentTracker] = None
        self._exposure: Optional[ExposureTracker] = None
        if self.config.assignment_config is not None:
            assignment = self.config.assignment_config
            self._assignment = AssignmentTracker(self._sender_for(assignment), assignment.cache_capacity,
                                                 assignment.send_evaluated_props,
                                                 event_property_names=assignment.event_property_names,
                                                 clock=self.config.clock)
        if self.config.exposure_config is not None:
            exposure = self.config.exposure_config
            self._exposure = ExposureTracker(self._sender_for(exposure), exposure.cache_capacity,
                                             clock=self.config.clock)
        self._pid = os.getpid()
        self._atexit_hook = functools.partial(_stop_at_exit, weakref.ref(self))
        atexit.register(self._atexit_hook)
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=functools.partial(_after_fork_in_child, weakref.ref(self)))

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
            clock=self.config.clock,
            logger=self._logger.getChild("events"),
            claims=self.config.fleet.claims(config.api_key) if self.config.fleet is not None else None,
        )
        self._senders.append(sender)
        return sender

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Load the flags, then keep them fresh in the background.

        Blocks for the first load only: bootstrap flags, the stream (at most
        ``stream_flag_conn_timeout``), or one download (at most the request timeout), then the
        cache file if that failed. If no flags could be loaded at all, background refresh still
        starts (retrying with backoff) so that a caller who catches the error gets flags as soon
        as Amplitude is reachable.

        ``start()`` after :meth:`stop` starts the client again (fresh threads and connections;
        the flags it had are kept until the first update), as the official SDK allows.

        Raises:
            FetchError: no flags could be loaded (network, HTTP status or unusable body, and no
                bootstrap or usable cache file).
            FlagConfigError: the bootstrap flags are not a JSON array.
        """
        with self._lifecycle:
            if self._state == _STARTED:
                return
            restarting = self._state == _STOPPED
            self._state = _STARTED
        if restarting:
            self._renew_workers()
            atexit.register(self._atexit_hook)
        for sender in self._senders:
            sender.start()
        try:
            self._updater.start()
        finally:
            if self._fleet_watcher is not None:
                self._fleet_watcher.start()
            if self._cohorts is not None:
                self._cohorts.start()

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
        self._updater.stop(1.0 if timeout is None else min(timeout, 1.0))
        if self._fleet_watcher is not None and not self._fleet_watcher.stop(1.0 if timeout is None
                                                                            else min(timeout, 1.0)):
            self._log.warning("The fleet watcher did not stop within %s s", timeout)
        if self._cohorts is not None:
            self._cohorts.stop(1.0 if timeout is None else min(timeout, 1.0))
        self._stop_senders(None if deadline is None else max(0.0, deadline - time.monotonic()))
        if self._owns_session:
            self._session.close()

    def _stop_senders(self, timeout: Optional[float]) -> None:
        """Stop every sender within the same bound (side by side, not one after another)."""
        if len(self._senders) == 1:
            self._senders[0].stop(timeout)
            return
        stoppers = [threading.Thread(target=sender.stop, args=(timeout,), name="amplitude_experiment-stop")
                    for sender in self._senders]
        for stopper in stoppers:
            stopper.start()
        for stopper in stoppers:
            stopper.join()

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

    def _renew_workers(self) -> None:
        """Fresh HTTP session, fetcher, poller, stream, cohort sync and event senders.

        Used after ``fork()`` and when a stopped client is started again. Flags and dedup
        memory are kept; events still queued in the old senders are not carried over.
        """
        if self._owns_session:
            self._session = requests.Session()  # the old one is closed (stop) or the parent's (fork)
        else:
            for adapter in self._session.adapters.values():
                adapter.close()  # drop pooled connections that belong to another process or run
        self._updater.reinit_after_fork(self._session)
        if self._cohorts is not None:
            self._cohorts.reinit_after_fork(self._session)
        self._senders = []
        for tracker, config in ((self._assignment, self.config.assignment_config),
                                (self._exposure, self.config.exposure_config)):
            if tracker is not None and config is not None:
                tracker.reinit_after_fork(self._sender_for(config))

    def _reinit_after_fork(self) -> None:
        """Make a client inherited through ``fork()`` work in the child.

        Threads do not survive fork and locks may be held by threads that no longer exist, so
        the child gets fresh locks, a fresh HTTP session (the parent's pooled sockets stay the
        parent's), fresh background threads, and an empty event queue: what the parent queued
        is the parent's to send. Flags and dedup memory are kept.
        """
        self._pid = os.getpid()
        self._lifecycle = threading.Lock()
        old_senders = self._senders
        self._renew_workers()
        if self._state == _STARTED:
            for sender in self._senders:
                sender.start()
            self._updater.restart_background()
            if self._fleet_watcher is not None:
                self._fleet_watcher.start()
            if self._cohorts is not None:
                # Like the flag poller: forked workers spread their first refresh over the interval.
                interval = self._cohorts.config.cohort_polling_interval_millis / 1000
                self._cohorts.start(first_wait=random.uniform(0, interval))
        self._log.debug("Reinitialised after fork in process %d (%d parent event senders discarded)",
                        self._pid, len(old_senders))

    # -- flags -------------------------------------------------------------------------------

    def add_flags_listener(self, listener: Callable[[Set[str]], None]) -> None:
        """Call ``listener(changed_flag_keys)`` after every config update that changes flags.

        It runs on the thread that published the update (start, poller or stream); keep it short.
        """
        self._store.add_listener(listener)

    @property
    def snapshot_age(self) -> Optional[float]:
        """Seconds since the current flags were last confirmed current (``None`` without flags)."""
        snapshot = self._store.current
        return None if snapshot is None else snapshot.age()

    @property
    def snapshot_source(self) -> Optional[str]:
        """Where the current flags came from: network, stream, bootstrap or cache."""
        snapshot = self._store.current
        return None if snapshot is None else snapshot.source

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
        _check_arguments(user, flag_keys)
        snapshot = self._store.current
        if snapshot is None:
            results: Dict[str, Variant] = {}
        else:
            try:
                flags = snapshot.flags
                if self._cohorts is not None and flags.cohort_ids:
                    results = evaluate(flags, with_cohorts(user, flags.cohort_ids, self._cohorts.store), flag_keys)
                else:
                    results = evaluate(flags, user, flag_keys)
            except Exception:  # noqa: BLE001 - evaluate must never raise into a request handler
                self._log.exception("Unexpected error while evaluating flags; returning no variants")
                return {}
        try:
            if self._assignment is not None:
                self._assignment.track(user, results)
            if self._exposure is not None and options is not None and options.tracks_exposure:
                self._exposure.track_results(user, results)
        except Exception:  # noqa: BLE001 - tracking problems never reach the caller
            self._log.exception("Unexpected error while tracking an evaluation")
        return results

    def evaluate_details(self, user: User, flag_keys: Optional[Collection[str]] = None) -> Dict[str, EvaluationDetail]:
        """Like :meth:`evaluate_v2`, with the reason for each flag (and no tracking).

        Requested flags that give no variant are included with their reason (``NO_VARIANT``,
        ``FLAG_NOT_FOUND``, ``FLAG_SKIPPED``, or ``NOT_READY`` before the first flags).
        """
        _check_arguments(user, flag_keys)
        snapshot = self._store.current
        try:
            return evaluate_details(snapshot.flags if snapshot else None, self._with_cohorts(user, snapshot), flag_keys)
        except Exception:  # noqa: BLE001
            self._log.exception("Unexpected error while explaining flags")
            return {}

    def explain(self, user: User, flag_key: str) -> Optional[Explanation]:
        """A condition-by-condition trace of ``flag_key`` for ``user`` (``None`` before the first flags).

        ``print(client.explain(user, "my-flag"))`` shows why the user got their variant.
        """
        _check_arguments(user, None)
        if not isinstance(flag_key, str):
            raise TypeError(f"flag_key must be a str, not {type(flag_key).__name__}")
        snapshot = self._store.current
        if snapshot is None:
            return None
        return explain(snapshot.flags, self._with_cohorts(user, snapshot), flag_key)

    def _with_cohorts(self, user: Any, snapshot: Optional[FlagSnapshot]) -> Any:
        if self._cohorts is None or snapshot is None or not snapshot.flags.cohort_ids:
            return user
        return with_cohorts(user, snapshot.flags.cohort_ids, self._cohorts.store)

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
            self._log.debug("track_exposure() called without an exposure_config; ignored")
            return False
        try:
            variant_key = variant.key if isinstance(variant, Variant) else variant
            if experiment_key is None and isinstance(variant, Variant) and variant.metadata:
                experiment_key = variant.metadata.get("experimentKey")
            return self._exposure.track(user, flag_key, variant_key, experiment_key)
        except Exception:  # noqa: BLE001
            self._log.exception("Unexpected error while tracking an exposure")
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
