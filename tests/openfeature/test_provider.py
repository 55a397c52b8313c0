"""AmplitudeProvider through the OpenFeature API: values, reasons, errors, metadata, lifecycle, events."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import pytest

pytest.importorskip("openfeature.api")

from openfeature import api  # noqa: E402
from openfeature.client import OpenFeatureClient  # noqa: E402
from openfeature.evaluation_context import EvaluationContext  # noqa: E402
from openfeature.event import EventDetails, ProviderEvent  # noqa: E402
from openfeature.exception import ErrorCode  # noqa: E402
from openfeature.flag_evaluation import FlagEvaluationDetails, Reason  # noqa: E402
from openfeature.provider import ProviderStatus  # noqa: E402

from amplitude_experiment import (  # noqa: E402
    AssignmentConfig,
    ConfigurationError,
    ExposureConfig,
    LocalEvaluationClient,
    LocalEvaluationConfig,
    User,
)
from amplitude_experiment.evaluation.explain import ERROR, EvaluationDetail  # noqa: E402
from amplitude_experiment.openfeature import METADATA_KEYS, PROVIDER_NAME, AmplitudeProvider  # noqa: E402
from amplitude_experiment.testing import AmplitudeStandIn, ManualClock, wait_for  # noqa: E402

from .flags import BOOL_FLAG, CHILD_FLAG, COLOR_EXPERIMENT, FLAGS, PARENT_FLAG, static_flag  # noqa: E402

USER = EvaluationContext("user-1")
PRO = EvaluationContext("user-1", {"plan": "pro"})
BOOL_META = {"flagType": "release", "flagVersion": 3, "version": "3"}
COLOR_META = {"flagType": "experiment", "flagVersion": 7, "experimentKey": "exp-color-7", "version": "7"}


@pytest.fixture(autouse=True)
def reset_openfeature() -> Iterator[None]:
    yield
    api.shutdown()


def offline_client(flags: Optional[List[Dict[str, Any]]] = None, **options: Any) -> LocalEvaluationClient:
    return LocalEvaluationClient("server-key", LocalEvaluationConfig(
        offline=True, bootstrap_flags=FLAGS if flags is None else flags, **options))


def install(provider: AmplitudeProvider) -> OpenFeatureClient:
    """Register ``provider`` and wait for initialize() to finish, on any SDK version."""
    wait = getattr(api, "set_provider_and_wait", None)
    if wait is not None:
        wait(provider)
    else:
        api.set_provider(provider)
    client = api.get_client()
    assert client.get_provider_status() == ProviderStatus.READY
    return client


@pytest.fixture
def of_client() -> OpenFeatureClient:
    return install(AmplitudeProvider(offline_client()))


class Events:
    """Collects OpenFeature events from the global handlers (which may run on another thread)."""

    def __init__(self, *kinds: ProviderEvent) -> None:
        self._lock = threading.Lock()
        self.seen: List[Tuple[ProviderEvent, EventDetails]] = []
        for kind in kinds:
            api.add_handler(kind, self._handler(kind))

    def _handler(self, kind: ProviderEvent) -> Callable[[EventDetails], None]:
        def handle(details: EventDetails) -> None:
            if details.provider_name != PROVIDER_NAME:
                return  # e.g. the SDK replaying the no-op provider's status to a new handler
            with self._lock:
                self.seen.append((kind, details))
        return handle

    def of(self, kind: ProviderEvent) -> List[EventDetails]:
        with self._lock:
            return [d for k, d in self.seen if k == kind]

    def wait(self, kind: ProviderEvent, n: int = 1, timeout: float = 10.0) -> List[EventDetails]:
        assert wait_for(lambda: len(self.of(kind)) >= n, timeout), f"no {kind} event"
        return self.of(kind)


def expect(details: FlagEvaluationDetails[Any], value: Any, reason: str, variant: Optional[str] = None,
           metadata: Optional[Dict[str, Any]] = None) -> None:
    assert (details.value, details.reason, details.variant, dict(details.flag_metadata),
            details.error_code, details.error_message) == (value, reason, variant, metadata or {}, None, None)
    assert type(details.value) is type(value)


def expect_error(details: FlagEvaluationDetails[Any], value: Any, code: ErrorCode, message: str) -> None:
    # (flag metadata on errors is checked on the provider: SDKs before 0.8 drop it from error details)
    assert (details.value, details.reason, details.variant, details.error_code, details.error_message) == (
        value, Reason.ERROR, None, code, message)


# -- values and reasons ---------------------------------------------------------------------------


def test_metadata_names_the_provider(of_client: OpenFeatureClient) -> None:
    assert PROVIDER_NAME == "amplitude-local-evaluation"
    assert api.get_provider_metadata().name == "amplitude-local-evaluation"
    assert of_client.provider.get_metadata().name == "amplitude-local-evaluation"


def test_boolean_targeting_match_with_flag_metadata(of_client: OpenFeatureClient) -> None:
    expect(of_client.get_boolean_details("bool-flag", False, PRO), True, Reason.TARGETING_MATCH, "on",
           {**BOOL_META, "segmentName": "Pro users"})
    assert of_client.get_boolean_value("bool-flag", False, PRO) is True


def test_default_variant_gives_the_callers_default_with_reason_default(of_client: OpenFeatureClient) -> None:
    meta = {**BOOL_META, "segmentName": "All Other Users"}
    expect(of_client.get_boolean_details("bool-flag", False, USER), False, Reason.DEFAULT, "off", meta)
    expect(of_client.get_boolean_details("bool-flag", True, USER), True, Reason.DEFAULT, "off", meta)
    expect(of_client.get_string_details("bool-flag", "fallback", USER), "fallback", Reason.DEFAULT, "off", meta)


@pytest.mark.parametrize("flag, expected, variant", [
    ("static-true", True, "enabled"),        # "TRUE": case-insensitive
    ("static-off-value", False, "disabled"),  # "Off" on a variant that is not the default one
    ("keyed-on", True, "on"),                 # no value: the key "on" stands for it
])
def test_boolean_values(of_client: OpenFeatureClient, flag: str, expected: bool, variant: str) -> None:
    expect(of_client.get_boolean_details(flag, not expected, USER), expected, Reason.STATIC, variant)


def test_string(of_client: OpenFeatureClient) -> None:
    expect(of_client.get_string_details("string-flag", "x", USER), "hello", Reason.STATIC, "v",
           {"flagType": "release", "flagVersion": 9, "version": "9"})
    expect(of_client.get_string_details("keyed-on", "x", USER), "on", Reason.STATIC, "on")


@pytest.mark.parametrize("flag, expected", [("int-flag", 42), ("int-negative", -7)])
def test_integer(of_client: OpenFeatureClient, flag: str, expected: int) -> None:
    expect(of_client.get_integer_details(flag, 0, USER), expected, Reason.STATIC, "v")


@pytest.mark.parametrize("flag, expected", [("float-flag", 2.5), ("float-integral", 3.0), ("float-exponent", 1000.0)])
def test_float(of_client: OpenFeatureClient, flag: str, expected: float) -> None:
    expect(of_client.get_float_details(flag, 0.0, USER), expected, Reason.STATIC, "v")


@pytest.mark.parametrize("flag, expected", [
    ("object-flag", {"color": "blue", "sizes": [1, 2]}),
    ("list-flag", [1, "two", {"three": 3}]),
])
def test_object_is_the_payload(of_client: OpenFeatureClient, flag: str, expected: Any) -> None:
    details = of_client.get_object_details(flag, {"default": True}, USER)
    expect(details, expected, Reason.STATIC, "v")
    value = details.value
    assert isinstance(value, (dict, list))
    value.clear()  # the caller's copy: the flag config is untouched
    assert of_client.get_object_value(flag, {}, USER) == expected


def test_split_and_fall_through_reasons(of_client: OpenFeatureClient) -> None:
    split_meta = {"flagType": "experiment", "flagVersion": 2, "experimentKey": "exp-split-2",
                  "segmentName": "All Other Users", "version": "2"}
    expect(of_client.get_string_details("split", "none", USER), "treatment", Reason.SPLIT, "treatment", split_meta)
    # Without a user id the bucket cannot place the user: the segment's "off" variant.
    expect(of_client.get_string_details("split", "none", EvaluationContext(None, {"device_id": "device-1"})),
           "none", Reason.DEFAULT, "off", split_meta)
    # The last, catch-all segment after targeted ones that did not match.
    expect(of_client.get_string_details("color", "none", USER), "green", Reason.DEFAULT, "green",
           {**COLOR_META, "segmentName": "All Other Users"})


def test_async_resolution(of_client: OpenFeatureClient) -> None:
    if not hasattr(of_client, "get_boolean_details_async"):
        pytest.skip("this OpenFeature SDK has no async API")
    details = asyncio.run(of_client.get_boolean_details_async("bool-flag", False, PRO))
    expect(details, True, Reason.TARGETING_MATCH, "on", {**BOOL_META, "segmentName": "Pro users"})


# -- errors ---------------------------------------------------------------------------------------


def test_unknown_flag_is_flag_not_found(of_client: OpenFeatureClient) -> None:
    expect_error(of_client.get_boolean_details("nope", True, USER), True, ErrorCode.FLAG_NOT_FOUND,
                 "flag 'nope' is not in the Amplitude flag configuration")


def test_no_variant_is_flag_not_found(of_client: OpenFeatureClient) -> None:
    expect_error(of_client.get_string_details("pro-only", "dflt", USER), "dflt", ErrorCode.FLAG_NOT_FOUND,
                 "flag 'pro-only' gives no variant for this context")
    expect(of_client.get_string_details("pro-only", "dflt", PRO), "on", Reason.TARGETING_MATCH, "on",
           {"flagType": "release", "flagVersion": 5, "version": "5"})


def test_malformed_flag_is_parse_error(of_client: OpenFeatureClient) -> None:
    details = of_client.get_boolean_details("malformed", False, USER)
    assert (details.value, details.reason, details.error_code) == (False, Reason.ERROR, ErrorCode.PARSE_ERROR)
    assert details.error_message is not None
    assert details.error_message.startswith("flag 'malformed' is malformed: ")
    assert "segments must be a list" in details.error_message


@pytest.mark.parametrize("method, flag, default, message", [
    ("get_boolean_details", "bool-bad", False, "variant 'v' value 'maybe' is not true/false/on/off"),
    ("get_boolean_details", "string-flag", True, "variant 'v' value 'hello' is not true/false/on/off"),
    ("get_integer_details", "int-bad-decimal", 1, "variant 'v' value '4.2' is not an integer"),
    ("get_integer_details", "int-bad-space", 1, "variant 'v' value ' 42' is not an integer"),
    ("get_integer_details", "int-bad-underscore", 1, "variant 'v' value '1_000' is not an integer"),
    ("get_integer_details", "string-flag", 1, "variant 'v' value 'hello' is not an integer"),
    ("get_float_details", "float-bad-text", 1.5, "variant 'v' value 'abc' is not a finite number"),
    ("get_float_details", "float-bad-nan", 1.5, "variant 'v' value 'nan' is not a finite number"),
    ("get_float_details", "float-bad-inf", 1.5, "variant 'v' value '1e999' is not a finite number"),
    ("get_object_details", "object-scalar-payload", {"d": 1},
     "variant 'v' has no JSON object or array payload (payload is str)"),
    ("get_object_details", "object-no-payload", [0],
     "variant 'v' has no JSON object or array payload (payload is NoneType)"),
])
def test_type_mismatch(of_client: OpenFeatureClient, method: str, flag: str, default: Any, message: str) -> None:
    expect_error(getattr(of_client, method)(flag, default, USER), default, ErrorCode.TYPE_MISMATCH,
                 f"flag {flag!r}: {message}")


def test_errors_of_known_flags_carry_flag_metadata(of_client: OpenFeatureClient) -> None:
    provider = of_client.provider
    mismatch = provider.resolve_integer_details("string-flag", 1, USER)
    assert (mismatch.value, mismatch.reason, mismatch.variant, mismatch.error_code, dict(mismatch.flag_metadata)) == (
        1, Reason.ERROR, None, ErrorCode.TYPE_MISMATCH, {"flagType": "release", "flagVersion": 9, "version": "9"})
    no_variant = provider.resolve_string_details("pro-only", "x", USER)
    assert (no_variant.error_code, dict(no_variant.flag_metadata)) == (
        ErrorCode.FLAG_NOT_FOUND, {"flagType": "release", "flagVersion": 5, "version": "5"})
    not_found = provider.resolve_boolean_details("nope", False, USER)
    assert (not_found.error_code, dict(not_found.flag_metadata)) == (ErrorCode.FLAG_NOT_FOUND, {})


@pytest.mark.parametrize("context", [
    None,
    EvaluationContext(),
    EvaluationContext("", {"plan": "pro"}),
    EvaluationContext(None, {"device_id": ""}),
])
def test_targeting_key_missing(of_client: OpenFeatureClient, context: Optional[EvaluationContext]) -> None:
    expect_error(of_client.get_boolean_details("bool-flag", True, context), True, ErrorCode.TARGETING_KEY_MISSING,
                 "the evaluation context needs a targeting key (the Amplitude user_id) or a device_id attribute")


def test_device_id_alone_is_enough(of_client: OpenFeatureClient) -> None:
    context = EvaluationContext(None, {"device_id": "device-1", "plan": "pro"})
    assert of_client.get_boolean_value("bool-flag", False, context) is True


def test_malformed_context_is_invalid_context(of_client: OpenFeatureClient) -> None:
    expect_error(of_client.get_boolean_details("bool-flag", True, EvaluationContext("u", {"groups": ["acme"]})),
                 True, ErrorCode.INVALID_CONTEXT, "context attribute 'groups' must be a mapping, not list")


def test_client_without_flags_is_provider_not_ready() -> None:
    # A client that was never started, used directly: no flags at all.
    provider = AmplitudeProvider(LocalEvaluationClient("server-key", LocalEvaluationConfig(offline=True,
                                                                                             bootstrap_flags=[])))
    details = provider.resolve_boolean_details("bool-flag", True, USER)
    assert (details.value, details.reason, details.error_code, details.error_message) == (
        True, Reason.ERROR, ErrorCode.PROVIDER_NOT_READY, "the Amplitude client has no flags yet")


def test_unexpected_failures_are_general(of_client: OpenFeatureClient, monkeypatch: pytest.MonkeyPatch,
                                         caplog: pytest.LogCaptureFixture) -> None:
    provider = of_client.provider
    assert isinstance(provider, AmplitudeProvider)

    def boom(user: User, flag_keys: Any) -> Dict[str, EvaluationDetail]:
        raise RuntimeError("boom")

    monkeypatch.setattr(provider.client, "evaluate_details", boom)
    with caplog.at_level("ERROR", logger="amplitude_experiment.openfeature"):
        expect_error(of_client.get_integer_details("int-flag", 5, USER), 5, ErrorCode.GENERAL, "RuntimeError: boom")
    assert [r.getMessage() for r in caplog.records if r.name == "amplitude_experiment.openfeature"] == [
        "Unexpected error while resolving flag 'int-flag'"]

    monkeypatch.setattr(provider.client, "evaluate_details", lambda user, keys: {})
    expect_error(of_client.get_integer_details("int-flag", 5, USER), 5, ErrorCode.GENERAL,
                 "evaluating flag 'int-flag' failed (see the amplitude_experiment log)")

    monkeypatch.setattr(provider.client, "evaluate_details",
                        lambda user, keys: {"int-flag": EvaluationDetail("int-flag", None, ERROR, message="bad")})
    expect_error(of_client.get_integer_details("int-flag", 5, USER), 5, ErrorCode.GENERAL,
                 "evaluating flag 'int-flag' failed: bad")


def test_metadata_keys() -> None:
    assert METADATA_KEYS == ("flagType", "flagVersion", "segmentName", "experimentKey")


# -- context mapping through targeting rules ------------------------------------------------------


def test_targeting_on_user_properties(of_client: OpenFeatureClient) -> None:
    assert of_client.get_boolean_value("bool-flag", False, EvaluationContext("u", {"plan": "pro"})) is True
    assert of_client.get_boolean_value("bool-flag", False, EvaluationContext("u", {"plan": "free"})) is False
    assert of_client.get_boolean_value(
        "bool-flag", False, EvaluationContext("u", {"user_properties": {"plan": "pro"}})) is True


def test_targeting_on_country(of_client: OpenFeatureClient) -> None:
    expect(of_client.get_string_details("color", "none", EvaluationContext("u", {"country": "DE"})),
           "red", Reason.TARGETING_MATCH, "red", {**COLOR_META, "segmentName": "Germany"})
    # "country" is the User field, not a user property of that name
    assert of_client.get_string_value(
        "color", "none", EvaluationContext("u", {"user_properties": {"country": "DE"}})) == "green"


def test_targeting_on_a_group(of_client: OpenFeatureClient) -> None:
    acme_enterprise = {"org": {"acme": {"tier": "enterprise"}}}
    enterprise: Dict[str, Any] = {"groups": {"org": ["acme"]}, "group_properties": acme_enterprise}
    expect(of_client.get_string_details("color", "none", EvaluationContext("u", enterprise)),
           "blue", Reason.TARGETING_MATCH, "blue", {**COLOR_META, "segmentName": "Enterprise orgs"})
    single_name: Dict[str, Any] = {"groups": {"org": "acme"}, "group_properties": acme_enterprise}
    assert of_client.get_string_value("color", "none", EvaluationContext("u", single_name)) == "blue"
    smb: Dict[str, Any] = {"groups": {"org": ["acme"]}, "group_properties": {"org": {"acme": {"tier": "smb"}}}}
    assert of_client.get_string_value("color", "none", EvaluationContext("u", smb)) == "green"


def test_api_level_context_is_merged(of_client: OpenFeatureClient) -> None:
    api.set_evaluation_context(EvaluationContext("global-user", {"plan": "pro"}))
    assert of_client.get_boolean_value("bool-flag", False) is True
    assert of_client.get_boolean_value("bool-flag", False, EvaluationContext(None, {"plan": "free"})) is False


# -- assignment tracking --------------------------------------------------------------------------


def test_resolution_tracks_the_assignment_evaluate_v2_would() -> None:
    with AmplitudeStandIn(flags=[COLOR_EXPERIMENT, PARENT_FLAG, CHILD_FLAG]) as server:
        def make() -> LocalEvaluationClient:
            client = LocalEvaluationClient("server-key", LocalEvaluationConfig(
                server_url=server.url, flag_config_polling_interval_millis=60_000,
                assignment_config=AssignmentConfig(api_key="analytics-key", server_url=server.url + "/2/httpapi")))
            return client

        of_client = install(AmplitudeProvider(make()))
        provider = of_client.provider
        assert isinstance(provider, AmplitudeProvider)
        de = EvaluationContext("user-1", {"country": "DE"})
        assert of_client.get_string_value("color", "none", de) == "red"
        assert of_client.get_string_value("color", "none", de) == "red"  # deduplicated
        assert of_client.get_boolean_value("child", False, EvaluationContext("user-2")) is True
        assert provider.client.flush(5)
        ours = sorted(server.events, key=lambda e: e["user_id"])

        server.reset_records()
        reference = make()
        reference.start()
        reference.evaluate_v2(User(user_id="user-1", country="DE"), {"color"})
        reference.evaluate_v2(User(user_id="user-2"), {"child"})
        reference.stop(5)
        theirs = sorted(server.events, key=lambda e: e["user_id"])

    assert len(ours) == 2
    assert [e["event_properties"] for e in ours] == [
        {"[Experiment] color.variant": "red", "[Experiment] color.details": "v7 rule:Germany"},
        {"[Experiment] parent.variant": "on", "[Experiment] child.variant": "on"},
    ]
    strip = ("time", "insert_id")
    assert [{k: v for k, v in e.items() if k not in strip} for e in ours] == [
        {k: v for k, v in e.items() if k not in strip} for e in theirs]
    stats = provider.client.stats()["assignment"]
    assert (stats["evaluated"], stats["deduplicated"], stats["skipped"]) == (3, 1, {})


def test_no_tracking_without_assignment_config(of_client: OpenFeatureClient) -> None:
    provider = of_client.provider
    assert isinstance(provider, AmplitudeProvider)
    assert of_client.get_boolean_value("bool-flag", False, PRO) is True
    assert "assignment" not in provider.client.stats()


def test_track_exposures_sends_one_exposure_per_user_flag_and_variant() -> None:
    with AmplitudeStandIn(flags=FLAGS) as server:
        client = LocalEvaluationClient("server-key", LocalEvaluationConfig(
            server_url=server.url, flag_config_polling_interval_millis=60_000,
            exposure_config=ExposureConfig(api_key="analytics-key", server_url=server.url + "/2/httpapi")))
        of_client = install(AmplitudeProvider(client, track_exposures=True))
        de = EvaluationContext("user-1", {"country": "DE"})
        assert of_client.get_string_value("color", "none", de) == "red"
        assert of_client.get_string_value("color", "none", de) == "red"  # deduplicated
        assert of_client.get_boolean_value("bool-flag", False, USER) is False  # the default variant: none
        assert of_client.get_integer_value("string-flag", 1, USER) == 1  # type mismatch: the value was not used
        assert of_client.get_string_value("missing", "x", USER) == "x"  # not found: none
        assert of_client.get_boolean_value("bool-flag", False, EvaluationContext("user-2", {"plan": "pro"})) is True
        assert client.flush(5)
        events = sorted(server.events, key=lambda e: e["user_id"])
        stats = client.stats()["exposure"]
    assert [(e["event_type"], e["user_id"], e["event_properties"]) for e in events] == [
        ("$exposure", "user-1", {"flag_key": "color", "variant": "red", "experiment_key": "exp-color-7"}),
        ("$exposure", "user-2", {"flag_key": "bool-flag", "variant": "on"}),
    ]
    assert (stats["tracked"], stats["deduplicated"]) == (2, 1)


def test_track_exposures_needs_an_exposure_config() -> None:
    with pytest.raises(ConfigurationError, match="exposure_config"):
        AmplitudeProvider(offline_client(), track_exposures=True)


def test_no_exposures_unless_asked() -> None:
    with AmplitudeStandIn(flags=FLAGS) as server:
        client = LocalEvaluationClient("server-key", LocalEvaluationConfig(
            server_url=server.url, flag_config_polling_interval_millis=60_000,
            exposure_config=ExposureConfig(api_key="analytics-key", server_url=server.url + "/2/httpapi")))
        of_client = install(AmplitudeProvider(client))
        assert of_client.get_string_value("color", "none", EvaluationContext("user-1", {"country": "DE"})) == "red"
        assert client.flush(5)
        assert server.events == []


# -- lifecycle ------------------------------------------------------------------------------------


class Recorder:
    def __init__(self, client: LocalEvaluationClient) -> None:
        self.calls: List[str] = []
        original_start, original_stop = client.start, client.stop

        def start() -> None:
            self.calls.append("start")
            original_start()

        def stop(timeout: Optional[float] = 10.0) -> None:
            self.calls.append("stop")
            original_stop(timeout)

        client.start = start  # type: ignore[method-assign]
        client.stop = stop  # type: ignore[method-assign]


def test_initialize_starts_and_shutdown_stops_the_client() -> None:
    client = offline_client()
    calls = Recorder(client).calls
    install(AmplitudeProvider(client))
    assert calls == ["start"]
    api.shutdown()
    assert calls == ["start", "stop"]


def test_lifecycle_options_leave_the_client_alone() -> None:
    client = offline_client()
    client.start()
    calls = Recorder(client).calls
    of_client = install(AmplitudeProvider(client, start_on_initialize=False, stop_on_shutdown=False))
    assert of_client.get_boolean_value("bool-flag", False, PRO) is True
    api.shutdown()
    assert calls == []
    pro_user = User(user_id="u", user_properties={"plan": "pro"})
    assert client.evaluate_v2(pro_user, {"bool-flag"})["bool-flag"].key == "on"
    client.stop()


def test_from_key_against_the_stand_in() -> None:
    with AmplitudeStandIn(flags=FLAGS, deployment_key="server-abc") as server:
        provider = AmplitudeProvider.from_key("server-abc", LocalEvaluationConfig(
            server_url=server.url, flag_config_polling_interval_millis=60_000))
        assert (provider.start_on_initialize, provider.stop_on_shutdown) == (True, True)
        of_client = install(provider)
        assert of_client.get_boolean_value("bool-flag", False, PRO) is True
        (request,) = server.requests("flags")
        assert request.header("Authorization") == "Api-Key server-abc"
        api.shutdown()
        assert provider.client.evaluate_v2(User(user_id="u"), {"string-flag"})["string-flag"].value == "hello"
        assert len(server.requests("flags")) == 1


def test_failed_start_is_a_provider_error_until_flags_arrive() -> None:
    with AmplitudeStandIn(flags=FLAGS) as server:
        server.add_fault("flags", status=503, times=None)
        events = Events(ProviderEvent.PROVIDER_READY, ProviderEvent.PROVIDER_ERROR,
                        ProviderEvent.PROVIDER_CONFIGURATION_CHANGED)
        clock = ManualClock()  # the client's background retries wait on it
        provider = AmplitudeProvider(LocalEvaluationClient("server-key", LocalEvaluationConfig(
            server_url=server.url, flag_config_polling_interval_millis=60_000, clock=clock)))
        api.set_provider(provider)
        (error,) = events.wait(ProviderEvent.PROVIDER_ERROR)
        assert error.provider_name == "amplitude-local-evaluation"
        assert error.error_code == ErrorCode.PROVIDER_NOT_READY
        assert error.message is not None and "no flags could be loaded yet" in error.message
        assert "retrying in the background" in error.message
        of_client = api.get_client()
        assert of_client.get_provider_status() == ProviderStatus.ERROR
        expect_error(of_client.get_boolean_details("bool-flag", True, PRO), True, ErrorCode.PROVIDER_NOT_READY,
                     "the Amplitude client has no flags yet")
        assert events.of(ProviderEvent.PROVIDER_READY) == []

        server.clear_faults("flags")
        assert clock.wait_for_sleepers(1)  # the poller, waiting out its backoff before the next attempt
        assert events.of(ProviderEvent.PROVIDER_READY) == []
        clock.advance(clock.next_deadline() or 0.0)
        (ready,) = events.wait(ProviderEvent.PROVIDER_READY)
        assert ready.message == "Amplitude flags loaded"
        assert ready.flags_changed == sorted(f["key"] for f in FLAGS)
        assert wait_for(lambda: of_client.get_provider_status() == ProviderStatus.READY, 5)
        assert of_client.get_boolean_value("bool-flag", False, PRO) is True
        assert events.of(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED) == []


def test_set_provider_and_wait_raises_when_no_flags_load() -> None:
    if not hasattr(api, "set_provider_and_wait"):
        pytest.skip("this OpenFeature SDK has no set_provider_and_wait")
    from openfeature.exception import ProviderNotReadyError

    with AmplitudeStandIn(flags=FLAGS) as server:
        server.add_fault("flags", status=500, times=None)
        provider = AmplitudeProvider(LocalEvaluationClient("server-key", LocalEvaluationConfig(
            server_url=server.url, flag_config_polling_interval_millis=60_000)))
        with pytest.raises(ProviderNotReadyError):
            api.set_provider_and_wait(provider)
        assert api.get_client().get_provider_status() == ProviderStatus.ERROR


def test_unusable_bootstrap_is_fatal() -> None:
    events = Events(ProviderEvent.PROVIDER_ERROR)
    provider = AmplitudeProvider(LocalEvaluationClient("server-key", LocalEvaluationConfig(
        offline=True, bootstrap_flags="{}")))
    api.set_provider(provider)
    (error,) = events.wait(ProviderEvent.PROVIDER_ERROR)
    assert error.error_code == ErrorCode.PROVIDER_FATAL
    assert error.message is not None and "the Amplitude client cannot start" in error.message
    of_client = api.get_client()
    assert wait_for(lambda: of_client.get_provider_status() == ProviderStatus.FATAL, 5)
    details = of_client.get_boolean_details("bool-flag", True, PRO)
    assert (details.value, details.error_code) == (True, ErrorCode.PROVIDER_FATAL)


def test_a_provider_can_be_initialized_again_after_shutdown() -> None:
    # The client restarts after stop() (as the official SDK's does), so an app that shuts
    # OpenFeature down and sets the provider again (test suites, reloads) keeps working.
    provider = AmplitudeProvider(offline_client())
    provider.initialize(EvaluationContext())
    provider.shutdown()
    provider.initialize(EvaluationContext())
    try:
        assert provider.resolve_boolean_details("bool-flag", False, PRO).value is True
    finally:
        provider.shutdown()


def test_unstarted_client_recovers_when_its_owner_starts_it() -> None:
    events = Events(ProviderEvent.PROVIDER_READY, ProviderEvent.PROVIDER_ERROR)
    client = offline_client()
    api.set_provider(AmplitudeProvider(client, start_on_initialize=False))
    (error,) = events.wait(ProviderEvent.PROVIDER_ERROR)
    assert error.error_code == ErrorCode.PROVIDER_NOT_READY
    assert error.message is not None and "(the client was not started)" in error.message
    client.start()
    events.wait(ProviderEvent.PROVIDER_READY)
    assert wait_for(lambda: api.get_client().get_provider_status() == ProviderStatus.READY, 5)
    assert api.get_client().get_boolean_value("bool-flag", False, PRO) is True
    client.stop()


# -- configuration changes ------------------------------------------------------------------------


def test_flag_changes_emit_configuration_changed() -> None:
    with AmplitudeStandIn(flags=FLAGS) as server:
        events = Events(ProviderEvent.PROVIDER_READY, ProviderEvent.PROVIDER_CONFIGURATION_CHANGED)
        provider = AmplitudeProvider(LocalEvaluationClient("server-key", LocalEvaluationConfig(
            server_url=server.url, flag_config_polling_interval_millis=50)))
        of_client = install(provider)
        events.wait(ProviderEvent.PROVIDER_READY)
        assert of_client.get_string_value("string-flag", "x", USER) == "hello"

        changed = [f for f in FLAGS if f["key"] not in ("string-flag", "bool-flag")]
        changed.append(static_flag("string-flag", "goodbye"))
        changed.append(static_flag("brand-new", "1"))
        server.set_flags(changed)
        (event,) = events.wait(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED)
        assert event.provider_name == "amplitude-local-evaluation"
        assert event.flags_changed == ["bool-flag", "brand-new", "string-flag"]
        assert event.message == "Amplitude flag configuration updated"
        assert of_client.get_string_value("string-flag", "x", USER) == "goodbye"
        assert of_client.get_integer_value("brand-new", 0, USER) == 1
        # The initial load happened inside initialize(): it is PROVIDER_READY, not a change.
        assert len(events.of(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED)) == 1
        assert len(events.of(ProviderEvent.PROVIDER_READY)) == 1


def test_no_events_after_shutdown(monkeypatch: pytest.MonkeyPatch) -> None:
    with AmplitudeStandIn(flags=[BOOL_FLAG]) as server:
        clock = ManualClock()
        client = LocalEvaluationClient("server-key", LocalEvaluationConfig(
            server_url=server.url, flag_config_polling_interval_millis=5_000, clock=clock))
        provider = AmplitudeProvider(client, stop_on_shutdown=False)
        emitted: List[Any] = []
        monkeypatch.setattr(provider, "emit", lambda event, details: emitted.append((event, details)))
        provider.initialize(EvaluationContext())
        server.set_flags([BOOL_FLAG, static_flag("one", "1")])
        assert clock.wait_for_sleepers(1)
        clock.advance(5)  # one polling interval: the change is downloaded
        assert wait_for(lambda: len(emitted) == 1, 5)
        assert emitted[0][0] == ProviderEvent.PROVIDER_CONFIGURATION_CHANGED
        assert emitted[0][1].flags_changed == ["one"]

        provider.shutdown()
        server.set_flags([BOOL_FLAG, static_flag("two", "2")])
        assert clock.wait_for_sleepers(1)
        clock.advance(5)
        assert wait_for(lambda: client.snapshot is not None and "two" in client.snapshot.flags.flags, 5)
        client.stop()
    assert len(emitted) == 1


def test_initialize_errors_called_directly(monkeypatch: pytest.MonkeyPatch) -> None:
    from openfeature.exception import GeneralError, ProviderNotReadyError

    with AmplitudeStandIn(flags=FLAGS) as server:
        server.add_fault("flags", status=503, times=None)
        client = LocalEvaluationClient("server-key", LocalEvaluationConfig(
            server_url=server.url, flag_config_polling_interval_millis=60_000))
        provider = AmplitudeProvider(client)
        with pytest.raises(ProviderNotReadyError) as first:
            provider.initialize(EvaluationContext())
        assert first.value.error_message is not None
        assert first.value.error_message.startswith("no flags could be loaded yet: ")
        with pytest.raises(ProviderNotReadyError) as again:
            provider.initialize(EvaluationContext())  # start() is a no-op now; the client keeps retrying
        assert again.value.error_message == (
            "no flags could be loaded yet (the client is still retrying); retrying in the background")
        provider.shutdown()

    def broken() -> None:
        raise ValueError("bad")

    other = AmplitudeProvider(offline_client())
    monkeypatch.setattr(other.client, "start", broken)
    with pytest.raises(GeneralError) as caught:
        other.initialize(EvaluationContext())
    assert caught.value.error_message == "the Amplitude client failed to start: ValueError: bad"
