"""Evaluation context → User mapping."""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any, Dict

import pytest

pytest.importorskip("openfeature.api")

from openfeature.evaluation_context import EvaluationContext  # noqa: E402
from openfeature.exception import ErrorCode, InvalidContextError, TargetingKeyMissingError  # noqa: E402

from amplitude_experiment import User  # noqa: E402
from amplitude_experiment.openfeature._context import STRING_FIELDS, context_to_user  # noqa: E402


def test_every_mapped_attribute() -> None:
    strings = {name: f"{name}-value" for name in STRING_FIELDS}
    attributes: Dict[str, Any] = {
        **strings,
        "groups": {"org": ["acme", "other"], "team": "core"},
        "group_properties": {"org": {"acme": {"tier": "enterprise", "seats": 40}}},
        "group_cohort_ids": {"org": {"acme": ["gc1"]}},
        "cohort_ids": ["c1", "c2"],
        "plan": "pro",
        "age": 30,
        "score": 1.5,
        "beta": True,
        "signup": datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
        "birthday": date(1990, 5, 6),
        "tags": ("a", "b"),
        "nested": {"k": [1, {"x": "y"}]},
    }
    assert context_to_user(EvaluationContext("user-1", attributes)) == User(
        user_id="user-1",
        **strings,
        groups={"org": ["acme", "other"], "team": ["core"]},
        group_properties={"org": {"acme": {"tier": "enterprise", "seats": 40}}},
        group_cohort_ids={"org": {"acme": ["gc1"]}},
        cohort_ids=["c1", "c2"],
        user_properties={"plan": "pro", "age": 30, "score": 1.5, "beta": True,
                         "signup": "2024-01-02T03:04:05+00:00", "birthday": "1990-05-06",
                         "tags": ["a", "b"], "nested": {"k": [1, {"x": "y"}]}},
    )


def test_string_fields_are_exactly_the_user_string_fields() -> None:
    assert STRING_FIELDS == ("device_id", "country", "city", "region", "dma", "language", "platform", "version", "os",
                             "device_manufacturer", "device_brand", "device_model", "carrier", "library", "ip_address")


def test_scalars_become_text_in_user_fields() -> None:
    user = context_to_user(EvaluationContext("u", {"version": 2, "dma": 501.5, "carrier": True, "city": False,
                                                   "region": datetime(2024, 1, 2)}))
    assert (user.version, user.dma, user.carrier, user.city, user.region) == (
        "2", "501.5", "true", "false", "2024-01-02T00:00:00")


def test_only_a_targeting_key() -> None:
    assert context_to_user(EvaluationContext("u")) == User(user_id="u")


def test_device_id_without_targeting_key() -> None:
    assert context_to_user(EvaluationContext(None, {"device_id": "d"})) == User(device_id="d")


def test_user_id_attribute_is_used_without_a_targeting_key() -> None:
    assert context_to_user(EvaluationContext(None, {"user_id": "from-attr"})) == User(user_id="from-attr")
    assert context_to_user(EvaluationContext("from-key", {"user_id": "from-attr"})) == User(user_id="from-key")


def test_user_properties_attribute_is_merged_over_loose_attributes() -> None:
    user = context_to_user(EvaluationContext("u", {"plan": "free", "a": 1,
                                                   "user_properties": {"plan": "pro", "b": 2}}))
    assert user.user_properties == {"plan": "pro", "a": 1, "b": 2}


def test_none_values_are_left_out() -> None:
    attributes: Dict[str, Any] = {"country": None, "plan": None, "groups": None, "device_id": None}
    assert context_to_user(EvaluationContext("u", attributes)) == User(user_id="u")


@pytest.mark.parametrize("context", [
    None,
    EvaluationContext(),
    EvaluationContext("", {"plan": "pro"}),
    EvaluationContext(None, {"device_id": "", "user_id": ""}),
])
def test_missing_targeting_key(context: Any) -> None:
    with pytest.raises(TargetingKeyMissingError) as caught:
        context_to_user(context)
    assert caught.value.error_code == ErrorCode.TARGETING_KEY_MISSING


@pytest.mark.parametrize("attributes, message", [
    ({"groups": ["acme"]}, "context attribute 'groups' must be a mapping, not list"),
    ({"groups": {"org": [{"name": "acme"}]}}, "context attribute 'groups.org' must be a string, number or boolean, "
                                              "not dict"),
    ({"group_properties": {"org": ["acme"]}}, "context attribute 'group_properties.org' must be a mapping, not list"),
    ({"group_properties": {"org": {"acme": "gold"}}},
     "context attribute 'group_properties.org.acme' must be a mapping, not str"),
    ({"group_cohort_ids": {"org": {"acme": "c1"}}},
     "context attribute 'group_cohort_ids.org.acme' must be a list of strings"),
    ({"cohort_ids": "c1"}, "context attribute 'cohort_ids' must be a list of strings"),
    ({"country": ["US"]}, "context attribute 'country' must be a string, number or boolean, not list"),
    ({"user_properties": ["plan"]}, "context attribute 'user_properties' must be a mapping, not list"),
])
def test_malformed_attributes(attributes: Dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidContextError) as caught:
        context_to_user(EvaluationContext("u", attributes))
    assert (caught.value.error_code, caught.value.error_message) == (ErrorCode.INVALID_CONTEXT, message)


def test_non_string_targeting_key() -> None:
    with pytest.raises(InvalidContextError) as caught:
        context_to_user(EvaluationContext(42))  # type: ignore[arg-type]
    assert caught.value.error_message == "the targeting key must be a string, not int"
