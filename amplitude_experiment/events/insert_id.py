"""The ``insert_id`` Amplitude deduplicates assignment events by.

Byte-identical to the official SDKs so that Amplitude's server-side dedup works across them:
``f"{user_id} {device_id} {hash} {day}"`` where ``hash`` is Java's ``String.hashCode`` (over
code points, as unsigned 32-bit) of ``"{uid} {did} " + "{flag} {variant} "`` for each flag in
sorted key order.
"""

from __future__ import annotations

from typing import Dict, Iterable, Optional, Tuple

DAY_MILLIS = 86_400_000
_MASK = 0xFFFFFFFF

# The hash is sum(code[i] * 31**(n-1-i)) mod 2**32: the value of the codes read as base-31
# digits. An ASCII code c is (c // 31) * 31 + c % 31, two base-31 digits, so the sum is
# int(high digits + "0", 31) + int(low digits, 31), which C computes ~7x faster than a Python
# loop over the characters (insert_ids hash every event's user and device ids). int() is
# quadratic in the length, and refuses more digits than sys.get_int_max_str_digits() (which
# can be lowered to 640), so longer text takes the loop.
_DIGITS = b"0123456789abcdefghijklmnopqrstu"
_HIGH_DIGIT = bytes(_DIGITS[c // 31] if c < 128 else 0 for c in range(256))
_LOW_DIGIT = bytes(_DIGITS[c % 31] if c < 128 else 0 for c in range(256))
_FAST_MAX = 600


def java_string_hash(text: str) -> int:
    """Java's ``String.hashCode`` over code points, as an unsigned 32-bit integer."""
    if text.isascii() and 0 < len(text) <= _FAST_MAX:
        encoded = text.encode("ascii")
        return (int(encoded.translate(_HIGH_DIGIT) + b"0", 31) + int(encoded.translate(_LOW_DIGIT), 31)) & _MASK
    h = 0
    for code in map(ord, text):
        h = (31 * h + code) & _MASK
    return h


def _id_part(value: Optional[str]) -> str:
    return str(value).strip() if value else "None"


def assignment_canonical(user_id: Optional[str], device_id: Optional[str],
                         flag_variants: Iterable[Tuple[str, Optional[str]]]) -> str:
    """The canonical string hashed into an assignment insert_id."""
    parts = [f"{_id_part(user_id)} {_id_part(device_id)} "]
    for flag_key, variant_key in sorted(flag_variants, key=lambda pair: pair[0]):
        if variant_key is not None:
            parts.append(f"{str(flag_key).strip()} {str(variant_key).strip()} ")
    return "".join(parts)


def assignment_insert_id(user_id: Optional[str], device_id: Optional[str],
                         flag_variants: Iterable[Tuple[str, Optional[str]]], time_millis: int) -> str:
    """The insert_id of an assignment event."""
    digest = java_string_hash(assignment_canonical(user_id, device_id, flag_variants))
    return f"{user_id} {device_id} {digest} {time_millis // DAY_MILLIS}"


def exposure_insert_id(user_id: Optional[str], device_id: Optional[str], flag_key: str,
                       variant_key: Optional[str], time_millis: int) -> str:
    """The insert_id of an exposure event: one per user, flag, variant and day.

    Prefixed so it can never equal an assignment insert_id (Amplitude dedups across types).
    """
    canonical = f"$exposure {_id_part(user_id)} {_id_part(device_id)} {flag_key.strip()} {variant_key} "
    return f"{user_id} {device_id} {java_string_hash(canonical)} {time_millis // DAY_MILLIS}"


class AssignmentHasher:
    """Hashes the flags' part of assignment insert_ids a few flags at a time, remembering parts.

    Java's hash of a concatenation is ``hash(a) * 31**len(b) + hash(b)`` (mod 2**32), so the
    flags' part of the canonical string (``"{flag} {variant} "`` per flag, sorted) is the
    combination of the (hash, 31**length) of its pieces: the writer hashes a group of flags once
    and remembers it (see ``assignment.EventWriter``); an event then costs a short hash of its
    ids plus a multiply-add per group, instead of a Python loop over every character of the
    canonical string (~90 µs for 40 flags).

    Its memo is a dict whose entries are only ever correct: sending threads may share it.

    Args:
        capacity: how many distinct (flag, variant) parts are remembered.
    """

    def __init__(self, capacity: int = 16384) -> None:
        self._parts: Dict[Tuple[str, Optional[str]], Tuple[int, int]] = {}
        self._capacity = capacity

    def _part(self, flag_key: str, variant_key: Optional[str]) -> Tuple[int, int]:
        """(hash, 31**length) of ``"{flag} {variant} "``; (0, 1) (nothing) for a variant without a key."""
        if variant_key is None:
            found = (0, 1)
        else:
            text = f"{str(flag_key).strip()} {str(variant_key).strip()} "
            found = (java_string_hash(text), pow(31, len(text), 1 << 32))
        if len(self._parts) >= self._capacity:
            self._parts.clear()
        self._parts[(flag_key, variant_key)] = found
        return found

    def group_part(self, flag_keys: Tuple[str, ...], variant_keys: Tuple[Optional[str], ...]) -> Tuple[int, int]:
        """(hash, 31**length mod 2**32) of ``"{flag} {variant} "`` for each pair, in the order given."""
        h, power = 0, 1
        parts = self._parts
        for pair in zip(flag_keys, variant_keys):
            part_hash, part_power = parts.get(pair) or self._part(*pair)
            h = (h * part_power + part_hash) & _MASK
            power = (power * part_power) & _MASK
        return h, power
