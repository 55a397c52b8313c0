"""The user (and their groups) that flags are evaluated for."""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional

#: User fields that become ``context.user`` during evaluation (groups are placed separately).
USER_CONTEXT_FIELDS = (
    "device_id",
    "user_id",
    "country",
    "city",
    "region",
    "dma",
    "language",
    "platform",
    "version",
    "os",
    "device_manufacturer",
    "device_brand",
    "device_model",
    "carrier",
    "library",
    "ip_address",
    "user_properties",
    "cohort_ids",
)

_ALL_FIELDS = USER_CONTEXT_FIELDS[:-1] + ("groups", "group_properties", "group_cohort_ids", "cohort_ids")


class User:
    """A user to evaluate flags for. Every field is optional.

    Evaluation never mutates a ``User``; it is safe to reuse one across threads as long as
    your code does not change it concurrently.
    """

    __slots__ = _ALL_FIELDS

    def __init__(
        self,
        device_id: Optional[str] = None,
        user_id: Optional[str] = None,
        country: Optional[str] = None,
        city: Optional[str] = None,
        region: Optional[str] = None,
        dma: Optional[str] = None,
        language: Optional[str] = None,
        platform: Optional[str] = None,
        version: Optional[str] = None,
        os: Optional[str] = None,
        device_manufacturer: Optional[str] = None,
        device_brand: Optional[str] = None,
        device_model: Optional[str] = None,
        carrier: Optional[str] = None,
        library: Optional[str] = None,
        ip_address: Optional[str] = None,
        user_properties: Optional[Dict[str, Any]] = None,
        groups: Optional[Dict[str, List[str]]] = None,
        group_properties: Optional[Dict[str, Dict[str, Dict[str, Any]]]] = None,
        group_cohort_ids: Optional[Dict[str, Dict[str, List[str]]]] = None,
        cohort_ids: Optional[List[str]] = None,
    ) -> None:
        self.device_id = device_id
        self.user_id = user_id
        self.country = country
        self.city = city
        self.region = region
        self.dma = dma
        self.language = language
        self.platform = platform
        self.version = version
        self.os = os
        self.device_manufacturer = device_manufacturer
        self.device_brand = device_brand
        self.device_model = device_model
        self.carrier = carrier
        self.library = library
        self.ip_address = ip_address
        self.user_properties = user_properties
        self.groups = groups
        self.group_properties = group_properties
        self.group_cohort_ids = group_cohort_ids
        self.cohort_ids = cohort_ids

    def to_dict(self) -> Dict[str, Any]:
        """All fields, ``None`` included, in declaration order."""
        return {name: getattr(self, name) for name in _ALL_FIELDS}

    def to_json(self) -> str:
        """The user as a JSON object string (non-JSON values are written with ``str``)."""
        return json.dumps(self.to_dict(), default=str)

    def add_group_cohort_ids(self, group_type: str, group_name: str, cohort_ids: List[str]) -> None:
        """Set the cohort ids of one group of this user."""
        if self.group_cohort_ids is None:
            self.group_cohort_ids = {}
        self.group_cohort_ids.setdefault(group_type, {})[group_name] = cohort_ids

    def copy(self, **changes: Any) -> "User":
        """A shallow copy with some fields replaced."""
        fields = self.to_dict()
        fields.update(changes)
        return User(**fields)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, User):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]  # mutable, like the official class

    def __repr__(self) -> str:
        set_fields = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items() if v is not None)
        return f"User({set_fields})"

    def __str__(self) -> str:
        return self.to_json()


_new_user = User.__new__


def copy_with_cohort_ids(user: User, cohort_ids: Optional[List[str]]) -> User:
    """A shallow copy of ``user`` with ``cohort_ids`` replaced, as :meth:`User.copy` makes it.

    For evaluation with synced cohorts, once per call: written field by field it takes ~0.2 µs
    (``copy()`` ~3 µs), and the copy's fields read as fast as the user's. Every field of
    ``User`` must be here (``tests/test_user.py`` checks it).
    """
    copy = _new_user(User)
    copy.device_id = user.device_id
    copy.user_id = user.user_id
    copy.country = user.country
    copy.city = user.city
    copy.region = user.region
    copy.dma = user.dma
    copy.language = user.language
    copy.platform = user.platform
    copy.version = user.version
    copy.os = user.os
    copy.device_manufacturer = user.device_manufacturer
    copy.device_brand = user.device_brand
    copy.device_model = user.device_model
    copy.carrier = user.carrier
    copy.library = user.library
    copy.ip_address = user.ip_address
    copy.user_properties = user.user_properties
    copy.groups = user.groups
    copy.group_properties = user.group_properties
    copy.group_cohort_ids = user.group_cohort_ids
    copy.cohort_ids = cohort_ids
    return copy
