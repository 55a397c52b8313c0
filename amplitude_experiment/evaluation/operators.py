"""Condition operators, compiled once per flag config into small matching functions.

``compile_matcher(op, values)`` returns ``match(value) -> bool`` where ``value`` is whatever
the selector found in the user (any type, ``None`` for missing). Everything that depends only
on the condition (value sets, parsed numbers and versions, compiled regexes, the answer for a
null property) is computed here, once, so a match does no parsing of its own.

This module is on the evaluation hot path and is written for speed on purpose: closures over
pre-built values, ``type(x) is str`` checks before the general case, no logging.
"""

from __future__ import annotations

import operator
import re
from typing import Any, Callable, Dict, FrozenSet, List, Optional, Sequence, Tuple

from .coerce import ARRAY_START, UnwritableValue, coerce_string, string_list
from .semver import parse_version

Matcher = Callable[[Any], bool]

NONE_VALUE = "(none)"

IS = "is"
IS_NOT = "is not"
CONTAINS = "contains"
DOES_NOT_CONTAIN = "does not contain"
LESS = "less"
LESS_OR_EQUAL = "less or equal"
GREATER = "greater"
GREATER_OR_EQUAL = "greater or equal"
VERSION_LESS = "version less"
VERSION_LESS_OR_EQUAL = "version less or equal"
VERSION_GREATER = "version greater"
VERSION_GREATER_OR_EQUAL = "version greater or equal"
SET_IS = "set is"
SET_IS_NOT = "set is not"
SET_CONTAINS = "set contains"
SET_DOES_NOT_CONTAIN = "set does not contain"
SET_CONTAINS_ANY = "set contains any"
SET_DOES_NOT_CONTAIN_ANY = "set does not contain any"
REGEX_MATCH = "regex match"
REGEX_DOES_NOT_MATCH = "regex does not match"

_COMPARE = {
    LESS: operator.lt,
    LESS_OR_EQUAL: operator.le,
    GREATER: operator.gt,
    GREATER_OR_EQUAL: operator.ge,
    VERSION_LESS: operator.lt,
    VERSION_LESS_OR_EQUAL: operator.le,
    VERSION_GREATER: operator.gt,
    VERSION_GREATER_OR_EQUAL: operator.ge,
}
_VERSION_OPS = frozenset({VERSION_LESS, VERSION_LESS_OR_EQUAL, VERSION_GREATER, VERSION_GREATER_OR_EQUAL})
_SET_OPS = frozenset({SET_IS, SET_IS_NOT, SET_CONTAINS, SET_DOES_NOT_CONTAIN, SET_CONTAINS_ANY,
                      SET_DOES_NOT_CONTAIN_ANY})
# For a null property, these match when the values include "(none)"; the negative ones when
# they do not; every other operator is false.
_NULL_POSITIVE = frozenset({IS, CONTAINS, LESS, LESS_OR_EQUAL, GREATER, GREATER_OR_EQUAL, VERSION_LESS,
                            VERSION_LESS_OR_EQUAL, VERSION_GREATER, VERSION_GREATER_OR_EQUAL, SET_IS,
                            SET_CONTAINS, SET_CONTAINS_ANY})
_NULL_NEGATIVE = frozenset({IS_NOT, DOES_NOT_CONTAIN, SET_DOES_NOT_CONTAIN, SET_DOES_NOT_CONTAIN_ANY})

KNOWN_OPERATORS = frozenset(_COMPARE) | _SET_OPS | {IS, IS_NOT, CONTAINS, DOES_NOT_CONTAIN, REGEX_MATCH,
                                                    REGEX_DOES_NOT_MATCH}

# An ASCII decimal number, optionally signed, with optional exponent and surrounding spaces.
_NUMBER = re.compile(r"\s*[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\s*", re.ASCII)


def parse_number(text: str) -> Optional[float]:
    """The number a string spells, or ``None`` (``nan``, ``inf``, ``1_000`` are not numbers)."""
    if _NUMBER.fullmatch(text) is None:
        return None
    return float(text)


class InvalidCondition(ValueError):
    """A condition that can never be evaluated as written (for example a bad regex)."""


def _never(_: Any) -> bool:
    return False


_MEMO_SIZE = 4096
_MEMO_KEY_LENGTH = 64  # longer texts are parsed every time: a memo of 1 MB keys would hold 1 GB


_MISSING: Any = object()


def _memoized(parse: Callable[[str], Any], memo: Dict[str, Any]) -> Callable[[str], Any]:
    """``parse`` with a small bounded memo: the same few versions and numbers recur constantly.

    One memo per parser, shared by every condition: a memo per condition would see each user
    once per flag and miss more often the more flags a deployment has.
    """

    def parse_memoized(text: str) -> Any:
        found = memo.get(text, _MISSING)
        if found is _MISSING:
            found = parse(text)
            if len(text) <= _MEMO_KEY_LENGTH:
                if len(memo) >= _MEMO_SIZE:
                    memo.clear()
                memo[text] = found
        return found

    return parse_memoized


_NUMBER_MEMO: Dict[str, Any] = {}
_VERSION_MEMO: Dict[str, Any] = {}
_parse_number_memoized = _memoized(parse_number, _NUMBER_MEMO)
_parse_version_memoized = _memoized(parse_version, _VERSION_MEMO)


def null_result(op: str, values: Sequence[str]) -> bool:
    """What a condition answers when the selected property is missing or ``None``."""
    if op in _NULL_POSITIVE:
        return NONE_VALUE in values
    if op in _NULL_NEGATIVE:
        return NONE_VALUE not in values
    return False


def boolean_key(text: str) -> str:
    """What a value is compared by under ``is``: boolean text lowercased, anything else as is.

    Two values match under ``is`` (and element-wise under the set operators) exactly when
    their keys are equal: ``"TRUE"`` matches ``"true"``, ``"Yes"`` only ``"Yes"``.
    """
    low = text.lower()
    return low if low == "true" or low == "false" else text


_BOOLEAN_TEXTS = frozenset(("true", "false"))


def _has_boolean(values: Tuple[str, ...]) -> bool:
    return not _BOOLEAN_TEXTS.isdisjoint(map(str.lower, values))


def _is_test(op: str, values: Tuple[str, ...]) -> Callable[[str], bool]:
    is_: Callable[[str], bool] = frozenset(values).__contains__
    if _has_boolean(values):
        keys = frozenset(map(boolean_key, values))

        def is_(s: str) -> bool:
            return boolean_key(s) in keys

    if op == IS:
        return is_
    return lambda s: not is_(s)


def _contains_test(op: str, values: Tuple[str, ...]) -> Callable[[str], bool]:
    needles = tuple(frozenset(v.lower() for v in values))

    def contains(s: str) -> bool:
        low = s.lower()
        for needle in needles:
            if needle in low:
                return True
        return False

    if op == CONTAINS:
        return contains
    return lambda s: not contains(s)


def _compare_test(op: str, values: Tuple[str, ...]) -> Callable[[str], bool]:
    compare = _COMPARE[op]
    parse = _parse_version_memoized if op in _VERSION_OPS else _parse_number_memoized
    parsed = tuple(p for p in map(parse, values) if p is not None)

    def compare_values(s: str) -> bool:
        if parsed:
            mine = parse(s)
            if mine is not None:
                for other in parsed:
                    if compare(mine, other):
                        return True
                return False
        for other in values:
            if compare(s, other):
                return True
        return False

    return compare_values


def _regex_test(op: str, values: Tuple[str, ...]) -> Callable[[str], bool]:
    try:
        patterns = tuple(re.compile(v) for v in values)
    except (re.error, RecursionError, OverflowError) as exc:
        raise InvalidCondition(f"invalid regex in {op!r} condition: {exc}") from exc

    def search(s: str) -> bool:
        for pattern in patterns:
            if pattern.search(s) is not None:
                return True
        return False

    if op == REGEX_MATCH:
        return search
    return lambda s: not search(s)


_STRING_TESTS: Dict[str, Callable[[str, Tuple[str, ...]], Callable[[str], bool]]] = {
    **dict.fromkeys((IS, IS_NOT), _is_test),
    **dict.fromkeys((CONTAINS, DOES_NOT_CONTAIN), _contains_test),
    **dict.fromkeys(_COMPARE, _compare_test),
    **dict.fromkeys((REGEX_MATCH, REGEX_DOES_NOT_MATCH), _regex_test),
}


def _string_test(op: str, values: Tuple[str, ...]) -> Callable[[str], bool]:
    """A test of one (non-null, string) property value against the condition's values."""
    build = _STRING_TESTS.get(op)
    if build is None:
        raise InvalidCondition(f"unknown operator {op!r}")
    return build(op, values)


def _set_test(op: str, values: Tuple[str, ...]) -> Callable[[List[str]], bool]:
    """A test of a property's elements (as strings) against the condition's values.

    ``set is``/``set is not`` compare the two sets exactly. The other set operators compare
    elements with the rule of ``is`` (boolean text case-insensitively) and ``set contains``
    also needs at least as many elements as values, duplicates counted, as Amplitude's
    engines do.
    """
    wanted = frozenset(values)
    if op == SET_IS:
        return lambda have: frozenset(have) == wanted
    if op == SET_IS_NOT:
        return lambda have: frozenset(have) != wanted
    keyed: Callable[[List[str]], FrozenSet[str]] = frozenset
    if _has_boolean(values):
        wanted = frozenset(map(boolean_key, values))

        def keyed(have: List[str]) -> FrozenSet[str]:
            return frozenset(map(boolean_key, have))

    needed = len(values)
    if op == SET_CONTAINS:
        return lambda have: len(have) >= needed and wanted <= keyed(have)
    if op == SET_DOES_NOT_CONTAIN:
        return lambda have: not (len(have) >= needed and wanted <= keyed(have))
    if keyed is frozenset:  # no boolean values: isdisjoint takes the list as it is
        if op == SET_CONTAINS_ANY:
            return lambda have: not wanted.isdisjoint(have)
        return lambda have: wanted.isdisjoint(have)  # SET_DOES_NOT_CONTAIN_ANY
    if op == SET_CONTAINS_ANY:
        return lambda have: not wanted.isdisjoint(keyed(have))
    return lambda have: wanted.isdisjoint(keyed(have))  # SET_DOES_NOT_CONTAIN_ANY


def compile_matcher(op: str, values: Sequence[str]) -> Matcher:
    """Compile one condition's operator and values into ``match(property_value) -> bool``.

    The matcher never raises: a value without a string form (see :mod:`.coerce`) makes the
    condition false.

    Raises:
        InvalidCondition: the operator is unknown or a regex does not compile. The caller
            decides what to do (the compiler makes the condition always false and warns once).
    """
    values = tuple(values)
    if_null = null_result(op, values)
    if op in _SET_OPS:
        set_matcher = _set_matcher(_set_test(op, values), if_null)
        if op in (SET_CONTAINS_ANY, SET_DOES_NOT_CONTAIN_ANY) and not _has_boolean(values):
            return _plain_any_matcher(op == SET_CONTAINS_ANY, frozenset(values), set_matcher)
        return set_matcher
    general = _general_matcher(_string_test(op, values), if_null)
    if op in (IS, IS_NOT) and not _has_boolean(values):
        return _plain_is_matcher(op == IS, frozenset(values), general)
    if op in (CONTAINS, DOES_NOT_CONTAIN):
        return _plain_contains_matcher(op == CONTAINS, tuple(frozenset(v.lower() for v in values)), general)
    if op in (REGEX_MATCH, REGEX_DOES_NOT_MATCH):
        return _plain_regex_matcher(op == REGEX_MATCH, tuple(re.compile(v) for v in values), general)
    if op in _COMPARE:
        return _plain_compare_matcher(op, values, general)
    return general


# The _plain_* matchers answer a plain string (not null, not a list, not a JSON array) in one
# call, with the same result as the general matcher; any other value goes to the general one.


def _plain_contains_matcher(positive: bool, needles: Tuple[str, ...], general: Matcher) -> Matcher:
    def match_contains(value: Any) -> bool:
        if type(value) is str and value[:1] != ARRAY_START:
            low = value.lower()
            for needle in needles:
                if needle in low:
                    return positive
            return not positive
        return general(value)

    return match_contains


def _plain_compare_matcher(op: str, values: Tuple[str, ...], general: Matcher) -> Matcher:
    compare = _COMPARE[op]
    memo, parse = (_VERSION_MEMO, _parse_version_memoized) if op in _VERSION_OPS else (_NUMBER_MEMO,
                                                                                     _parse_number_memoized)
    parsed = tuple(p for p in map(parse, values) if p is not None)

    def match_compare(value: Any) -> bool:
        if type(value) is str and value[:1] != ARRAY_START:
            if parsed:
                mine = memo.get(value, _MISSING)
                if mine is _MISSING:
                    mine = parse(value)
                if mine is not None:
                    for other in parsed:
                        if compare(mine, other):
                            return True
                    return False
            for other in values:
                if compare(value, other):
                    return True
            return False
        return general(value)

    return match_compare


def _plain_regex_matcher(positive: bool, patterns: Tuple["re.Pattern[str]", ...], general: Matcher) -> Matcher:
    def match_regex(value: Any) -> bool:
        if type(value) is str and value[:1] != ARRAY_START:
            for pattern in patterns:
                if pattern.search(value) is not None:
                    return positive
            return not positive
        return general(value)

    return match_regex


def plain_is_members(op: str, values: Sequence[str]) -> Optional[FrozenSet[str]]:
    """For an ``is`` condition without boolean values, the set a plain string must be in.

    A plain string is one that does not start with ``[`` (which may be a JSON array); for it
    the condition is exactly ``value in members``. ``None`` for every other condition.
    """
    if op != IS or _has_boolean(tuple(values)):
        return None
    return frozenset(values)


def _set_matcher(set_test: Callable[[List[str]], bool], if_null: bool) -> Matcher:
    def match_set(value: Any) -> bool:
        if type(value) is list:  # the common case, a list of strings, is its own string list
            for item in value:
                if type(item) is not str:
                    break
            else:
                return set_test(value)
        if value is None:
            return if_null
        try:
            items = string_list(value)
        except UnwritableValue:
            return False
        return False if items is None else set_test(items)

    return match_set


def _plain_any_matcher(positive: bool, wanted: FrozenSet[str], general: Matcher) -> Matcher:
    """``set contains any`` / ``set does not contain any`` without boolean values, for a list of
    strings (cohort ids, mostly) in one call; any other value goes to the general matcher."""
    def match_any(value: Any) -> bool:
        if type(value) is list:
            for item in value:
                if type(item) is not str:
                    break
            else:
                return positive is not wanted.isdisjoint(value)
        return general(value)

    return match_any


def _plain_is_matcher(positive: bool, value_set: FrozenSet[str], general: Matcher) -> Matcher:
    """``is`` / ``is not`` without boolean values: the most common operators, specialised so
    that a plain string costs one call."""
    if positive:
        def match_is(value: Any) -> bool:
            if type(value) is str and value[:1] != ARRAY_START:
                return value in value_set
            return general(value)

        return match_is

    def match_is_not(value: Any) -> bool:
        if type(value) is str and value[:1] != ARRAY_START:
            return value not in value_set
        return general(value)

    return match_is_not


def _general_matcher(test: Callable[[str], bool], if_null: bool) -> Matcher:
    """Apply a string test to any property value: null, scalar, list or JSON-array string."""

    def match(value: Any) -> bool:
        if value is None:
            return if_null
        if type(value) is str:
            if value[:1] != ARRAY_START:
                return test(value)
        elif not isinstance(value, (list, tuple, set, frozenset, str)):
            text = coerce_string(value)
            return test(text) if text is not None else False  # None: no string form
        try:
            items = string_list(value)
        except UnwritableValue:
            return False
        if items is None:  # a string that only looked like it might be a JSON array
            return test(value)
        for item in items:
            if test(item):
                return True
        return False

    return match


def invalid_matcher() -> Matcher:
    """The matcher of a condition that cannot be evaluated: always false."""
    return _never
