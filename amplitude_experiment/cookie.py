"""The Amplitude analytics cookie: share a browser's device id (and user id) with the server.

Two formats exist. The legacy one (amplitude-js) is named ``amp_<first 6 characters of the
API key>`` and holds ``<device id>.<base64 user id>.<more fields>``. The newer one (Browser SDK
2) is named ``AMP_<first 10 characters>`` and holds base64 of the URL-encoded JSON
``{"deviceId": ..., "userId": ...}``.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from typing import Any, Optional
from urllib.parse import quote, unquote

from .user import User

logger = logging.getLogger("amplitude_experiment.cookie")

# A device id followed by the empty fields of the legacy layout (user id, opt-out, session, ...).
_LEGACY_TRAILER = "." * 10


def _check_str(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")
    return value


def _b64decode(text: str) -> Optional[bytes]:
    """Standard or URL-safe base64, padded or not; ``None`` when it is not base64."""
    cleaned = text.strip().replace("-", "+").replace("_", "/")
    cleaned += "=" * (-len(cleaned) % 4)
    try:
        return base64.b64decode(cleaned, validate=True)
    except (binascii.Error, ValueError):
        return None


def _text(value: Any) -> Optional[str]:
    return value if isinstance(value, str) and value else None


class AmplitudeCookie:
    """Read and write the Amplitude analytics cookie (the official SDK's helper).

    All methods are static. Parsing never raises for a malformed cookie value (it comes from
    the browser): what cannot be read is left ``None`` and logged at DEBUG.
    """

    @staticmethod
    def cookie_name(api_key: str, new_format: bool = False) -> str:
        """The cookie's name for an analytics API key: ``amp_`` + 6 characters, or ``AMP_`` + 10.

        Raises:
            ValueError: the key is shorter than the name needs.
            TypeError: the key is not a string.
        """
        if api_key is None:
            raise ValueError("Invalid Amplitude API Key")
        _check_str("api_key", api_key)
        length, prefix = (10, "AMP_") if new_format else (6, "amp_")
        if len(api_key) < length:
            raise ValueError("Invalid Amplitude API Key")
        return prefix + api_key[:length]

    @staticmethod
    def parse(amplitude_cookie: str, new_format: bool = False) -> User:
        """A ``User`` with the device id and user id the cookie value holds (either may be ``None``).

        Raises:
            TypeError: the value is not a string.
        """
        _check_str("amplitude_cookie", amplitude_cookie)
        if new_format:
            return AmplitudeCookie._parse_new(amplitude_cookie)
        device_id, _, rest = amplitude_cookie.partition(".")
        user_id = None
        encoded = rest.partition(".")[0]
        if encoded:
            raw = _b64decode(encoded)
            try:
                user_id = raw.decode("utf-8") if raw is not None else None
            except UnicodeDecodeError:
                user_id = None
            if user_id is None:
                logger.debug("The Amplitude cookie's user id is not base64 UTF-8 text; ignored")
        return User(device_id=device_id or None, user_id=user_id or None)

    @staticmethod
    def _parse_new(value: str) -> User:
        raw = _b64decode(value)
        try:
            fields = json.loads(unquote(raw.decode("utf-8"), errors="strict")) if raw is not None else None
        except (UnicodeDecodeError, ValueError):
            fields = None
        if not isinstance(fields, dict):
            logger.debug("The Amplitude cookie is not base64 of URL-encoded JSON; no ids read")
            return User()
        return User(device_id=_text(fields.get("deviceId")), user_id=_text(fields.get("userId")))

    @staticmethod
    def generate(device_id: str, new_format: bool = False) -> str:
        """A cookie value carrying ``device_id`` (and no user id), for a visitor the server saw first.

        Raises:
            TypeError: ``device_id`` is not a string.
        """
        _check_str("device_id", device_id)
        if not new_format:
            return device_id + _LEGACY_TRAILER
        encoded = quote(json.dumps({"deviceId": device_id}))
        return base64.b64encode(encoded.encode("ascii")).decode("ascii")
