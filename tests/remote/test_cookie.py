"""AmplitudeCookie (issue 11, point 6). Expected values were read off the official 1.13 client (black box)."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote

import pytest

from amplitude_experiment import AmplitudeCookie, User


def test_cookie_names() -> None:
    assert AmplitudeCookie.cookie_name("1234567890abcdef") == "amp_123456"
    assert AmplitudeCookie.cookie_name("1234567890abcdef", new_format=True) == "AMP_1234567890"
    assert AmplitudeCookie.cookie_name("123456") == "amp_123456"
    assert AmplitudeCookie.cookie_name("1234567890", True) == "AMP_1234567890"


@pytest.mark.parametrize(("key", "new_format"), [("12345", False), ("123456789", True), ("", False), (None, True)])
def test_short_keys_are_invalid(key: object, new_format: bool) -> None:
    with pytest.raises(ValueError, match="Invalid Amplitude API Key"):
        AmplitudeCookie.cookie_name(key, new_format)  # type: ignore[arg-type]


def test_generate_matches_the_official_output() -> None:
    assert AmplitudeCookie.generate("dev1") == "dev1.........."
    assert AmplitudeCookie.generate("dev1", new_format=True) == "JTdCJTIyZGV2aWNlSWQlMjIlM0ElMjAlMjJkZXYxJTIyJTdE"
    assert AmplitudeCookie.generate("é", True) == "JTdCJTIyZGV2aWNlSWQlMjIlM0ElMjAlMjIlNUN1MDBlOSUyMiU3RA=="
    assert AmplitudeCookie.generate("x y", True) == "JTdCJTIyZGV2aWNlSWQlMjIlM0ElMjAlMjJ4JTIweSUyMiU3RA=="


@pytest.mark.parametrize("device_id", ["dev1", "a.b-c_d", "é ü"])
@pytest.mark.parametrize("new_format", [False, True])
def test_generate_then_parse_round_trips(device_id: str, new_format: bool) -> None:
    user = AmplitudeCookie.parse(AmplitudeCookie.generate(device_id, new_format), new_format)
    if not new_format and "." in device_id:
        assert user.device_id == device_id.split(".")[0]  # the legacy layout is dot-separated
    else:
        assert user == User(device_id=device_id)


def test_parse_legacy() -> None:
    user_id = base64.b64encode("user@example.com".encode()).decode()
    assert AmplitudeCookie.parse(f"dev1.{user_id}.0.1700000000.1700000001.5.6") == User(
        device_id="dev1", user_id="user@example.com")
    assert AmplitudeCookie.parse("dev1") == User(device_id="dev1")  # the official client raises IndexError
    assert AmplitudeCookie.parse("") == User()
    assert AmplitudeCookie.parse("dev1.dXNlcg") == User(device_id="dev1", user_id="user")  # unpadded base64
    assert AmplitudeCookie.parse("dev1.!!!!") == User(device_id="dev1")  # not base64: no user id
    assert AmplitudeCookie.parse(".dXNlcg==") == User(user_id="user")


def test_parse_new_format() -> None:
    def cookie(fields: object) -> str:
        return base64.b64encode(quote(json.dumps(fields)).encode()).decode()

    assert AmplitudeCookie.parse(cookie({"deviceId": "d", "userId": "u", "optOut": False}), True) == User(
        device_id="d", user_id="u")
    assert AmplitudeCookie.parse(cookie({"userId": "u"}), True) == User(user_id="u")
    assert AmplitudeCookie.parse(cookie([1]), True) == User()
    assert AmplitudeCookie.parse("garbage", True) == User()  # the official client raises binascii.Error
    assert AmplitudeCookie.parse(cookie({"deviceId": 5}), True) == User()


def test_non_strings_are_type_errors() -> None:
    with pytest.raises(TypeError):
        AmplitudeCookie.parse(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        AmplitudeCookie.generate(5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        AmplitudeCookie.cookie_name(123456)  # type: ignore[arg-type]
