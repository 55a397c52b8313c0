"""Build valid v2 flag configs (plain dicts) for your own tests.

The results can be served by :class:`~amplitude_experiment.testing.AmplitudeStandIn` or passed to
``LocalEvaluationConfig(offline=True, bootstrap_flags=[...])``::

    flags = [
        on_flag("dark-mode"),
        experiment("checkout", variants={"control": 50, "treatment": 50}, percentage=20),
        FlagBuilder("new-pricing")
        .variant("on", payload={"discount": 10})
        .rule("Pro plan", condition(prop("plan"), "is", "pro"), "on")
        .rule("Beta testers", [condition("country", "is", "US", "CA"), in_cohort("beta")], "on", percentage=50)
        .build(),
    ]

Every flag has the built-in ``off`` variant (``metadata.default = true``) and ends with an
"All Other Users" segment (serving ``off`` unless :meth:`FlagBuilder.everyone` says otherwise),
and carries the metadata a deployed flag has: ``deployed``, ``evaluationMode``, ``flagType``,
``flagVersion``, ``experimentKey`` (experiments), and ``segmentName`` per segment.

Split weights are relative: each variant gets ``weight / sum(weights)`` of the users, so
``{"control": 50, "treatment": 50}`` and ``{"control": 1, "treatment": 1}`` are the same split.
The bucket ranges always cover ``0..42949672`` exactly, without gaps or overlaps.
"""

from __future__ import annotations

import copy
import json
import math
import re
from fractions import Fraction
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Union

from ..evaluation import operators as _ops

__all__ = [
    "ALL_OTHER_USERS",
    "DISTRIBUTION_END",
    "FlagBuilder",
    "OFF",
    "OPERATORS",
    "USER_FIELDS",
    "any_of",
    "cohorts",
    "condition",
    "distributions",
    "experiment",
    "group",
    "group_prop",
    "in_cohort",
    "not_in_cohort",
    "off_flag",
    "on_flag",
    "prop",
    "result",
    "rollout",
]

#: The key of the built-in default variant every built flag has.
OFF = "off"
#: The name of the catch-all last segment.
ALL_OTHER_USERS = "All Other Users"
#: Distribution ranges are over ``hash // 100`` of a 32-bit hash: ``0 <= value < DISTRIBUTION_END``.
DISTRIBUTION_END = 42949673
#: Every condition operator of the v2 wire format.
OPERATORS = (
    _ops.IS, _ops.IS_NOT, _ops.CONTAINS, _ops.DOES_NOT_CONTAIN,
    _ops.LESS, _ops.LESS_OR_EQUAL, _ops.GREATER, _ops.GREATER_OR_EQUAL,
    _ops.VERSION_LESS, _ops.VERSION_LESS_OR_EQUAL, _ops.VERSION_GREATER, _ops.VERSION_GREATER_OR_EQUAL,
    _ops.SET_IS, _ops.SET_IS_NOT, _ops.SET_CONTAINS, _ops.SET_DOES_NOT_CONTAIN,
    _ops.SET_CONTAINS_ANY, _ops.SET_DOES_NOT_CONTAIN_ANY,
    _ops.REGEX_MATCH, _ops.REGEX_DOES_NOT_MATCH,
)
#: User fields a selector may name by a plain string (``condition("country", ...)``).
USER_FIELDS = (
    "device_id", "user_id", "country", "city", "region", "dma", "language", "platform", "version", "os",
    "device_manufacturer", "device_brand", "device_model", "carrier", "library", "ip_address", "cohort_ids",
)
FLAG_TYPES = ("release", "experiment", "mutual-exclusion-group", "holdout-group")

Selector = List[str]
Condition = Dict[str, Any]
ConditionValue = Union[str, int, float, bool, None]
#: One condition, a list of conditions that must all match, or (from :func:`any_of`) a list of such lists.
Conditions = Union[Condition, Sequence[Condition], Sequence[Sequence[Condition]]]
Weights = Union[Mapping[str, float], Sequence[str]]

_NONE = _ops.NONE_VALUE
_SELECTOR_ROOTS = ("context", "result")


# ----- selectors -----------------------------------------------------------------------------


def _name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty string, not {value!r}")
    return value


def prop(name: str) -> Selector:
    """Selector of a user property: ``prop("plan")``."""
    return ["context", "user", "user_properties", _name(name, "user property name")]


def group(group_type: str) -> Selector:
    """Selector of the user's group name of a group type: ``group("company")``."""
    return ["context", "groups", _name(group_type, "group type"), "group_name"]


def group_prop(group_type: str, name: str) -> Selector:
    """Selector of a property of the user's group: ``group_prop("company", "plan")``."""
    return ["context", "groups", _name(group_type, "group type"), "group_properties",
            _name(name, "group property name")]


def cohorts(group_type: Optional[str] = None) -> Selector:
    """Selector of the user's cohort ids, or of their group's when ``group_type`` is given."""
    if group_type is None:
        return ["context", "user", "cohort_ids"]
    return ["context", "groups", _name(group_type, "group type"), "cohort_ids"]


def result(flag_key: str) -> Selector:
    """Selector of the variant key another flag gave the user (list that flag in ``depends_on``)."""
    return ["result", _name(flag_key, "flag key"), "key"]


def _selector(selector: Union[str, Sequence[str]]) -> Selector:
    if isinstance(selector, str):
        if selector not in USER_FIELDS:
            raise ValueError(f"unknown user field {selector!r} (one of {', '.join(USER_FIELDS)}); "
                             f"for a user property use prop({selector!r})")
        return ["context", "user", selector]
    if (not isinstance(selector, Sequence) or len(selector) < 2
            or not all(isinstance(step, str) and step for step in selector)
            or selector[0] not in _SELECTOR_ROOTS):
        raise ValueError(f"a selector is a user field name or a list of strings starting with 'context' or "
                         f"'result' (see prop(), group(), cohorts()), not {selector!r}")
    return list(selector)


# ----- conditions ----------------------------------------------------------------------------


def _wire_value(value: Any) -> str:
    if value is None:
        return _NONE
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int) or (isinstance(value, float) and math.isfinite(value)):
        return str(value)
    raise ValueError(f"condition values must be strings, numbers, booleans or None, not {value!r}")


def condition(selector: Union[str, Sequence[str]], op: str,
              *values: Union[ConditionValue, Iterable[ConditionValue]]) -> Condition:
    """One targeting condition in wire format.

    Args:
        selector: a user field name (``"country"``), or :func:`prop`, :func:`group`,
            :func:`group_prop`, :func:`cohorts`, :func:`result`, or a raw selector list.
        op: a wire-format operator, one of :data:`OPERATORS` (``"is"``, ``"version less"``,
            ``"set contains any"``, ``"regex match"``, ...).
        values: one or more values, or lists of values. Numbers and booleans are written as the
            strings Amplitude uses; ``None`` is ``"(none)"``, which matches a missing property.

    Raises:
        ValueError: unknown selector or operator, no values, or an invalid regex.
    """
    if op not in OPERATORS:
        raise ValueError(f"unknown operator {op!r}; use one of: {', '.join(OPERATORS)}")
    flat: List[str] = []
    for value in values:
        if isinstance(value, (list, tuple, set, frozenset)):
            flat.extend(_wire_value(v) for v in value)
        else:
            flat.append(_wire_value(value))
    if not flat:
        raise ValueError(f"condition {op!r} needs at least one value")
    if op in (_ops.REGEX_MATCH, _ops.REGEX_DOES_NOT_MATCH):
        for pattern in flat:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"invalid regex {pattern!r}: {exc}") from exc
    return {"selector": _selector(selector), "op": op, "values": flat}


def in_cohort(*cohort_ids: str, group_type: Optional[str] = None) -> Condition:
    """The user (or their group of ``group_type``) is in any of these cohorts."""
    return condition(cohorts(group_type), _ops.SET_CONTAINS_ANY, *(_name(c, "cohort id") for c in cohort_ids))


def not_in_cohort(*cohort_ids: str, group_type: Optional[str] = None) -> Condition:
    """The user (or their group of ``group_type``) is in none of these cohorts."""
    return condition(cohorts(group_type), _ops.SET_DOES_NOT_CONTAIN_ANY,
                     *(_name(c, "cohort id") for c in cohort_ids))


def _check_condition(value: Any) -> Condition:
    if not isinstance(value, dict):
        raise ValueError(f"a condition must be a dict from condition(), not {value!r}")
    raw_values = value.get("values")
    if not isinstance(raw_values, list):
        raise ValueError(f"condition values must be a list, not {raw_values!r}")
    return condition(value.get("selector"), value.get("op"), raw_values)  # type: ignore[arg-type]


def _groups(conditions: Conditions) -> List[List[Condition]]:
    """Normalise to the wire format: a list of alternatives, each a list of conditions that all match."""
    if isinstance(conditions, dict):
        return [[_check_condition(conditions)]]
    if isinstance(conditions, (str, bytes)) or not isinstance(conditions, Sequence) or not conditions:
        raise ValueError("a rule needs at least one condition: condition(...), a list of them, or any_of(...); "
                         "for every user use everyone()")
    if all(isinstance(c, dict) for c in conditions):
        return [[_check_condition(c) for c in conditions]]
    groups: List[List[Condition]] = []
    for alternative in conditions:
        if isinstance(alternative, (str, bytes, dict)) or not isinstance(alternative, Sequence) or not alternative:
            raise ValueError("conditions must be a list of conditions (all must match) or a list of non-empty "
                             f"lists of them (any list matches; see any_of()), not {conditions!r}")
        groups.append([_check_condition(c) for c in alternative])
    return groups


def any_of(*alternatives: Union[Condition, Sequence[Condition]]) -> List[List[Condition]]:
    """Conditions that match when any alternative does; an alternative is a condition or a list (all of).

    ``any_of(condition("country", "is", "US"), [condition(prop("plan"), "is", "pro"), in_cohort("c1")])``
    """
    if not alternatives:
        raise ValueError("any_of() needs at least one alternative")
    return _groups([[a] if isinstance(a, dict) else a for a in alternatives])


# ----- splits --------------------------------------------------------------------------------


def _weights(weights: Weights) -> Dict[str, Fraction]:
    if isinstance(weights, Mapping):
        items = list(weights.items())
    elif isinstance(weights, Sequence) and not isinstance(weights, (str, bytes)):
        items = [(name, 1) for name in weights]
    else:
        raise ValueError(f"weights must be a mapping of variant to weight or a list of variants, not {weights!r}")
    if not items:
        raise ValueError("a split needs at least one variant")
    out: Dict[str, Fraction] = {}
    for name, weight in items:
        _name(name, "variant key")
        if name in out:
            raise ValueError(f"variant {name!r} appears twice in the split")
        if (isinstance(weight, bool) or not isinstance(weight, (int, float))
                or not math.isfinite(weight) or weight < 0):
            raise ValueError(f"weight of {name!r} must be a finite number >= 0, not {weight!r}")
        out[name] = Fraction(weight)
    if sum(out.values()) <= 0:
        raise ValueError("split weights must not all be zero")
    return out


def distributions(weights: Weights) -> List[Dict[str, Any]]:
    """Distribution entries splitting ``0..DISTRIBUTION_END`` between variants in proportion to ``weights``.

    ``weights`` maps variant keys to relative weights (normalised by their sum), or lists
    variant keys to split evenly. Variants whose share rounds to nothing are left out.
    """
    return _distributions(_weights(weights))


def _distributions(shares: Dict[str, Fraction]) -> List[Dict[str, Any]]:
    total = sum(shares.values())
    out: List[Dict[str, Any]] = []
    start = 0
    cumulative = Fraction(0)
    for name, weight in shares.items():
        cumulative += weight
        end = math.floor(cumulative * DISTRIBUTION_END / total + Fraction(1, 2))
        if end > start:
            out.append({"variant": name, "range": [start, end]})
        start = end
    return out


def _percentage(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
        raise ValueError(f"percentage must be an integer from 0 to 100, not {value!r}")
    return value


def _json_value(value: Any, what: str) -> Any:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} must be JSON-serialisable: {exc}") from exc
    return copy.deepcopy(value)


# ----- flags ---------------------------------------------------------------------------------


class _Segment:
    __slots__ = ("name", "conditions", "variant", "split", "percentage", "bucket_by")

    def __init__(self, name: str, conditions: Optional[List[List[Condition]]], variant: Optional[str],
                 split: Optional[Dict[str, Fraction]], percentage: int, bucket_by: Optional[Selector]) -> None:
        self.name = name
        self.conditions = conditions
        self.variant = variant
        self.split = split
        self.percentage = percentage
        self.bucket_by = bucket_by


class FlagBuilder:
    """Fluent builder of one flag; every method but :meth:`build` returns the builder.

    ``FlagBuilder("search-v2").variant("on").rule("Staff", condition(prop("staff"), "is", True), "on").build()``

    Args:
        key: the flag key.
        flag_type: ``"release"`` (default), ``"experiment"``, ``"mutual-exclusion-group"`` or ``"holdout-group"``.
        version: ``flagVersion`` metadata.
        salt: bucketing salt; defaults to the flag key, so a rebuilt flag buckets users the same way.
        bucket_by: what splits bucket by: a user field name (``"device_id"``, ``"user_id"``) or a
            selector (``group("company")`` for group-level splits).
        experiment_key: ``experimentKey`` metadata of experiments; defaults to the flag key.
        metadata: extra flag metadata (overrides the defaults).

    Raises:
        ValueError: on any invalid argument, here or in the methods; :meth:`build` also checks that
            every variant a segment names was defined with :meth:`variant`.
    """

    def __init__(self, key: str, *, flag_type: str = "release", version: int = 1, salt: Optional[str] = None,
                 bucket_by: Union[str, Sequence[str]] = "device_id", experiment_key: Optional[str] = None,
                 metadata: Optional[Mapping[str, Any]] = None) -> None:
        self.key = _name(key, "flag key")
        if flag_type not in FLAG_TYPES:
            raise ValueError(f"flag_type must be one of {', '.join(FLAG_TYPES)}, not {flag_type!r}")
        self.flag_type = flag_type
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise ValueError(f"version must be an integer >= 1, not {version!r}")
        self.version = version
        self.salt = key if salt is None else _name(salt, "salt")
        self.bucket_by = _selector(bucket_by)
        if experiment_key is not None:
            _name(experiment_key, "experiment_key")
        self.experiment_key = experiment_key
        if metadata is not None and not isinstance(metadata, Mapping):
            raise ValueError(f"metadata must be a mapping, not {metadata!r}")
        self.metadata: Dict[str, Any] = _json_value(dict(metadata or {}), "metadata")
        self._variants: Dict[str, Dict[str, Any]] = {}
        self._dependencies: Dict[str, List[str]] = {}
        self._rules: List[_Segment] = []
        self._everyone: Optional[_Segment] = None

    def variant(self, key: str, value: Optional[str] = None, *, payload: Any = None,
                metadata: Optional[Mapping[str, Any]] = None) -> "FlagBuilder":
        """Define a variant; ``value`` defaults to the key. ``off`` is built in and cannot be redefined."""
        _name(key, "variant key")
        if key == OFF:
            raise ValueError("the 'off' variant is built in (the default variant); pick another key")
        if key in self._variants:
            raise ValueError(f"variant {key!r} is already defined")
        variant: Dict[str, Any] = {"key": key, "value": key if value is None else _name(value, "variant value")}
        if payload is not None:
            variant["payload"] = _json_value(payload, f"payload of {key!r}")
        if metadata is not None:
            if not isinstance(metadata, Mapping):
                raise ValueError(f"metadata of {key!r} must be a mapping, not {metadata!r}")
            variant["metadata"] = _json_value(dict(metadata), f"metadata of {key!r}")
        self._variants[key] = variant
        return self

    def depends_on(self, flag_key: str, *variants: str) -> "FlagBuilder":
        """Serve ``off`` unless flag ``flag_key`` gave the user one of ``variants`` (default ``"on"``)."""
        _name(flag_key, "flag key")
        if flag_key == self.key:
            raise ValueError("a flag cannot depend on itself")
        if flag_key in self._dependencies:
            raise ValueError(f"already depends on {flag_key!r}")
        self._dependencies[flag_key] = [_name(v, "variant key") for v in variants] or ["on"]
        return self

    def _segment(self, name: str, conditions: Optional[List[List[Condition]]], variant: Optional[str],
                 split: Optional[Weights], percentage: int,
                 bucket_by: Union[str, Sequence[str], None]) -> _Segment:
        if (variant is None) == (split is None):
            raise ValueError(f"segment {name!r}: give a variant or a split, not both or neither")
        if variant is not None:
            _name(variant, "variant key")
        return _Segment(name, conditions, variant, None if split is None else _weights(split),
                        _percentage(percentage), None if bucket_by is None else _selector(bucket_by))

    def rule(self, name: str, conditions: Conditions, variant: Optional[str] = None, *,
             split: Optional[Weights] = None, percentage: int = 100,
             bucket_by: Union[str, Sequence[str], None] = None) -> "FlagBuilder":
        """Add a targeting segment, evaluated in the order added, before the catch-all.

        Args:
            name: the segment's ``segmentName``.
            conditions: a :func:`condition`, a list of them (all must match) or :func:`any_of`.
            variant: the variant matching users get; or
            split: weights to split matching users between variants (see :func:`distributions`).
            percentage: the share (0-100) of matching users who get ``variant``/``split``; the rest
                get ``off`` (they do not fall through to later segments, as in Amplitude).
            bucket_by: overrides the flag's ``bucket_by`` for this segment.
        """
        self._rules.append(self._segment(_name(name, "segment name"), _groups(conditions), variant, split,
                                         percentage, bucket_by))
        return self

    def everyone(self, variant: Optional[str] = None, *, split: Optional[Weights] = None, percentage: int = 100,
                 bucket_by: Union[str, Sequence[str], None] = None, name: str = ALL_OTHER_USERS) -> "FlagBuilder":
        """Set the catch-all last segment (by default everyone left gets ``off``); arguments as in :meth:`rule`."""
        if self._everyone is not None:
            raise ValueError("everyone() was already called for this flag")
        self._everyone = self._segment(_name(name, "segment name"), None, variant, split, percentage, bucket_by)
        return self

    def _render(self, segment: _Segment) -> Dict[str, Any]:
        out: Dict[str, Any] = {"metadata": {"segmentName": segment.name}}
        if segment.conditions is not None:
            out["conditions"] = copy.deepcopy(segment.conditions)
        if segment.split is None and segment.percentage == 100:
            out["variant"] = segment.variant
            return out
        shares = segment.split if segment.split is not None else {str(segment.variant): Fraction(1)}
        out["bucket"] = {
            "selector": list(segment.bucket_by or self.bucket_by),
            "salt": self.salt,
            "allocations": [{"range": [0, segment.percentage], "distributions": _distributions(shares)}],
        }
        out["variant"] = OFF  # users outside the allocation
        return out

    def build(self) -> Dict[str, Any]:
        """The flag config as a new dict (JSON-ready); the builder can keep being used."""
        segments = list(self._rules) + [self._everyone or _Segment(ALL_OTHER_USERS, None, OFF, None, 100, None)]
        for segment in segments:
            names = [segment.variant] if segment.split is None else list(segment.split)
            for name in names:
                if name != OFF and name not in self._variants:
                    raise ValueError(f"flag {self.key!r}: segment {segment.name!r} names variant {name!r}, "
                                     f"which is not defined; add .variant({name!r})")
        rendered: List[Dict[str, Any]] = []
        if self._dependencies:
            rendered.append({
                "metadata": {"segmentName": "Flag Dependencies"},
                "conditions": [[{"selector": result(parent), "op": _ops.IS_NOT, "values": list(wanted)}]
                               for parent, wanted in self._dependencies.items()],
                "variant": OFF,
            })
        rendered.extend(self._render(segment) for segment in segments)
        metadata: Dict[str, Any] = {"deployed": True, "evaluationMode": "local", "flagType": self.flag_type,
                                    "flagVersion": self.version}
        if self.flag_type == "experiment":
            metadata["experimentKey"] = self.experiment_key or self.key
        metadata.update(copy.deepcopy(self.metadata))
        variants = copy.deepcopy(self._variants)
        variants[OFF] = {"key": OFF, "metadata": {"default": True}}
        flag: Dict[str, Any] = {"key": self.key, "metadata": metadata, "segments": rendered, "variants": variants}
        if self._dependencies:
            flag["dependencies"] = list(self._dependencies)
        return flag


# ----- shortcuts -----------------------------------------------------------------------------


def on_flag(key: str, *, value: str = "on", payload: Any = None, version: int = 1) -> Dict[str, Any]:
    """A release flag serving variant ``on`` (value ``value``, optional ``payload``) to every user."""
    return FlagBuilder(key, version=version).variant("on", value, payload=payload).everyone("on").build()


def off_flag(key: str, *, version: int = 1) -> Dict[str, Any]:
    """A release flag serving the default ``off`` variant to every user."""
    return FlagBuilder(key, version=version).variant("on").build()


def rollout(key: str, percentage: int, *, salt: Optional[str] = None,
            bucket_by: Union[str, Sequence[str]] = "device_id", payload: Any = None,
            version: int = 1) -> Dict[str, Any]:
    """A release flag serving ``on`` to ``percentage`` % of users (by ``bucket_by``) and ``off`` to the rest."""
    return (FlagBuilder(key, version=version, salt=salt, bucket_by=bucket_by)
            .variant("on", payload=payload).everyone("on", percentage=percentage).build())


def experiment(key: str, variants: Optional[Weights] = None, percentage: int = 100, salt: Optional[str] = None,
               bucket_by: Union[str, Sequence[str]] = "device_id", payloads: Optional[Mapping[str, Any]] = None,
               version: int = 1, experiment_key: Optional[str] = None) -> Dict[str, Any]:
    """An experiment splitting ``percentage`` % of users between ``variants``; the rest get ``off``.

    Args:
        key: the flag key.
        variants: variant key to relative weight (default ``{"control": 50, "treatment": 50}``),
            or a list of variant keys for an even split.
        percentage: share of users (0-100) in the experiment.
        salt: bucketing salt; defaults to the key.
        bucket_by: a user field name or a selector (see :class:`FlagBuilder`).
        payloads: variant key to payload.
        version: ``flagVersion`` metadata.
        experiment_key: ``experimentKey`` metadata; defaults to the key.
    """
    if variants is None:
        variants = {"control": 50, "treatment": 50}
    weights = _weights(variants)
    payloads = dict(payloads or {})
    unknown = sorted(set(payloads) - set(weights))
    if unknown:
        raise ValueError(f"payloads for variants not in the experiment: {', '.join(map(repr, unknown))}")
    builder = FlagBuilder(key, flag_type="experiment", version=version, salt=salt, bucket_by=bucket_by,
                          experiment_key=experiment_key)
    for name in weights:
        builder.variant(name, payload=payloads.get(name))
    return builder.everyone(split=variants, percentage=percentage).build()
