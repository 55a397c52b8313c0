"""Flag updates over server-sent events: ``GET {stream_server_url}/sdk/stream/v1/flags``.

Every message carries the full flag array; a message whose data is blank is a keep-alive.
"""

from __future__ import annotations

import logging
import socket
import threading
from typing import Any, Callable, Iterator, List, Optional

import requests
from urllib3.exceptions import TimeoutError as _Urllib3Timeout

from .._backoff import Backoff
from ..exceptions import FlagConfigError
from ..version import LIBRARY
from .fetcher import parse_flag_body
from .sse import SSEMessage, SSEParser

logger = logging.getLogger("amplitude_experiment.flags")

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


class FlagStream:
    """Keeps a server-sent-events connection to the flag stream open on a daemon thread.

    Each flag message is decoded with :func:`parse_flag_body` and handed to ``on_flags(flags, raw)``.
    A message that is not a JSON array is logged and ignored (the stream stays up). A stream that
    is silent for ``keepalive_timeout`` seconds, closes, or cannot be opened is reconnected after a
    jittered ``backoff`` wait.

    Args:
        session: the ``requests.Session`` to use (owned by the caller).
        stream_server_url: the stream server, e.g. ``https://stream.lab.amplitude.com``.
        deployment_key: the deployment key (sent, never logged).
        on_flags: called on the stream thread with the decoded flags and the raw message bytes.
        keepalive_timeout: seconds without any data after which the connection counts as dead.
        connect_timeout: TCP/TLS connect timeout in seconds.
        backoff: waits between reconnection attempts.
        auth_backoff: waits after HTTP 401/403; by default ``backoff`` with its cap raised to
            ``AUTH_BACKOFF_CAP``.
        on_state_change: called on the stream thread with True once a connection delivers flags,
            and with False when a connection fails or ends (only on changes).
        name: the thread's name.
    """

    def __init__(
        self,
        session: requests.Session,
        stream_server_url: str,
        deployment_key: str,
        on_flags: Callable[[List[Any], bytes], None],
        *,
        keepalive_timeout: float = 17.0,
        connect_timeout: float = 10.0,
        backoff: Backoff,
        auth_backoff: Optional[Backoff] = None,
        on_state_change: Optional[Callable[[bool], None]] = None,
        name: str = "amplitude_experiment-stream",
    ) -> None:
        if keepalive_timeout <= 0 or connect_timeout <= 0:
            raise ValueError("FlagStream timeouts must be positive")
        self._session = session
        self.url = stream_server_url.rstrip("/") + STREAM_PATH
        self._headers = {
            "Authorization": f"Api-Key {deployment_key}",
            "X-Amp-Exp-Library": LIBRARY,
            "Accept": "text/event-stream",
        }
        self._on_flags = on_flags
        self._on_state_change = on_state_change
        self.keepalive_timeout = keepalive_timeout
        self.connect_timeout = connect_timeout
        self._backoff = backoff
        self._auth_backoff = auth_backoff or Backoff(backoff.base, max(backoff.cap, AUTH_BACKOFF_CAP))
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
                _interrupt(response)
        self._connected = False
        thread = self._thread
        if thread is None or thread is threading.current_thread():
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def wait_first(self, timeout: Optional[float] = None) -> bool:
        """Wait until the first flags message has been delivered; True if it has."""
        return self._first.wait(timeout)

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
                logger.exception("Flag stream bookkeeping failed")
                wait = self._backoff.cap
            stop.wait(wait)
        if self._run_state is run:  # a restart may already own the state
            self._connected = False

    def _stream_once(self, run: _Run) -> None:
        """One connection: open it and read until it ends; raises _StreamFailure on any failure."""
        try:
            response = self._session.get(self.url, headers=self._headers, stream=True,
                                         timeout=(self.connect_timeout, self.keepalive_timeout))
        except requests.RequestException as exc:
            raise _StreamFailure(f"connecting to {self.url} failed: {_describe(exc)}") from exc
        with run.lock:
            if run.stop.is_set():
                response.close()
                return
            run.response = response
        try:
            if response.status_code != 200:
                raise _StreamFailure(f"{self.url} returned HTTP {response.status_code}", response.status_code,
                                     _retry_after(response))
            self.connects += 1
            parser = SSEParser()
            try:
                for chunk in _chunks(response):
                    for message in parser.feed(chunk):
                        if run.stop.is_set():
                            return
                        self._handle(message)
            except Exception as exc:  # noqa: BLE001 - requests, urllib3 and socket errors all end up here
                if _is_timeout(exc):
                    raise _StreamFailure(f"no data from {self.url} for {self.keepalive_timeout:g} s") from exc
                raise _StreamFailure(f"reading {self.url} failed: {_describe(exc)}") from exc
            parser.close()
            raise _StreamFailure("the server closed the stream", clean_close=self._connected)
        finally:
            with run.lock:
                run.response = None
            response.close()

    def _handle(self, message: SSEMessage) -> None:
        if not message.data.strip():
            self.keepalives += 1
            return
        if message.event != "message":
            logger.debug("Ignoring a flag stream event of type %r", message.event)
            return
        self.messages += 1
        raw = message.data.encode("utf-8")
        try:
            flags = parse_flag_body(raw)
        except FlagConfigError as exc:
            self.rejected += 1
            logger.warning("Ignoring an unusable flag stream message (%d bytes); keeping the last good "
                           "flags: %s", len(raw), exc)
            return
        try:
            self._on_flags(flags, raw)
        except Exception:  # noqa: BLE001 - a consumer bug must not kill the stream
            logger.exception("Handling flags from the stream failed; keeping the last good flags")
            return
        if not self._connected:
            self._connected = True
            if self._outage_logged:
                logger.info("Flag stream recovered after %d failed attempts", self.consecutive_failures)
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
        if auth and not self._auth_logged:
            self._auth_logged = self._outage_logged = True
            logger.error("Flag stream was refused with HTTP %d: check the deployment key; "
                         "retrying with backoff", failure.status)
        elif not self._outage_logged:
            if failure.clean_close and was_connected:
                # Servers end long-lived streams routinely; only a failed reconnect is an outage.
                logger.info("Flag stream closed by the server; reconnecting")
            else:
                self._outage_logged = True
                logger.warning("Flag stream is down (%s); keeping the last good flags and reconnecting "
                               "with backoff", failure)
        else:
            logger.debug("Flag stream attempt failed again (%d in a row): %s",
                         self.consecutive_failures, failure)
        self._report(False)
        backoff = self._auth_backoff if auth else self._backoff
        return backoff.delay(self.consecutive_failures, failure.retry_after)

    def _report(self, up: bool) -> None:
        if self._reported is up:
            return
        self._reported = up
        if self._on_state_change is None:
            return
        try:
            self._on_state_change(up)
        except Exception:  # noqa: BLE001
            logger.exception("Flag stream state callback failed")


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


def _interrupt(response: requests.Response) -> None:
    """Wake a thread blocked reading ``response`` by shutting its socket down."""
    sock = _socket_of(response)
    if sock is None:
        # Closing the response here instead could block on the reader's buffer lock.
        logger.debug("Flag stream socket not found; the read timeout will end the stream")
        return
    try:
        # The base-class call skips SSLSocket.shutdown, which would mutate TLS state under the reader.
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass  # already closed


def _socket_of(response: requests.Response) -> Optional[socket.socket]:
    raw = response.raw
    connection = getattr(raw, "connection", None)
    candidates = [getattr(connection, "sock", None)]
    # When the server says "Connection: close", http.client hands the socket to the response and
    # forgets it on the connection; it is then only reachable through the response's file object.
    fp = getattr(getattr(raw, "_fp", None), "fp", None)
    candidates.append(getattr(getattr(fp, "raw", None), "_sock", None))
    for sock in candidates:
        if sock is not None and not isinstance(sock, socket.socket):
            sock = getattr(sock, "socket", None)  # urllib3's SSLTransport wraps the real socket
        if isinstance(sock, socket.socket):
            return sock
    return None


def _retry_after(response: requests.Response) -> Optional[float]:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None  # HTTP-date form: the backoff alone decides
    return seconds if seconds >= 0 else None


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
