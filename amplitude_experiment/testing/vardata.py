"""Remote evaluation for the stand-in: answer ``POST /sdk/v2/vardata`` with our own engine.

The stand-in's flags are compiled once per flags body and each request's user is evaluated
locally, honouring ``X-Amp-Exp-Flag-Keys``; so code using ``RemoteEvaluationClient`` works
offline in tests and demos, with the same variants local evaluation gives.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
from typing import Any, Dict, List, Mapping, Optional, Tuple

from ..evaluation import CompiledFlags, compile_flags, evaluate
from ..user import User

__all__ = ["answer_vardata", "user_from_json", "variant_json"]

_USER_FIELDS = frozenset(User().to_dict())

_cache_lock = threading.Lock()
_cache: Tuple[Optional[bytes], Optional[CompiledFlags]] = (None, None)


def _compiled(flags_body: bytes) -> CompiledFlags:
    global _cache
    with _cache_lock:
        body, compiled = _cache
        if compiled is None or (body is not flags_body and body != flags_body):
            compiled = compile_flags(json.loads(flags_body))
            _cache = (flags_body, compiled)
        return compiled


def user_from_json(document: Any) -> User:
    """A ``User`` from the JSON a client posted (unknown fields ignored); ``ValueError`` if not an object."""
    if not isinstance(document, Mapping):
        raise ValueError("the body must be a JSON object (the user)")
    return User(**{name: value for name, value in document.items() if name in _USER_FIELDS})


def variant_json(variant: Any) -> Dict[str, Any]:
    """A variant as vardata sends it: ``key`` and, when set, ``value``, ``payload``, ``metadata``."""
    out: Dict[str, Any] = {"key": variant.key}
    for name in ("value", "payload", "metadata"):
        value = getattr(variant, name)
        if value is not None:
            out[name] = value
    return out


def _flag_keys(header: Optional[str]) -> Optional[List[str]]:
    if header is None:
        return None
    padded = header + "=" * (-len(header) % 4)
    try:
        keys = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")).decode("utf-8"))
    except (binascii.Error, UnicodeError, ValueError) as exc:
        raise ValueError("X-Amp-Exp-Flag-Keys is not base64url of a JSON list") from exc
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise ValueError("X-Amp-Exp-Flag-Keys must hold a JSON list of flag keys")
    return keys


def answer_vardata(flags_body: bytes, headers: Mapping[str, str], body: bytes) -> Tuple[int, Dict[str, Any]]:
    """The status and JSON answer of a vardata request against the flags in ``flags_body``.

    ``headers`` is matched case-insensitively. A malformed body or flag-keys header is a 400
    (``{"code": 400, "error": ...}``); flags that cannot be served (not a JSON array) are a 500.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    try:
        user = user_from_json(json.loads(body))
        keys = _flag_keys(lowered.get("x-amp-exp-flag-keys"))
    except ValueError as exc:
        return 400, {"code": 400, "error": str(exc)}
    try:
        compiled = _compiled(flags_body)
    except ValueError:
        return 500, {"code": 500, "error": "the stand-in's flags are not a JSON array"}
    # An empty list asks for nothing in particular, i.e. every flag (the client sends no header then).
    variants = evaluate(compiled, user, keys or None)
    return 200, {key: variant_json(variant) for key, variant in variants.items()}
