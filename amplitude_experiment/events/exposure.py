"""Exposure events: ``$exposure`` with ``flag_key``, ``variant`` and ``experiment_key``.

One per user, flag, variant and day. Tracked automatically (``EvaluateOptions``), none is sent
for a default variant or for a variant whose metadata says ``trackExposure: false`` (as the
official SDK skips it).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional

from .._clock import SYSTEM_CLOCK, Clock
from ..variant import Variant
from ..version import LIBRARY
from .dedup import KEY_MASK, SeenKeys
from .insert_id import exposure_insert_id
from .sender import EventSender
from .stats import Counter, ReasonCounters

EXPOSURE_EVENT_TYPE = "$exposure"
_DAY_SECONDS = 86_400.0


class Exposure:
    """One queued exposure (immutable)."""

    __slots__ = ("user_id", "device_id", "time", "flag_key", "variant", "experiment_key")

    def __init__(self, user_id: Optional[str], device_id: Optional[str], time_millis: int, flag_key: str,
                 variant: Optional[str], experiment_key: Optional[str]) -> None:
        self.user_id = user_id
        self.device_id = device_id
        self.time = time_millis
        self.flag_key = flag_key
        self.variant = variant
        self.experiment_key = experiment_key

    def build(self) -> Dict[str, Any]:
        properties: Dict[str, Any] = {"flag_key": self.flag_key}
        if self.variant is not None:
            properties["variant"] = self.variant
        if self.experiment_key is not None:
            properties["experiment_key"] = self.experiment_key
        event: Dict[str, Any] = {"event_type": EXPOSURE_EVENT_TYPE}
        if self.user_id is not None:
            event["user_id"] = self.user_id
        if self.device_id is not None:
            event["device_id"] = self.device_id
        event.update({
            "event_properties": properties,
            "insert_id": exposure_insert_id(self.user_id, self.device_id, self.flag_key, self.variant, self.time),
            "library": LIBRARY,
            "time": self.time,
        })
        return event


def _text(value: Any) -> Optional[str]:
    """Amplitude takes ids and keys as text only: anything else is sent as its text."""
    return value if value is None or type(value) is str else str(value)


class ExposureTracker:
    """Queues deduplicated exposure events.

    Args:
        sender: where events go.
        cache_capacity: how many recent (user, flag, variant, day) keys are remembered.
        clock: gives the wall-clock time of events and their day; tests pass a ``ManualClock``.
    """

    def __init__(self, sender: EventSender, cache_capacity: int, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.sender = sender
        self._seen = SeenKeys(cache_capacity)
        self._time: Callable[[], float] = clock.time
        self.__init_counters()

    def __init_counters(self) -> None:
        self.tracked = Counter()
        self.deduplicated = Counter()
        self.skipped = ReasonCounters()

    def track_results(self, user: Any, results: Dict[str, Variant]) -> None:
        """An exposure for every variant in ``results`` except default ones and those whose
        metadata has ``trackExposure: false``."""
        for flag_key, variant in results.items():
            metadata = variant.metadata or {}
            if metadata.get("default"):
                self.skipped.add("default_variant")
                continue
            if metadata.get("trackExposure") is False:
                self.skipped.add("track_exposure_false")
                continue
            self.track(user, flag_key, variant.key, metadata.get("experimentKey"))

    def track(self, user: Any, flag_key: str, variant: Optional[str], experiment_key: Optional[str]) -> bool:
        """Queue one exposure unless it was already tracked today; True if queued."""
        user_id = _text(getattr(user, "user_id", None))
        device_id = _text(getattr(user, "device_id", None))
        if not user_id and not device_id:
            self.skipped.add("no_user_or_device_id")
            return False
        flag_key, variant, experiment_key = str(flag_key), _text(variant), _text(experiment_key)
        now = self._time()
        day = now // _DAY_SECONDS
        key = hash((user_id, device_id, flag_key, variant, day)) & KEY_MASK
        if self._seen.seen(key) or not self._seen.first_time(key, day):
            self.deduplicated.increment()
            return False
        self.tracked.increment()
        return self.sender.enqueue(Exposure(user_id, device_id, int(now * 1000), flag_key, variant, experiment_key))

    def reinit_after_fork(self, sender: EventSender) -> None:
        """Use a fresh sender and lock in a forked child; dedup memory is kept, counters restart."""
        self.sender = sender
        self._seen.reset_lock()
        self.__init_counters()

    def stats(self) -> Dict[str, Any]:
        return {
            "tracked": self.tracked.value,
            "deduplicated": self.deduplicated.value,
            "skipped": self.skipped.snapshot(),
        }
