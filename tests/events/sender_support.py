"""Helpers shared by the event sender tests (not a test module)."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import requests

from amplitude_experiment._backoff import Backoff
from amplitude_experiment.events.sender import EventSender
from amplitude_experiment.testing import ManualClock

Outcome = Tuple[str, int, Optional[str]]


class Item:
    """A queued event whose dict is fixed up front."""

    def __init__(self, n: int, user_id: Optional[str] = None, size: int = 0, **fields: Any) -> None:
        self.event: Dict[str, Any] = {"event_type": "test", "user_id": user_id or f"user-{n:06d}",
                                      "insert_id": f"id-{n}", "time": 1}
        if size:
            self.event["event_properties"] = {"blob": "x" * size}
        for name, value in fields.items():
            if value is None:
                self.event.pop(name, None)
            else:
                self.event[name] = value

    def build(self) -> Dict[str, Any]:
        return dict(self.event)


def make_sender(session: requests.Session, url: str, outcomes: Optional[List[Outcome]] = None,
                clock: Optional[ManualClock] = None, **options: Any) -> EventSender:
    """A sender with small batches, a 60 s interval, 5 retries and a jitter-free backoff.

    Backoff(base=1, cap=30, no jitter): the n-th retry waits 0.5, 1, 2, 4 ... seconds.
    """
    options.setdefault("flush_queue_size", 10)
    options.setdefault("flush_interval", 60.0)
    options.setdefault("max_retries", 5)
    if clock is not None:
        options["clock"] = clock
    if outcomes is not None:
        options["callback"] = lambda event, status, message: outcomes.append(
            (event.get("insert_id"), status, message))
    sender = EventSender(session, url, "analytics-key", **options)
    sender.backoff = Backoff(base=1.0, cap=30.0, random_fn=lambda: 0.0)
    return sender


def batch_sizes(requests_: List[Any]) -> List[int]:
    return [len(r.json()["events"]) for r in requests_]
