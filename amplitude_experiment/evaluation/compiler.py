"""Parse v2 flag JSON once into immutable, pre-compiled structures.

Everything the evaluator needs is resolved here: selectors become getters, conditions become
matchers, bucket ranges become integer tuples, each segment's possible results carry their
merged metadata, and the dependency order is fixed. A flag that cannot be compiled (wrong
types, a dependency cycle) is skipped with one warning and never affects the other flags.
"""

from __future__ import annotations

import gc
import logging
from typing import Any, Dict, FrozenSet, Iterable, List, Mapping, Optional, Sequence, Set, Tuple

from .context import Getter, compile_selector
from .operators import InvalidCondition, Matcher, compile_matcher, invalid_matcher

logger = logging.getLogger("amplitude_experiment.evaluation")

# (variant key, value, payload, merged metadata, payload needs copying)
Outcome = Tuple[Optional[str], Any, Any, Dict[str, Any], bool]
Condition = Tuple[Getter, Matcher]
Allocation = Tuple[int, int, Tuple[Tuple[int, int, Optional[Outcome]], ...]]

_SUBSET_CACHE_SIZE = 256


class MalformedFlag(ValueError):
    """A flag config that does not follow the v2 schema."""


class CompiledBucket:
    __slots__ = ("get", "prefix", "allocations", "selector", "salt")

    def __init__(self, get: Getter, selector: Tuple[str, ...], salt: str,
                 allocations: Tuple[Allocation, ...]) -> None:
        self.get = get
        self.selector = selector
        self.salt = salt
        self.prefix = salt + "/"
        self.allocations = allocations


class CompiledSegment:
    __slots__ = ("conditions", "bucket", "default", "raw_conditions", "metadata", "index")

    def __init__(self, index: int, conditions: Optional[Tuple[Tuple[Condition, ...], ...]],
                 raw_conditions: Any, bucket: Optional[CompiledBucket], default: Optional[Outcome],
                 metadata: Dict[str, Any]) -> None:
        self.index = index
        #: ``None`` matches everyone; an empty tuple matches no one (correction d).
        self.conditions = conditions
        self.raw_conditions = raw_conditions
        self.bucket = bucket
        self.default = default
        self.metadata = metadata


class CompiledFlag:
    __slots__ = ("key", "segments", "dependencies", "metadata", "variants", "raw", "cohort_ids")

    def __init__(self, key: str, segments: Tuple[CompiledSegment, ...], dependencies: Tuple[str, ...],
                 metadata: Dict[str, Any], variants: Dict[str, Any], raw: Mapping[str, Any]) -> None:
        self.key = key
        self.segments = segments
        self.dependencies = dependencies
        self.metadata = metadata
        self.variants = variants
        self.raw = raw
        self.cohort_ids: Dict[str, FrozenSet[str]] = {}


class CompiledFlags:
    """An immutable, ready-to-evaluate set of flags (one config version).

    Attributes:
        flags: compiled flags by key, in evaluation (dependency) order.
        skipped: flags that could not be compiled, key → reason.
        warnings: problems that did not skip a flag (e.g. an invalid regex), as messages.
        raw: the flag dicts as given (skipped ones included).
    """

    __slots__ = ("flags", "order", "skipped", "warnings", "raw", "cohort_ids", "_closure", "_position", "_subsets")

    def __init__(self, flags: Dict[str, CompiledFlag], skipped: Dict[str, str], warnings: List[str],
                 raw: List[Any]) -> None:
        self.flags = flags
        self.order: Tuple[CompiledFlag, ...] = tuple(flags.values())
        self.skipped = skipped
        self.warnings = warnings
        self.raw = raw
        cohorts: Dict[str, Set[str]] = {}
        for flag in self.order:
            for group_type, ids in flag.cohort_ids.items():
                cohorts.setdefault(group_type, set()).update(ids)
        #: every cohort id the flags target, by group type ("User" for user cohorts)
        self.cohort_ids: Dict[str, FrozenSet[str]] = {t: frozenset(ids) for t, ids in cohorts.items()}
        self._position = {key: i for i, key in enumerate(flags)}
        self._closure: Dict[str, FrozenSet[str]] = {}
        for flag in self.order:  # parents come first, so their closures already exist
            closure = {flag.key}
            for parent in flag.dependencies:
                closure |= self._closure.get(parent, frozenset())
            self._closure[flag.key] = frozenset(closure)
        self._subsets: Dict[FrozenSet[str], Tuple[CompiledFlag, ...]] = {}

    def __len__(self) -> int:
        return len(self.flags)

    def select(self, flag_keys: Iterable[str]) -> Tuple[CompiledFlag, ...]:
        """The flags to evaluate for ``flag_keys``: those flags and their dependencies, in order."""
        keys = flag_keys if isinstance(flag_keys, frozenset) else frozenset(flag_keys)
        cached = self._subsets.get(keys)
        if cached is not None:
            return cached
        wanted: Set[str] = set()
        for key in keys:
            closure = self._closure.get(key)
            if closure is not None:
                wanted |= closure
        position = self._position
        subset = tuple(self.flags[k] for k in sorted(wanted, key=position.__getitem__))
        if len(self._subsets) >= _SUBSET_CACHE_SIZE:
            self._subsets.clear()  # bounded; a miss only costs a sort
        self._subsets[keys] = subset
        return subset


USER_GROUP_TYPE = "User"


def cohort_group_type(selector: Sequence[str]) -> Optional[str]:
    """The group type a cohort condition's selector targets ("User" for users), else None."""
    if len(selector) == 3 and selector[0] == "context" and selector[1] == "user" and selector[2] == "cohort_ids":
        return USER_GROUP_TYPE
    if len(selector) == 4 and selector[0] == "context" and selector[1] == "groups" and selector[3] == "cohort_ids":
        return selector[2]
    return None


def _is_container(value: Any) -> bool:
    return isinstance(value, (dict, list))


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise MalformedFlag(message)


def _mapping(value: Any, what: str) -> Dict[str, Any]:
    if value is None:
        return {}
    _require(isinstance(value, dict), f"{what} must be an object")
    return dict(value)


def _selector(value: Any, what: str) -> Tuple[str, ...]:
    _require(isinstance(value, list) and all(isinstance(s, str) for s in value), f"{what} must be a list of strings")
    return tuple(value)


def _range(value: Any, what: str) -> Tuple[int, int]:
    _require(
        isinstance(value, list) and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value),
        f"{what} must be [start, end] integers",
    )
    return value[0], value[1]


class _FlagCompiler:
    def __init__(self, raw: Mapping[str, Any], warnings: List[str]) -> None:
        self.raw = raw
        self.key = raw["key"]
        self.warnings = warnings
        #: cohort ids this flag's conditions target, by group type ("User" for users)
        self.cohort_ids: Dict[str, Set[str]] = {}

    def compile(self) -> CompiledFlag:
        raw = self.raw
        variants = _mapping(raw.get("variants"), "variants")
        for name, variant in variants.items():
            _require(isinstance(variant, dict), f"variant {name!r} must be an object")
            _mapping(variant.get("metadata"), f"variant {name!r} metadata")
        self.variants = variants
        self.metadata = _mapping(raw.get("metadata"), "metadata")
        segments = raw.get("segments")
        segments = [] if segments is None else segments
        _require(isinstance(segments, list), "segments must be a list")
        dependencies = raw.get("dependencies") or []
        _require(isinstance(dependencies, list) and all(isinstance(d, str) for d in dependencies),
                 "dependencies must be a list of flag keys")
        compiled_segments = tuple(self._segment(i, s) for i, s in enumerate(segments))
        flag = CompiledFlag(self.key, compiled_segments, tuple(dependencies), self.metadata, variants, raw)
        flag.cohort_ids = {t: frozenset(ids) for t, ids in self.cohort_ids.items()}
        return flag

    def _outcome(self, variant_key: Any, segment_metadata: Dict[str, Any]) -> Optional[Outcome]:
        if not isinstance(variant_key, str) or variant_key not in self.variants:
            return None
        variant = self.variants[variant_key]
        metadata = {**self.metadata, **segment_metadata, **_mapping(variant.get("metadata"), "variant metadata")}
        payload = variant.get("payload")
        return (variant.get("key"), variant.get("value"), payload, metadata, _is_container(payload))

    def _segment(self, index: int, raw: Any) -> CompiledSegment:
        what = f"segments[{index}]"
        _require(isinstance(raw, dict), f"{what} must be an object")
        metadata = _mapping(raw.get("metadata"), f"{what} metadata")
        raw_conditions = raw.get("conditions")
        conditions = None
        if raw_conditions is not None:
            _require(isinstance(raw_conditions, list) and all(isinstance(g, list) for g in raw_conditions),
                     f"{what} conditions must be a list of lists")
            conditions = tuple(tuple(self._condition(c, what) for c in group) for group in raw_conditions)
        bucket = None
        if raw.get("bucket") is not None:
            bucket = self._bucket(raw["bucket"], metadata, what)
        return CompiledSegment(index, conditions, raw_conditions, bucket, self._outcome(raw.get("variant"), metadata),
                               metadata)

    def _condition(self, raw: Any, what: str) -> Condition:
        _require(isinstance(raw, dict), f"{what} condition must be an object")
        selector = _selector(raw.get("selector"), f"{what} condition selector")
        op = raw.get("op")
        _require(isinstance(op, str), f"{what} condition op must be a string")
        values = raw.get("values")
        values = [] if values is None else values
        _require(isinstance(values, list), f"{what} condition values must be a list")
        values = [v if isinstance(v, str) else str(v) for v in values if v is not None]
        group_type = cohort_group_type(selector)
        if group_type is not None:
            self.cohort_ids.setdefault(group_type, set()).update(values)
        try:
            matcher = compile_matcher(op, values)
        except InvalidCondition as exc:
            self.warnings.append(f"flag {self.key!r}: {exc}; the condition never matches")
            matcher = invalid_matcher()
        return compile_selector(selector), matcher

    def _bucket(self, raw: Any, segment_metadata: Dict[str, Any], what: str) -> CompiledBucket:
        _require(isinstance(raw, dict), f"{what} bucket must be an object")
        selector = _selector(raw.get("selector"), f"{what} bucket selector")
        salt = raw.get("salt")
        salt = "" if salt is None else salt
        _require(isinstance(salt, str), f"{what} bucket salt must be a string")
        allocations = raw.get("allocations") or []
        _require(isinstance(allocations, list), f"{what} bucket allocations must be a list")
        compiled = []
        for allocation in allocations:
            _require(isinstance(allocation, dict), f"{what} allocation must be an object")
            start, end = _range(allocation.get("range"), f"{what} allocation range")
            distributions = allocation.get("distributions") or []
            _require(isinstance(distributions, list), f"{what} distributions must be a list")
            dists = []
            for distribution in distributions:
                _require(isinstance(distribution, dict), f"{what} distribution must be an object")
                d_start, d_end = _range(distribution.get("range"), f"{what} distribution range")
                dists.append((d_start, d_end, self._outcome(distribution.get("variant"), segment_metadata)))
            compiled.append((start, end, tuple(dists)))
        return CompiledBucket(compile_selector(selector), selector, salt, tuple(compiled))


def _dependency_order(flags: Dict[str, CompiledFlag]) -> Tuple[List[str], List[List[str]]]:
    """Flag keys parents-first (depth-first, in config order), and the cycles found.

    Iterative, so a long dependency chain cannot exhaust the interpreter's recursion limit.
    """
    visiting, done = 1, 2
    state: Dict[str, int] = {}
    order: List[str] = []
    cycles: List[List[str]] = []
    for root in flags:
        if root in state:
            continue
        state[root] = visiting
        path = [root]
        stack = [iter(flags[root].dependencies)]
        while stack:
            for parent in stack[-1]:
                if parent not in flags:
                    continue
                seen = state.get(parent)
                if seen == visiting:
                    cycles.append(path[path.index(parent):])
                elif seen is None:
                    state[parent] = visiting
                    path.append(parent)
                    stack.append(iter(flags[parent].dependencies))
                    break
            else:
                stack.pop()
                node = path.pop()
                state[node] = done
                order.append(node)
    return order, cycles


def compile_flags(raw_flags: Sequence[Any]) -> CompiledFlags:
    """Compile a list of v2 flag configs (as decoded from JSON).

    Never raises for a bad flag: it is left out and listed in ``skipped`` (and logged once).

    Raises:
        TypeError: ``raw_flags`` is not a list.
    """
    if not isinstance(raw_flags, list):
        raise TypeError(f"flag configs must be a list, not {type(raw_flags).__name__}")
    # Compiling allocates tens of thousands of small objects; left on, the cyclic collector
    # rescans the young heap many times over and more than doubles the load time. Pausing it
    # for these few milliseconds only postpones a collection.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _compile_all(raw_flags)
    finally:
        if collecting:
            gc.enable()


def _compile_all(raw_flags: List[Any]) -> CompiledFlags:
    warnings: List[str] = []
    skipped: Dict[str, str] = {}
    compiled: Dict[str, CompiledFlag] = {}
    for index, raw in enumerate(raw_flags):
        key = raw.get("key") if isinstance(raw, dict) else None
        if not isinstance(key, str):
            skipped[f"#{index}"] = "not an object with a string 'key'"
            continue
        try:
            flag = _FlagCompiler(raw, warnings).compile()
        except (MalformedFlag, TypeError, ValueError, AttributeError, KeyError) as exc:
            skipped[key] = str(exc)
            compiled.pop(key, None)
            continue
        skipped.pop(key, None)
        compiled[key] = flag  # a later duplicate replaces an earlier one, keeping its place
    order, cycles = _dependency_order(compiled)
    in_cycle = {key for cycle in cycles for key in cycle}
    for cycle in cycles:
        description = " -> ".join(cycle + [cycle[0]])
        for key in cycle:
            skipped[key] = f"dependency cycle: {description}"
    ordered = {key: compiled[key] for key in order if key not in in_cycle}
    for key, reason in skipped.items():
        logger.warning("Skipping flag %r: %s", key, reason)
    for message in warnings:
        logger.warning("%s", message)
    return CompiledFlags(ordered, skipped, warnings, list(raw_flags))
