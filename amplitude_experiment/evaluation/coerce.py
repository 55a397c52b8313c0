"""Turning user data into the strings and string lists conditions compare against.

Rules (design.md §4, corrections a–c, i): only ``None`` is null; booleans are ``"true"`` /
``"false"``; ints and floats use ``str()``; dicts and lists become compact JSON with non-ASCII
kept; tuples, sets and frozensets are lists; a string holding a JSON array is a list.
"""

from __future__ import annotations

import json
from typing import Any, List, Optional

_LIST_TYPES = (list, tuple, set, frozenset)
# A string can only be a JSON array if, after JSON whitespace, it starts with "[".
_ARRAY_LEAD = frozenset("[ \t\n\r")


def _json_default(value: Any) -> Any:
    if isinstance(value, (set, frozenset)):
        return list(value)
    return str(value)


def to_json(value: Any) -> str:
    """Compact JSON, non-ASCII kept; unknown objects are written with ``str``."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=_json_default)


def coerce_string(value: Any) -> Optional[str]:
    """The string form of a property value, or ``None`` for null."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, (dict,) + _LIST_TYPES):
        return to_json(value)
    return str(value)


def _json_array(text: str) -> Optional[List[Any]]:
    if text[:1] not in _ARRAY_LEAD or not text.lstrip(" \t\n\r").startswith("["):
        return None
    try:
        parsed = json.loads(text)
    except ValueError:
        return None
    return parsed if isinstance(parsed, list) else None


def string_list(value: Any) -> Optional[List[str]]:
    """The elements of a list-like value as strings (``None`` elements dropped).

    Returns ``None`` when the value is not a list, tuple, set, frozenset or a string that
    parses as a JSON array.
    """
    if isinstance(value, str):
        items: Optional[List[Any]] = _json_array(value)
        if items is None:
            return None
    elif isinstance(value, _LIST_TYPES):
        items = list(value)
    else:
        return None
    return [s for s in map(coerce_string, items) if s is not None]
