"""Parse v2 flag JSON once into immutable, pre-compiled structures.

Everything the evaluator needs is resolved here: selectors become getters, conditions become
matchers, bucket ranges become integer tuples, each segment's possible results carry their
merged metadata, and the dependency order is fixed. A flag that cannot be compiled (wrong
types, a dependency cycle) is skipped with one warning and never affects the other flags.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import sys
from typing import (
    Any,
    Dict,
    FrozenSet,
    Iterable,
    Iterator,
    List,
    Mapping,
    NamedTuple,
    Optional,
    Sequence,
    Set,
    Tuple,
    Union,
)

from .context import Getter, compile_selector, user_field, user_path
from .operators import InvalidCondition, Matcher, compile_matcher, invalid_matcher, plain_is_members

_default_logger = logging.getLogger("amplitude_experiment.evaluation")


class Outcome(NamedTuple):
    """What a flag yields for a user: one variant with its merged metadata (immutable, shared).

    Evaluation makes each returned :class:`~amplitude_experiment.Variant` from an outcome, and
    event tracking reads the outcome a variant came from (never the caller's copy).

    Attributes:
        key: the variant key.
        value: the variant value.
        payload: the variant payload, shared with every variant made from this outcome.
        metadata: flag, then segment, then variant metadata merged (later wins).
        payload_shared: the payload is a container, so a variant copies it on first read.
    """

    key: Optional[str]
    value: Any
    payload: Any
    metadata: Dict[str, Any]
    payload_shared: bool


_new_outcome = tuple.__new__

#: ``(field, key, get, match, members)``: ``field``/``key`` name the ``User`` attribute (and
#: the key in it) for the common ``context.user.<field>[.<key>]`` selectors, which the engine
#: reads without calling ``get``; otherwise both are ``None``. ``members`` is the value set of
#: an ``is`` condition without boolean values (else ``None``): for a plain string value (not
#: starting with ``[``) the engine answers ``value in members`` without calling ``match``.
#: ``match(get(user, results))`` is the condition in every case.
Condition = Tuple[Optional[str], Optional[str], Getter, Matcher, Optional[FrozenSet[str]]]
Allocation = Tuple[int, int, Tuple[Tuple[int, int, Optional[Outcome]], ...]]
#: ``(selector, op, values)`` of a condition as written (``values`` ``None`` when absent): what
#: explanations show. Tuples, not the decoded JSON, so that equal conditions share one object and
#: the garbage collector has nothing to traverse in them.
WrittenCondition = Tuple[Tuple[str, ...], str, Optional[Tuple[Any, ...]]]

#: ``select()`` remembers the flags of at most this many distinct ``flag_keys`` ...
_SUBSET_CACHE_SIZE = 256
#: ... holding at most this many flag references in all, and only for requests of at most
#: ``_SUBSET_CACHE_MAX_KEYS`` keys (a request for 100,000 keys is computed, never kept).
_SUBSET_CACHE_FLAGS = 65536
_SUBSET_CACHE_MAX_KEYS = 64


class MalformedFlag(ValueError):
    """A flag config that does not follow the v2 schema."""


class CompiledBucket:
    """A segment's bucket.

    Attributes:
        get: the getter of the bucketing value.
        field: the ``User`` attribute the selector names (``context.user.<field>``), else
            ``None``; the engine reads it directly instead of calling ``get``.
        prefix: ``salt + "/"``.
        ascii_prefix: the prefix is ASCII, so ``prefix + value`` is ASCII when the value is.
        allocations: ``(start, end, ((d_start, d_end, outcome), ...))`` tuples.
    """

    __slots__ = ("get", "field", "prefix", "ascii_prefix", "allocations", "selector", "salt")

    def __init__(self, get: Getter, selector: Tuple[str, ...], salt: str,
                 allocations: Tuple[Allocation, ...]) -> None:
        self.get = get
        self.field = user_field(selector)
        self.selector = selector
        self.salt = salt
        self.prefix = salt + "/"
        self.ascii_prefix = self.prefix.isascii()
        self.allocations = allocations


class CompiledSegment:
    __slots__ = ("conditions", "bucket", "default", "written", "metadata", "index")

    def __init__(self, index: int, conditions: Optional[Tuple[Tuple[Condition, ...], ...]],
                 written: Tuple[Tuple[WrittenCondition, ...], ...], bucket: Optional[CompiledBucket],
                 default: Optional[Outcome], metadata: Dict[str, Any]) -> None:
        self.index = index
        #: ``None`` matches everyone; an empty tuple matches no one (correction d).
        self.conditions = conditions
        #: each condition as the config wrote it, for explanations (parallel to ``conditions``)
        self.written = written
        self.bucket = bucket
        self.default = default
        self.metadata = metadata


class CompiledFlag:
    """One compiled flag. Keeps no raw JSON: only what evaluation and explanations read.

    Attributes:
        key: the flag key.
        segments: compiled segments, in order.
        dependencies: keys of the flags this one depends on.
        metadata: the flag's metadata.
        cohort_ids: cohort ids its conditions target, by group type ("User" for users).
    """

    __slots__ = ("key", "segments", "dependencies", "metadata", "cohort_ids")

    def __init__(self, key: str, segments: Tuple[CompiledSegment, ...], dependencies: Tuple[str, ...],
                 metadata: Dict[str, Any]) -> None:
        self.key = key
        self.segments = segments
        self.dependencies = dependencies
        self.metadata = metadata
        self.cohort_ids: Dict[str, FrozenSet[str]] = {}


class CompiledFlags:
    """An immutable, ready-to-evaluate set of flags (one config version).

    Memory is linear in flags plus dependency edges: a flag keeps its direct dependencies
    only, and :meth:`select` walks them when asked.

    Attributes:
        flags: compiled flags by key, in evaluation (dependency) order.
        skipped: flags that could not be compiled, key → reason (``"#<index>"`` for an entry
            without a string key).
        warnings: problems that did not skip a flag (e.g. an invalid regex), as messages.
        entries: how many entries the config held (compiled or not).
        fingerprints: for every entry with a string key (compiled or skipped), a fingerprint of
            its JSON text (equal fingerprints: unchanged flag), or ``None`` when compiled from
            decoded objects without one.
    """

    __slots__ = ("flags", "order", "skipped", "warnings", "entries", "fingerprints", "cohort_ids", "_position",
                 "_subsets", "_subset_flags")

    def __init__(self, flags: Dict[str, CompiledFlag], skipped: Dict[str, str], warnings: List[str],
                 entries: int, fingerprints: Optional[Dict[str, Optional[int]]] = None) -> None:
        self.flags = flags
        self.order: Tuple[CompiledFlag, ...] = tuple(flags.values())
        self.skipped = skipped
        self.warnings = warnings
        self.entries = entries
        self.fingerprints: Dict[str, Optional[int]] = fingerprints if fingerprints is not None else {}
        cohorts: Dict[str, Set[str]] = {}
        for flag in self.order:
            for group_type, ids in flag.cohort_ids.items():
                cohorts.setdefault(group_type, set()).update(ids)
        #: every cohort id the flags target, by group type ("User" for users)
        self.cohort_ids: Dict[str, FrozenSet[str]] = {t: frozenset(ids) for t, ids in cohorts.items()}
        self._position = {key: i for i, key in enumerate(flags)}
        self._subsets: Dict[FrozenSet[str], Tuple[CompiledFlag, ...]] = {}
        self._subset_flags = 0

    def __len__(self) -> int:
        return len(self.flags)

    @property
    def rejected(self) -> int:
        """How many entries could not be compiled (counted by key)."""
        return len(self.skipped)

    def select(self, flag_keys: Iterable[str]) -> Tuple[CompiledFlag, ...]:
        """The flags to evaluate for ``flag_keys``: those flags and their dependencies, in order.

        Costs time linear in the flags selected plus their dependency edges; results for
        small requests are remembered (bounded).
        """
        keys = flag_keys if isinstance(flag_keys, frozenset) else frozenset(flag_keys)
        cached = self._subsets.get(keys)
        if cached is not None:
            return cached
        flags = self.flags
        wanted: Set[str] = set()
        pending = [key for key in keys if key in flags]
        while pending:
            key = pending.pop()
            if key in wanted:
                continue
            wanted.add(key)
            pending.extend(parent for parent in flags[key].dependencies if parent in flags and parent not in wanted)
        position = self._position
        subset = tuple(flags[k] for k in sorted(wanted, key=position.__getitem__))
        if len(keys) <= _SUBSET_CACHE_MAX_KEYS:
            if len(self._subsets) >= _SUBSET_CACHE_SIZE or self._subset_flags + len(subset) > _SUBSET_CACHE_FLAGS:
                self._subsets = {}  # bounded; a miss only costs a walk and a sort
                self._subset_flags = 0
            self._subsets[keys] = subset
            self._subset_flags += len(subset)
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


_EMPTY: Dict[str, Any] = {}  # shared; compiled metadata is never changed in place


def _mapping(value: Any, what: str, part: str = "") -> Dict[str, Any]:
    """An object of the config, shared with the decoded JSON (no copy: it is never changed).

    ``what`` and ``part`` name it in the error (two strings, joined only on failure).
    """
    if value is None:
        return _EMPTY
    if not isinstance(value, dict):
        raise MalformedFlag(f"{what}{part} must be an object")
    mapping: Dict[str, Any] = value
    return mapping


def _selector(value: Any, what: str, names: Dict[str, str]) -> Tuple[str, ...]:
    """The selector as a tuple of names, each name one object per config (``names``). Not
    ``sys.intern``: that would keep a table entry per flag key named by a ``result`` selector."""
    _require(isinstance(value, list) and all(isinstance(s, str) for s in value), f"{what} must be a list of strings")
    return tuple([names.setdefault(name, name) for name in value])


def _range(value: Any, what: str, part: str) -> Tuple[int, int]:
    # ``type(...) is int`` also refuses bool, a subclass of int
    if type(value) is not list or len(value) != 2 or type(value[0]) is not int or type(value[1]) is not int:
        _require(
            isinstance(value, list) and len(value) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) for v in value),
            f"{what}{part} must be [start, end] integers",
        )
    return value[0], value[1]


#: Condition values up to this long are interned, so equal values in different flags are one object.
_INTERN_LENGTH = 64
#: Metadata with values of only these types is shared between results that merge to equal metadata.
_SHAREABLE_TYPES = frozenset({str, bool, int, type(None)})


#: (condition, error message for an invalid one, cohort group type, values as compared)
#: (compiled, error, cohort group type, values as strings, as written when written with strings only)
_SharedCondition = Tuple[Condition, Optional[str], Optional[str], Tuple[str, ...], WrittenCondition]


class _Shared:
    """What flags of one config share: equal selectors and conditions compile to one object.

    Besides saving memory, this keeps the objects evaluation touches few: a deployment of a
    thousand flags that repeat the same conditions reads the same getters and matchers, which
    stay in the CPU cache, instead of a thousand copies of them.
    """

    def __init__(self) -> None:
        self.getters: Dict[Tuple[str, ...], Getter] = {}
        #: selector names: one object per distinct name (see ``_selector``)
        self.names: Dict[str, str] = {}
        #: a selector as written -> its interned tuple (only lists of strings get here)
        self.selectors: Dict[Tuple[Any, ...], Tuple[str, ...]] = {}
        #: (items, their value types) -> the one dict for that metadata
        self.metadatas: Dict[Tuple[Tuple[Tuple[str, Any], ...], Tuple[type, ...]], Dict[str, Any]] = {}
        #: ids of canonical (flag, segment, variant) metadata -> the one merged dict
        self.merges: Dict[Tuple[int, int, int], Dict[str, Any]] = {}
        #: (selector, op, values) -> what the condition compiles to. A condition written with
        #: strings only (no nulls) is found by its selector and values as written.
        self.conditions: Dict[Tuple[Tuple[Any, ...], Any, Tuple[Any, ...]], _SharedCondition] = {}
        #: (op, values) -> (matcher, error, plain-``is`` members): a matcher does not depend on the
        #: selector, so conditions on different properties with the same test share it (5,000 flags
        #: chained by ``result`` conditions on ``["on", "off"]`` compile one matcher, not 5,000)
        self.matchers: Dict[Tuple[str, Tuple[str, ...]], Tuple[Matcher, Optional[str], Optional[FrozenSet[str]]]] = {}

    def canonical(self, metadata: Dict[str, Any]) -> Tuple[Dict[str, Any], bool]:
        """One dict for equal metadata (short text values interned), and whether it is shared.

        Metadata holding other than text, booleans, integers and nulls is returned as is,
        unshared (a list; or a float, where equal values can differ: 0.0, -0.0).
        """
        types = tuple(map(type, metadata.values()))
        if not _SHAREABLE_TYPES.issuperset(types):
            return metadata, False
        # With the types: True == 1, but {"default": True} and {"default": 1} are not the same metadata.
        key = (tuple(metadata.items()), types)
        found = self.metadatas.get(key)
        if found is None:
            found = self.metadatas[key] = {name: _intern(value) for name, value in metadata.items()}
        return found, True

    def merged(self, flag: Tuple[Dict[str, Any], bool], segment: Tuple[Dict[str, Any], bool],
               variant: Tuple[Dict[str, Any], bool]) -> Dict[str, Any]:
        """Flag, then segment, then variant metadata merged (later wins); one dict for equal parts.

        Every result copies its metadata, which reads each key and value: shared objects keep
        those reads in the CPU cache.
        """
        if flag[1] and segment[1] and variant[1]:
            # canonical parts live as long as this object, so their ids name them
            key = (id(flag[0]), id(segment[0]), id(variant[0]))
            found = self.merges.get(key)
            if found is None:
                found = self.merges[key] = {**flag[0], **segment[0], **variant[0]}
            return found
        merged = {**flag[0], **segment[0], **variant[0]}
        for name, value in merged.items():
            if type(value) is str and len(value) <= _INTERN_LENGTH:
                merged[name] = sys.intern(value)
        return merged

    def selector(self, value: Any, what: str, part: str) -> Tuple[str, ...]:
        if type(value) is list:
            try:
                found = self.selectors.get(tuple(value))
            except TypeError:  # an unhashable element: reported below
                found = None
            if found is not None:
                return found
        selector = _selector(value, what + part, self.names)
        self.selectors[selector] = selector
        return selector

    def getter(self, selector: Tuple[str, ...]) -> Getter:
        get = self.getters.get(selector)
        if get is None:
            get = self.getters[selector] = compile_selector(selector)
        return get

    def condition(self, selector: Tuple[str, ...], op: str, values: Tuple[str, ...]) -> _SharedCondition:
        """What ``(selector, op, values)`` compiles to (``values`` as text), one object per distinct condition."""
        key = (selector, op, values)
        found = self.conditions.get(key)
        if found is None:
            values = tuple(map(_intern, values))
            key = (selector, op, values)
            matcher, error, members = self.matcher(op, values)
            field, sub_key = user_path(selector)
            compiled = (field, sub_key, self.getter(selector), matcher, members)
            found = self.conditions[key] = (compiled, error, cohort_group_type(selector), values,
                                            (selector, op, values))
        return found


    def matcher(self, op: str, values: Tuple[str, ...]) -> Tuple[Matcher, Optional[str], Optional[FrozenSet[str]]]:
        """``(matcher, error or None, plain-is members or None)`` for ``op`` over ``values``."""
        found = self.matchers.get((op, values))
        if found is None:
            try:
                found = (compile_matcher(op, values), None, plain_is_members(op, values))
            except InvalidCondition as exc:
                found = (invalid_matcher(), str(exc), None)
            self.matchers[(op, values)] = found
        return found


def _intern(value: Any) -> Any:
    """Short strings interned (one object per distinct text); anything else unchanged."""
    return sys.intern(value) if type(value) is str and len(value) <= _INTERN_LENGTH else value


class _FlagCompiler:
    def __init__(self, raw: Mapping[str, Any], warnings: List[str], shared: Optional[_Shared] = None) -> None:
        self.raw = raw
        self.key = raw["key"]
        self.warnings = warnings
        self.shared = shared if shared is not None else _Shared()
        #: cohort ids this flag's conditions target, by group type ("User" for users)
        self.cohort_ids: Dict[str, Set[str]] = {}
        #: one Outcome per (variant key, segment metadata): distributions and defaults share it
        self._outcomes: Dict[Tuple[str, int], Outcome] = {}
        self._metadata: Tuple[Dict[str, Any], bool] = (_EMPTY, False)
        #: variant key -> (key, value, payload, payload is a container, canonical metadata)
        self._variant_parts: Dict[str, Tuple[Any, Any, Any, bool, Tuple[Dict[str, Any], bool]]] = {}

    def compile(self) -> CompiledFlag:
        raw = self.raw
        variants = _mapping(raw.get("variants"), "variants")
        for name, variant in variants.items():
            if not isinstance(variant, dict):
                raise MalformedFlag(f"variant {name!r} must be an object")
            variant_metadata = variant.get("metadata")
            if variant_metadata is not None and not isinstance(variant_metadata, dict):
                raise MalformedFlag(f"variant {name!r} metadata must be an object")
        self.variants = variants
        self.metadata = _mapping(raw.get("metadata"), "metadata")
        self._metadata = self.shared.canonical(self.metadata)
        segments = raw.get("segments")
        if segments is None:
            self.warnings.append(f"flag {self.key!r} has no segments (missing or null); it yields no variant")
            segments = []
        if not isinstance(segments, list):
            raise MalformedFlag("segments must be a list")
        dependencies = raw.get("dependencies") or []
        _require(isinstance(dependencies, list) and all(isinstance(d, str) for d in dependencies),
                 "dependencies must be a list of flag keys")
        compiled_segments = tuple(self._segment(i, s) for i, s in enumerate(segments))
        names = self.shared.names  # a flag key named again by dependencies and result selectors: one object
        flag = CompiledFlag(names.setdefault(self.key, self.key), compiled_segments,
                            tuple([names.setdefault(d, d) for d in dependencies]), self._metadata[0])
        flag.cohort_ids = {t: frozenset(ids) for t, ids in self.cohort_ids.items()}
        return flag

    def _outcome(self, variant_key: Any, segment_metadata: Tuple[Dict[str, Any], bool]) -> Optional[Outcome]:
        if not isinstance(variant_key, str) or variant_key not in self.variants:
            return None
        memo_key = (variant_key, id(segment_metadata[0]))
        outcome = self._outcomes.get(memo_key)
        if outcome is None:
            parts = self._variant_parts.get(variant_key)
            if parts is None:
                variant = self.variants[variant_key]
                payload = variant.get("payload")
                parts = self._variant_parts[variant_key] = (
                    _intern(variant.get("key")), _intern(variant.get("value")), payload, _is_container(payload),
                    self.shared.canonical(_mapping(variant.get("metadata"), "variant metadata")))
            key, value, payload, container, variant_metadata = parts
            metadata = self.shared.merged(self._metadata, segment_metadata, variant_metadata)
            outcome = _new_outcome(Outcome, (key, value, payload, metadata, container))  # skips a Python-level __new__
            self._outcomes[memo_key] = outcome
        return outcome

    def _segment(self, index: int, raw: Any) -> CompiledSegment:
        what = f"segments[{index}]"
        if not isinstance(raw, dict):
            raise MalformedFlag(f"{what} must be an object")
        metadata = self.shared.canonical(_mapping(raw.get("metadata"), what, " metadata"))
        raw_conditions = raw.get("conditions")
        conditions = None
        written: Tuple[Tuple[WrittenCondition, ...], ...] = ()
        if raw_conditions is not None:
            if not isinstance(raw_conditions, list) or not all(isinstance(g, list) for g in raw_conditions):
                raise MalformedFlag(f"{what} conditions must be a list of lists")
            groups = [[self._condition(c, what) for c in group] for group in raw_conditions]
            conditions = tuple(tuple(found[0] for found in group) for group in groups)
            written = tuple(tuple(found[1] for found in group) for group in groups)
        bucket = None
        if raw.get("bucket") is not None:
            bucket = self._bucket(raw["bucket"], metadata, what)
        return CompiledSegment(index, conditions, written, bucket, self._outcome(raw.get("variant"), metadata),
                               metadata[0])

    def _condition(self, raw: Any, what: str) -> Tuple[Condition, WrittenCondition]:
        """The compiled condition, and the condition as written."""
        found = None
        if type(raw) is dict:
            written = raw.get("values")
            selector = raw.get("selector")
            if type(written) is list and type(selector) is list:
                try:
                    # only strings equal the strings of a stored key, so no lookup finds what a
                    # list holding numbers, booleans or nulls would not compile to
                    found = self.shared.conditions.get((tuple(selector), raw.get("op"), tuple(written)))
                except TypeError:  # an unhashable element: validated below
                    pass
        if found is None:
            found, written_condition = self._new_condition(raw, what)
        else:
            written_condition = found[4]
        compiled, error, group_type, values, _ = found
        if group_type is not None:
            self.cohort_ids.setdefault(group_type, set()).update(values)
        if error is not None:
            self.warnings.append(f"flag {self.key!r}: {error}; the condition never matches")
        return compiled, written_condition

    def _new_condition(self, raw: Any, what: str) -> Tuple[_SharedCondition, WrittenCondition]:
        if not isinstance(raw, dict):
            raise MalformedFlag(f"{what} condition must be an object")
        selector = self.shared.selector(raw.get("selector"), what, " condition selector")
        op = raw.get("op")
        if not isinstance(op, str):
            raise MalformedFlag(f"{what} condition op must be a string")
        written = raw.get("values")
        values = [] if written is None else written
        if not isinstance(values, list):
            raise MalformedFlag(f"{what} condition values must be a list")
        texts = tuple(v if type(v) is str else str(v) for v in values if v is not None)
        found = self.shared.condition(selector, op, texts)
        if written is not None and len(texts) == len(values) and all(type(v) is str for v in values):
            return found, found[4]
        return found, (selector, op, None if written is None else tuple(written))

    def _bucket(self, raw: Any, segment_metadata: Tuple[Dict[str, Any], bool], what: str) -> CompiledBucket:
        if not isinstance(raw, dict):
            raise MalformedFlag(f"{what} bucket must be an object")
        selector = self.shared.selector(raw.get("selector"), what, " bucket selector")
        salt = raw.get("salt")
        salt = "" if salt is None else salt
        if not isinstance(salt, str):
            raise MalformedFlag(f"{what} bucket salt must be a string")
        allocations = raw.get("allocations") or []
        if not isinstance(allocations, list):
            raise MalformedFlag(f"{what} bucket allocations must be a list")
        compiled = tuple(self._allocation(a, segment_metadata, what) for a in allocations)
        return CompiledBucket(self.shared.getter(selector), selector, salt, compiled)

    def _allocation(self, raw: Any, segment_metadata: Tuple[Dict[str, Any], bool], what: str) -> Allocation:
        if not isinstance(raw, dict):
            raise MalformedFlag(f"{what} allocation must be an object")
        start, end = _range(raw.get("range"), what, " allocation range")
        distributions = raw.get("distributions") or []
        if not isinstance(distributions, list):
            raise MalformedFlag(f"{what} distributions must be a list")
        dists = []
        for distribution in distributions:
            if not isinstance(distribution, dict):
                raise MalformedFlag(f"{what} distribution must be an object")
            d_start, d_end = _range(distribution.get("range"), what, " distribution range")
            dists.append((d_start, d_end, self._outcome(distribution.get("variant"), segment_metadata)))
        return start, end, tuple(dists)


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


def compile_flags(raw_flags: Sequence[Any], *, fingerprints: Optional[Sequence[Optional[int]]] = None,
                  logger: Optional[logging.Logger] = None, report: bool = True) -> CompiledFlags:
    """Compile a list of v2 flag configs (as decoded from JSON).

    Never raises for a bad flag: it is left out and listed in ``skipped``. The compiled form
    keeps no reference to ``raw_flags`` except variant values, payloads and metadata, which
    are shared, never copied (do not change them afterwards).

    Args:
        raw_flags: the decoded flag array.
        fingerprints: one per entry, identifying its JSON text (see ``CompiledFlag.fingerprint``).
        logger: where problems are reported (default: ``amplitude_experiment.evaluation``).
        report: log skipped flags and warnings (one summary line each); a caller that decides
            whether to use the config at all reports them itself with :func:`report_problems`.

    Raises:
        TypeError: ``raw_flags`` is not a list.
    """
    if not isinstance(raw_flags, list):
        raise TypeError(f"flag configs must be a list, not {type(raw_flags).__name__}")
    if fingerprints is None:
        entries: Iterable[Tuple[Any, Optional[int]]] = ((raw, None) for raw in raw_flags)
    else:
        entries = ((raw, fingerprints[i] if i < len(fingerprints) else None) for i, raw in enumerate(raw_flags))
    return compile_entries(entries, logger=logger, report=report)


def compile_entries(entries: Iterable[Tuple[Any, Optional[int]]], *, logger: Optional[logging.Logger] = None,
                    report: bool = True) -> CompiledFlags:
    """:func:`compile_flags` for ``(decoded entry, fingerprint)`` pairs, compiled as they come.

    Given a decoder's iterator (``flags.decode.iter_entries``), each entry is compiled right
    after it is decoded: while its objects are still in the CPU cache, and without the decoded
    JSON of the whole config ever existing at once. An exception from ``entries`` propagates.
    """
    with _collector_paused():
        compiled = _compile_all(entries)
    if report:
        report_problems(compiled, logger or _default_logger)
    return compiled


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Compiling (and decoding) allocates tens of thousands of small objects that all survive;
    left on, the cyclic collector rescans the growing heap many times over (about a tenth of a
    1,000-flag load). Pausing it for these milliseconds only postpones a collection. An app that
    turned the collector off keeps it off."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


#: How many skipped flags and warnings are logged one by one before a single "and N more" line.
REPORT_LIMIT = 10


def report_problems(compiled: CompiledFlags, log: logging.Logger) -> None:
    """Log the skipped flags and the warnings of a config, at most ``REPORT_LIMIT`` lines of each."""
    for key, reason in list(compiled.skipped.items())[:REPORT_LIMIT]:
        log.warning("Skipping flag %r: %s", key, reason)
    if len(compiled.skipped) > REPORT_LIMIT:
        log.warning("... and %d more skipped flags (%d of %d entries in all)", len(compiled.skipped) - REPORT_LIMIT,
                    len(compiled.skipped), compiled.entries)
    for message in compiled.warnings[:REPORT_LIMIT]:
        log.warning("%s", message)
    if len(compiled.warnings) > REPORT_LIMIT:
        log.warning("... and %d more flag config warnings", len(compiled.warnings) - REPORT_LIMIT)


def _compile_entry(index: int, raw: Any, warnings: List[str], shared: _Shared) -> Union[CompiledFlag, Tuple[str, str]]:
    """A compiled flag, or (key, reason) when the entry is unusable."""
    key = raw.get("key") if isinstance(raw, dict) else None
    if not isinstance(key, str):
        return f"#{index}", "not an object with a string 'key'"
    try:
        return _FlagCompiler(raw, warnings, shared).compile()
    except (MalformedFlag, TypeError, ValueError, AttributeError, KeyError, RecursionError) as exc:
        return key, str(exc) or exc.__class__.__name__


def _compile_all(entries: Iterable[Tuple[Any, Optional[int]]]) -> CompiledFlags:
    warnings: List[str] = []
    skipped: Dict[str, str] = {}
    compiled: Dict[str, CompiledFlag] = {}
    prints: Dict[str, Optional[int]] = {}
    shared = _Shared()
    count = 0
    for index, (raw, fingerprint) in enumerate(entries):
        count += 1
        result = _compile_entry(index, raw, warnings, shared)
        if isinstance(raw, dict) and isinstance(raw.get("key"), str):
            prints[raw["key"]] = fingerprint
        if isinstance(result, tuple):
            key, reason = result
            skipped[key] = reason
            compiled.pop(key, None)
            continue
        skipped.pop(result.key, None)
        compiled[result.key] = result  # a later duplicate replaces an earlier one, keeping its place
    order, cycles = _dependency_order(compiled)
    in_cycle = {key for cycle in cycles for key in cycle}
    for cycle in cycles:
        description = " -> ".join(cycle + [cycle[0]])
        for key in cycle:
            skipped[key] = f"dependency cycle: {description}"
    ordered = {key: compiled[key] for key in order if key not in in_cycle}
    return CompiledFlags(ordered, skipped, warnings, count, prints)
