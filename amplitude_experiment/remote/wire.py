"""The remote-evaluation wire format: the request for a user, and variants from the answer.

design.md §3: ``POST {server_url}/sdk/v2/vardata?v=0`` with ``Authorization: Api-Key <key>``,
the user as JSON (with ``library``), optional tracking and flag-key headers; the answer maps
flag keys to variant objects.
"""

from __future__ import annotations

import base64
import json
import logging
from typing import Any, Dict, Mapping, Optional

from ..user import User
from ..variant import Variant
from ..version import LIBRARY
from .fetch_options import FetchOptions

VARDATA_PATH = "/sdk/v2/vardata"
CONTENT_TYPE = "application/json;charset=utf-8"


def encode_flag_keys(flag_keys: Any) -> str:
    """``X-Amp-Exp-Flag-Keys``: base64url, unpadded, of the compact JSON list."""
    text = json.dumps(list(flag_keys), separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode("utf-8")).decode("ascii").rstrip("=")


def decode_flag_keys(header: str) -> Any:
    """The decoded JSON of an ``X-Amp-Exp-Flag-Keys`` header; raises ``ValueError`` if malformed."""
    padded = header + "=" * (-len(header) % 4)
    return json.loads(base64.urlsafe_b64decode(padded.encode("ascii")).decode("utf-8"))


def _track(value: bool) -> str:
    return "track" if value else "no-track"


def request_headers(api_key: str, options: Optional[FetchOptions]) -> Dict[str, str]:
    """Headers of a vardata request (``User-Agent`` is the session's)."""
    headers = {"Authorization": f"Api-Key {api_key}", "Content-Type": CONTENT_TYPE}
    if options is not None:
        if options.tracksAssignment is not None:
            headers["X-Amp-Exp-Track"] = _track(options.tracksAssignment)
        if options.tracksExposure is not None:
            headers["X-Amp-Exp-Exposure-Track"] = _track(options.tracksExposure)
        # An empty list sends no header (every flag), as the official SDK does.
        if options.flagKeys:
            headers["X-Amp-Exp-Flag-Keys"] = encode_flag_keys(options.flagKeys)
    return headers


def request_body(user: User) -> bytes:
    """The user as the JSON body; ``library`` names this SDK unless the user set one.

    The caller's ``User`` is not changed.
    """
    fields = user.to_dict()
    if not fields.get("library"):
        fields["library"] = LIBRARY
    # Values JSON cannot hold (datetimes, decimals) are sent as str(), like User.to_json().
    return json.dumps(fields, default=str).encode("utf-8")


def _variant_value(value: Any) -> Optional[str]:
    # Values arrive as strings; anything else is kept as its compact JSON text, as the official SDK does.
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


def parse_variants(document: Any, logger: logging.Logger) -> Dict[str, Variant]:
    """Variants from a decoded vardata answer.

    Entries that are not objects are left out (logged once per answer); unknown fields are
    ignored. Raises ``ValueError`` when the document is not an object at all.
    """
    if not isinstance(document, Mapping):
        raise ValueError(f"expected a JSON object of variants, got {type(document).__name__}")
    variants: Dict[str, Variant] = {}
    skipped = []
    for flag_key, raw in document.items():
        if not isinstance(raw, Mapping):
            skipped.append(flag_key)
            continue
        metadata = raw.get("metadata")
        variants[flag_key] = Variant(
            value=_variant_value(raw.get("value")),
            payload=raw.get("payload"),
            key=raw.get("key"),
            metadata=dict(metadata) if isinstance(metadata, Mapping) else None,
        )
    if skipped:
        logger.warning("Remote evaluation answer had %d unusable entries (not objects), left out: %s",
                       len(skipped), ", ".join(sorted(map(str, skipped))[:10]))
    return variants


def is_default_undeployed(variant: Variant) -> bool:
    """Whether the deprecated ``fetch()`` leaves this variant out: a default variant of an undeployed flag."""
    metadata = variant.metadata
    if not metadata:
        return False
    deployed = metadata.get("deployed")
    return bool(metadata.get("default")) and deployed is not None and not deployed


def vardata_url(server_url: str) -> str:
    """Where a fetch is posted."""
    return server_url + VARDATA_PATH + "?v=0"
