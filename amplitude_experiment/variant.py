"""The result of evaluating one flag.

Package-internal seam: evaluation makes variants with :func:`variant_from_outcome` (its hot loop
writes the same slots inline, see ``evaluation/engine.py``), and event tracking reads what a
variant was made from with :data:`outcome_of`, never the caller-owned fields. No other module
touches a variant's underscored slots.
"""

from __future__ import annotations

import operator
from typing import Any, Callable, Dict, List, Optional, Tuple


def copy_json(value: Any) -> Any:
    """A copy of a JSON-like value deep enough that changing it cannot change the original.

    Iterative, so a payload nested thousands of levels deep copies like any other.
    """
    if not isinstance(value, (dict, list)):
        return value
    root: Any = {} if isinstance(value, dict) else []
    # (source container, its copy): containers whose children still have to be copied
    pending = [(value, root)]
    while pending:
        source, target = pending.pop()
        if isinstance(source, dict):
            for key, item in source.items():
                target[key] = _copy_one(item, pending)
        else:
            target.extend([_copy_one(item, pending) for item in source])
    return root


def _copy_one(item: Any, pending: List[Tuple[Any, Any]]) -> Any:
    if isinstance(item, dict):
        copied: Any = {}
    elif isinstance(item, list):
        copied = []
    else:
        return item
    pending.append((item, copied))
    return copied


class Variant:
    """A flag's variant for a user.

    Equality compares ``key``, ``value`` and ``payload`` (not ``metadata``), like the official SDK.
    Variants returned by evaluation are the caller's to change: a JSON payload or metadata
    shared with the flag config is copied the first time it is read, so most evaluations
    (which never read them) do not pay for the copies.
    """

    # _outcome: the compiled result this variant was made from (evaluation only); tracking reads
    # it instead of the caller-owned fields, so a caller changing a variant cannot change events.
    __slots__ = ("value", "key", "_metadata", "_metadata_shared", "_payload", "_payload_shared", "_outcome")

    def __init__(
        self,
        value: Optional[str] = None,
        payload: Any = None,
        key: Optional[str] = None,
        metadata: Optional[Dict[str, Any]] = None,
    ) -> None:
        self.value = value
        self._payload = payload
        self._payload_shared = False
        self.key = key
        self._metadata = metadata
        self._metadata_shared = False
        self._outcome: Any = None

    @property
    def metadata(self) -> Optional[Dict[str, Any]]:
        if self._metadata_shared:
            self._metadata = copy_json(self._metadata)
            self._metadata_shared = False
        return self._metadata

    @metadata.setter
    def metadata(self, value: Optional[Dict[str, Any]]) -> None:
        self._metadata = value
        self._metadata_shared = False

    @property
    def payload(self) -> Any:
        if self._payload_shared:
            self._payload = copy_json(self._payload)
            self._payload_shared = False
        return self._payload

    @payload.setter
    def payload(self, value: Any) -> None:
        self._payload = value
        self._payload_shared = False

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Variant):
            return NotImplemented
        return self.key == other.key and self.value == other.value and self._payload == other._payload

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __str__(self) -> str:
        return f"key: {self.key}, value: {self.value}, payload: {self._payload}, metadata:{self._metadata}"

    def __repr__(self) -> str:
        return (
            f"Variant(key={self.key!r}, value={self.value!r}, payload={self._payload!r}, "
            f"metadata={self._metadata!r})"
        )


def variant_from_outcome(outcome: Any) -> Variant:
    """A fresh variant for a compiled outcome ``(key, value, payload, metadata, payload is a
    container)``; its metadata and payload are copied on first read, so the outcome stays as compiled."""
    variant = Variant.__new__(Variant)
    variant.key, variant.value, variant._payload, variant._metadata, variant._payload_shared = outcome
    variant._metadata_shared = True
    variant._outcome = outcome
    return variant


#: ``outcome_of(variant)``: the compiled outcome evaluation made ``variant`` from (``None`` for a
#: variant made any other way). A C-level getter: tracking maps it over every result.
outcome_of: Callable[[Variant], Any] = operator.attrgetter("_outcome")
