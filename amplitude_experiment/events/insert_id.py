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


def java_string_hash(text: str) -> int:
    """Java's ``String.hashCode`` over code points, as an unsigned 32-bit integer."""
    h = 0
    for code in map(ord, text):
        h = (31 * h + code) & 0xFFFFFFFF
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
    """Computes assignment insert_ids fast, for many events over the same flags.

    Java's hash of a concatenation is ``hash(a) * 31**len(b) + hash(b)`` (mod 2**32), so each
    ``"{flag} {variant} "`` part is hashed once and remembered; an event then costs a short
    hash of its ids plus one multiply-add per flag, instead of a Python loop over every
    character of the canonical string (~90 µs for 40 flags).

    Args:
        capacity: how many distinct (flag, variant) parts are remembered.
    """

    def __init__(self, capacity: int = 16384) -> None:
        self._parts: Dict[Tuple[str, str], Tuple[int, int]] = {}
        self._capacity = capacity

    def _part(self, flag_key: str, variant_key: str) -> Tuple[int, int]:
        key = (flag_key, variant_key)
        found = self._parts.get(key)
        if found is None:
            text = f"{str(flag_key).strip()} {str(variant_key).strip()} "
            found = (java_string_hash(text), pow(31, len(text), 1 << 32))
            if len(self._parts) >= self._capacity:
                self._parts.clear()
            self._parts[key] = found
        return found

    def insert_id(self, user_id: Optional[str], device_id: Optional[str],
                  flag_variants: Iterable[Tuple[str, Optional[str]]], time_millis: int) -> str:
        """Same value as :func:`assignment_insert_id`."""
        h = java_string_hash(f"{_id_part(user_id)} {_id_part(device_id)} ")
        for flag_key, variant_key in sorted(flag_variants, key=lambda pair: pair[0]):
            if variant_key is not None:
                part_hash, part_power = self._part(flag_key, variant_key)
                h = (h * part_power + part_hash) & _MASK
        return f"{user_id} {device_id} {h} {time_millis // DAY_MILLIS}"
