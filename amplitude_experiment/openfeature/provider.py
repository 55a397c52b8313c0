"""``AmplitudeProvider``: OpenFeature flag resolution backed by a :class:`LocalEvaluationClient`."""

from __future__ import annotations

import logging
import math
import re
import threading
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Mapping, Optional, Sequence, Set, TypeVar, Union

from openfeature.evaluation_context import EvaluationContext
from openfeature.event import ProviderEventDetails
from openfeature.exception import (
    ErrorCode,
    GeneralError,
    OpenFeatureError,
    ProviderFatalError,
    ProviderNotReadyError,
    TypeMismatchError,
)
from openfeature.flag_evaluation import FlagResolutionDetails, Reason
from openfeature.provider import AbstractProvider
from openfeature.provider.metadata import Metadata

from ..evaluation import explain as reasons
from ..evaluation.compiler import CompiledFlag
from ..evaluation.explain import EvaluationDetail
from ..exceptions import ConfigurationError, FetchError, FlagConfigError
from ..local.client import LocalEvaluationClient
from ..local.config import LocalEvaluationConfig
from ..user import User
from ..variant import Variant
from ._context import context_to_user

if TYPE_CHECKING:
    from openfeature.flag_evaluation import FlagMetadata, FlagValueType

    ObjectValue = Union[Sequence[FlagValueType], Mapping[str, FlagValueType]]
else:  # FlagValueType exists only from openfeature-sdk 0.8; keep runtime hints resolvable
    ObjectValue = Union[Sequence[Any], Mapping[str, Any]]

logger = logging.getLogger("amplitude_experiment.openfeature")

#: The provider name reported by ``get_metadata()`` (and in OpenFeature events).
PROVIDER_NAME = "amplitude-local-evaluation"

#: Flag metadata keys passed on to OpenFeature (when their values are scalars).
METADATA_KEYS = ("flagType", "flagVersion", "segmentName", "experimentKey")

_TRUE = frozenset(("true", "on"))
_FALSE = frozenset(("false", "off"))
_INTEGER = re.compile(r"[+-]?[0-9]+")
_FLOAT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")

T = TypeVar("T")

# Lifecycle phases: events are only emitted once OpenFeature has seen initialize() finish.
_IDLE, _INITIALIZING, _READY, _WAITING = "idle", "initializing", "ready", "waiting"


def _variant_text(variant: Variant, wanted: str) -> str:
    """The variant's value as text: ``value``, or the key when the variant has no value."""
    value = variant.value if variant.value is not None else variant.key
    if not isinstance(value, str):
        raise TypeMismatchError(f"variant {variant.key!r} has a non-string value {value!r}; {wanted} expected")
    return value


def _to_bool(variant: Variant) -> bool:
    if isinstance(variant.value, bool):
        return variant.value
    text = _variant_text(variant, "a boolean")
    lowered = text.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise TypeMismatchError(f"variant {variant.key!r} value {text!r} is not true/false/on/off")


def _to_str(variant: Variant) -> str:
    return _variant_text(variant, "a string")


def _to_int(variant: Variant) -> int:
    value = variant.value
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = _variant_text(variant, "an integer")
    if _INTEGER.fullmatch(text):
        try:
            return int(text)
        except ValueError:  # beyond the interpreter's digit limit
            pass
    raise TypeMismatchError(f"variant {variant.key!r} value {text!r} is not an integer")


def _to_float(variant: Variant) -> float:
    value = variant.value
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    text = _variant_text(variant, "a number")
    if _FLOAT.fullmatch(text):
        number = float(text)
        if math.isfinite(number):
            return number
    raise TypeMismatchError(f"variant {variant.key!r} value {text!r} is not a finite number")


def _to_object(variant: Variant) -> ObjectValue:
    payload = variant.payload
    if isinstance(payload, (dict, list)):
        return payload
    raise TypeMismatchError(f"variant {variant.key!r} has no JSON object or array payload "
                            f"(payload is {type(payload).__name__})")


def _flag_metadata(flag: Optional[CompiledFlag], detail: EvaluationDetail) -> FlagMetadata:
    source: Dict[str, Any] = dict(flag.metadata) if flag is not None else {}
    if detail.variant is not None and detail.variant.metadata:
        source.update(detail.variant.metadata)
    if detail.segment_name is not None:
        source["segmentName"] = detail.segment_name
    out: Dict[str, Union[bool, int, float, str]] = {}
    for key in METADATA_KEYS:
        value = source.get(key)
        if isinstance(value, (bool, int, float, str)):
            out[key] = value
    if "flagVersion" in out:
        out["version"] = str(out["flagVersion"])  # OpenFeature's well-known key (telemetry hooks read it)
    return out


def _reason(detail: EvaluationDetail, flag: Optional[CompiledFlag]) -> str:
    if detail.reason == reasons.TARGETING_MATCH:
        return Reason.TARGETING_MATCH
    if detail.reason == reasons.SPLIT:
        return Reason.SPLIT
    if detail.reason == reasons.ALL_USERS:
        # Everyone gets this value only when the first segment decided without a bucket; after
        # earlier segments did not apply, it is the flag's fall-through value.
        first = flag.segments[0] if flag is not None and flag.segments else None
        if detail.segment_index == 0 and first is not None and first.bucket is None:
            return Reason.STATIC
        return Reason.DEFAULT
    return Reason.UNKNOWN


class AmplitudeProvider(AbstractProvider):
    """An OpenFeature provider that evaluates flags locally with a :class:`LocalEvaluationClient`.

    Args:
        client: the client to evaluate with (one per deployment key).
        start_on_initialize: ``initialize()`` calls ``client.start()``.
        stop_on_shutdown: ``shutdown()`` calls ``client.stop()`` (a stopped client cannot be
            started again, so neither can this provider).
        track_exposures: every successful resolution of a non-default variant also tracks a
            ``$exposure`` event for that flag (the value was handed to the caller, so the user
            was exposed to it). Needs the client's ``exposure_config``.

    Raises:
        ConfigurationError: ``track_exposures=True`` with a client without ``exposure_config``.
    """

    def __init__(self, client: LocalEvaluationClient, *, start_on_initialize: bool = True,
                 stop_on_shutdown: bool = True, track_exposures: bool = False) -> None:
        super().__init__()
        if not isinstance(client, LocalEvaluationClient):
            raise TypeError("client must be a LocalEvaluationClient")
        if track_exposures and client._exposure is None:
            raise ConfigurationError(
                "track_exposures=True needs a client configured with "
                "LocalEvaluationConfig(exposure_config=ExposureConfig(api_key=...))")
        self.client = client
        self.track_exposures = track_exposures
        self.start_on_initialize = start_on_initialize
        self.stop_on_shutdown = stop_on_shutdown
        self._phase = _IDLE
        self._phase_lock = threading.Lock()
        self._metadata = Metadata(name=PROVIDER_NAME)
        client.add_flags_listener(self._on_flags_changed)

    @classmethod
    def from_key(cls, deployment_key: str, config: Optional[LocalEvaluationConfig] = None) -> "AmplitudeProvider":
        """A provider owning a new client for ``deployment_key`` (started and stopped with the provider)."""
        return cls(LocalEvaluationClient(deployment_key, config))

    def get_metadata(self) -> Metadata:
        """The provider's name, ``amplitude-local-evaluation``."""
        return self._metadata

    # -- lifecycle ---------------------------------------------------------------------------

    def initialize(self, evaluation_context: EvaluationContext) -> None:
        """Start the client (unless ``start_on_initialize=False``) and require flags.

        Raises:
            ProviderNotReadyError: no flags could be loaded yet. OpenFeature marks the provider
                as errored; the client keeps retrying and the provider emits ``PROVIDER_READY``
                when the first flags arrive.
            ProviderFatalError: the client cannot work (unusable bootstrap flags).
        """
        with self._phase_lock:
            self._phase = _INITIALIZING
        failure: Optional[BaseException] = None
        try:
            if self.start_on_initialize:
                self.client.start()
        except FetchError as exc:
            failure = exc
        except (FlagConfigError, RuntimeError) as exc:
            with self._phase_lock:
                self._phase = _IDLE
            raise ProviderFatalError(f"the Amplitude client cannot start: {exc}") from exc
        except Exception as exc:
            with self._phase_lock:
                self._phase = _IDLE
            raise GeneralError(f"the Amplitude client failed to start: {type(exc).__name__}: {exc}") from exc
        with self._phase_lock:
            # Flags may have arrived from the background between start() failing and here. (Ones
            # arriving after this check, before the SDK records the failure, would leave its status
            # at ERROR while evaluations already succeed: a narrow window, not worth a delay.)
            if self.client.is_ready:
                self._phase = _READY
                return
            self._phase = _WAITING
        if failure is not None:
            reason = f": {failure}"
        elif self.start_on_initialize:
            reason = " (the client is still retrying)"
        else:
            reason = " (the client was not started)"
        logger.warning("No Amplitude flags yet%s; evaluations return defaults until they arrive", reason)
        raise ProviderNotReadyError(f"no flags could be loaded yet{reason}; retrying in the background") \
            from failure

    def shutdown(self) -> None:
        """Stop emitting events and, unless ``stop_on_shutdown=False``, stop the client."""
        with self._phase_lock:
            self._phase = _IDLE
        if self.stop_on_shutdown:
            self.client.stop()

    def _on_flags_changed(self, changed: Set[str]) -> None:
        with self._phase_lock:
            phase = self._phase
            if phase == _WAITING and self.client.is_ready:
                self._phase = _READY
        # Emitted outside the lock: SDK handlers may run synchronously and call back into us.
        try:
            if phase == _READY:
                self.emit_provider_configuration_changed(
                    ProviderEventDetails(flags_changed=sorted(changed), message="Amplitude flag configuration updated"))
            elif phase == _WAITING:
                logger.info("Amplitude flags loaded; the OpenFeature provider is ready")
                self.emit_provider_ready(
                    ProviderEventDetails(flags_changed=sorted(changed), message="Amplitude flags loaded"))
        except Exception:  # noqa: BLE001 - never break flag delivery over an event
            logger.exception("Could not emit an OpenFeature provider event")

    # -- resolution --------------------------------------------------------------------------

    def resolve_boolean_details(self, flag_key: str, default_value: bool,
                                evaluation_context: Optional[EvaluationContext] = None) -> FlagResolutionDetails[bool]:
        """Resolve a boolean: the variant value ``true``/``on`` or ``false``/``off`` (any case)."""
        return self._resolve(flag_key, default_value, evaluation_context, _to_bool)

    def resolve_string_details(self, flag_key: str, default_value: str,
                               evaluation_context: Optional[EvaluationContext] = None) -> FlagResolutionDetails[str]:
        """Resolve a string: the variant value (its key when it has no value)."""
        return self._resolve(flag_key, default_value, evaluation_context, _to_str)

    def resolve_integer_details(self, flag_key: str, default_value: int,
                                evaluation_context: Optional[EvaluationContext] = None) -> FlagResolutionDetails[int]:
        """Resolve an integer: the variant value, which must be a plain decimal integer."""
        return self._resolve(flag_key, default_value, evaluation_context, _to_int)

    def resolve_float_details(self, flag_key: str, default_value: float,
                              evaluation_context: Optional[EvaluationContext] = None) -> FlagResolutionDetails[float]:
        """Resolve a float: the variant value, which must be a finite decimal number."""
        return self._resolve(flag_key, default_value, evaluation_context, _to_float)

    def resolve_object_details(self, flag_key: str, default_value: ObjectValue,
                               evaluation_context: Optional[EvaluationContext] = None,
                               ) -> FlagResolutionDetails[ObjectValue]:
        """Resolve an object: the variant payload, which must be a JSON object or array."""
        return self._resolve(flag_key, default_value, evaluation_context, _to_object)

    def _resolve(self, flag_key: str, default_value: T, evaluation_context: Optional[EvaluationContext],
                 convert: Callable[[Variant], T]) -> FlagResolutionDetails[T]:
        try:
            return self._evaluate(flag_key, default_value, evaluation_context, convert)
        except OpenFeatureError as exc:
            return FlagResolutionDetails(value=default_value, reason=Reason.ERROR, error_code=exc.error_code,
                                         error_message=exc.error_message)
        except Exception as exc:  # noqa: BLE001 - resolution reports errors, it never raises
            logger.exception("Unexpected error while resolving flag %r", flag_key)
            return FlagResolutionDetails(value=default_value, reason=Reason.ERROR, error_code=ErrorCode.GENERAL,
                                         error_message=f"{type(exc).__name__}: {exc}")

    def _evaluate(self, flag_key: str, default_value: T, evaluation_context: Optional[EvaluationContext],
                  convert: Callable[[Variant], T]) -> FlagResolutionDetails[T]:
        user = context_to_user(evaluation_context)
        client = self.client
        snapshot = client.snapshot
        details = client.evaluate_details(user, (flag_key,))
        self._track_assignment(user, details)
        detail = details.get(flag_key)
        if detail is None:
            raise GeneralError(f"evaluating flag {flag_key!r} failed (see the amplitude_experiment log)")
        flag = snapshot.flags.flags.get(flag_key) if snapshot is not None else None
        metadata = _flag_metadata(flag, detail)

        def error(code: ErrorCode, message: str) -> FlagResolutionDetails[T]:
            return FlagResolutionDetails(value=default_value, reason=Reason.ERROR, error_code=code,
                                         error_message=message, flag_metadata=metadata)

        variant = detail.variant
        if detail.reason == reasons.NOT_READY:
            return error(ErrorCode.PROVIDER_NOT_READY, "the Amplitude client has no flags yet")
        if detail.reason == reasons.FLAG_NOT_FOUND:
            return error(ErrorCode.FLAG_NOT_FOUND, f"flag {flag_key!r} is not in the Amplitude flag configuration")
        if detail.reason == reasons.NO_VARIANT:
            return error(ErrorCode.FLAG_NOT_FOUND, f"flag {flag_key!r} gives no variant for this context")
        if detail.reason == reasons.FLAG_SKIPPED:
            return error(ErrorCode.PARSE_ERROR, f"flag {flag_key!r} is malformed: {detail.message}")
        if variant is None:
            return error(ErrorCode.GENERAL, f"evaluating flag {flag_key!r} failed: {detail.message}")
        if detail.reason == reasons.DEFAULT:
            # The "off" variant means "not in the flag" (evaluate() leaves it out): the
            # caller's default stands.
            return FlagResolutionDetails(value=default_value, reason=Reason.DEFAULT, variant=variant.key,
                                         flag_metadata=metadata)
        try:
            value = convert(variant)
        except TypeMismatchError as exc:
            return error(ErrorCode.TYPE_MISMATCH, f"flag {flag_key!r}: {exc.error_message}")
        if self.track_exposures:
            self._track_exposure(user, flag_key, variant)
        return FlagResolutionDetails(value=value, reason=_reason(detail, flag), variant=variant.key,
                                     flag_metadata=metadata)

    def _track_assignment(self, user: User, details: Mapping[str, EvaluationDetail]) -> None:
        # The same results evaluate_v2(user, {flag_key}) would track (the flag and its
        # dependencies), from this one evaluation rather than a second one.
        tracker = self.client._assignment
        if tracker is None:
            return
        results = {key: d.variant for key, d in details.items() if d.variant is not None}
        try:
            tracker.track(user, results)
        except Exception:  # noqa: BLE001 - tracking problems never reach the caller
            logger.exception("Unexpected error while tracking an assignment")

    def _track_exposure(self, user: User, flag_key: str, variant: Variant) -> None:
        tracker = self.client._exposure
        if tracker is None:
            return
        try:
            tracker.track_results(user, {flag_key: variant})
        except Exception:  # noqa: BLE001 - tracking problems never reach the caller
            logger.exception("Unexpected error while tracking an exposure")


__all__: List[str] = ["AmplitudeProvider", "METADATA_KEYS", "PROVIDER_NAME"]
