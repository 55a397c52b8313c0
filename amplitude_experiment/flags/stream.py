"""Flag updates over server-sent events: ``GET {stream_server_url}/sdk/stream/v1/flags``.

Every message carries the full flag array; a message whose data is blank is a keep-alive.
"""

from __future__ import annotations

import logging
import socket
import threading
from typing import Callable, Iterator, Optional

import requests
from urllib3.exceptions import TimeoutError as _Urllib3Timeout

from .._backoff import Backoff
from .._clock import SYSTEM_CLOCK, Clock
from .._http import parse_retry_after, verify_of
from ..exceptions import FlagConfigError
from ..version import LIBRARY, USER_AGENT
from .sse import SSEMessage, SSEParser

_default_logger = logging.getLogger("amplitude_experiment.flags")

__all__ = ["FlagStream", "STREAM_PATH"]

STREAM_PATH = "/sdk/stream/v1/flags"

#: A rejected key will not fix itself quickly; retry, but rarely.
AUTH_BACKOFF_CAP = 300.0

_READ_SIZE = 65536
_AUTH_STATUSES = (401, 403)


class _StreamFailure(Exception):
    """A connection attempt or an open stream failed; carries what the backoff needs."""

    def __init__(self, message: str, status: Optional[int] = None, retry_after: Optional[float] = None,
                 clean_close: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after
        self.clean_close = clean_close


class _Run:
    """State of one start()..stop() cycle, so a late-exiting old thread never touches a new one."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.response: Optional[requests.Response] = None


class _Watchdog:
    """Ends a connection that stays silent for ``timeout`` seconds, on a short-lived thread.

    The stream thread calls :meth:`feed` whenever bytes arrive. Time is read and waited on
    through ``clock``, so a test moves it with a manual clock instead of waiting.
    """

    def __init__(self, clock: Clock, timeout: float, on_silence: Callable[[], None], name: str) -> None:
        self._clock = clock
        self._timeout = timeout
        self._on_silence = on_silence
        self._deadline = clock.monotonic() + timeout
        self._done = threading.Event()
        self.fired = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def feed(self) -> None:
        """Data arrived: the silence starts over."""
        self._deadline = self._clock.monotonic() + self._timeout

    def cancel(self) -> None:
        self._done.set()

    def _run(self) -> None:
        clock, done = self._clock, self._done
        while True:
            remaining = self._deadline - clock.monotonic()
            if remaining <= 0:
                self.fired = True
                self._on_silence()
                return
            if clock.wait(done, remaining):
                return


class FlagStream:
    """Keeps a server-sent-events connection to the flag stream open on a daemon thread.

    Each flag message's bytes are handed to ``on_flags(body)``, which decodes and publishes them
    and raises :class:`FlagConfigError` for a message that is not usable: that message is
    logged and ignored (the stream stays up, the last good flags stay). A stream that is
    silent for ``keepalive_timeout`` seconds (measured on ``clock``), closes, or cannot be
    opened is reconnected after a jittered ``backoff`` wait.

    Args:
        session: the ``requests.Session`` to use (owned by the caller).
        stream_server_url: the stream server, e.g. ``https://stream.lab.amplitude.com``.
        deployment_key: the deployment key (sent, never logged).
        on_flags: called on the stream thread with each flag message's bytes; raises
            ``FlagConfigError`` when the message is not usable.
        keepalive_timeout: seconds without any data after which the connection counts as dead.
        connect_timeout: TCP/TLS connect timeout in seconds.
        backoff: waits between reconnection attempts.
        auth_backoff: waits after HTTP 401/403; by default ``backoff`` with its cap raised to
            ``AUTH_BACKOFF_CAP``.
        on_state_change: called on the stream thread with True once a connection delivers flags,
            and with False when a connection fails or ends (only on changes).
        name: the thread's name.
        clock: time source and waiter of the keep-alive watchdog and the backoff.
        logger: where warnings go.
    """

    def __init__(
        self,
        session: requests.Session,
        stream_server_url: str,
        deployment_key: str,
        on_flags: Callable[[bytes], None],
        *,
        keepalive_timeout: float = 17.0,
        connect_timeout: float = 10.0,
        backoff: Backoff,
        auth_backoff: Optional[Backoff] = None,
        on_state_change: Optional[Callable[[bool], None]] = None,
        name: str = "amplitude_experiment-stream",
        clock: Clock = SYSTEM_CLOCK,
        logger: Optional[logging.Logger] = None,
    ) -> None:
        if keepalive_timeout <= 0 or connect_timeout <= 0:
            raise ValueError("FlagStream timeouts must be positive")
        self._session = session
        self.url = stream_server_url.rstrip("/") + STREAM_PATH
        self._headers = {
            "Authorization": f"Api-Key {deployment_key}",
            "X-Amp-Exp-Library": LIBRARY,
            "User-Agent": USER_AGENT,
            "Accept": "text/event-stream",
        }
        self._clock = clock
        self._logger = logger or _default_logger
        self._on_flags = on_flags
        self._on_state_change = on_state_change
        self.keepalive_timeout = keepalive_timeout
        self.connect_timeout = connect_timeout
        self._backoff = backoff
        #: waits between attempts after the key was rejected (401/403): long, the key will not fix itself
        self.auth_backoff = auth_backoff or Backoff(backoff.base, max(backoff.cap, AUTH_BACKOFF_CAP))
        self._name = name
        self._run_state = _Run()
        self._thread: Optional[threading.Thread] = None
        self._first = threading.Event()
        self._connected = False
        self._reported: Optional[bool] = None  # the state last passed to on_state_change
        self._outage_logged = False
        self._auth_logged = False
        #: Consecutive failed attempts (reset when a connection delivers flags).
        self.consecutive_failures = 0
        #: Streams opened (HTTP 200).
        self.connects = 0
        #: Flag messages received, usable or not.
        self.messages = 0
        #: Flag messages that could not be decoded and were ignored.
        self.rejected = 0
        #: Keep-alive messages received.
        self.keepalives = 0
        #: Failed connection attempts and ended streams, in all.
        self.failures = 0

    # ----- public API ------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """True while the current connection has delivered flags and has not failed since."""
        return self._connected

    @property
    def running(self) -> bool:
        """True while the stream thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the stream thread (no-op if it is already running)."""
        if self.running and not self._run_state.stop.is_set():
            return
        run = _Run()
        self._run_state = run
        self._reported = None
        self._outage_logged = self._auth_logged = False
        self.consecutive_failures = 0
        self._thread = threading.Thread(target=self._run, args=(run,), name=self._name, daemon=True)
        self._thread.start()

    def stop(self, timeout: Optional[float] = None) -> bool:
        """Stop the thread, interrupting a blocked read; wait up to ``timeout`` s. True if it ended.

        A read blocked on an open stream is interrupted at once. An attempt still connecting
        ends by itself within ``connect_timeout`` + ``keepalive_timeout`` (the thread is a daemon).
        """
        run = self._run_state
        run.stop.set()
        with run.lock:
            response = run.response
            if response is not None:
                _interrupt(response, self._logger)
        self._connected = False
        thread = self._thread
        if thread is None or thread is threading.current_thread():
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def wait_first(self, timeout: Optional[float] = None) -> bool:
        """Wait (on the clock) until the first flags message has been delivered; True if it has."""
        return self._clock.wait(self._first, timeout)

    # ----- the stream thread -----------------------------------------------------------------

    def _run(self, run: _Run) -> None:
        stop = run.stop
        while not stop.is_set():
            try:
                self._stream_once(run)
                failure: Optional[_StreamFailure] = None
            except _StreamFailure as exc:
                failure = exc
            except Exception as exc:  # noqa: BLE001 - the loop must outlive any failure
                failure = _StreamFailure(_describe(exc))
            if stop.is_set():
                break
            try:
                wait = self._record_failure(failure or _StreamFailure("the stream ended"))
            except Exception:  # noqa: BLE001
                self._logger.exception("Flag stream bookkeeping failed")
                wait = self._backoff.cap
            self._clock.wait(stop, wait)
        if self._run_state is run:  # a restart may already own the state
            self._connected = False

    def _stream_once(self, run: _Run) -> None:
        """One connection: open it and read until it ends; raises _StreamFailure on any failure."""
        try:
            response = self._session.get(self.url, headers=self._headers, stream=True, verify=verify_of(self._session),
                                         timeout=(self.connect_timeout, self.keepalive_timeout))
        except requests.RequestException as exc:
            raise _StreamFailure(f"connecting to {self.url} failed: {_describe(exc)}") from exc
        with run.lock:
            if run.stop.is_set():
                response.close()
                return
            run.response = response
        watchdog: Optional[_Watchdog] = None
        try:
            if response.status_code != 200:
                raise _StreamFailure(f"{self.url} returned HTTP {response.status_code}", response.status_code,
                                     parse_retry_after(response.headers.get("Retry-After")))
            self.connects += 1
            watchdog = _Watchdog(self._clock, self.keepalive_timeout, lambda: _interrupt(response, self._logger),
                                 name=f"{self._name}-watchdog")
            self._read(run, response, watchdog)
        finally:
            if watchdog is not None:
                watchdog.cancel()
            with run.lock:
                run.response = None
            response.close()

    def _read(self, run: _Run, response: requests.Response, watchdog: _Watchdog) -> None:
        parser = SSEParser()
        try:
            for chunk in _chunks(response):
                watchdog.feed()
                for message in parser.feed(chunk):
                    if run.stop.is_set():
                        return
                    self._handle(message)
        except Exception as exc:  # noqa: BLE001 - requests, urllib3 and socket errors all end up here
            if run.stop.is_set():
                return
            if watchdog.fired or _is_timeout(exc):
                raise _StreamFailure(f"no data from {self.url} for {self.keepalive_timeout:g} s") from exc
            raise _StreamFailure(f"reading {self.url} failed: {_describe(exc)}") from exc
        parser.close()
        if watchdog.fired:
            raise _StreamFailure(f"no data from {self.url} for {self.keepalive_timeout:g} s")
        raise _StreamFailure("the server closed the stream", clean_close=self._connected)

    def _handle(self, message: SSEMessage) -> None:
        if not message.data.strip():
            self.keepalives += 1
            return
        if message.event != "message":
            self._logger.debug("Ignoring a flag stream event of type %r", message.event)
            return
        self.messages += 1
        body = message.data.encode("utf-8", "surrogatepass")
        try:
            self._on_flags(body)
        except FlagConfigError as exc:
            self.rejected += 1
            self._logger.warning("Ignoring an unusable flag message (%d bytes) from %s; keeping the last good "
                                 "flags: %s", len(body), self.url, exc)
            return
        except Exception:  # noqa: BLE001 - a consumer bug must not kill the stream
            self._logger.exception("Handling flags from the stream failed; keeping the last good flags")
            return
        if not self._connected:
            self._connected = True
            if self._outage_logged:
                self._logger.info("Flag stream recovered after %d failed attempts", self.consecutive_failures)
            self._outage_logged = False
            self._auth_logged = False
            self.consecutive_failures = 0
            self._report(True)
        self._first.set()

    def _record_failure(self, failure: _StreamFailure) -> float:
        """Count and log a failure, report the state, and return how long to wait."""
        self.failures += 1
        self.consecutive_failures += 1
        was_connected = self._connected
        self._connected = False
        auth = failure.status in _AUTH_STATUSES
        backoff = self.auth_backoff if auth else self._backoff
        wait = backoff.delay(self.consecutive_failures, failure.retry_after)
        if auth and not self._auth_logged:
            self._auth_logged = self._outage_logged = True
            self._logger.error("Flag stream %s was refused with HTTP %d: the deployment key was rejected; "
                               "keeping the last good flags and retrying in %.0f s", self.url, failure.status, wait)
        elif not self._outage_logged:
            if failure.clean_close and was_connected:
                # Servers end long-lived streams routinely; only a failed reconnect is an outage.
                self._logger.info("Flag stream closed by the server; reconnecting")
            else:
                self._outage_logged = True
                self._logger.warning("Flag stream is down (%s); keeping the last good flags and reconnecting in "
                                     "%.1f s, then with backoff", failure, wait)
        else:
            self._logger.debug("Flag stream attempt failed again (%d in a row): %s",
                               self.consecutive_failures, failure)
        self._report(False)
        return wait

    def _report(self, up: bool) -> None:
        if self._reported is up:
            return
        self._reported = up
        if self._on_state_change is None:
            return
        try:
            self._on_state_change(up)
        except Exception:  # noqa: BLE001
            self._logger.exception("Flag stream state callback failed")


def _chunks(response: requests.Response) -> Iterator[bytes]:
    """Body bytes as soon as they arrive (never waiting to fill a buffer)."""
    raw = response.raw
    if getattr(raw, "chunked", False):
        # urllib3 yields each HTTP chunk as it is read.
        yield from response.iter_content(chunk_size=None)
        return
    read1 = getattr(raw, "read1", None)
    if read1 is not None:
        while True:
            data = read1(_READ_SIZE)
            if not data:
                return
            yield data
    # Old urllib3 without read1: single bytes are slow but never wait for data that is not coming.
    yield from response.iter_content(chunk_size=1)


def _interrupt(response: requests.Response, log: logging.Logger) -> None:
    """Wake a thread blocked reading ``response``, through urllib3's ``HTTPResponse.shutdown()``.

    urllib3 before 2.3 has no such call; the read timeout (``keepalive_timeout``) then ends
    the read instead. Closing the response from here could block on the reader's buffer lock.
    """
    shutdown = getattr(response.raw, "shutdown", None)
    if shutdown is None:
        log.debug("urllib3 cannot interrupt a read; the read timeout will end the flag stream")
        return
    try:
        shutdown()
    except (OSError, ValueError, RuntimeError):
        pass  # already closed or released


def _is_timeout(exc: BaseException) -> bool:
    seen = set()
    current: Optional[BaseException] = exc
    # requests wraps urllib3's ReadTimeoutError in a ConnectionError; look down the chain and args.
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (socket.timeout, TimeoutError, requests.Timeout, _Urllib3Timeout)):
            return True
        nested = next((arg for arg in current.args if isinstance(arg, BaseException)), None)
        current = nested or current.__cause__ or current.__context__
    return False


def _describe(exc: BaseException) -> str:
    return f"{exc.__class__.__name__}: {exc}"
