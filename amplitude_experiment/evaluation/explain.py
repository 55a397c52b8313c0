"""Why did a user get a variant? Per-flag reasons and a full condition-by-condition trace.

Not the hot path: these functions re-walk the compiled flags recording what they see, for
debugging, the CLI and the OpenFeature provider. Results always agree with :func:`evaluate`.
"""

from __future__ import annotations

from typing import Any, Collection, Dict, List, Optional, Tuple

from ..variant import Variant, variant_from_outcome
from .bucketing import bucket_hash, bucket_value, locate
from .coerce import coerce_string
from .compiler import CompiledBucket, CompiledFlag, CompiledFlags, CompiledSegment, WrittenCondition
from .context import Getter
from .engine import NO_DISTRIBUTION, bucket_outcome, evaluate
from .operators import Matcher

#: A segment with conditions matched and named the variant.
TARGETING_MATCH = "TARGETING_MATCH"
#: A segment's bucket (allocation and distribution) picked the variant.
SPLIT = "SPLIT"
#: A segment without conditions (everyone) named the variant.
ALL_USERS = "ALL_USERS"
#: The variant is the flag's default ("off") variant.
DEFAULT = "DEFAULT"
#: No segment yielded a variant: the flag is absent from ``evaluate_v2`` results.
NO_VARIANT = "NO_VARIANT"
#: The requested flag is not in the current config.
FLAG_NOT_FOUND = "FLAG_NOT_FOUND"
#: The flag is in the config but malformed (or in a dependency cycle) and was skipped.
FLAG_SKIPPED = "FLAG_SKIPPED"
#: The client has no flags yet.
NOT_READY = "NOT_READY"
#: Evaluating this flag raised; it is absent from results.
ERROR = "ERROR"


class EvaluationDetail:
    """The variant a flag gave a user and why.

    Attributes:
        flag_key: the flag.
        variant: the variant, or ``None`` (no variant, not found, skipped, not ready, error).
        reason: one of the reason constants of this module.
        segment_index: which segment decided (0-based), when one did.
        segment_name: that segment's ``segmentName`` metadata, when present.
        bucketed: whether the bucket decided (as opposed to the segment's fixed variant).
        message: extra text for FLAG_SKIPPED and ERROR.
    """

    __slots__ = ("flag_key", "variant", "reason", "segment_index", "segment_name", "bucketed", "message")

    def __init__(self, flag_key: str, variant: Optional[Variant], reason: str, segment_index: Optional[int] = None,
                 segment_name: Optional[str] = None, bucketed: bool = False, message: Optional[str] = None) -> None:
        self.flag_key = flag_key
        self.variant = variant
        self.reason = reason
        self.segment_index = segment_index
        self.segment_name = segment_name
        self.bucketed = bucketed
        self.message = message

    def to_dict(self) -> Dict[str, Any]:
        variant = None if self.variant is None else {"key": self.variant.key, "value": self.variant.value,
                                                     "payload": self.variant.payload,
                                                     "metadata": self.variant.metadata}
        return {"flag_key": self.flag_key, "variant": variant, "reason": self.reason,
                "segment_index": self.segment_index, "segment_name": self.segment_name,
                "bucketed": self.bucketed, "message": self.message}

    def __repr__(self) -> str:
        key = None if self.variant is None else self.variant.key
        return (f"EvaluationDetail(flag_key={self.flag_key!r}, variant={key!r}, reason={self.reason!r}, "
                f"segment_index={self.segment_index!r}, segment_name={self.segment_name!r})")


def _conditions_match(segment: CompiledSegment, user: Any, results: Dict[str, Variant]) -> bool:
    groups = segment.conditions
    if groups is None:
        return True
    return any(all(match(get(user, results)) for _, _, get, match, _ in group) for group in groups)


def _decide(flag: CompiledFlag, user: Any, results: Dict[str, Variant]) -> EvaluationDetail:
    for segment in flag.segments:
        if not _conditions_match(segment, user, results):
            continue
        outcome = segment.default
        bucketed = False
        if segment.bucket is not None:
            picked = bucket_outcome(segment.bucket, user, results)
            if picked is not NO_DISTRIBUTION:
                outcome, bucketed = picked, True
        if outcome is None:
            continue
        variant = variant_from_outcome(outcome)
        name = segment.metadata.get("segmentName")
        if variant.metadata and variant.metadata.get("default"):
            reason = DEFAULT
        elif bucketed:
            reason = SPLIT
        elif segment.conditions is None:
            reason = ALL_USERS
        else:
            reason = TARGETING_MATCH
        return EvaluationDetail(flag.key, variant, reason, segment.index, name, bucketed)
    return EvaluationDetail(flag.key, None, NO_VARIANT)


def evaluate_details(compiled: Optional[CompiledFlags], user: Any,
                     flag_keys: Optional[Collection[str]] = None) -> Dict[str, EvaluationDetail]:
    """Like :func:`evaluate`, with a reason per flag; requested flags that gave nothing are included.

    ``compiled=None`` (no flags yet) answers NOT_READY for every requested flag.
    """
    if isinstance(flag_keys, str):
        flag_keys = (flag_keys,)
    if compiled is None:
        return {key: EvaluationDetail(key, None, NOT_READY) for key in (flag_keys or ())}
    flags = compiled.order if flag_keys is None else compiled.select(flag_keys)
    results: Dict[str, Variant] = {}
    details: Dict[str, EvaluationDetail] = {}
    for flag in flags:
        try:
            detail = _decide(flag, user, results)
        except Exception as exc:  # noqa: BLE001 - mirrors evaluate(): one flag never breaks the rest
            detail = EvaluationDetail(flag.key, None, ERROR, message=f"{type(exc).__name__}: {exc}")
        if detail.variant is not None:
            results[flag.key] = detail.variant
        details[flag.key] = detail
    for key in flag_keys or ():
        if key not in details:
            if key in compiled.skipped:
                details[key] = EvaluationDetail(key, None, FLAG_SKIPPED, message=compiled.skipped[key])
            else:
                details[key] = EvaluationDetail(key, None, FLAG_NOT_FOUND)
    return details


class Explanation:
    """A trace of one flag's evaluation for one user: every segment, condition and bucket step.

    ``to_dict()`` gives the data; ``to_text()`` (and ``str()``) a readable report.
    """

    def __init__(self, flag_key: str, detail: EvaluationDetail, segments: List[Dict[str, Any]],
                 dependencies: Dict[str, Optional[str]]) -> None:
        self.flag_key = flag_key
        self.detail = detail
        self.segments = segments
        self.dependencies = dependencies

    def to_dict(self) -> Dict[str, Any]:
        return {"flag_key": self.flag_key, "result": self.detail.to_dict(), "dependencies": self.dependencies,
                "segments": self.segments}

    def to_text(self) -> str:
        detail = self.detail
        key = None if detail.variant is None else detail.variant.key
        lines = [f"flag {self.flag_key}: {key if key is not None else '(no variant)'}  [{detail.reason}]"]
        if detail.message:
            lines.append(f"  {detail.message}")
        for parent, variant in self.dependencies.items():
            lines.append(f"  depends on {parent} = {variant}")
        for segment in self.segments:
            lines.extend(_segment_lines(segment))
        return "\n".join(lines)

    __str__ = to_text


def _segment_lines(segment: Dict[str, Any]) -> List[str]:
    name = f" {segment['name']!r}" if segment.get("name") else ""
    lines = [f"  segment {segment['index']}{name}: {segment['summary']}"]
    for g, group in enumerate(segment.get("conditions") or []):
        lines.append(f"    {'if' if g == 0 else 'or'} (all of):")
        for c in group:
            mark = "✓" if c["matched"] else "✗"
            lines.append(f"      {mark} {'.'.join(c['selector'])} = {c['value']!r}  {c['op']} {c['values']!r}")
    bucket = segment.get("bucket")
    if bucket:
        lines.append(_bucket_line(bucket))
    return lines


def _bucket_line(bucket: Dict[str, Any]) -> str:
    selector = ".".join(bucket["selector"])
    if bucket.get("hash") is None:
        return f"    bucket by {selector}: no value, so the segment variant"
    return (f"    bucket by {selector} = {bucket['value']!r}: "
            f"murmur3({bucket['salt']}/{bucket['value']}) = {bucket['hash']}, "
            f"allocation {bucket['allocation_value']} (of 100) -> {bucket['allocation']}, "
            f"distribution {bucket['distribution_value']} -> {bucket['distribution']}")


_SMALL_INT_BITS = 64


def _describe(value: Any) -> Any:
    """A property value as shown in a trace: JSON-safe and printable, whatever it is."""
    if value is None or isinstance(value, (str, bool, float)):
        return value
    if isinstance(value, int) and value.bit_length() <= _SMALL_INT_BITS:
        return value
    text = coerce_string(value)  # compact JSON for containers, exact digits for big ints
    if text is None:
        return f"<{type(value).__name__} without a string form>"
    return text


def _trace_condition(written: WrittenCondition, get: Getter, match: Matcher, user: Any,
                     results: Dict[str, Variant]) -> Dict[str, Any]:
    selector, op, values = written
    value = get(user, results)
    return {"selector": list(selector), "op": op, "values": None if values is None else list(values),
            "value": _describe(value), "matched": bool(match(value))}


def _trace_conditions(segment: CompiledSegment, user: Any,
                      results: Dict[str, Variant]) -> Tuple[List[List[Dict[str, Any]]], bool]:
    """Every condition of the segment (all are evaluated, for the trace) and whether a group matched."""
    groups = []
    any_group = False
    for written_group, group in zip(segment.written, segment.conditions or ()):
        rows = [_trace_condition(written, condition[2], condition[3], user, results)  # (.., get, match, ..)
                for written, condition in zip(written_group, group)]
        any_group = any_group or all(row["matched"] for row in rows)
        groups.append(rows)
    return groups, any_group


def _trace_bucket(bucket: CompiledBucket, user: Any, results: Dict[str, Variant]) -> Tuple[Dict[str, Any], Any]:
    """The bucket step (value, hash, ranges) and the outcome it picks, or ``NO_DISTRIBUTION``."""
    selected = bucket.get(user, results)
    value = bucket_value(selected)
    info: Dict[str, Any] = {"selector": list(bucket.selector), "salt": bucket.salt,
                            "value": value if value is not None else _describe(selected), "hash": None}
    if value is None:
        return info, NO_DISTRIBUTION
    h = bucket_hash(bucket.prefix + value)
    info.update(hash=h, allocation_value=h % 100, distribution_value=h // 100, allocation=None, distribution=None)
    found = locate(bucket.allocations, h)
    if found is None:
        return info, NO_DISTRIBUTION
    allocation, distribution = found
    info["allocation"], info["distribution"] = [allocation[0], allocation[1]], [distribution[0], distribution[1]]
    return info, distribution[2]


def _trace_segment(segment: CompiledSegment, user: Any, results: Dict[str, Variant]) -> Tuple[Dict[str, Any], bool]:
    """One segment's trace entry and whether it decided the flag."""
    entry: Dict[str, Any] = {"index": segment.index, "name": segment.metadata.get("segmentName")}
    if segment.conditions is not None:
        entry["conditions"], matched = _trace_conditions(segment, user, results)
        if not matched:
            entry["summary"] = "conditions not met"
            return entry, False
    outcome = segment.default
    if segment.bucket is not None:
        entry["bucket"], picked = _trace_bucket(segment.bucket, user, results)
        if picked is not NO_DISTRIBUTION:
            outcome = picked
    if outcome is None:
        entry["summary"] = "matched, but names no variant of this flag"
        return entry, False
    entry["summary"] = f"matched -> {outcome[0]}"
    return entry, True


def _trace_segments(flag: CompiledFlag, user: Any, results: Dict[str, Variant], trace: List[Dict[str, Any]]) -> None:
    decided = False
    for segment in flag.segments:
        if decided:
            trace.append({"index": segment.index, "name": segment.metadata.get("segmentName"),
                          "summary": "not reached"})
            continue
        entry, decided = _trace_segment(segment, user, results)
        trace.append(entry)


def explain(compiled: CompiledFlags, user: Any, flag_key: str) -> Explanation:
    """Trace how ``flag_key`` is evaluated for ``user`` (dependencies are evaluated first).

    Accepts whatever :func:`evaluate` accepts and never raises for user data: the result is
    always the one :func:`evaluate_details` gives (an ``ERROR`` detail when evaluating the flag
    failed, with the trace up to the failure).
    """
    flag = compiled.flags.get(flag_key)
    if flag is None:
        reason = FLAG_SKIPPED if flag_key in compiled.skipped else FLAG_NOT_FOUND
        detail = EvaluationDetail(flag_key, None, reason, message=compiled.skipped.get(flag_key))
        return Explanation(flag_key, detail, [], {})
    parents = [f.key for f in compiled.select((flag_key,)) if f.key != flag_key]
    results: Dict[str, Variant] = evaluate(compiled, user, parents) if parents else {}
    dependencies = {p: (results[p].key if p in results else None) for p in flag.dependencies}
    trace: List[Dict[str, Any]] = []
    try:
        _trace_segments(flag, user, results, trace)
    except Exception:  # noqa: BLE001 - like evaluate(): the detail below reports the failure
        pass
    detail = evaluate_details(compiled, user, [flag_key])[flag_key]
    return Explanation(flag_key, detail, trace, dependencies)
