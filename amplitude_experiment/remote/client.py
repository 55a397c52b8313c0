"""``RemoteEvaluationClient``: Amplitude evaluates, one HTTP request per fetch."""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import json
import logging
import threading
import warnings
from typing import Any, Callable, Dict, Optional, Tuple

import requests
from requests.adapters import HTTPAdapter

from .._http import parse_retry_after, verify_of
from ..exceptions import ConfigurationError, FetchException
from ..user import User
from ..variant import Variant
from ..version import USER_AGENT
from . import wire
from .config import RemoteEvaluationConfig
from .fetch_options import FetchOptions
from .retry import Failure, RetryPolicy, retryable_status

#: ``callback(user, variants)`` on success, ``callback(user, {}, error)`` when the fetch raised.
FetchCallback = Callable[..., Any]

#: A warning of the same kind is logged at most once per this many seconds (the rest at DEBUG).
_WARNING_INTERVAL = 10.0
#: Threads of the pool running ``fetch_async_v2``/``afetch_v2``: at least this many, or
#: ``connection_pool_max_size`` when larger.
_MIN_ASYNC_WORKERS = 4


def _enable_debug_logging(target: logging.Logger) -> None:
    # Same behaviour as the local client's debug=True (kept separate so remote/ does not import local/).
    target.setLevel(logging.DEBUG)
    if not target.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        target.addHandler(handler)


def _check_user(user: Any) -> None:
    if not isinstance(user, User):
        raise TypeError(f"user must be an amplitude_experiment.User, not {type(user).__name__}; "
                        "build one with User(user_id=..., device_id=..., user_properties={...})")


def _check_options(options: Any) -> None:
    if options is not None and not isinstance(options, FetchOptions):
        raise TypeError(f"fetch_options must be a FetchOptions or None, not {type(options).__name__}")


def _without_default_undeployed(variants: Dict[str, Variant]) -> Dict[str, Variant]:
    return {key: v for key, v in variants.items() if not wire.is_default_undeployed(v)}


class RemoteEvaluationClient:
    """Fetches a user's variants from Amplitude's remote evaluation (``/sdk/v2/vardata``).

    Use it for flags that need Amplitude-side data (e.g. user properties Amplitude knows but
    your server does not); for everything else local evaluation answers in microseconds.

    The client is safe to share across threads: requests go through one pooled
    ``requests.Session``, at most ``connection_pool_max_size`` at a time. ``fetch_v2`` blocks
    the calling thread; from asyncio code use :meth:`afetch_v2`, which does not block the event
    loop. Close the client (or use it as a context manager) to release its threads and
    connections.

    Args:
        api_key: the deployment key (``server-…``).
        config: a :class:`RemoteEvaluationConfig`; defaults apply when omitted.
    """

    def __init__(self, api_key: str, config: Optional[RemoteEvaluationConfig] = None) -> None:
        if not isinstance(api_key, str) or not api_key:
            raise ConfigurationError("api_key (the deployment key) must be a non-empty string")
        if not api_key.isprintable() or api_key != api_key.strip() or not api_key.isascii():
            raise ConfigurationError("api_key (the deployment key) contains whitespace, control or non-ASCII "
                                     "characters")
        if config is not None and not isinstance(config, RemoteEvaluationConfig):
            raise ConfigurationError(f"config must be a RemoteEvaluationConfig or None, not {type(config).__name__}")
        self.api_key = api_key
        self.config = config if config is not None else RemoteEvaluationConfig()
        if self.config.debug:
            _enable_debug_logging(self.config.logger)
        self._logger = self.config.logger.getChild("remote")
        self._clock = self.config.clock
        self._url = wire.vardata_url(self.config.server_url)
        self._policy = RetryPolicy(
            self.config.fetch_retries,
            self.config.fetch_retry_backoff_min_millis / 1000,
            self.config.fetch_retry_backoff_max_millis / 1000,
            self.config.fetch_retry_backoff_scalar,
        )
        self._owns_session = self.config.session is None
        self._session = self.config.session if self.config.session is not None else self._new_session()
        # Bounds the requests in flight to connection_pool_max_size, given session or not; waiting
        # for a slot is what fetch_pool_acquire_timeout_millis limits.
        self._slots = threading.BoundedSemaphore(self.config.connection_pool_max_size)
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._executor: Optional[concurrent.futures.ThreadPoolExecutor] = None
        self._last_warning: Dict[str, float] = {}
        self._suppressed: Dict[str, int] = {}

    def _new_session(self) -> requests.Session:
        session = requests.Session()
        size = self.config.connection_pool_max_size
        for prefix, adapter in list(session.adapters.items()):
            # Same adapter class (an application may have customised requests' default), sized to the pool.
            if isinstance(adapter, HTTPAdapter):
                session.mount(prefix, type(adapter)(pool_connections=1, pool_maxsize=size))
        return session

    # ----- public API -------------------------------------------------------------------------

    def fetch_v2(self, user: User, fetch_options: Optional[FetchOptions] = None) -> Dict[str, Variant]:
        """Variants for ``user``, evaluated by Amplitude; blocks until the answer (or the last retry).

        Args:
            user: the user; it is sent as is and never changed (``library`` is added to the
                request only).
            fetch_options: tracking and flag-key options for this request.

        Returns:
            Variants by flag key. ``{}`` when the request failed and ``fetch_retries`` is 0,
            when the answer was a non-retryable status (e.g. 400, 401, 404: logged), or when the
            client is closed.

        Raises:
            FetchException: with ``fetch_retries`` > 0, the last retry failed too
                (``status_code`` is the last status, ``None`` after a network error).
            TypeError: ``user`` is not a ``User`` or ``fetch_options`` not a ``FetchOptions``.
        """
        _check_user(user)
        _check_options(fetch_options)
        return self._fetch(user, fetch_options)

    def fetch(self, user: User, fetch_options: Optional[FetchOptions] = None) -> Dict[str, Variant]:
        """Deprecated: use :meth:`fetch_v2`.

        Like :meth:`fetch_v2`, without the default variants of undeployed flags (metadata
        ``default`` true and ``deployed`` false).
        """
        warnings.warn("RemoteEvaluationClient.fetch is deprecated; use fetch_v2", DeprecationWarning, stacklevel=2)
        _check_user(user)
        _check_options(fetch_options)
        return _without_default_undeployed(self._fetch(user, fetch_options))

    def fetch_async_v2(self, user: User, callback: Optional[FetchCallback] = None, *,
                       fetch_options: Optional[FetchOptions] = None
                       ) -> "concurrent.futures.Future[Dict[str, Variant]]":
        """Fetch on the client's thread pool; ``callback`` gets the outcome.

        ``callback(user, variants)`` is called with the result, or ``callback(user, {}, error)``
        when the fetch raised (see :meth:`fetch_v2`). The callback runs on a pool thread; an
        exception from it is logged. The pool has a bounded number of threads (at least 4, or
        ``connection_pool_max_size``) and is shut down by :meth:`close`. ``fetch_options``
        (keyword-only) is an addition to the official signature.

        Returns:
            A ``concurrent.futures.Future`` of the variants (the official SDK returns ``None``;
            ignoring the result is fine).
        """
        _check_user(user)
        _check_options(fetch_options)
        return self._submit(user, callback, fetch_options, filtered=False)

    def fetch_async(self, user: User, callback: Optional[FetchCallback] = None
                    ) -> "concurrent.futures.Future[Dict[str, Variant]]":
        """Deprecated: use :meth:`fetch_async_v2`.

        Leaves out variants as :meth:`fetch` does, and calls ``callback(user, variants, None)``
        on success (three arguments, as the official SDK does), ``callback(user, {}, error)``
        when the fetch raised.
        """
        warnings.warn("RemoteEvaluationClient.fetch_async is deprecated; use fetch_async_v2", DeprecationWarning,
                      stacklevel=2)
        _check_user(user)
        return self._submit(user, callback, None, filtered=True)

    async def afetch_v2(self, user: User, fetch_options: Optional[FetchOptions] = None) -> Dict[str, Variant]:
        """:meth:`fetch_v2` for asyncio code (FastAPI, aiohttp): awaits without blocking the event loop.

        The request runs on the client's bounded thread pool; results, ``{}`` cases and
        exceptions are those of :meth:`fetch_v2`. Cancelling the awaiting task abandons the
        answer (a request already sent completes in the background).
        """
        _check_user(user)
        _check_options(fetch_options)
        loop = asyncio.get_running_loop()
        request = self._prepare(user, fetch_options)  # now: later changes to the user do not leak in
        try:
            future = self._pool().submit(self._send, *request)
        except RuntimeError:  # the pool was shut down by close(): answer as a closed client does
            return self._send(*request)
        return await asyncio.wrap_future(future, loop=loop)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed.is_set()

    def close(self) -> None:
        """Release the thread pool and the connections (of a session the client made). Idempotent.

        Waits between retries end at once; fetches after (or interrupted by) ``close()`` return
        ``{}``. A session given in the config is left open.
        """
        with self._lock:
            if self._closed.is_set():
                return
            self._closed.set()
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False)
        if self._owns_session:
            self._session.close()

    def __enter__(self) -> "RemoteEvaluationClient":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<RemoteEvaluationClient {state} server_url={self.config.server_url!r}>"

    # ----- fetching ---------------------------------------------------------------------------

    def _fetch(self, user: User, options: Optional[FetchOptions]) -> Dict[str, Variant]:
        return self._send(*self._prepare(user, options))

    def _prepare(self, user: User, options: Optional[FetchOptions]) -> Tuple[bytes, Dict[str, str]]:
        headers = wire.request_headers(self.api_key, options)
        headers["User-Agent"] = USER_AGENT
        return wire.request_body(user), headers

    def _send(self, body: bytes, headers: Dict[str, str]) -> Dict[str, Variant]:
        if self._closed.is_set():
            self._warn("closed", "Remote evaluation client is closed: fetch returns no variants")
            return {}
        policy = self._policy
        timeout = self.config.fetch_timeout_millis / 1000
        retry = 0
        while True:
            try:
                return self._attempt(body, headers, timeout)
            except Failure as failure:
                if not failure.retryable:
                    self._warn(f"final-{failure.status}", "Remote evaluation at %s failed: %s; returning no variants",
                               self._url, failure.reason)
                    return {}
                if retry >= policy.retries:
                    if policy.retries == 0:
                        self._warn("failed", "Remote evaluation at %s failed: %s; returning no variants "
                                   "(set fetch_retries to retry)", self._url, failure.reason)
                        return {}
                    self._warn("exhausted", "Remote evaluation at %s failed: %s; %d retries used up, raising "
                               "FetchException", self._url, failure.reason, policy.retries)
                    raise FetchException(failure.status, f"remote evaluation failed after {policy.retries} "
                                         f"retries: {failure.reason}") from failure.__cause__
                wait = policy.delay(retry, failure.retry_after)
                retry += 1
                self._warn("retrying", "Remote evaluation at %s failed: %s; retry %d of %d in %.3g s",
                           self._url, failure.reason, retry, policy.retries, wait)
                if self._clock.wait(self._closed, wait):
                    self._warn("closed", "Remote evaluation client closed while retrying: returning no variants")
                    return {}
                timeout = self.config.fetch_retry_timeout_millis / 1000

    def _attempt(self, body: bytes, headers: Dict[str, str], timeout: float) -> Dict[str, Variant]:
        acquire = self.config.fetch_pool_acquire_timeout_millis
        if not self._slots.acquire(timeout=None if acquire is None else acquire / 1000):
            raise Failure(None, True, f"no free connection within {acquire} ms "
                                      f"(connection_pool_max_size={self.config.connection_pool_max_size})")
        try:
            try:
                response = self._session.post(self._url, data=body, headers=headers, timeout=timeout,
                                              verify=verify_of(self._session),
                                              allow_redirects=False)
            except requests.exceptions.InvalidHeader:
                # requests quotes the offending value (the key) in this error: never let it out.
                raise Failure(None, False, "the deployment key contains characters not allowed in an HTTP "
                                           "header") from None
            try:
                status = response.status_code
                retry_after = response.headers.get("Retry-After")
                content = response.content
            finally:
                response.close()
        except requests.RequestException as exc:
            raise Failure(None, True, f"{type(exc).__name__}: {exc}") from exc
        finally:
            self._slots.release()
        if status != 200:
            if retryable_status(status):
                raise Failure(status, True, f"HTTP {status}", parse_retry_after(retry_after))
            hint = " (check the deployment key)" if status in (401, 403) else ""
            raise Failure(status, False, f"HTTP {status}{hint}")
        try:
            return wire.parse_variants(json.loads(content), self._logger)
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise Failure(status, True, f"unusable answer body ({exc})") from exc

    # ----- thread pool ------------------------------------------------------------------------

    def _pool(self) -> concurrent.futures.ThreadPoolExecutor:
        with self._lock:
            if self._closed.is_set():
                raise RuntimeError("client closed")
            if self._executor is None:
                workers = max(_MIN_ASYNC_WORKERS, self.config.connection_pool_max_size)
                self._executor = concurrent.futures.ThreadPoolExecutor(
                    max_workers=workers, thread_name_prefix="amplitude_experiment-remote")
            return self._executor

    def _submit(self, user: User, callback: Optional[FetchCallback], options: Optional[FetchOptions],
                filtered: bool) -> "concurrent.futures.Future[Dict[str, Variant]]":
        if callback is not None and not callable(callback):
            raise TypeError(f"callback must be callable or None, not {type(callback).__name__}")
        job = functools.partial(self._fetch_and_call, user, self._prepare(user, options), callback, filtered)
        try:
            return self._pool().submit(job)
        except RuntimeError:  # closed: answer at once, as a closed client does
            done: "concurrent.futures.Future[Dict[str, Variant]]" = concurrent.futures.Future()
            done.set_result(job())
            return done

    def _fetch_and_call(self, user: User, request: Tuple[bytes, Dict[str, str]], callback: Optional[FetchCallback],
                        filtered: bool) -> Dict[str, Variant]:
        try:
            variants = self._send(*request)
        except Exception as exc:
            if callback is not None:
                self._call(callback, user, {}, exc)
            raise
        if filtered:
            variants = _without_default_undeployed(variants)
            if callback is not None:
                self._call(callback, user, variants, None)  # the deprecated method's callbacks take 3 arguments
            return variants
        if callback is not None:
            self._call(callback, user, variants)
        return variants

    def _call(self, callback: FetchCallback, *args: Any) -> None:
        try:
            callback(*args)
        except Exception:  # noqa: BLE001 - the caller's code; keep the pool thread alive
            self._logger.exception("A fetch_async_v2 callback raised")

    # ----- logging ----------------------------------------------------------------------------

    def _warn(self, kind: str, message: str, *args: Any) -> None:
        """A warning, at most one per kind per ``_WARNING_INTERVAL``; the others at DEBUG."""
        now = self._clock.monotonic()
        with self._lock:
            last = self._last_warning.get(kind)
            loud = last is None or now - last >= _WARNING_INTERVAL
            if loud:
                self._last_warning[kind] = now
                suppressed = self._suppressed.pop(kind, 0)
            else:
                self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
        if loud:
            if suppressed:
                message += " (%d similar warnings in the last interval were logged at DEBUG)"
                args = (*args, suppressed)
            self._logger.warning(message, *args)
        else:
            self._logger.debug(message, *args)
