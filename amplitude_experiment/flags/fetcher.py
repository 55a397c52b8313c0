"""One flag-config download: ``GET {server_url}/sdk/v2/flags?v=0``."""

from __future__ import annotations

import logging
from typing import Any, List, Optional, Tuple

import requests

from .._http import verify_of
from ..exceptions import FetchError, FlagConfigError
from ..version import LIBRARY, USER_AGENT
from .decode import decode_flags

_AUTH_STATUSES = (401, 403)


def parse_flag_body(body: bytes) -> List[Any]:
    """Decode a flag-config response body; it must be a JSON array.

    Raises:
        FlagConfigError: the body is not JSON, not an array, or nested too deeply. Individual
            malformed flags are not rejected here; the compiler skips them.
    """
    return decode_flags(body).flags


def status_error(url: str, status: int) -> FetchError:
    """The error for a non-200 answer; a rejected key says so."""
    if status in _AUTH_STATUSES:
        return FetchError(f"flag download from {url} returned HTTP {status}: the deployment key was rejected "
                          f"(check that it is a server deployment key of this project)", status_code=status)
    return FetchError(f"flag download from {url} returned HTTP {status}", status_code=status)


class FlagFetcher:
    """Downloads the deployment's flag configs.

    Conditional requests: Amplitude does not document an ``ETag`` on this endpoint, so
    ``If-None-Match`` is sent only after a 200 answer carried an ``ETag`` (plain HTTP
    semantics, RFC 9110 §13.1.2), and a ``304 Not Modified`` then means "unchanged".
    Against a server that sends no ``ETag`` the requests are exactly the documented ones.

    Args:
        session: the ``requests.Session`` to use (owned by the caller).
        server_url: the flag server, e.g. ``https://api.lab.amplitude.com``.
        deployment_key: the deployment key (sent, never logged).
        timeout: connect and read timeout in seconds.
        logger: where debug lines go (default: ``amplitude_experiment.flags``).
    """

    def __init__(self, session: requests.Session, server_url: str, deployment_key: str, timeout: float, *,
                 logger: Optional[logging.Logger] = None) -> None:
        self._session = session
        self.url = f"{server_url.rstrip('/')}/sdk/v2/flags"
        self._headers = {
            "Authorization": f"Api-Key {deployment_key}",
            "X-Amp-Exp-Library": LIBRARY,
            "User-Agent": USER_AGENT,
            "Accept": "application/json",
        }
        self._timeout = timeout
        self._logger = logger or logging.getLogger("amplitude_experiment.flags")
        self._etag: Optional[str] = None

    def forget_etag(self) -> None:
        """Ask for the full body next time (the last one was not usable)."""
        self._etag = None

    def fetch_body(self) -> Optional[bytes]:
        """Download the flag configs; the body bytes, or ``None`` for ``304 Not Modified``.

        Raises:
            FetchError: network failure or a status other than 200/304.
        """
        headers = self._headers
        if self._etag is not None:
            headers = {**headers, "If-None-Match": self._etag}
        try:
            response = self._session.get(self.url, params={"v": "0"}, headers=headers, timeout=self._timeout,
                                         verify=verify_of(self._session))
        except requests.exceptions.InvalidHeader:
            # requests quotes the header value (the key) in this error: never let it out
            raise FetchError("the deployment key contains characters not allowed in an HTTP header") from None
        except requests.RequestException as exc:
            raise FetchError(f"flag download from {self.url} failed: {exc.__class__.__name__}: {exc}") from exc
        try:
            if response.status_code == 304 and self._etag is not None:
                return None
            if response.status_code != 200:
                raise status_error(self.url, response.status_code)
            body = response.content
            self._etag = response.headers.get("ETag")
        except requests.RequestException as exc:  # the body itself can fail to arrive
            raise FetchError(f"flag download from {self.url} failed while reading: "
                             f"{exc.__class__.__name__}: {exc}") from exc
        finally:
            response.close()
        return body

    def fetch(self) -> Tuple[List[Any], bytes]:
        """Download and decode the flag configs (unconditionally); returns the flags and the raw body.

        Raises:
            FetchError: network failure, non-200 status, or a body that is not a JSON array.
        """
        self._etag = None
        body = self.fetch_body()
        if body is None:  # cannot happen: no If-None-Match was sent
            raise FetchError(f"flag download from {self.url} answered 304 to an unconditional request")
        try:
            return parse_flag_body(body), body
        except FlagConfigError as exc:
            raise FetchError(f"flag download from {self.url} was unusable: {exc}", status_code=200) from exc
