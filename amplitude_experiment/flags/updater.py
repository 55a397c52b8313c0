"""Keeps the flag store current: bootstrap, first download, cache file, polling and streaming.

Order at ``start()``: bootstrap flags (if given) are published first; then, unless offline,
the stream (if enabled) gets ``stream_flag_conn_timeout`` to deliver, else one download is
made; if that fails the last-known-good cache file (if configured) is loaded. Afterwards the
poller refreshes at the interval, backing off while failing, and stands aside while the
stream is healthy. Every good network config is written to the cache file atomically, from
the bytes received.

With a fleet (``shared``, a :class:`~.shared.SharedFlagSource`), only the member holding the
lease downloads: each poll first acquires or renews the lease, and a downloaded config is
published to the fleet; the others take the fleet's config (source ``"fleet"``). ``start()``
takes the fleet's current config when there is one; otherwise the leader downloads and the
others wait a bounded time for its first publish before downloading on their own. The stream,
if enabled, runs only on the leader. While the fleet is unreachable every member downloads.

Every failure of a download (network, status, a body that is not a usable flag array)
surfaces as :class:`FetchError` from ``start()`` or as a warning of the poller; the last
good flags are kept.
"""

from __future__ import annotations

import logging
import random
from typing import Any, Callable, Optional

import requests

from .._backoff import Backoff
from .._scheduling import PeriodicTask
from ..exceptions import FetchError, FlagConfigError
from .cache import bootstrap_body, read_flag_file, write_flag_file
from .fetcher import FlagFetcher
from .shared import SharedFlagSource
from .store import FlagStore
from .stream import FlagStream


class FlagUpdater:
    """Owns the fetcher, poller and stream of one client and publishes into its store.

    Args:
        store: where configs are published.
        session: the HTTP session for flag requests.
        config: the client's ``LocalEvaluationConfig`` (its ``clock`` and ``logger`` are used).
        deployment_key: sent as ``Authorization: Api-Key …`` (never logged).
        random_fn: returns a float in [0, 1); picks a forked worker's first refresh.
        shared: the fleet's shared flag source, or ``None`` for a process on its own.
    """

    #: Longest ``start()`` waits for a fleet leader's first publish before downloading itself.
    FLEET_START_WAIT = 5.0
    #: Least seconds between two re-downloads made only to give the fleet the current config again.
    REPUBLISH_INTERVAL = 30.0

    def __init__(self, store: FlagStore, session: requests.Session, config: Any, deployment_key: str, *,
                 random_fn: Callable[[], float] = random.random, shared: Optional[SharedFlagSource] = None) -> None:
        self.store = store
        self.shared = shared
        self._leading = False
        self._next_republish = float("-inf")
        self._config = config
        self._deployment_key = deployment_key
        self._clock = config.clock
        self._logger: logging.Logger = config.logger.getChild("flags")
        self._random = random_fn
        self._written_digest: Optional[str] = None
        self._cache_write_failed = False
        self._build(session)

    def _build(self, session: requests.Session) -> None:
        config = self._config
        self.fetcher = FlagFetcher(session, config.server_url, self._deployment_key,
                                   timeout=config.flag_config_poller_request_timeout_millis / 1000,
                                   logger=self._logger)
        interval = config.flag_config_polling_interval_millis / 1000
        self._backoff = Backoff(base=1.0, cap=max(4.0, interval * 4))
        self.poller = PeriodicTask(self._poll, interval, self._backoff,
                                   what="flag refresh", name="amplitude_experiment-poller", clock=self._clock,
                                   logger=self._logger)
        self.stream: Optional[FlagStream] = None
        if config.stream_updates and not config.offline:
            self.stream = FlagStream(
                session,
                config.stream_server_url,
                self._deployment_key,
                self._on_stream_flags,
                keepalive_timeout=config.stream_keepalive_timeout_millis / 1000,
                backoff=Backoff(base=1.0, cap=30.0),
                on_state_change=self._on_stream_state,
                clock=self._clock,
                logger=self._logger,
            )

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> None:
        """Load the first config and start background refresh.

        Raises:
            FetchError: no config could be loaded at all (no bootstrap, network failed and no
                usable cache file). Background refresh keeps trying regardless.
            FlagConfigError: the bootstrap data is not a usable JSON array of flags.
        """
        config = self._config
        self._load_bootstrap()
        if config.offline:
            return
        if self.shared is not None and self._start_from_fleet():
            self.poller.start()
            return
        if self.stream is not None and (self.shared is None or self._leading):
            self.stream.start()
            if self.stream.wait_first(config.stream_flag_conn_timeout / 1000):
                self.poller.start()
                return
            self._logger.info("No flags from the stream within %d ms; downloading them instead",
                              config.stream_flag_conn_timeout)
        try:
            self._poll(force=True)
        except FetchError as exc:
            self.poller.start(failures=1)
            if self._load_cache_file() or self.store.current is not None:
                current = self.store.current
                self._logger.warning("Flag download failed at start (%s); using %s flags and retrying in the "
                                     "background", exc, current.source if current else "no")
                return
            self._logger.warning("Flag download failed at start (%s); no flags to evaluate with yet, retrying in "
                                 "the background in about %.0f s", exc, self._backoff.step(1))
            raise
        self.poller.start()

    def _start_from_fleet(self) -> bool:
        """Take the fleet's config, or wait (bounded) for the leader's first one; True if the store has flags.

        The leader itself returns False at once (it downloads), so does a member while the fleet is
        unreachable; a read-only member that gets nothing raises :class:`FetchError`.
        """
        shared = self.shared
        assert shared is not None
        if self._serve_fleet_latest():
            return True
        if self._lead():
            return False
        wait = min(self.FLEET_START_WAIT, self._config.flag_config_poller_request_timeout_millis / 1000)
        deadline = self._clock.monotonic() + wait
        while True:
            remaining = deadline - self._clock.monotonic()
            if remaining <= 0:
                break
            if shared.wait_for_version(None, remaining) is not None and self._serve_fleet_latest():
                return True
        if self._serve_fleet_latest():
            return True
        if shared.fetch:
            self._logger.info("No flags from the fleet within %.1f s; downloading them instead", wait)
            return False
        if self._load_cache_file() or self.store.current is not None:
            return True
        raise FetchError(f"the fleet published no flags within {wait:.1f} s and this member does not download "
                         "(fetch=False)")

    def _serve_fleet_latest(self) -> bool:
        assert self.shared is not None
        latest = self.shared.latest()
        if latest is None:
            return False
        try:
            self.store.publish(latest[1], source="fleet")
        except FlagConfigError as exc:
            self._logger.warning("The fleet's flag config %s is not usable (%s)", latest[0], exc)
            return False
        return True

    def _lead(self) -> bool:
        """Acquire or renew the fleet lease; on a change, start or stop the stream."""
        assert self.shared is not None
        leading = self.shared.try_lead()
        if leading != self._leading:
            self._leading = leading
            if leading:
                self.fetcher.forget_etag()  # another leader may have published since our last download
            if self.stream is not None and self.poller.running:
                if leading:
                    self.stream.start()
                else:
                    self.stream.stop(1.0)
        return leading

    def stop(self, timeout: Optional[float]) -> None:
        if not self.poller.stop(timeout):
            self._logger.warning("The flag poller did not stop within %s s", timeout)
        if self.stream is not None and not self.stream.stop(timeout):
            self._logger.warning("The flag stream did not stop within %s s", timeout)

    def reinit_after_fork(self, session: requests.Session) -> None:
        """Fresh fetcher, poller and stream in a forked child (threads do not survive fork)."""
        self.store.reset_lock()
        self._leading = False
        self._build(session)

    def restart_background(self) -> None:
        """Start refresh in a forked child, keeping the inherited flags.

        The first refresh comes at a random point of the polling interval, so that workers
        forked together (gunicorn ``--preload``) spread their downloads instead of all
        downloading the moment they fork.
        """
        if self._config.offline:
            return
        if self.stream is not None and self.shared is None:
            self.stream.start()
        self.poller.start(first_wait=self._random() * self.poller.interval)

    # -- sources ----------------------------------------------------------------------------------

    def _load_bootstrap(self) -> None:
        config = self._config
        if config.bootstrap_flags is not None:
            body = bootstrap_body(config.bootstrap_flags)
        elif config.bootstrap_file is not None:
            try:
                body, _ = read_flag_file(config.bootstrap_file)
            except OSError as exc:
                raise FlagConfigError(f"cannot read bootstrap_file {config.bootstrap_file!r}: {exc}") from exc
        else:
            return
        self.store.publish(body, source="bootstrap")

    def _load_cache_file(self) -> bool:
        path = self._config.flag_cache_file
        if path is None:
            return False
        try:
            body, age = read_flag_file(path, now=self._clock.time())
            self.store.publish(body, source="cache", age=age)
        except FileNotFoundError:
            self._logger.info("No flag cache file at %s yet", path)
            return False
        except (OSError, FlagConfigError) as exc:
            self._logger.warning("Cannot use the flag cache file %s: %s", path, exc)
            return False
        self._logger.warning("Evaluating with flags from the cache file %s, %.0f seconds old", path, age)
        return True

    def _publish_from_network(self, body: bytes, source: str) -> None:
        snapshot = self.store.publish(body, source=source)
        if self.shared is not None and self._leading:
            self.shared.publish(body, snapshot.digest)
        path = self._config.flag_cache_file
        if path is None or snapshot.digest == self._written_digest:
            return
        try:
            write_flag_file(path, body)
            self._written_digest = snapshot.digest
            self._cache_write_failed = False
        except OSError as exc:
            if not self._cache_write_failed:
                self._logger.warning("Cannot write the flag cache file %s: %s; the flags in use are not affected",
                                     path, exc)
            self._cache_write_failed = True

    def _poll(self, force: bool = False) -> None:
        """One download; raises FetchError for every kind of failure (the poller backs off)."""
        if self.shared is not None and not self._lead():
            return  # another member downloads; the fleet watcher serves what it publishes
        if not force and self.stream is not None and self.stream.connected:
            return  # the stream is healthy and delivers every change
        body = self.fetcher.fetch_body()
        if body is None and self._fleet_lacks_current():
            self.fetcher.forget_etag()  # e.g. Redis restarted empty: download the body again to republish it
            body = self.fetcher.fetch_body()
        if body is None:  # 304 Not Modified
            self.store.confirm("network")
            return
        try:
            self._publish_from_network(body, "network")
        except FlagConfigError as exc:
            self.fetcher.forget_etag()
            raise FetchError(f"flag download from {self.fetcher.url} was unusable: {exc}", status_code=200) from exc

    def _fleet_lacks_current(self) -> bool:
        """Whether this leader's current config is not the one the fleet serves (at most once per 30 s).

        After a 304 the leader has no body to publish; when the fleet lost it (Redis restarted
        empty) the body is downloaded again. Rate-limited, as an unreachable fleet looks the same.
        """
        current = self.store.current
        if self.shared is None or not self._leading or current is None:
            return False
        now = self._clock.monotonic()
        if now < self._next_republish or self.shared.current_version() == current.digest:
            return False
        self._next_republish = now + self.REPUBLISH_INTERVAL
        return True

    def _on_stream_flags(self, body: bytes) -> None:
        self._publish_from_network(body, "stream")

    def _on_stream_state(self, up: bool) -> None:
        if not up:
            self.poller.run_now()  # cover the gap at once; polling continues until the stream is back
