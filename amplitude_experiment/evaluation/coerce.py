"""Turning user data into the strings and string lists conditions compare against.

Rules (design.md §4, corrections a–c, i): only ``None`` is null; booleans are ``"true"`` /
``"false"``; ints and floats use ``str()``; dicts and lists become compact JSON with non-ASCII
kept; tuples, sets and frozensets are lists; a string whose first character is ``[`` and that
parses as JSON is a list (as in Amplitude's engines: ``' ["a"]'`` is a plain string).

Some values have no string form: circular or very deeply nested containers, objects whose
``str()`` raises, ints longer than :data:`MAX_INT_DIGITS` digits (and ints past Python's
int-to-str limit inside containers). :func:`coerce_string` answers ``None`` for them and
:func:`string_list` raises :class:`UnwritableValue`; a condition on such a value is false and a
bucket treats it as no value. Nothing here raises anything else.
"""

from __future__ import annotations

import decimal
import json
from typing import Any, List, Optional

_LIST_TYPES = (list, tuple, set, frozenset)
#: A string property is a JSON array only when it starts with this character (no whitespace).
ARRAY_START = "["
#: Ints are written exactly up to this many digits, past Python's own int-to-str limit; longer
#: ones have no string form (writing them costs time quadratic in their length).
MAX_INT_DIGITS = 10_000
_MAX_INT_BITS = int(MAX_INT_DIGITS * 3.3219280948873626)  # log2(10)
_DECIMAL = decimal.Context(prec=MAX_INT_DIGITS + 1)


class UnwritableValue(ValueError):
    """A value (or a list element) that has no string form."""


def _json_default(value: Any) -> Any:
    if isinstance(value, (set, frozenset)):
        return list(value)
    return str(value)


def to_json(value: Any) -> str:
    """Compact JSON, non-ASCII kept; unknown objects are written with ``str``.

    Raises:
        ValueError: a circular container or an int past Python's int-to-str limit.
        RecursionError: nesting deeper than the interpreter's recursion limit.
    """
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=_json_default)


def _int_text(value: int) -> Optional[str]:
    try:
        return str(value)
    except ValueError:  # past sys.get_int_max_str_digits(): Decimal has no such limit
        if value.bit_length() > _MAX_INT_BITS:
            return None
        return str(_DECIMAL.create_decimal(value))


def coerce_string(value: Any) -> Optional[str]:
    """The string form of a property value; ``None`` for null and for a value without one."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return _int_text(value)
    try:
        if isinstance(value, float):
            return str(value)
        if isinstance(value, (dict,) + _LIST_TYPES):
            return to_json(value)
        return str(value)
    except Exception:  # noqa: BLE001 - circular, too deep, or a foreign __str__ that raises
        return None


def _json_array(text: str) -> Optional[List[Any]]:
    if text[:1] != ARRAY_START:
        return None
    try:
        parsed = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return parsed if isinstance(parsed, list) else None


def string_list(value: Any) -> Optional[List[str]]:
    """The elements of a list-like value as strings (``None`` elements dropped).

    Returns ``None`` when the value is not a list, tuple, set, frozenset or a string that
    parses as a JSON array.

    Raises:
        UnwritableValue: an element (other than ``None``) has no string form.
    """
    if isinstance(value, str):
        items: Optional[List[Any]] = _json_array(value)
        if items is None:
            return None
    elif isinstance(value, _LIST_TYPES):
        items = list(value)
    else:
        return None
    strings = [item for item in items if type(item) is str]
    if len(strings) == len(items):  # the common case: a list of strings
        return strings
    strings = []
    for item in items:
        if item is None:
            continue
        text = item if type(item) is str else coerce_string(item)
        if text is None:
            raise UnwritableValue(f"a {type(item).__name__} element has no string form")
        strings.append(text)
    return strings
