"""The value types users hold (User, Variant) and the one Retry-After parser, exactly."""

from __future__ import annotations

import json
from typing import Optional

import pytest

from amplitude_experiment import User, Variant
from amplitude_experiment._http import parse_retry_after


def test_user_json_copy_equality_and_group_cohort_ids() -> None:
    user = User(user_id="u1", device_id="d1", user_properties={"plan": "pro"})
    user.add_group_cohort_ids("org", "acme", ["c1"])
    user.add_group_cohort_ids("org", "globex", ["c2"])
    assert user.group_cohort_ids == {"org": {"acme": ["c1"], "globex": ["c2"]}}
    as_json = json.loads(user.to_json())
    assert (as_json["user_id"], as_json["user_properties"], as_json["country"]) == ("u1", {"plan": "pro"}, None)
    assert str(user) == user.to_json()
    assert repr(User(user_id="u1", country="NZ")) == "User(user_id='u1', country='NZ')"
    moved = user.copy(country="NZ")
    assert (moved.country, moved.user_id, user.country) == ("NZ", "u1", None)
    assert moved != user and user.copy() == user
    assert (user == "u1") is False and user.__eq__("u1") is NotImplemented
    with pytest.raises(TypeError):
        hash(user)


def test_copy_with_cohort_ids_copies_every_field() -> None:
    from amplitude_experiment.user import copy_with_cohort_ids

    fields = {name: f"value of {name}" for name in User.__slots__}
    user = User(**fields)
    copy = copy_with_cohort_ids(user, ["c1"])
    assert type(copy) is User and copy is not user
    assert copy.to_dict() == dict(fields, cohort_ids=["c1"])  # every slot set, in declaration order
    assert user.cohort_ids == "value of cohort_ids"  # the original is unchanged
    assert copy_with_cohort_ids(User(user_id="u"), None) == User(user_id="u")


def test_variant_setters_and_equality() -> None:
    variant = Variant("on", payload={"a": [1]}, key="on", metadata={"default": False})
    variant.metadata = {"default": True}
    variant.payload = [2]
    assert (variant.metadata, variant.payload) == ({"default": True}, [2])
    assert variant == Variant("on", payload=[2], key="on")  # metadata is not compared
    assert variant != Variant("on", payload=[3], key="on")
    assert variant.__eq__("on") is NotImplemented
    assert str(variant) == "key: on, value: on, payload: [2], metadata:{'default': True}"


NOW = 1_700_000_000.0  # 2023-11-14T22:13:20Z


@pytest.mark.parametrize("header, seconds", [
    (None, None), ("", None), ("   ", None), ("soon", None), ("nan", None), ("inf", None),
    ("5", 5.0), (" 2.5 ", 2.5), ("-3", 0.0),
    ("Tue, 14 Nov 2023 22:13:50 GMT", 30.0),  # an HTTP-date 30 s after NOW
    ("Tue, 14 Nov 2023 22:13:00 GMT", 0.0),  # in the past: at once
    ("Tue, 14 Nov 2023 22:13:50", None),  # no zone: unusable
    ("Tue, 99 Nov 2023 99:13:50 GMT", None),  # not a date
])
def test_retry_after_as_rfc_9110_writes_it(header: Optional[str], seconds: Optional[float]) -> None:
    assert parse_retry_after(header, now=NOW) == seconds
