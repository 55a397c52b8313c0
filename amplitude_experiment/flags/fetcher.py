"""One flag-config download: ``GET {server_url}/sdk/v2/flags?v=0``."""

from __future__ import annotations

import json
import logging
from typing import Any, List, Tuple

import requests

from ..exceptions import FetchError, FlagConfigError
from ..version import LIBRARY

logger = logging.getLogger("amplitude_experiment.flags")


def parse_flag_body(body: bytes) -> List[Any]:
    """Decode a flag-config response body; it must be a JSON array.

    Raises:
        FlagConfigError: the body is not JSON or not an array. Individual malformed flags are
            not rejected here; the compiler skips them.
    """
    try:
        decoded = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise FlagConfigError(f"flag configs are not valid JSON ({exc.__class__.__name__})") from exc
    if not isinstance(decoded, list):
        raise FlagConfigError(f"flag configs must be a JSON array, got {type(decoded).__name__}")
    return decoded


class FlagFetcher:
    """Downloads the deployment's flag configs.

    Args:
        session: the ``requests.Session`` to use (owned by the caller).
        server_url: the flag server, e.g. ``https://api.lab.amplitude.com``.
        deployment_key: the deployment key (sent, never logged).
        timeout: connect and read timeout in seconds.
    """

    def __init__(self, session: requests.Session, server_url: str, deployment_key: str, timeout: float) -> None:
        self._session = session
        self.url = f"{server_url}/sdk/v2/flags"
        self._headers = {
            "Authorization": f"Api-Key {deployment_key}",
            "X-Amp-Exp-Library": LIBRARY,
            "Accept": "application/json",
        }
        self._timeout = timeout

    def fetch(self) -> Tuple[List[Any], bytes]:
        """Download and decode the flag configs; returns the flags and the raw body.

        Raises:
            FetchError: network failure, non-200 status, or a body that is not a JSON array.
        """
        try:
            response = self._session.get(self.url, params={"v": "0"}, headers=self._headers, timeout=self._timeout)
        except requests.exceptions.InvalidHeader:
            # requests quotes the header value (the key) in this error: never let it out
            raise FetchError("the deployment key contains characters not allowed in an HTTP header") from None
        except requests.RequestException as exc:
            raise FetchError(f"flag download from {self.url} failed: {exc.__class__.__name__}: {exc}") from exc
        try:
            if response.status_code != 200:
                raise FetchError(f"flag download from {self.url} returned HTTP {response.status_code}",
                                 status_code=response.status_code)
            body = response.content
        except requests.RequestException as exc:  # the body itself can fail to arrive
            raise FetchError(f"flag download from {self.url} failed while reading: {exc}") from exc
        finally:
            response.close()
        try:
            return parse_flag_body(body), body
        except FlagConfigError as exc:
            raise FetchError(f"flag download from {self.url} was unusable: {exc}", status_code=200) from exc
