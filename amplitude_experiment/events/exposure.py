"""Exposure events: ``$exposure`` with ``flag_key``, ``variant`` and ``experiment_key``.

One per user, flag, variant and day; none for default variants when tracked automatically.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, Optional

from ..variant import Variant
from ..version import LIBRARY
from .dedup import SeenCache
from .insert_id import exposure_insert_id
from .sender import EventSender
from .stats import Counter, ReasonCounters

EXPOSURE_EVENT_TYPE = "$exposure"


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


class ExposureTracker:
    """Queues deduplicated exposure events.

    Args:
        sender: where events go.
        cache_capacity: how many recent (user, flag, variant, day) keys are remembered.
        clock: wall-clock seconds; injectable for tests.
        dedup_timer: the TTL cache's clock; injectable for tests.
    """

    def __init__(self, sender: EventSender, cache_capacity: int, clock: Callable[[], float] = time.time) -> None:
        self.sender = sender
        self._seen = SeenCache(cache_capacity, timer=clock)
        self._clock = clock
        self.__init_counters()

    def __init_counters(self) -> None:
        self.tracked = Counter()
        self.deduplicated = Counter()
        self.skipped = ReasonCounters()

    def track_results(self, user: Any, results: Dict[str, Variant]) -> None:
        """An exposure for every non-default variant in ``results``."""
        for flag_key, variant in results.items():
            metadata = variant.metadata or {}
            if metadata.get("default"):
                self.skipped.add("default_variant")
                continue
            self.track(user, flag_key, variant.key, metadata.get("experimentKey"))

    def track(self, user: Any, flag_key: str, variant: Optional[str], experiment_key: Optional[str]) -> bool:
        """Queue one exposure unless it was already tracked today; True if queued."""
        user_id = getattr(user, "user_id", None)
        device_id = getattr(user, "device_id", None)
        if not user_id and not device_id:
            self.skipped.add("no_user_or_device_id")
            return False
        now = self._clock()
        if not self._seen.first_time((user_id, device_id, flag_key, variant, now // 86_400.0), now):
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
