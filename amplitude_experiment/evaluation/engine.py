"""The evaluate loop: a user and a compiled flag set in, variants out.

Pure and synchronous: no I/O, no locks, no logging on the normal path.

This is the hot path and it is written for speed deliberately, at some cost in readability:
the segment loop, the condition getters for ``context.user.<field>[.<key>]``, plain ``is``
tests and bucketing (:func:`bucket_outcome`) are inlined into :func:`evaluate`; names used in
the loop are bound to locals; variants are built slot by slot; payload copies are deferred to
first read. Everything it needs was prepared by the compiler. The conformance fixtures
(tests/evaluation, tests/hostile) hold it to the same answers as the plain versions kept here
for :mod:`.explain`.
"""

from __future__ import annotations

import logging
from typing import Any, Collection, Dict, Optional, Tuple

import mmh3

from ..variant import Variant
from .bucketing import bucket_hash
from .coerce import coerce_string
from .compiler import CompiledBucket, CompiledFlag, CompiledFlags

logger = logging.getLogger("amplitude_experiment.evaluation")

#: Returned by :func:`bucket_outcome` when the value hashed into no distribution range.
NO_DISTRIBUTION: Any = object()


def bucket_outcome(bucket: CompiledBucket, user: Any, results: Dict[str, Variant]) -> Any:
    """The outcome a bucket picks for this user, or ``NO_DISTRIBUTION``."""
    value = bucket.get(user, results)
    if type(value) is not str:
        value = coerce_string(value)
    if not value:
        return NO_DISTRIBUTION
    h = bucket_hash(bucket.prefix + value)
    allocation_value = h % 100
    distribution_value = h // 100
    for start, end, distributions in bucket.allocations:
        if start <= allocation_value < end:
            for d_start, d_end, outcome in distributions:
                if d_start <= distribution_value < d_end:
                    return outcome
    return NO_DISTRIBUTION


def _selected(compiled: CompiledFlags, flag_keys: Collection[str]) -> Tuple[CompiledFlag, ...]:
    return compiled.select((flag_keys,) if isinstance(flag_keys, str) else flag_keys)


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
        Never raises because of flag or user data: a flag that fails is left out and logged
        at debug level.
    """
    flags = compiled.order if flag_keys is None else _selected(compiled, flag_keys)
    results: Dict[str, Variant] = {}
    new_variant = Variant.__new__
    hash32 = mmh3.hash
    for flag in flags:
        try:
            # The segment loop, inlined: it is most of the cost of a call.
            outcome = None
            for segment in flag.segments:
                groups = segment.conditions
                if groups is not None:
                    for group in groups:
                        for field, key, get, match, members in group:
                            if field is None:
                                value = get(user, results)
                            else:  # context.user.<field>[.<key>], read here: a call less per condition
                                value = getattr(user, field, None)
                                if key is not None and value is not None:
                                    value = value.get(key) if type(value) is dict else get(user, results)
                            if members is not None and type(value) is str and value[:1] != "[":
                                if value not in members:  # a plain `is`, answered here: another call less
                                    break
                            elif not match(value):
                                break
                        else:
                            break
                    else:
                        continue
                outcome = segment.default
                bucket = segment.bucket
                if bucket is not None:
                    # bucket_outcome(), inlined
                    field = bucket.field
                    value = getattr(user, field, None) if field is not None else bucket.get(user, results)
                    if type(value) is not str:
                        value = coerce_string(value)
                    if value:
                        salted = bucket.prefix + value
                        if bucket.ascii_prefix and value.isascii():
                            h = hash32(salted, 0, False)
                        else:
                            h = bucket_hash(salted)
                        allocation_value = h % 100
                        distribution_value = h // 100
                        for start, end, distributions in bucket.allocations:
                            if start <= allocation_value < end:
                                for d_start, d_end, picked in distributions:
                                    if d_start <= distribution_value < d_end:
                                        outcome = picked
                                        break
                                else:
                                    continue  # no distribution here: the next allocation may have one
                                break
                if outcome is not None:
                    break
            if outcome is None:
                continue
            # variant_from_outcome(outcome), inlined (the seam documented in variant.py)
            variant = new_variant(Variant)
            variant.key = outcome[0]
            variant.value = outcome[1]
            variant._outcome = outcome
            variant._own = None
            results[flag.key] = variant
        except Exception:  # noqa: BLE001 - one broken flag or odd user value never breaks the rest
            logger.debug("Evaluating flag %r failed; leaving it out", flag.key, exc_info=True)
    return results
