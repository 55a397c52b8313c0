"""Turning an OpenFeature evaluation context into a :class:`User` (the mapping is in the package docstring)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime, time
from typing import Any, Callable, Dict, List, Optional

from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import InvalidContextError, TargetingKeyMissingError

from ..user import USER_CONTEXT_FIELDS, User

#: Context attributes copied as-is (as text) onto the ``User`` field of the same name: every
#: scalar User field except ``user_id``, which comes from the targeting key.
STRING_FIELDS = tuple(name for name in USER_CONTEXT_FIELDS
                      if name not in ("user_id", "user_properties", "cohort_ids"))
_STRING_FIELDS = frozenset(STRING_FIELDS)
_TEXT_LIKE = (str, bytes, bytearray)


def _scalar_text(name: str, value: Any) -> str:
    """Text of a scalar attribute, written the way evaluation compares it."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    raise InvalidContextError(f"context attribute {name!r} must be a string, number or boolean, "
                              f"not {type(value).__name__}")


def _json_value(value: Any) -> Any:
    """A plain-JSON copy of a property value (datetimes as ISO 8601 text)."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, _TEXT_LIKE):
        return [_json_value(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return [_json_value(v) for v in value]
    return str(value)


def _mapping(name: str, value: Any) -> Mapping[Any, Any]:
    if not isinstance(value, Mapping):
        raise InvalidContextError(f"context attribute {name!r} must be a mapping, not {type(value).__name__}")
    return value


def _name_list(name: str, value: Any) -> List[str]:
    if isinstance(value, Sequence) and not isinstance(value, _TEXT_LIKE):
        return [_scalar_text(name, v) for v in value]
    return [_scalar_text(name, value)]


def _strict_list(name: str, value: Any) -> List[str]:
    if not isinstance(value, Sequence) or isinstance(value, _TEXT_LIKE):
        raise InvalidContextError(f"context attribute {name!r} must be a list of strings")
    return [_scalar_text(name, v) for v in value]


def _groups(value: Any) -> Dict[str, List[str]]:
    return {str(group_type): _name_list(f"groups.{group_type}", names)
            for group_type, names in _mapping("groups", value).items()}


def _group_properties(value: Any) -> Dict[str, Dict[str, Dict[str, Any]]]:
    out: Dict[str, Dict[str, Dict[str, Any]]] = {}
    for group_type, by_name in _mapping("group_properties", value).items():
        where = f"group_properties.{group_type}"
        out[str(group_type)] = {
            str(group_name): {str(k): _json_value(v) for k, v in _mapping(f"{where}.{group_name}", props).items()}
            for group_name, props in _mapping(where, by_name).items()
        }
    return out


def _group_cohort_ids(value: Any) -> Dict[str, Dict[str, List[str]]]:
    out: Dict[str, Dict[str, List[str]]] = {}
    for group_type, by_name in _mapping("group_cohort_ids", value).items():
        where = f"group_cohort_ids.{group_type}"
        out[str(group_type)] = {str(group_name): _strict_list(f"{where}.{group_name}", ids)
                                for group_name, ids in _mapping(where, by_name).items()}
    return out


#: User fields given as structured attributes, each with its reader.
_STRUCTURED_FIELDS: Dict[str, Callable[[Any], Any]] = {
    "groups": _groups,
    "group_properties": _group_properties,
    "group_cohort_ids": _group_cohort_ids,
    "cohort_ids": lambda value: _strict_list("cohort_ids", value),
}


def context_to_user(context: Optional[EvaluationContext]) -> User:
    """The user an evaluation context stands for.

    Raises:
        TargetingKeyMissingError: neither a targeting key (nor ``user_id``) nor a ``device_id``.
        InvalidContextError: a mapped attribute has an unusable shape (e.g. ``groups`` not a mapping).
    """
    targeting_key = context.targeting_key if context is not None else None
    attributes: Mapping[str, Any] = context.attributes if context is not None and context.attributes else {}
    fields: Dict[str, Any] = {}
    loose_properties: Dict[str, Any] = {}
    explicit_properties: Optional[Mapping[Any, Any]] = None
    user_id_attribute: Optional[str] = None
    for name, value in attributes.items():
        if value is None:
            continue  # None is "not set" both for User fields and for evaluation
        if name in _STRING_FIELDS:
            fields[name] = _scalar_text(name, value)
        elif name == "user_id":
            user_id_attribute = _scalar_text(name, value)
        elif name == "user_properties":
            explicit_properties = _mapping(name, value)
        elif name in _STRUCTURED_FIELDS:
            fields[name] = _STRUCTURED_FIELDS[name](value)
        else:
            loose_properties[str(name)] = _json_value(value)
    if targeting_key is not None and not isinstance(targeting_key, str):
        raise InvalidContextError(f"the targeting key must be a string, not {type(targeting_key).__name__}")
    user_id = targeting_key or user_id_attribute or None
    if not user_id and not fields.get("device_id"):
        raise TargetingKeyMissingError(
            "the evaluation context needs a targeting key (the Amplitude user_id) or a device_id attribute")
    if explicit_properties is not None:
        loose_properties.update({str(k): _json_value(v) for k, v in explicit_properties.items()})
    return User(user_id=user_id, user_properties=loose_properties or None, **fields)
