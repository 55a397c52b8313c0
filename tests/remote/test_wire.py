"""The request a fetch sends and how the answer becomes variants (issue 11, point 3; design.md §3).

Unit tests with ``responses``: exact headers and bodies.
"""

from __future__ import annotations

import base64
import json
import logging
from typing import Any, Dict

import pytest
import responses

from amplitude_experiment import FetchOptions, RemoteEvaluationClient, RemoteEvaluationConfig, User, Variant
from amplitude_experiment.remote import wire
from amplitude_experiment.version import LIBRARY, USER_AGENT

from .helpers import KEY, SERVER, VARDATA

USER_FIELDS = ["device_id", "user_id", "country", "city", "region", "dma", "language", "platform", "version", "os",
               "device_manufacturer", "device_brand", "device_model", "carrier", "library", "ip_address",
               "user_properties", "groups", "group_properties", "group_cohort_ids", "cohort_ids"]


def _client(**config: Any) -> RemoteEvaluationClient:
    return RemoteEvaluationClient(KEY, RemoteEvaluationConfig(server_url=SERVER, **config))


def _answer(body: Dict[str, Any]) -> None:
    responses.add(responses.POST, VARDATA, json=body)


@responses.activate
def test_request_method_url_headers_and_body() -> None:
    _answer({})
    user = User(user_id="u1", device_id="d1", user_properties={"plan": "pro", "n": 1}, groups={"org": ["acme"]})
    with _client() as client:
        client.fetch_v2(user)
    (call,) = responses.calls
    request = call.request
    assert request.method == "POST"
    assert request.url == "https://remote.test/sdk/v2/vardata?v=0"
    assert request.headers["Authorization"] == "Api-Key " + KEY
    assert request.headers["Content-Type"] == "application/json;charset=utf-8"
    assert request.headers["User-Agent"] == USER_AGENT
    for name in ("X-Amp-Exp-Track", "X-Amp-Exp-Exposure-Track", "X-Amp-Exp-Flag-Keys", "X-Amp-Exp-Library"):
        assert name not in request.headers
    # Every User field in the official order, nulls included; library names this SDK.
    expected = dict.fromkeys(USER_FIELDS)
    expected.update(user_id="u1", device_id="d1", user_properties={"plan": "pro", "n": 1}, groups={"org": ["acme"]},
                    library=LIBRARY)
    assert request.body == json.dumps(expected).encode("utf-8")
    assert list(json.loads(request.body)) == USER_FIELDS


@responses.activate
def test_the_callers_user_is_not_changed_and_its_library_is_kept() -> None:
    # Issue 11 point 4: the official client writes library into the caller's User; we don't.
    _answer({})
    _answer({})
    user = User(user_id="u1")
    own = User(user_id="u2", library="my-app/2.0")
    with _client() as client:
        client.fetch_v2(user)
        client.fetch_v2(own)
    assert user.library is None
    assert json.loads(responses.calls[0].request.body or b"")["library"] == LIBRARY
    assert json.loads(responses.calls[1].request.body or b"")["library"] == "my-app/2.0"


@pytest.mark.parametrize(("options", "headers"), [
    (FetchOptions(tracksAssignment=True), {"X-Amp-Exp-Track": "track"}),
    (FetchOptions(tracksAssignment=False), {"X-Amp-Exp-Track": "no-track"}),
    (FetchOptions(tracksExposure=True), {"X-Amp-Exp-Exposure-Track": "track"}),
    (FetchOptions(tracksExposure=False), {"X-Amp-Exp-Exposure-Track": "no-track"}),
    # base64url of the compact JSON list, no padding: '["f1","f2"]' -> WyJmMSIsImYyIl0
    (FetchOptions(flagKeys=["f1", "f2"]), {"X-Amp-Exp-Flag-Keys": "WyJmMSIsImYyIl0"}),
    # An empty list sends nothing (every flag), as the official client does.
    (FetchOptions(flagKeys=[]), {}),
    (FetchOptions(), {}),
])
@responses.activate
def test_fetch_options_headers(options: FetchOptions, headers: Dict[str, str]) -> None:
    _answer({})
    with _client() as client:
        client.fetch_v2(User(user_id="u"), options)
    sent = responses.calls[0].request.headers
    extra = {k: v for k, v in sent.items() if k.startswith("X-Amp-Exp-")}
    assert extra == headers


def test_flag_keys_encoding_round_trips_and_needs_urlsafe_alphabet() -> None:
    keys = ["é-flag", "a b", "???>>>"]
    encoded = wire.encode_flag_keys(keys)
    assert "=" not in encoded and "+" not in encoded and "/" not in encoded
    padded = encoded + "=" * (-len(encoded) % 4)
    assert json.loads(base64.urlsafe_b64decode(padded)) == keys
    assert base64.urlsafe_b64decode(padded) == b'["\\u00e9-flag","a b","???>>>"]'
    assert wire.decode_flag_keys(encoded) == keys


@responses.activate
def test_answer_becomes_variants() -> None:
    _answer({
        "on": {"key": "on", "value": "on", "payload": {"a": [1]}, "metadata": {"evaluationId": "x"}, "new": 1},
        "off": {"key": "off", "metadata": {"default": True}},
        "nokey": {"value": "v"},
        # Non-string values become their compact JSON text, as in the official client.
        "typed": {"key": "t", "value": {"a": "é", "b": [1, True]}},
        "number": {"key": "n", "value": 1.5},
        "bool": {"key": "b", "value": False},
    })
    with _client() as client:
        variants = client.fetch_v2(User(user_id="u"))
    assert {k: (v.key, v.value, v.payload, v.metadata) for k, v in variants.items()} == {
        "on": ("on", "on", {"a": [1]}, {"evaluationId": "x"}),
        "off": ("off", None, None, {"default": True}),
        "nokey": (None, "v", None, None),
        "typed": ("t", '{"a":"\\u00e9","b":[1,true]}', None, None),
        "number": ("n", "1.5", None, None),
        "bool": ("b", "false", None, None),
    }
    assert all(isinstance(v, Variant) for v in variants.values())


@responses.activate
def test_entries_that_are_not_objects_are_left_out_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    # The official client fails the whole fetch; we keep the usable entries.
    _answer({"good": {"key": "on"}, "bad": "text", "worse": None})
    with caplog.at_level(logging.WARNING, logger="amplitude_experiment"), _client() as client:
        variants = client.fetch_v2(User(user_id="u"))
    assert list(variants) == ["good"]
    assert "2 unusable entries" in caplog.text and "bad, worse" in caplog.text


@responses.activate
def test_deprecated_fetch_drops_default_variants_of_undeployed_flags() -> None:
    # Observed on the official client: only default=truthy AND deployed present and falsy is dropped.
    _answer({
        "a": {"key": "off", "metadata": {"default": True, "deployed": False}},
        "b": {"key": "off", "metadata": {"default": True}},
        "c": {"key": "on", "metadata": {"deployed": False}},
        "d": {"key": "off", "metadata": {"default": True, "deployed": True}},
        "e": {"key": "off", "metadata": {"default": True, "deployed": None}},
        "f": {"key": "on"},
    })
    with _client() as client, pytest.deprecated_call():
        variants = client.fetch(User(user_id="u"))
    assert sorted(variants) == ["b", "c", "d", "e", "f"]


@responses.activate
def test_deprecated_fetch_sends_the_same_request() -> None:
    _answer({})
    _answer({})
    options = FetchOptions(tracksAssignment=False, flagKeys=["x"])
    with _client() as client:
        client.fetch_v2(User(user_id="u"), options)
        with pytest.deprecated_call():
            client.fetch(User(user_id="u"), options)
    first, second = (c.request for c in responses.calls)
    assert (first.body, dict(first.headers)) == (second.body, dict(second.headers))


def test_fetch_options_official_names_and_checks() -> None:
    options = FetchOptions(True, False, ("a", "b"))
    assert (options.tracksAssignment, options.tracksExposure, options.flagKeys) == (True, False, ["a", "b"])
    assert str(options) == "FetchOptions(tracksAssignment=True, tracksExposure=False, flagKeys=['a', 'b'])"
    assert FetchOptions(flagKeys=["a"]) == FetchOptions(None, None, ["a"])
    with pytest.raises(TypeError, match="flagKeys"):
        FetchOptions(flagKeys="flag-a")
    with pytest.raises(TypeError, match="tracksAssignment"):
        FetchOptions(tracksAssignment="yes")  # type: ignore[arg-type]
