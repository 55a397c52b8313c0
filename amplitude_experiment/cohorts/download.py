"""One cohort download: ``GET {server_url}/sdk/v1/cohort/{id}?maxCohortSize=N[&lastModified=ms]``.

Every retry is bounded (attempt counts and a total deadline) and every wait is on a
``threading.Event`` through the injected :class:`~amplitude_experiment._clock.Clock`, so a
download can always be cancelled promptly and tests drive retries without sleeping.
"""

from __future__ import annotations

import base64
import logging
import threading
from typing import Callable, List, Optional
from urllib.parse import quote

import requests

from .._backoff import Backoff
from .._clock import SYSTEM_CLOCK, Clock
from .._http import parse_retry_after, verify_of
from ..exceptions import ExperimentError
from ..version import LIBRARY, USER_AGENT
from .members import CohortBodyError, parse_cohort_body
from .storage import Cohort

_default_logger = logging.getLogger("amplitude_experiment.cohorts")

_CHUNK_BYTES = 256 * 1024
#: The default waits between retryable failures.
DEFAULT_BACKOFF = Backoff(0.5, 8.0)
# Transport failures worth another attempt; anything else from requests (bad URL, too many
# redirects, ...) will not get better by retrying.
_RETRYABLE_EXCEPTIONS = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)


#: ``on_body(cohort, body)``: a downloaded cohort and its body exactly as received.
BodyHook = Callable[[Cohort, bytes], None]


class CohortDownloadError(ExperimentError, OSError):
    """A cohort could not be downloaded (network, HTTP status, unusable body, deadline or cancel).

    Attributes:
        cohort_id: the cohort concerned.
        status_code: the last HTTP status received, if any.
    """

    def __init__(self, message: str, cohort_id: str, status_code: Optional[int] = None) -> None:
        super().__init__(message)
        self.cohort_id = cohort_id
        self.status_code = status_code


class CohortTooLarge(CohortDownloadError):
    """The cohort has more members than ``max_cohort_size`` (HTTP 413); it is not downloaded."""

    def __init__(self, cohort_id: str, max_cohort_size: int) -> None:
        super().__init__(f"cohort {cohort_id} is larger than max_cohort_size={max_cohort_size}",
                         cohort_id, status_code=413)
        self.max_cohort_size = max_cohort_size


class CohortDownloadCancelled(CohortDownloadError):
    """The download was cancelled (``cancel()`` or the caller's stop event) before it finished."""

    def __init__(self, cohort_id: str) -> None:
        super().__init__(f"cohort {cohort_id} download cancelled", cohort_id)


class _Retry(Exception):
    """An attempt failed in a way another attempt may fix."""

    def __init__(self, reason: str, status_code: Optional[int] = None, retry_after: Optional[float] = None,
                 cause: Optional[BaseException] = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status_code = status_code
        self.retry_after = retry_after
        self.cause = cause


class _NotReady(Exception):
    """HTTP 202: the server is still computing the cohort."""


class CohortDownloader:
    """Downloads single cohorts, with bounded retries.

    Retryable failures (network errors, 408, 429, 5xx) are retried with ``backoff`` up to
    ``max_attempts`` attempts in all, honouring ``Retry-After``. HTTP 202 ("not ready") is polled
    every ``not_ready_wait`` seconds, at most ``not_ready_attempts`` times. No download runs longer
    than ``deadline_seconds``. Other statuses (401, 403, 404, ...) fail at once.

    Args:
        session: the ``requests.Session`` to use (owned by the caller; used from several threads).
        server_url: the cohort server, e.g. ``https://cohort-v2.lab.amplitude.com``.
        api_key: the project API key (sent, never logged).
        secret_key: the project secret key (sent, never logged).
        max_cohort_size: larger cohorts are refused by the server (HTTP 413).
        request_timeout: connect and read timeout of one request, in seconds.
        backoff: waits between retryable failures (its ``max_attempts`` is not used).
        max_attempts: attempts that may end in a retryable failure before giving up.
        not_ready_attempts: HTTP 202 responses tolerated before giving up.
        not_ready_wait: seconds between polls while the server answers 202.
        deadline_seconds: total time one ``download`` may take, waits included.
        clock: time source and waiter (deadlines, backoff and not-ready waits).
        logger: where retries are logged (at DEBUG).
    """

    def __init__(
        self,
        session: requests.Session,
        server_url: str,
        api_key: str,
        secret_key: str,
        max_cohort_size: int,
        *,
        request_timeout: float = 10.0,
        backoff: Backoff = DEFAULT_BACKOFF,
        max_attempts: int = 5,
        not_ready_attempts: int = 10,
        not_ready_wait: float = 1.0,
        deadline_seconds: float = 60.0,
        clock: Clock = SYSTEM_CLOCK,
        logger: Optional[logging.Logger] = None,
    ) -> None:
        if max_attempts < 1 or not_ready_attempts < 1:
            raise ValueError("max_attempts and not_ready_attempts must be >= 1")
        if request_timeout <= 0 or deadline_seconds <= 0 or not_ready_wait < 0:
            raise ValueError("request_timeout and deadline_seconds must be > 0, not_ready_wait >= 0")
        self._session = session
        self.server_url = server_url.rstrip("/")
        self.max_cohort_size = max_cohort_size
        self.request_timeout = request_timeout
        self.backoff = backoff
        self.max_attempts = max_attempts
        self.not_ready_attempts = not_ready_attempts
        self.not_ready_wait = not_ready_wait
        self.deadline_seconds = deadline_seconds
        self._clock = clock
        self._logger = logger or _default_logger
        token = base64.b64encode(f"{api_key}:{secret_key}".encode("utf-8")).decode("ascii")
        self._headers = {
            "Authorization": f"Basic {token}",
            "X-Amp-Exp-Library": LIBRARY,
            "User-Agent": USER_AGENT,
            "Accept": "application/json",
        }
        self._lock = threading.Lock()
        self._cancelled = False
        # Stop events of downloads in progress (one event may serve several downloads).
        self._active: List[threading.Event] = []

    def __repr__(self) -> str:
        return (f"CohortDownloader(server_url={self.server_url!r}, max_cohort_size={self.max_cohort_size}, "
                f"max_attempts={self.max_attempts})")

    def url(self, cohort_id: str) -> str:
        """The download URL of a cohort, without the query."""
        return f"{self.server_url}/sdk/v1/cohort/{quote(cohort_id, safe='')}"

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def cancel(self) -> None:
        """Stop every download in progress and refuse new ones. Permanent.

        Sets the stop events of downloads in progress, including events passed in by callers.
        """
        with self._lock:
            self._cancelled = True
            active = list(self._active)
        for event in active:
            event.set()

    def download(self, cohort_id: str, last_modified: Optional[int] = None, *,
                 stop: Optional[threading.Event] = None, deadline: Optional[float] = None,
                 on_body: Optional[BodyHook] = None) -> Optional[Cohort]:
        """Download a cohort; None when it has not changed since ``last_modified`` (HTTP 204).

        Args:
            cohort_id: the cohort to download.
            last_modified: the ``last_modified`` of the copy already held, if any.
            stop: setting it cancels this download (waits end at once).
            deadline: a ``clock.monotonic()`` value not to run past (tightens ``deadline_seconds``).
            on_body: called with the parsed cohort and the body exactly as downloaded (to share it
                with a fleet); without it the body is freed while it is parsed.

        Raises:
            CohortTooLarge: the cohort is larger than ``max_cohort_size``.
            CohortDownloadCancelled: ``cancel()`` or ``stop`` ended the download.
            CohortDownloadError: any other failure, after the bounded retries if retryable.
        """
        event = stop if stop is not None else threading.Event()
        with self._lock:
            if self._cancelled:
                event.set()
            self._active.append(event)
        try:
            return self._download(cohort_id, last_modified, event, deadline, on_body)
        finally:
            with self._lock:
                self._active.remove(event)

    def _download(self, cohort_id: str, last_modified: Optional[int], stop: threading.Event,
                  deadline: Optional[float], on_body: Optional[BodyHook]) -> Optional[Cohort]:
        clock = self._clock
        end = clock.monotonic() + self.deadline_seconds
        if deadline is not None:
            end = min(end, deadline)
        failures = 0
        polls = 0
        last: Optional[_Retry] = None
        while True:
            if stop.is_set():
                raise CohortDownloadCancelled(cohort_id)
            remaining = end - clock.monotonic()
            if remaining <= 0:
                raise self._deadline_error(cohort_id, last)
            try:
                return self._attempt(cohort_id, last_modified, min(self.request_timeout, remaining), stop, end,
                                     on_body)
            except _Retry as retry:
                last = retry
                failures += 1
                if failures >= self.max_attempts:
                    raise CohortDownloadError(
                        f"cohort {cohort_id} download failed after {failures} attempts: {retry.reason}",
                        cohort_id, retry.status_code,
                    ) from retry.cause
                wait = self.backoff.delay(failures, retry.retry_after)
                self._logger.debug("Cohort %s download attempt %d failed (%s); retrying in %.2fs",
                             cohort_id, failures, retry.reason, wait)
            except _NotReady:
                polls += 1
                if polls >= self.not_ready_attempts:
                    raise CohortDownloadError(
                        f"cohort {cohort_id} was still not ready (HTTP 202) after {polls} polls",
                        cohort_id, 202,
                    ) from None
                last = _Retry("not ready (HTTP 202)", 202)
                wait = self.not_ready_wait
                self._logger.debug("Cohort %s not ready yet (poll %d); polling again in %.2fs", cohort_id, polls,
                                   wait)
            # A wait that would end past the deadline is pointless: give up now.
            if clock.monotonic() + wait >= end:
                raise self._deadline_error(cohort_id, last)
            if clock.wait(stop, wait):
                raise CohortDownloadCancelled(cohort_id)

    def _deadline_error(self, cohort_id: str, last: Optional[_Retry]) -> CohortDownloadError:
        detail = f"; last error: {last.reason}" if last is not None else ""
        error = CohortDownloadError(f"cohort {cohort_id} download ran out of time{detail}", cohort_id,
                                    last.status_code if last is not None else None)
        error.__cause__ = last.cause if last is not None else None
        error.__suppress_context__ = True
        return error

    def _attempt(self, cohort_id: str, last_modified: Optional[int], timeout: float, stop: threading.Event,
                 end: float, on_body: Optional[BodyHook] = None) -> Optional[Cohort]:
        url = self.url(cohort_id)
        params = {"maxCohortSize": str(self.max_cohort_size)}
        if last_modified is not None:
            params["lastModified"] = str(last_modified)
        try:
            response = self._session.get(url, params=params, headers=self._headers, timeout=timeout, stream=True,
                                         verify=verify_of(self._session))
        except _RETRYABLE_EXCEPTIONS as exc:
            raise _Retry(f"{exc.__class__.__name__}: {exc}", cause=exc) from exc
        except requests.RequestException as exc:
            raise CohortDownloadError(f"cohort {cohort_id} download from {url} failed: "
                                      f"{exc.__class__.__name__}: {exc}", cohort_id) from exc
        try:
            body = self._answer(cohort_id, url, response, last_modified, stop, end)
        finally:
            response.close()
        if body is None:
            return None  # 204: not modified since last_modified
        raw: Optional[bytes] = None
        if on_body is not None:
            raw = bytes(body)
            del body[:]
        try:
            group_type, modified, members = parse_cohort_body(cohort_id, body if raw is None else raw)
        except CohortBodyError as exc:
            raise CohortDownloadError(f"cohort {cohort_id} response was unusable: {exc}", cohort_id, 200) from exc
        cohort = Cohort(cohort_id, group_type, modified, len(members), members)
        if on_body is not None and raw is not None:
            on_body(cohort, raw)
        return cohort

    def _answer(self, cohort_id: str, url: str, response: requests.Response, last_modified: Optional[int],
                stop: threading.Event, end: float) -> Optional[bytearray]:
        """The 200 body, ``None`` for 204, or the exception each documented status means (design.md §3)."""
        status = response.status_code
        if status == 200:
            return self._read_body(cohort_id, response, stop, end)
        if status == 204:
            if last_modified is None:
                raise CohortDownloadError(f"cohort {cohort_id}: unexpected HTTP 204 without lastModified",
                                          cohort_id, 204)
            return None
        if status == 202:
            raise _NotReady()
        if status == 413:
            raise CohortTooLarge(cohort_id, self.max_cohort_size)
        if status in (408, 429) or 500 <= status <= 599:
            raise _Retry(f"HTTP {status}", status,
                         parse_retry_after(response.headers.get("Retry-After"), now=self._clock.time()))
        raise CohortDownloadError(f"cohort {cohort_id} download from {url} returned HTTP {status}"
                                  f"{_STATUS_HINTS.get(status, '')}", cohort_id, status)

    def _read_body(self, cohort_id: str, response: requests.Response, stop: threading.Event,
                   end: float) -> bytearray:
        # Read in chunks so that a cancel or the deadline also ends a long body transfer.
        body = bytearray()
        try:
            for chunk in response.iter_content(chunk_size=_CHUNK_BYTES):
                body += chunk
                if stop.is_set():
                    raise CohortDownloadCancelled(cohort_id)
                if self._clock.monotonic() >= end:
                    raise CohortDownloadError(f"cohort {cohort_id} download ran out of time while reading",
                                              cohort_id, 200)
        except _RETRYABLE_EXCEPTIONS as exc:
            raise _Retry(f"failed while reading: {exc.__class__.__name__}: {exc}", 200, cause=exc) from exc
        except requests.RequestException as exc:
            raise CohortDownloadError(f"cohort {cohort_id} download failed while reading: "
                                      f"{exc.__class__.__name__}: {exc}", cohort_id, 200) from exc
        return body


_STATUS_HINTS = {
    401: " (check the cohort sync api_key and secret_key)",
    403: " (check the cohort sync api_key and secret_key)",
    404: " (cohort not found)",
}
