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
    # _own: [payload, metadata] once this variant has its own (set, read, or given to __init__);
    # until then they are the outcome's. Four slots: evaluation makes one variant per flag, and
    # the garbage collector visits every slot of the young ones.
    __slots__ = ("value", "key", "_outcome", "_own")

    def __init__(
        self,
        value: Optional[str] = None,
        payload: Any = None,
        key: Optional[str] = None,
        metadata: Optional[Dict[str, Any]] = None,
    ) -> None:
        self.value = value
        self.key = key
        self._outcome: Any = None
        self._own: Optional[List[Any]] = [payload, metadata]

    def _owned(self) -> List[Any]:
        """This variant's own [payload, metadata], copied from its outcome the first time."""
        own = self._own
        if own is None:
            _, _, payload, metadata, payload_is_container = self._outcome
            own = self._own = [copy_json(payload) if payload_is_container else payload, copy_json(metadata)]
        return own

    def _shown(self) -> Tuple[Any, Any]:
        """(payload, metadata) as they are now, copying nothing (for comparing and printing)."""
        own = self._own
        if own is None:
            return self._outcome[2], self._outcome[3]
        return own[0], own[1]

    @property
    def metadata(self) -> Optional[Dict[str, Any]]:
        metadata: Optional[Dict[str, Any]] = self._owned()[1]
        return metadata

    @metadata.setter
    def metadata(self, value: Optional[Dict[str, Any]]) -> None:
        self._owned()[1] = value

    @property
    def payload(self) -> Any:
        return self._owned()[0]

    @payload.setter
    def payload(self, value: Any) -> None:
        self._owned()[0] = value

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Variant):
            return NotImplemented
        return self.key == other.key and self.value == other.value and self._shown()[0] == other._shown()[0]

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __str__(self) -> str:
        payload, metadata = self._shown()
        return f"key: {self.key}, value: {self.value}, payload: {payload}, metadata:{metadata}"

    def __repr__(self) -> str:
        payload, metadata = self._shown()
        return f"Variant(key={self.key!r}, value={self.value!r}, payload={payload!r}, metadata={metadata!r})"


def variant_from_outcome(outcome: Any) -> Variant:
    """A fresh variant for a compiled outcome ``(key, value, payload, metadata, payload is a
    container)``; its metadata and payload are copied on first read, so the outcome stays as compiled."""
    variant = Variant.__new__(Variant)
    variant.key = outcome[0]
    variant.value = outcome[1]
    variant._outcome = outcome
    variant._own = None
    return variant


#: ``outcome_of(variant)``: the compiled outcome evaluation made ``variant`` from (``None`` for a
#: variant made any other way). A C-level getter: tracking maps it over every result.
outcome_of: Callable[[Variant], Any] = operator.attrgetter("_outcome")
