"""The evaluate loop: a user and a compiled flag set in, variants out.

Pure and synchronous: no I/O, no locks, no logging on the normal path. This is the hot path
and is written for speed on purpose (local variable aliases, tuple unpacking, no per-call
parsing); everything it needs was prepared by the compiler.
"""

from __future__ import annotations

import logging
from typing import Any, Collection, Dict, Optional, Tuple

from ..variant import Variant
from .bucketing import bucket_hash
from .coerce import coerce_string
from .compiler import CompiledFlag, CompiledFlags, CompiledSegment, Outcome

logger = logging.getLogger("amplitude_experiment.evaluation")

_NO_DISTRIBUTION = object()


def copy_json(value: Any) -> Any:
    """A copy of a JSON-like value deep enough that callers cannot change the snapshot."""
    if isinstance(value, dict):
        return {k: copy_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [copy_json(v) for v in value]
    return value


def bucket_outcome(segment: CompiledSegment, user: Any, results: Dict[str, Variant]) -> Any:
    """The outcome a bucketed segment picks, or ``_NO_DISTRIBUTION`` when no range matched."""
    bucket = segment.bucket
    value = coerce_string(bucket.get(user, results))  # type: ignore[union-attr]
    if not value:
        return _NO_DISTRIBUTION
    h = bucket_hash(bucket.prefix + value)  # type: ignore[union-attr]
    allocation_value = h % 100
    distribution_value = h // 100
    for start, end, distributions in bucket.allocations:  # type: ignore[union-attr]
        if start <= allocation_value < end:
            for d_start, d_end, outcome in distributions:
                if d_start <= distribution_value < d_end:
                    return outcome
    return _NO_DISTRIBUTION


def _make_variant(outcome: Outcome) -> Variant:
    key, value, payload, metadata, copy_payload = outcome
    return Variant(value, copy_json(payload) if copy_payload else payload, key, dict(metadata))


def evaluate_flag(flag: CompiledFlag, user: Any, results: Dict[str, Variant]) -> Optional[Tuple[Outcome, int]]:
    """The outcome of one flag and the index of the segment that produced it, or ``None``."""
    for segment in flag.segments:
        groups = segment.conditions
        if groups is not None:
            for group in groups:
                for get, match in group:
                    if not match(get(user, results)):
                        break
                else:
                    break  # every condition of this group matched
            else:
                continue  # no group matched (or there were none): next segment
        if segment.bucket is not None:
            outcome = bucket_outcome(segment, user, results)
            if outcome is _NO_DISTRIBUTION:
                outcome = segment.default
        else:
            outcome = segment.default
        if outcome is not None:
            return outcome, segment.index
    return None


def evaluate(compiled: CompiledFlags, user: Any, flag_keys: Optional[Collection[str]] = None) -> Dict[str, Variant]:
    """Evaluate ``user`` against ``compiled`` flags.

    Args:
        compiled: from :func:`compile_flags`.
        user: a :class:`~amplitude_experiment.User` (or any object with the same attributes).
        flag_keys: ``None`` for every flag; otherwise only these flags and the flags they depend
            on (which are returned too). An empty collection evaluates nothing; a single string
            is taken as one key.

    Returns:
        Variants by flag key, in evaluation order; flags that yield no variant are absent.
        Never raises because of flag or user data: a flag that fails is left out and logged.
    """
    if flag_keys is None:
        flags = compiled.order
    elif isinstance(flag_keys, str):
        flags = compiled.select((flag_keys,))
    else:
        flags = compiled.select(flag_keys)
    results: Dict[str, Variant] = {}
    for flag in flags:
        try:
            found = evaluate_flag(flag, user, results)
        except Exception:  # noqa: BLE001 - one broken flag or odd user value never breaks the rest
            logger.debug("Evaluating flag %r failed; leaving it out", flag.key, exc_info=True)
            continue
        if found is not None:
            results[flag.key] = _make_variant(found[0])
    return results
