"""The result of evaluating one flag."""

from __future__ import annotations

from typing import Any, Dict, Optional


class Variant:
    """A flag's variant for a user.

    Equality compares ``key``, ``value`` and ``payload`` (not ``metadata``), like the official SDK.
    """

    __slots__ = ("value", "payload", "key", "metadata")

    def __init__(
        self,
        value: Optional[str] = None,
        payload: Any = None,
        key: Optional[str] = None,
        metadata: Optional[Dict[str, Any]] = None,
    ) -> None:
        self.value = value
        self.payload = payload
        self.key = key
        self.metadata = metadata

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Variant):
            return NotImplemented
        return self.key == other.key and self.value == other.value and self.payload == other.payload

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __str__(self) -> str:
        return f"key: {self.key}, value: {self.value}, payload: {self.payload}, metadata:{self.metadata}"

    def __repr__(self) -> str:
        return (
            f"Variant(key={self.key!r}, value={self.value!r}, payload={self.payload!r}, "
            f"metadata={self.metadata!r})"
        )
