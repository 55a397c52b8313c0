"""One batching HTTP sender for assignment and exposure events.

Producers call :meth:`EventSender.enqueue` (O(1), never blocks, never raises). A daemon thread
sends a batch whenever ``flush_queue_size`` events wait or ``flush_interval`` passes, and
handles every response Amplitude's HTTP API can give (design.md §3):

- 200: delivered.
- 400 naming events (invalid, missing fields, silenced): those are dropped, the rest resent.
  A 400 that names none rejects the whole payload: dropped.
- 413: the batch is split in halves and resent; a single event too large is dropped.
- 429, 5xx, timeouts, connection errors: resent after exponential backoff with jitter, up to
  ``max_retries`` times, then dropped.
- any other status (e.g. 401 for a bad API key): dropped.

Resending is safe because every event carries its ``insert_id``. Every event ends either sent
or dropped with a reason; both are counted, drops are logged, and the optional callback hears
about each one.
"""

from __future__ import annotations

import collections
import json
import logging
import threading
import time
from typing import Any, Callable, Deque, Dict, List, Optional, Protocol, Sequence, Set, Tuple

import requests
from cachetools import LRUCache

from .._backoff import Backoff
from ..version import LIBRARY
from .stats import Counter, ReasonCounters

logger = logging.getLogger("amplitude_experiment.events")

EventCallback = Callable[[Dict[str, Any], int, Optional[str]], None]

# Statuses worth retrying: the payload may well succeed later.
_RETRYABLE = frozenset({408, 429, 500, 502, 503, 504})
# Amplitude's HTTP API accepts at most 2000 events and 1 MB per request (20 MB on /batch).
MAX_EVENTS_PER_REQUEST = 2000
MAX_PAYLOAD_BYTES = 1_000_000
MAX_BATCH_PAYLOAD_BYTES = 20_000_000
_WARN_INTERVAL = 10.0  # seconds between two "queue full" warnings


class PendingEvent(Protocol):
    """Something queued that becomes an event dict when its batch is sent.

    It may also offer ``to_json() -> (insert_id, JSON text)``, a faster way to the same event
    (assignment events use it); otherwise ``build()`` is encoded with :func:`encode_event`.
    """

    def build(self) -> Dict[str, Any]: ...


# One event ready to send: its insert_id (None if it has none) and its JSON as UTF-8.
_Ready = Tuple[Optional[str], bytes]

#: JSON text of an event (or any value in one): compact, non-ASCII kept, values JSON cannot
#: represent sent as their ``str()``. NaN and infinities raise ``ValueError`` (Amplitude would
#: reject the whole request over them).
encode_event: Callable[[Any], str] = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=str
).encode


class _Outcome:
    __slots__ = ("status", "body", "error", "retry_after")

    def __init__(self, status: int, body: Any = None, error: Optional[str] = None,
                 retry_after: Optional[float] = None) -> None:
        self.status = status  # 0 for a network error
        self.body = body
        self.error = error
        self.retry_after = retry_after


def _indexes_named(body: Any, size: int) -> Set[int]:
    """Event indexes a 400 body reports as invalid, missing fields or silenced."""
    named: Set[int] = set()
    if not isinstance(body, dict):
        return named
    groups: List[Any] = []
    for field in ("events_with_invalid_fields", "events_with_missing_fields"):
        by_field = body.get(field)
        if isinstance(by_field, dict):
            groups.extend(by_field.values())
    groups.append(body.get("silenced_events"))
    for group in groups:
        if isinstance(group, list):
            named.update(i for i in group if isinstance(i, int) and not isinstance(i, bool) and 0 <= i < size)
    return named


def _retry_after(response: requests.Response) -> Optional[float]:
    value = response.headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class EventSender:
    """Queues events and delivers them in batches from a daemon thread.

    Args:
        session: the ``requests.Session`` to post with (owned by the caller).
        url: the ingestion endpoint (``…/2/httpapi`` or ``…/batch``).
        api_key: the analytics API key (sent in the body, never logged).
        flush_queue_size: batch size, and how many waiting events trigger a send.
        flush_interval: seconds after which waiting events are sent anyway.
        max_retries: resends of a batch on throttling, server and network errors.
        max_queue_size: events held at most; beyond it new events are dropped and counted.
        min_id_length: sent as ``options.min_id_length`` when not ``None``.
        callback: ``callback(event, status, message)`` once per event outcome.
        timeout: connect/read timeout of one POST, in seconds.
        dedup_capacity: recent insert_ids remembered so that no insert_id is sent twice.
        name: the thread name.
    """

    def __init__(
        self,
        session: requests.Session,
        url: str,
        api_key: str,
        *,
        flush_queue_size: int = 200,
        flush_interval: float = 10.0,
        max_retries: int = 12,
        max_queue_size: int = 200_000,
        min_id_length: Optional[int] = None,
        callback: Optional[EventCallback] = None,
        timeout: Tuple[float, float] = (5.0, 15.0),
        dedup_capacity: int = 65536,
        name: str = "amplitude_experiment-events",
    ) -> None:
        self._session = session
        self.url = url
        self.destination = (url, api_key, min_id_length)
        self.max_payload_bytes = MAX_BATCH_PAYLOAD_BYTES if url.rstrip("/").endswith("/batch") else MAX_PAYLOAD_BYTES
        self.batch_size = flush_queue_size
        self.flush_interval = flush_interval
        self.max_retries = max_retries
        self.max_queue_size = max_queue_size
        options = f',"options":{{"min_id_length":{encode_event(min_id_length)}}}' if min_id_length is not None else ""
        # Every request body is this prefix, the events' JSON joined by commas, and "]}".
        self._body_prefix = f'{{"api_key":{encode_event(api_key)}{options},"events":['.encode("utf-8", "surrogatepass")
        self._callback = callback
        self._timeout = timeout
        self._name = name
        #: Waits between resends; replaceable (tests use a fast one).
        self.backoff = Backoff(base=0.5, cap=30.0, max_attempts=max_retries + 1)

        self._queue: Deque[PendingEvent] = collections.deque()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._idle = threading.Condition()
        self._flush_requested = 0
        self._in_flight = 0
        self._deadline: Optional[float] = None
        self._thread: Optional[threading.Thread] = None
        self._sent_ids: "LRUCache[str, bool]" = LRUCache(maxsize=dedup_capacity)

        self.enqueued = Counter()
        self.sent = Counter()
        self.retried = Counter()
        self.duplicates = Counter()
        self.dropped = ReasonCounters()
        self._last_warning = 0.0
        self._unwarned_drops = 0

    # -- producer side (any thread) -------------------------------------------------------------

    def enqueue(self, item: PendingEvent) -> bool:
        """Queue an event for delivery; False (and counted) if the queue is full or stopped."""
        queue = self._queue
        if self._stopping.is_set():
            self._drop_unsent("stopped", 1)
            return False
        if len(queue) >= self.max_queue_size:
            self._drop_unsent("queue_full", 1)
            return False
        queue.append(item)
        self.enqueued.increment()
        if len(queue) >= self.batch_size and not self._wake.is_set():
            self._wake.set()
        return True

    def _drop_unsent(self, reason: str, n: int) -> None:
        self.dropped.add(reason, n)
        self._unwarned_drops += n
        now = time.monotonic()
        if now - self._last_warning >= _WARN_INTERVAL:
            logger.warning("Dropped %d event(s) that could not be queued (%s); queue holds %d of at most %d",
                           self._unwarned_drops, reason, len(self._queue), self.max_queue_size)
            self._last_warning = now
            self._unwarned_drops = 0

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    @property
    def in_flight(self) -> int:
        return self._in_flight

    # -- lifecycle ------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self.running:
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def flush(self, timeout: Optional[float] = None) -> bool:
        """Send everything queued now; wait up to ``timeout`` s. True if the queue drained."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._idle:
            self._flush_requested += 1
        self._wake.set()
        if not self.running:
            return not self._queue
        with self._idle:
            while self._queue or self._in_flight:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._idle.wait(remaining if remaining is None else min(remaining, 0.1))
        return True

    def stop(self, timeout: Optional[float] = 10.0) -> None:
        """Flush what is queued within ``timeout`` seconds, then stop the thread.

        Events not delivered by then are dropped with reason ``"shutdown"`` and logged. Never
        waits longer than ``timeout`` (a stalled socket or DNS lookup included).
        """
        began = time.monotonic()
        self._deadline = None if timeout is None else began + timeout
        self._stopping.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        left = len(self._queue)
        if left:
            self._drop_queued(self._take(left), began + (timeout or 0.0) + 0.5)
        if left or self._in_flight:
            logger.warning("Stopped with %d event(s) undelivered and %d still in flight after %.1f s",
                           left, self._in_flight, time.monotonic() - began)

    def _drop_queued(self, items: List[PendingEvent], callback_deadline: float) -> None:
        """Account for events that stop() could not deliver (the callback hears of each, time allowing)."""
        self.dropped.add("shutdown", len(items))
        if self._callback is None:
            return
        message = "not delivered before stop()"
        for index, item in enumerate(items):
            if time.monotonic() >= callback_deadline:
                logger.warning("No callback for %d undelivered event(s): stop() ran out of time",
                               len(items) - index)
                return
            try:
                self._callback(item.build(), 0, message)
            except Exception:  # noqa: BLE001
                logger.exception("Event callback raised")

    def discard_queue(self) -> int:
        """Forget every queued event without sending it (used in a forked child)."""
        n = len(self._queue)
        self._queue.clear()
        return n

    # -- the sending thread ---------------------------------------------------------------------

    def _take(self, n: int) -> List[PendingEvent]:
        queue = self._queue
        taken = []
        for _ in range(min(n, len(queue))):
            try:
                taken.append(queue.popleft())
            except IndexError:
                break
        return taken

    def _run(self) -> None:
        next_flush = time.monotonic() + self.flush_interval
        while True:
            self._wake.wait(max(0.0, next_flush - time.monotonic()))
            self._wake.clear()
            stopping = self._stopping.is_set()
            with self._idle:
                flush_all = self._flush_requested > 0 or stopping or time.monotonic() >= next_flush
                self._flush_requested = 0
            try:
                self._drain(flush_all)
            except Exception:  # noqa: BLE001 - the sender must outlive any bug in one batch
                logger.exception("Unexpected error in the event sender; continuing")
            if flush_all:
                next_flush = time.monotonic() + self.flush_interval
            with self._idle:
                self._idle.notify_all()
            if stopping:
                return

    def _drain(self, flush_all: bool) -> None:
        while self._queue and (flush_all or len(self._queue) >= self.batch_size):
            if self._past_deadline():
                return
            # A backlog (a burst, or a sender starved of CPU by busy request threads) goes out in
            # requests as large as Amplitude accepts, so the queue drains instead of overflowing.
            backlog = len(self._queue)
            size = self.batch_size if backlog < 2 * self.batch_size else min(backlog, MAX_EVENTS_PER_REQUEST)
            items = self._take(max(size, self.batch_size))
            with self._idle:
                self._in_flight = len(items)
            try:
                events = self._build(items)
                if events:
                    self._deliver(events)
            finally:
                with self._idle:
                    self._in_flight = 0
                    self._idle.notify_all()

    def _build(self, items: Sequence[PendingEvent]) -> List[_Ready]:
        """Each item as (insert_id, JSON bytes); one that cannot be built or encoded is dropped."""
        ready: List[_Ready] = []
        for item in items:
            try:
                to_json = getattr(item, "to_json", None)
                if to_json is not None:
                    insert_id, text = to_json()
                else:
                    event = item.build()
                    insert_id, text = event.get("insert_id"), encode_event(event)
                data = text.encode("utf-8", "surrogatepass")
            except Exception as exc:  # noqa: BLE001 - one bad event must not cost the batch
                logger.exception("Could not build an event; dropping it")
                self.dropped.add("build_error")
                self._tell_unbuildable(item, exc)
                continue
            if insert_id is not None:
                if insert_id in self._sent_ids:
                    self.duplicates.increment()
                    continue
                self._sent_ids[insert_id] = True
            ready.append((insert_id, data))
        return ready

    def _tell_unbuildable(self, item: PendingEvent, error: Exception) -> None:
        """The callback hears of an event dropped before sending, if it can be built at all."""
        if self._callback is None:
            return
        try:
            event = item.build()
        except Exception:  # noqa: BLE001 - already logged
            return
        try:
            self._callback(event, 0, f"event could not be encoded: {error.__class__.__name__}: {error}")
        except Exception:  # noqa: BLE001 - a user's callback must not stop delivery
            logger.exception("Event callback raised")

    def _past_deadline(self) -> bool:
        return self._deadline is not None and time.monotonic() >= self._deadline

    def _encode(self, events: List[_Ready]) -> bytes:
        return b"".join((self._body_prefix, b",".join([data for _, data in events]), b"]}"))

    def _post(self, body: bytes) -> _Outcome:
        timeout = self._timeout
        if self._deadline is not None:  # never outlive stop()'s bound by much
            left = max(0.1, self._deadline - time.monotonic())
            timeout = (min(timeout[0], left), min(timeout[1], left))
        try:
            response = self._session.post(self.url, data=body,
                                          headers={"Content-Type": "application/json", "Accept": "*/*",
                                                   "User-Agent": LIBRARY},
                                          timeout=timeout)
        except requests.RequestException as exc:
            return _Outcome(0, error=f"{exc.__class__.__name__}: {exc}")
        try:
            try:
                answer = response.json()
            except ValueError:
                answer = None
            return _Outcome(response.status_code, answer, retry_after=_retry_after(response))
        finally:
            response.close()

    def _deliver(self, events: List[_Ready]) -> None:
        failures = 0
        while events:
            body = self._encode(events)
            if len(body) > self.max_payload_bytes:  # Amplitude would answer 413: split without asking
                if len(events) == 1:
                    self._finish(events, 413, "event too large for the ingestion API", reason="too_large")
                    return
                half = len(events) // 2
                self._deliver(events[:half])
                self._deliver(events[half:])
                return
            outcome = self._post(body)
            status = outcome.status
            if status == 200:
                self._finish(events, 200, "Event sent successfully.", sent=True)
                return
            if status == 400:
                named = _indexes_named(outcome.body, len(events))
                if not named:
                    self._finish(events, 400, f"payload rejected: {self._describe(outcome)}", reason="invalid")
                    return
                bad = [e for i, e in enumerate(events) if i in named]
                self._finish(bad, 400, f"event rejected: {self._describe(outcome)}", reason="invalid")
                events = [e for i, e in enumerate(events) if i not in named]
                continue
            if status == 413:
                if len(events) == 1:
                    self._finish(events, 413, "event too large for the ingestion API", reason="too_large")
                    return
                half = len(events) // 2
                self._deliver(events[:half])
                self._deliver(events[half:])
                return
            if status == 0 or status in _RETRYABLE:
                failures += 1
                if failures > self.max_retries:
                    self._finish(events, status, f"gave up after {failures} attempts: {self._describe(outcome)}",
                                 reason="max_retries")
                    return
                wait = self.backoff.delay(failures, outcome.retry_after)
                if self._deadline is not None:
                    left = self._deadline - time.monotonic()
                    if left <= wait:
                        self._finish(events, status, f"not delivered before stop(): {self._describe(outcome)}",
                                     reason="shutdown")
                        return
                logger.debug("Event batch of %d failed (%s); retry %d in %.2f s", len(events),
                             self._describe(outcome), failures, wait)
                self.retried.increment()
                if self._stopping.wait(wait) and self._deadline is None:
                    pass  # stopping without a deadline: keep retrying until done
                continue
            self._finish(events, status, f"rejected: {self._describe(outcome)}", reason="rejected")
            return

    @staticmethod
    def _describe(outcome: _Outcome) -> str:
        if outcome.status == 0:
            return outcome.error or "network error"
        error = outcome.body.get("error") if isinstance(outcome.body, dict) else None
        return f"HTTP {outcome.status}" + (f" ({error})" if error else "")

    def _finish(self, events: List[_Ready], status: int, message: str, *, sent: bool = False,
                reason: Optional[str] = None) -> None:
        if sent:
            for _ in events:
                self.sent.increment()
        else:
            assert reason is not None
            self.dropped.add(reason, len(events))
            logger.warning("Dropped %d event(s) (%s): %s", len(events), reason, message)
        callback = self._callback
        if callback is None:
            return
        for _, data in events:
            try:
                callback(json.loads(data), status, message)  # the event exactly as it was sent
            except Exception:  # noqa: BLE001 - a user's callback must not stop delivery
                logger.exception("Event callback raised")

    def stats(self) -> Dict[str, Any]:
        """Counters of this sender."""
        return {
            "enqueued": self.enqueued.value,
            "sent": self.sent.value,
            "retried": self.retried.value,
            "duplicates": self.duplicates.value,
            "dropped": self.dropped.snapshot(),
            "queue_depth": len(self._queue),
            "in_flight": self._in_flight,
        }
