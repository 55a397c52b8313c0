"""The ``insert_id`` Amplitude deduplicates assignment events by.

Byte-identical to the official SDKs so that Amplitude's server-side dedup works across them:
``f"{user_id} {device_id} {hash} {day}"`` where ``hash`` is Java's ``String.hashCode`` (over
code points, as unsigned 32-bit) of ``"{uid} {did} " + "{flag} {variant} "`` for each flag in
sorted key order.
"""

from __future__ import annotations

from typing import Iterable, Optional, Tuple

DAY_MILLIS = 86_400_000


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
