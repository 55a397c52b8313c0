"""LocalEvaluationClient: wires flag delivery, evaluation and tracking; owns the threads."""

from __future__ import annotations

import logging
import threading
import warnings
from typing import Any, Collection, Dict, List, Optional

import requests

from .._backoff import Backoff
from ..evaluation import evaluate
from ..exceptions import FetchError
from ..flags import FlagFetcher, FlagSnapshot, FlagStore
from ..flags.poller import FlagPoller
from ..user import User
from ..variant import Variant
from .config import LocalEvaluationConfig
from .evaluate_options import EvaluateOptions

logger = logging.getLogger("amplitude_experiment.local")

_NEW, _STARTED, _STOPPED = "new", "started", "stopped"


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
        try:
            self._refresh()
        except FetchError:
            self._poller.start(failures=1)
            raise
        self._poller.start()

    def stop(self, timeout: Optional[float] = 10.0) -> None:
        """Stop background work and flush pending events, within ``timeout`` seconds.

        Idempotent. After ``stop`` the client still evaluates with its last flags.
        """
        with self._lifecycle:
            if self._state == _STOPPED:
                return
            self._state = _STOPPED
        if not self._poller.stop(timeout):
            logger.warning("The flag poller did not stop within %s s", timeout)
        self._session.close()

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
            return {}
        try:
            return evaluate(snapshot.flags, user, flag_keys)
        except Exception:  # noqa: BLE001 - evaluate must never raise into a request handler
            logger.exception("Unexpected error while evaluating flags; returning no variants")
            return {}

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
