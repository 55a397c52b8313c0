"""The evaluation context a user stands for, and compiled selectors into it.

The context of a user is ``{"user": {...non-None fields...}, "groups": {type: {"group_name",
"group_properties"?, "cohort_ids"?}}}`` and a selector is a path into
``{"context": context, "result": results so far}``.

Building that dict for every call would cost more than evaluating most flags, so each
selector is compiled into a getter ``get(user, results)`` that reads the ``User`` object
directly. Only unusual selectors (for example the whole ``["context", "user"]``) fall back to
building the context dict. Hot path: written for speed on purpose.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

from ..user import USER_CONTEXT_FIELDS
from ..variant import Variant

Getter = Callable[[Any, Dict[str, Variant]], Any]

_USER_FIELDS = frozenset(USER_CONTEXT_FIELDS)
_GROUP_KEYS = ("group_name", "group_properties", "cohort_ids")


def _first_name(names: Any) -> Optional[str]:
    if isinstance(names, str):
        return names or None
    if isinstance(names, (list, tuple)) and names:
        first: Optional[str] = names[0]
        return first
    return None


def _group_entry(user: Any, group_type: str) -> Optional[Dict[str, Any]]:
    groups = getattr(user, "groups", None)
    if not isinstance(groups, Mapping):
        return None
    name = _first_name(groups.get(group_type))
    if name is None:
        return None
    entry: Dict[str, Any] = {"group_name": name}
    for key, source in (("group_properties", "group_properties"), ("cohort_ids", "group_cohort_ids")):
        by_type = getattr(user, source, None)
        if isinstance(by_type, Mapping):
            by_name = by_type.get(group_type)
            if isinstance(by_name, Mapping):
                value = by_name.get(name)
                if value is not None:
                    entry[key] = value
    return entry


def build_context(user: Any) -> Dict[str, Any]:
    """The full context dict of a user (for explain, debugging and unusual selectors)."""
    context: Dict[str, Any] = {
        "user": {f: v for f in USER_CONTEXT_FIELDS if (v := getattr(user, f, None)) is not None}
    }
    groups = getattr(user, "groups", None)
    if isinstance(groups, Mapping):
        entries = {t: e for t in groups if (e := _group_entry(user, t)) is not None}
        if entries:
            context["groups"] = entries
    return context


def variant_as_dict(variant: Variant) -> Dict[str, Any]:
    out: Dict[str, Any] = {"key": variant.key}
    if variant.value is not None:
        out["value"] = variant.value
    if variant.payload is not None:
        out["payload"] = variant.payload
    if variant.metadata is not None:
        out["metadata"] = variant.metadata
    return out


def walk(value: Any, path: Sequence[str]) -> Any:
    """Follow ``path`` through nested mappings; ``None`` when any step is missing."""
    for step in path:
        if isinstance(value, Mapping):
            value = value.get(step)
        elif isinstance(value, Variant):
            value = variant_as_dict(value).get(step)
        else:
            return None
        if value is None:
            return None
    return value


def _user_getter(field: str, rest: Tuple[str, ...]) -> Getter:
    if not rest:
        return lambda user, results: getattr(user, field, None)
    if len(rest) == 1:
        key = rest[0]

        def get_user_key(user: Any, results: Dict[str, Variant]) -> Any:
            container = getattr(user, field, None)
            if type(container) is dict:
                return container.get(key)
            return walk(container, rest)

        return get_user_key
    return lambda user, results: walk(getattr(user, field, None), rest)


def _group_getter(group_type: str, rest: Tuple[str, ...]) -> Getter:
    def get_group(user: Any, results: Dict[str, Variant]) -> Any:
        if getattr(user, "groups", None) is None:
            return None
        return walk(_group_entry(user, group_type), rest)

    return get_group


def _result_getter(flag_key: str, rest: Tuple[str, ...]) -> Getter:
    if len(rest) == 1 and rest[0] in ("key", "value", "payload", "metadata"):
        attribute = rest[0]

        def get_result_attribute(user: Any, results: Dict[str, Variant]) -> Any:
            variant = results.get(flag_key)
            return getattr(variant, attribute) if variant is not None else None

        return get_result_attribute

    def get_result(user: Any, results: Dict[str, Variant]) -> Any:
        variant = results.get(flag_key)
        if variant is None:
            return None
        return walk(variant_as_dict(variant), rest)

    return get_result


def _generic_getter(path: Tuple[str, ...]) -> Getter:
    def get_generic(user: Any, results: Dict[str, Variant]) -> Any:
        target = {"context": build_context(user), "result": {k: variant_as_dict(v) for k, v in results.items()}}
        return walk(target, path)

    return get_generic


def user_field(selector: Sequence[str]) -> Optional[str]:
    """The ``User`` attribute a ``["context", "user", <field>]`` selector reads, else ``None``."""
    if len(selector) == 3 and selector[0] == "context" and selector[1] == "user" and selector[2] in _USER_FIELDS:
        return sys.intern(selector[2])
    return None


def user_path(selector: Sequence[str]) -> Tuple[Optional[str], Optional[str]]:
    """``(field, key)`` for ``["context", "user", field]`` (key ``None``) and
    ``["context", "user", field, key]``; ``(None, None)`` for any other selector.

    The engine reads these directly: ``getattr(user, field, None)``, then ``.get(key)`` when
    that is a dict (anything else goes through the selector's getter).
    """
    if 3 <= len(selector) <= 4 and selector[0] == "context" and selector[1] == "user" and selector[2] in _USER_FIELDS:
        return sys.intern(selector[2]), (selector[3] if len(selector) == 4 else None)
    return None, None


def compile_selector(selector: Sequence[str]) -> Getter:
    """Compile a selector path into ``get(user, results) -> value or None``."""
    path = tuple(selector)
    n = len(path)
    if n >= 3 and path[0] == "context" and path[1] == "user" and path[2] in _USER_FIELDS:
        return _user_getter(path[2], path[3:])
    if n >= 4 and path[0] == "context" and path[1] == "groups" and path[3] in _GROUP_KEYS:
        return _group_getter(path[2], path[3:])
    if n >= 2 and path[0] == "result":
        return _result_getter(path[1], path[2:])
    return _generic_getter(path)
