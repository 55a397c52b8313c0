"""Deterministic bucketing: murmur3 x86 32-bit, seed 0, over ``salt + "/" + value``.

Bit-identical to Amplitude's engines so a user lands in the same variant everywhere. The
hash picks an allocation by ``hash % 100`` and, inside it, a distribution by ``hash // 100``
(design.md §4). This module is the one place that rule is written; the engine and
``explain`` both use it.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Tuple

import mmh3

from .coerce import coerce_string

#: ``(start, end, outcome)``: a variant's share of hash values, ``start <= hash // 100 < end``.
Distribution = Tuple[int, int, Any]
#: ``(start, end, distributions)``: a share of users, ``start <= hash % 100 < end``.
Allocation = Tuple[int, int, Sequence[Distribution]]


def bucket_hash(salted_value: str, seed: int = 0) -> int:
    """Unsigned 32-bit murmur3 (x86) of the UTF-8 bytes (lone surrogates passed through)."""
    if salted_value.isascii():
        return mmh3.hash(salted_value, seed, False)
    # Never hand mmh3 a non-ASCII str: mmh3 5.3 crashes the interpreter (SIGSEGV) on a str
    # holding a lone surrogate. Encoding here also makes surrogates hashable.
    return mmh3.hash(salted_value.encode("utf-8", "surrogatepass"), seed, False)


def bucket_value(value: Any) -> Optional[str]:
    """The text a selected value is bucketed by, or ``None``: missing, empty or without a
    string form, so the segment's own variant applies."""
    text = value if type(value) is str else coerce_string(value)
    return text or None


def locate(allocations: Sequence[Allocation], h: int) -> Optional[Tuple[Allocation, Distribution]]:
    """The allocation and distribution hash ``h`` falls in, or ``None`` when it falls in none."""
    allocation_value = h % 100
    distribution_value = h // 100
    for allocation in allocations:
        if allocation[0] <= allocation_value < allocation[1]:
            for distribution in allocation[2]:
                if distribution[0] <= distribution_value < distribution[1]:
                    return allocation, distribution
    return None
