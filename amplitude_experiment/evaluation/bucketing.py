"""Deterministic bucketing: murmur3 x86 32-bit, seed 0, over ``salt + "/" + value``.

Bit-identical to Amplitude's engines so a user lands in the same variant everywhere.
"""

from __future__ import annotations

import mmh3


def bucket_hash(salted_value: str) -> int:
    """Unsigned 32-bit murmur3 of the UTF-8 bytes (lone surrogates passed through)."""
    if salted_value.isascii():
        return mmh3.hash(salted_value, 0, False)
    # Never hand mmh3 a non-ASCII str: mmh3 5.3 crashes the interpreter (SIGSEGV) on a str
    # holding a lone surrogate. Encoding here also makes surrogates hashable.
    return mmh3.hash(salted_value.encode("utf-8", "surrogatepass"), 0, False)
