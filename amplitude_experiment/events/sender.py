"""One batching HTTP sender for assignment and exposure events.

Producers call :meth:`EventSender.enqueue` (O(1), never blocks, never raises). A daemon thread
sends a batch whenever ``flush_queue_size`` events wait or ``flush_interval`` passes, and
handles every answer Amplitude's HTTP V2 API documents (design.md §3):

- 200: delivered.
- 400 naming events (``events_with_invalid_id_lengths``, ``events_with_missing_fields``,
  ``events_with_invalid_fields``, ``silenced_events``): exactly those are dropped, counted per
  reason, and the rest is resent at once. A 400 with ``missing_field``, an ``Invalid API key``
  error, or naming no event rejects the request as such: the batch is dropped (logged once at
  ERROR with the fix for the first two).
- 413, or a body over the byte limit: the batch is split in halves; one event too large is dropped.
- 429: events over the daily quota are dropped; throttled ones are resent after backoff, the
  others at once.
- 408, 5xx, timeouts, connection errors: resent after backoff (``Retry-After`` honoured), up to
  ``max_retries`` times, then dropped.
- any other status (e.g. 404 for a wrong URL): dropped.

With ``claims`` (a fleet, e.g. ``RedisFleet``), each batch's insert_ids are claimed fleet-wide on
this thread after the per-process duplicate check: events another process claimed first are
dropped (reason ``"claimed_elsewhere"``, no callback, like a duplicate); claims of events that
end undelivered (``max_retries``, ``shutdown``, ``unconfirmed``) are released so another process
may send them. Events Amplitude rejected (400, 413, quota) keep their claims.

Above the sustainable rate (events made faster than the endpoint takes them, or the endpoint
down), this is what happens:

- Queued: each event as a small tuple of references (its ids, the time, the compiled outcomes
  shared with the flag snapshot); its JSON is written only when it is about to be sent.
  Measured with ``tracemalloc`` (``benchmarks/bench_dedup.py`` prints it), a queued assignment
  holds ~240 bytes with 1 flag, ~360 with 10 and ~580 with 40 (ids of ~25 characters included),
  plus its dedup entry (~70-140 bytes, bounded by ``cache_capacity``).
- The bound: ``max_queue_size`` events (``AssignmentConfig.max_queue_size``, default 200,000,
  i.e. ~50-120 MB). Beyond it new events are dropped, counted as ``dropped["queue_full"]`` in
  ``stats()`` and reported in a rate-limited warning, so memory stays bounded instead of
  growing; nothing already queued is dropped for it.
- On its way: one request's worth at a time per sending thread (as many events as fit in
  Amplitude's limits, 2,000 events and 1 MB on ``/2/httpapi``, by the size of recent events).
  While more than a request's worth waits, a second thread sends alongside: most of a request's
  time is spent waiting for the answer (and, with request threads busy, for the interpreter
  lock after it), so two requests on their way drain a backlog about twice as fast. It starts
  no request once ``stop()`` was called and ends with the backlog. Each thread holds at most
  about one request's JSON (~2 MB with the body).
- Sent insert_ids are remembered (``dedup_capacity``) as 59-bit hashes, 32 bytes each.

Resending is safe because every event carries its ``insert_id``. Every event ends either sent
or dropped with a reason; both are counted, drops are logged, and the optional callback hears
about each one. All waiting goes through an injectable :class:`~amplitude_experiment._clock.Clock`.
"""

from __future__ import annotations

import collections
import json
import logging
import threading
from typing import Any, Callable, Deque, Dict, List, Optional, Protocol, Sequence, Set, Tuple

import requests
import urllib3

from .._backoff import Backoff
from .._clock import SYSTEM_CLOCK, Clock
from .._http import parse_retry_after, verify_of
from ..version import USER_AGENT
from .answers import Rejection, Throttling
from .claims import InsertIdClaims
from .stats import Counter, ReasonCounters

_logger = logging.getLogger("amplitude_experiment.events")

EventCallback = Callable[[Dict[str, Any], int, Optional[str]], None]

# Statuses worth retrying: the payload may well succeed later.
_RETRYABLE = frozenset({408, 429, 500, 502, 503, 504})
#: Amplitude's HTTP V2 API accepts at most 2000 events and 1 MB per request (20 MB on /batch).
MAX_EVENTS_PER_REQUEST = 2000
MAX_PAYLOAD_BYTES = 1_000_000
MAX_BATCH_PAYLOAD_BYTES = 20_000_000
#: ``stop(timeout)`` returns within ``timeout + STOP_MARGIN`` seconds: the margin lets the last
#: request started before the deadline finish, so that what was counted is what Amplitude got.
STOP_MARGIN = 0.5
_WARN_INTERVAL = 10.0  # seconds between two warnings of the same kind
_DEFAULT_MIN_ID_LENGTH = 5  # Amplitude's, when the request sets no options.min_id_length
_DAY_SECONDS = 86_400
# A sent insert_id is remembered as a 60-bit int (two 30-bit digits, 32 bytes) whose top bit is
# set: an int object made for it (``setdefault(key, key) is key`` tells a new one), never one of
# the small ints Python shares.
_SENT_KEY_MASK = (1 << 59) - 1
_SENT_KEY_BIT = 1 << 59
#: Drop reasons after which nobody has the event: its fleet claim is released.
_RELEASED_ON = frozenset({"max_retries", "shutdown", "unconfirmed"})


class EventObject(Protocol):
    """Something queued that becomes an event dict when its batch is sent.

    It may also offer ``to_json() -> (insert_id, JSON text)``, a faster way to the same event;
    otherwise ``build()`` is encoded with :func:`encode_event`.
    """

    def build(self) -> Dict[str, Any]: ...


class EventKind(Protocol):
    """Writes queued tuples whose first item is this object (see :data:`PendingEvent`)."""

    def build(self, item: Any) -> Dict[str, Any]: ...

    def to_json(self, item: Any) -> Tuple[Optional[str], str]: ...

    def ready(self, item: Any) -> Tuple[Optional[str], bytes]:
        """``to_json`` with the text encoded as UTF-8 (what is posted)."""
        ...


#: What producers queue: an :class:`EventObject`, or (cheaper to make on the request path) a
#: tuple ``(kind, *fields)`` whose ``kind`` (an :class:`EventKind`) writes it on the sending thread.
PendingEvent = Any



# One event ready to send: its insert_id (None if it has none) and its JSON as UTF-8.
_Ready = Tuple[Optional[str], bytes]

#: JSON text of an event (or any value in one): compact, non-ASCII kept, values JSON cannot
#: represent sent as their ``str()``. NaN and infinities raise ``ValueError`` (Amplitude would
#: reject the whole request over them).
encode_event: Callable[[Any], str] = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=str
).encode


def pending_json(item: PendingEvent) -> Tuple[Optional[str], str]:
    """(insert_id, JSON text) of a queued event: exactly what the sender posts for it."""
    if type(item) is tuple:
        kind: EventKind = item[0]
        return kind.to_json(item)
    to_json = getattr(item, "to_json", None)
    if to_json is not None:
        insert_id, text = to_json()
        return insert_id, text
    event = item.build()
    return event.get("insert_id"), encode_event(event)


def pending_build(item: PendingEvent) -> Dict[str, Any]:
    """The event dict of a queued event (what the callback hears about)."""
    if type(item) is tuple:
        kind: EventKind = item[0]
        return kind.build(item)
    event: Dict[str, Any] = item.build()
    return event


def _utf8(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        # Lone surrogates can only sit inside JSON strings: written as \\uXXXX escapes they stay
        # valid JSON and valid UTF-8, so one odd string cannot make Amplitude reject the batch.
        return text.encode("utf-8", "backslashreplace")


def _maybe_received(error: requests.RequestException) -> bool:
    """Whether a failed POST may still have reached Amplitude (it was sent, but no answer came)."""
    if isinstance(error, requests.ReadTimeout):
        return True
    if not isinstance(error, requests.ConnectionError) or isinstance(error, requests.ConnectTimeout):
        return False
    cause: Any = error.args[0] if error.args else None
    reason = getattr(cause, "reason", None)  # urllib3's MaxRetryError names what failed
    return not isinstance(reason, (urllib3.exceptions.NewConnectionError, urllib3.exceptions.ConnectTimeoutError))


class _Outcome:
    __slots__ = ("status", "body", "error", "retry_after", "maybe_received")

    def __init__(self, status: int, body: Any = None, error: Optional[str] = None,
                 retry_after: Optional[float] = None, maybe_received: bool = False) -> None:
        self.status = status  # 0 for a network error
        self.body = body
        self.error = error
        self.retry_after = retry_after
        self.maybe_received = maybe_received  # no answer, but the request may have arrived

    def describe(self) -> str:
        if self.status == 0:
            return self.error or "network error"
        error = self.body.get("error") if isinstance(self.body, dict) else None
        if isinstance(error, str) and not error.startswith("Invalid API key"):  # that one echoes the key
            return f"HTTP {self.status} ({error[:200]})"
        return f"HTTP {self.status}"


class _Attempt:
    """A batch to post, after ``wait`` seconds when it is a retry (``failures`` > 0)."""

    __slots__ = ("events", "failures", "wait", "outcome")

    def __init__(self, events: List[_Ready], failures: int = 0, wait: float = 0.0,
                 outcome: Optional[_Outcome] = None) -> None:
        self.events = events
        self.failures = failures
        self.wait = wait
        self.outcome = outcome


class EventSender:
    """Queues events and delivers them in batches from a daemon thread.

    Thread-safe: any thread may call :meth:`enqueue`; :meth:`start`, :meth:`flush` and
    :meth:`stop` are meant for the owner.

    Args:
        session: the ``requests.Session`` to post with (owned by the caller).
        url: the full ingestion URL (``…/2/httpapi`` or ``…/batch``).
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
        clock: time and waits (tests pass ``amplitude_experiment.testing.ManualClock``).
        logger: where messages go (default ``amplitude_experiment.events``).
        claims: fleet-wide insert_id claims (see the module docstring); ``None`` for this process alone.
    """

    # Slots keep attribute reads on the enqueue path fast (an instance dict this large is not).
    __slots__ = (
        "_session", "url", "destination", "max_payload_bytes", "batch_size", "flush_interval", "max_retries",
        "max_queue_size", "min_id_length", "_body_prefix", "_callback", "_timeout", "_name", "_clock", "_log",
        "backoff", "_queue", "_wake", "_stopping", "_accepting", "_abort", "_idle", "_flush_requested", "_in_flight",
        "_deadline", "_stop_timeout", "_cycle_seconds", "_fits", "_thread", "_helper", "_local", "_sent_now",
        "_sent_before", "_sent_generation",
        "enqueued", "sent", "retried",
        "duplicates", "dropped", "_warn_lock", "_abandon_lock", "_last_unqueued_warning", "_warned_unqueued",
        "_last_warning", "_suppressed", "_errors_logged", "_claims",
    )

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
        clock: Clock = SYSTEM_CLOCK,
        logger: Optional[logging.Logger] = None,
        claims: Optional[InsertIdClaims] = None,
    ) -> None:
        self._session = session
        self._claims = claims
        self.url = url
        self.destination = (url, api_key, min_id_length)
        self.max_payload_bytes = MAX_BATCH_PAYLOAD_BYTES if url.rstrip("/").endswith("/batch") else MAX_PAYLOAD_BYTES
        self.batch_size = min(flush_queue_size, MAX_EVENTS_PER_REQUEST)
        self.flush_interval = flush_interval
        self.max_retries = max_retries
        self.max_queue_size = max_queue_size
        self.min_id_length = min_id_length
        options = f',"options":{{"min_id_length":{encode_event(min_id_length)}}}' if min_id_length is not None else ""
        # Every request body is this prefix, the events' JSON joined by commas, and "]}".
        self._body_prefix = _utf8(f'{{"api_key":{encode_event(api_key)}{options},"events":[')
        self._callback = callback
        self._timeout = timeout
        self._name = name
        self._clock = clock
        self._log = logger if logger is not None else _logger
        #: Waits between resends; replaceable (tests use a deterministic one).
        self.backoff = Backoff(base=0.5, cap=30.0)

        self._queue: Deque[PendingEvent] = collections.deque()
        self._wake = threading.Event()  # a batch is due, a flush was asked for, or stop()
        self._stopping = threading.Event()
        self._accepting = True  # False from stop() until start(): read by enqueue without a call
        self._abort = threading.Event()  # stop() gave up waiting: end every wait now
        self._idle = threading.Condition()
        self._flush_requested = 0
        self._in_flight = 0
        self._deadline: Optional[float] = None
        self._stop_timeout: Optional[float] = None
        self._cycle_seconds = 0.0  # how long the last batch took (build + post), for stop()
        self._fits = MAX_EVENTS_PER_REQUEST  # events that fit in one request (see _learn_size)
        self._thread: Optional[threading.Thread] = None
        # A second sending thread, while a backlog lasts (see _help).
        self._helper: Optional[threading.Thread] = None
        # Per sending thread: events of its current batch not yet settled (see _send_batch).
        self._local = threading.local()
        # insert_ids sent lately, in two generations (like ``dedup.SeenKeys``): the newest
        # ``dedup_capacity // 2`` to ``dedup_capacity`` are remembered, for a set lookup each.
        # Kept as 59-bit hashes (32 bytes each, the id strings ~100): a wrong "sent" needs two
        # insert_ids with one hash among 65,536, a chance below 2e-13 per event, and is counted
        # as a duplicate. Dicts mapping each hash to itself: ``setdefault`` is one atomic
        # check-and-add, so the two sending threads cannot both send one insert_id.
        self._sent_now: Dict[int, int] = {}
        self._sent_before: Dict[int, int] = {}
        self._sent_generation = max(1, dedup_capacity // 2)

        self.enqueued = Counter()
        self.sent = Counter()
        self.retried = Counter()
        self.duplicates = Counter()
        self.dropped = ReasonCounters()
        self._warn_lock = threading.Lock()
        self._abandon_lock = threading.Lock()
        self._last_unqueued_warning = float("-inf")
        self._warned_unqueued: Dict[str, int] = {}
        self._last_warning: Dict[str, float] = {}
        self._suppressed: Dict[str, int] = {}
        self._errors_logged: Set[str] = set()

    # -- producer side (any thread) -------------------------------------------------------------

    def enqueue(self, item: PendingEvent) -> bool:
        """Queue an event for delivery; False (and counted) if the queue is full or stopped."""
        queue = self._queue
        if not self._accepting:
            self._drop_unqueued("stopped")
            return False
        if len(queue) >= self.max_queue_size:
            self._drop_unqueued("queue_full")
            return False
        queue.append(item)
        self.enqueued.increment()
        if len(queue) >= self.batch_size and not self._wake.is_set():
            self._wake.set()
        return True

    def _drop_unqueued(self, reason: str) -> None:
        self.dropped.add(reason)
        now = self._clock.monotonic()
        if now - self._last_unqueued_warning >= _WARN_INTERVAL:
            self._report_unqueued(now)

    def _report_unqueued(self, now: float, force: bool = False) -> None:
        """Warn with how many events could not be queued since the previous such warning."""
        if not self._warn_lock.acquire(blocking=False):
            return  # another thread is warning right now
        try:
            if not force and now - self._last_unqueued_warning < _WARN_INTERVAL:
                return
            for reason in ("queue_full", "stopped"):
                total = self.dropped.get(reason)
                since = total - self._warned_unqueued.get(reason, 0)
                if since <= 0:
                    continue
                self._warned_unqueued[reason] = total
                self._last_unqueued_warning = now
                if reason == "queue_full":
                    self._log.warning(
                        "Dropped %d event(s) since the last warning (%d in all): the event queue is full "
                        "(%d events) because events are made faster than %s takes them; new events are "
                        "dropped until it drains", since, total, self.max_queue_size, self.url)
                else:
                    self._log.warning("Dropped %d event(s) tracked after stop() since the last warning (%d in all)",
                                      since, total)
        finally:
            self._warn_lock.release()

    @property
    def queue_depth(self) -> int:
        """Events waiting to be sent."""
        return len(self._queue)

    # -- lifecycle ------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether the sending thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the sending thread (again after :meth:`stop`). Idempotent."""
        if self.running:
            return
        self._stopping.clear()
        self._accepting = True
        self._abort.clear()
        self._deadline = None
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def flush(self, timeout: Optional[float] = None) -> bool:
        """Send everything queued now; wait up to ``timeout`` s (on the clock). True if all was handled."""
        clock = self._clock
        deadline = None if timeout is None else clock.monotonic() + timeout
        with self._idle:
            self._flush_requested += 1
        self._wake.set()
        if not self.running:
            return not self._queue
        with self._idle:
            while self._queue or self._in_flight:
                if deadline is not None and clock.monotonic() >= deadline:
                    return False
                self._idle.wait(0.05)
        return True

    def stop(self, timeout: Optional[float] = 10.0) -> None:
        """Send what is queued within ``timeout`` seconds, then stop the thread.

        Returns within ``timeout + STOP_MARGIN`` seconds (0.5 s), whatever the network does: no
        request starts after the deadline, and the last one started may use the margin to
        finish, so that :meth:`stats` then counts exactly what Amplitude acknowledged. Events
        not delivered by then are dropped with reason ``"shutdown"`` (``"unconfirmed"`` for a
        request that got no answer in time: Amplitude may or may not have them) and logged.
        Idempotent.
        """
        if timeout is not None:
            timeout = max(0.0, timeout)
        self._stop_timeout = None if timeout is None else round(timeout, 2)  # for log lines only
        self._deadline = None if timeout is None else self._clock.monotonic() + timeout
        self._accepting = False
        self._stopping.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():
                # Past the deadline no batch starts: what is queued is dropped now, and the
                # request on the wire gets the margin to finish.
                self._abandon_queue()
                thread.join(STOP_MARGIN)
            if thread.is_alive():
                self._abort.set()  # a wait or a stalled request outlived the bound: end it
        helper = self._helper
        if helper is not None and helper is not threading.current_thread():
            # It starts no batch now; its request on the way has what is left of the same bound.
            bound = None if self._deadline is None else max(0.0, self._deadline + STOP_MARGIN
                                                            - self._clock.monotonic())
            helper.join(bound)
            if helper.is_alive():
                self._abort.set()
        self._abandon_queue()
        self._report_unqueued(self._clock.monotonic(), force=True)
        if self._in_flight:
            self._log.warning("stop() returned with %d event(s) still on their way to %s; they are counted when "
                              "their request ends", self._in_flight, self.url)

    def _abandon_queue(self) -> None:
        """Count (and tell the callback about) what stop() could not send."""
        with self._abandon_lock:  # stop() and the thread may both get here: one takes it all
            items = self._take(len(self._queue))
        if not items:
            return
        self._log.warning("Dropped %d queued event(s) not sent to %s before stop(timeout=%s) ran out (reason "
                          "shutdown)", len(items), self.url, self._stop_timeout)
        self.dropped.add("shutdown", len(items))
        if self._callback is None:
            return
        message = "not delivered before stop()"
        bound = None if self._deadline is None else self._deadline + STOP_MARGIN
        for index, item in enumerate(items):
            if bound is not None and self._clock.monotonic() >= bound:
                self._log.warning("No callback for %d undelivered event(s): stop() ran out of time",
                                  len(items) - index)
                return
            try:
                event = pending_build(item)
            except Exception:  # noqa: BLE001 - an unbuildable event has no dict to report
                continue
            self._call_back(event, 0, message)

    # -- the sending thread ---------------------------------------------------------------------

    def _take(self, n: int) -> List[PendingEvent]:
        queue = self._queue
        taken = []
        for _ in range(min(n, len(queue))):
            try:
                taken.append(queue.popleft())
            except IndexError:  # stop() took the rest concurrently
                break
        return taken

    def _run(self) -> None:
        clock = self._clock
        next_flush = clock.monotonic() + self.flush_interval
        while True:
            clock.wait(self._wake, max(0.0, next_flush - clock.monotonic()))
            self._wake.clear()
            stopping = self._stopping.is_set()
            now = clock.monotonic()
            with self._idle:
                flush_all = self._flush_requested > 0 or stopping or now >= next_flush
                self._flush_requested = 0
            try:
                self._drain(flush_all)
            except Exception:  # noqa: BLE001 - the sender must outlive any bug in one batch
                self._log.exception("Unexpected error in the event sender; continuing")
            if flush_all:
                next_flush = clock.monotonic() + self.flush_interval
            if now - self._last_unqueued_warning >= _WARN_INTERVAL:
                self._report_unqueued(now)
            with self._idle:
                self._idle.notify_all()
            if stopping:
                self._abandon_queue()
                return

    def _time_for_another_batch(self) -> bool:
        """While stopping: start a batch only if it should end within the deadline plus the margin."""
        if self._abort.is_set():
            return False
        if self._deadline is None:
            return True
        left = self._deadline - self._clock.monotonic()
        return left > 0 and self._cycle_seconds <= left + STOP_MARGIN / 2

    def _drain(self, flush_all: bool) -> None:
        while self._queue and (flush_all or len(self._queue) >= self.batch_size):
            if self._stopping.is_set() and not self._time_for_another_batch():
                return
            # A backlog (a burst, or a sender starved of CPU by busy request threads) goes out in
            # requests as large as Amplitude accepts, so the queue drains instead of overflowing.
            # One request's worth at a time (as many events as fit in its byte limit, by the size
            # of recent ones): building more before posting would only hold the JSON longer and,
            # with request threads busy, give them the interpreter for longer between requests.
            backlog = len(self._queue)
            size = min(self.batch_size if backlog < 2 * self.batch_size else backlog, self._fits)
            if backlog >= size + self._fits and not self._stopping.is_set():
                self._start_helper()
            self._send_batch(size)

    def _start_helper(self) -> None:
        helper = self._helper
        if helper is None or not helper.is_alive():
            self._helper = threading.Thread(target=self._help, name=f"{self._name}-backlog", daemon=True)
            self._helper.start()

    def _help(self) -> None:
        """Send alongside the sending thread while a full request's worth more waits.

        Most of a request's time is spent waiting for the answer (and, with request threads
        busy, for the interpreter lock after it): a second request on the way meanwhile
        doubles what a backlog drains at. It starts no batch once stop() was called (the
        sending thread sends what is left within stop()'s bound) and ends with the backlog.
        """
        try:
            while not self._stopping.is_set() and len(self._queue) >= self._fits:
                self._send_batch(self._fits)
        except Exception:  # noqa: BLE001 - the sending thread carries on without it
            self._log.exception("Unexpected error in the event sender; continuing")

    def _send_batch(self, size: int) -> None:
        """Take up to ``size`` queued events, build, claim and deliver them."""
        clock = self._clock
        began = clock.monotonic()
        items = self._take(size)
        if not items:
            return
        local = self._local
        with self._idle:
            self._in_flight += len(items)
        local.outstanding = len(items)
        try:
            events = self._build(items)
            if events:
                self._learn_size(events)
            if events and self._claims is not None:
                events = self._claim(events)
            for chunk in self._chunks(events):
                self._deliver(chunk)
        finally:
            with self._idle:  # what an unexpected error left unsettled is no longer on its way
                self._in_flight = max(0, self._in_flight - local.outstanding)
                local.outstanding = 0
                self._idle.notify_all()
        self._cycle_seconds = clock.monotonic() - began

    def _learn_size(self, events: List[_Ready]) -> None:
        """How many events like these fit in one request (with 5% to spare: sizes vary)."""
        room = self.max_payload_bytes - len(self._body_prefix) - 2
        average = (sum(map(len, [data for _, data in events])) + len(events)) / len(events)
        self._fits = max(1, min(MAX_EVENTS_PER_REQUEST, int(room / (average * 1.05))))

    def _chunks(self, events: List[_Ready]) -> List[List[_Ready]]:
        """``events`` cut into requests within Amplitude's byte limit, in order (no 413 round trip,
        no body encoded twice); an event too large on its own goes alone (and is dropped as such)."""
        room = self.max_payload_bytes - len(self._body_prefix) - 2
        total = sum(map(len, [data for _, data in events])) + len(events)
        if total <= room:
            return [events] if events else []
        chunks: List[List[_Ready]] = []
        chunk: List[_Ready] = []
        size = 0
        for event in events:
            grows = len(event[1]) + 1
            if chunk and size + grows > room:
                chunks.append(chunk)
                chunk, size = [], 0
            chunk.append(event)
            size += grows
        if chunk:
            chunks.append(chunk)
        return chunks

    def _build(self, items: Sequence[PendingEvent]) -> List[_Ready]:
        """Each item as (insert_id, JSON bytes); one that cannot be built or encoded is dropped."""
        ready: List[_Ready] = []
        append = ready.append
        sent_now, sent_before, generation = self._sent_now, self._sent_before, self._sent_generation
        for item in items:
            try:
                if type(item) is tuple:
                    event: _Ready = item[0].ready(item)
                else:
                    insert_id, text = pending_json(item)
                    event = (insert_id, text.encode() if text.isascii() else _utf8(text))
            except Exception as exc:  # noqa: BLE001 - one bad event must not cost the batch
                self._warn("build_error", "Dropped an event that cannot be sent as JSON (%s: %s)",
                           type(exc).__name__, exc)
                self.dropped.add("build_error")
                self._settle(1)
                self._tell_unbuildable(item, exc)
                continue
            insert_id = event[0]
            if insert_id is not None:
                key = hash(insert_id) & _SENT_KEY_MASK | _SENT_KEY_BIT  # never a cached small int
                if key in sent_before or sent_now.setdefault(key, key) is not key:
                    self.duplicates.increment()
                    self._settle(1)
                    continue
                if len(sent_now) >= generation:
                    self._sent_before = sent_before = sent_now
                    self._sent_now = sent_now = {}
            append(event)
        return ready

    def _claim(self, events: List[_Ready]) -> List[_Ready]:
        """Keep the events whose insert_id this process claimed fleet-wide (one round trip per batch)."""
        assert self._claims is not None
        day = int(self._clock.time() // _DAY_SECONDS)  # an insert_id names its day; a late claim only lives longer
        ids = [(insert_id, day) for insert_id, _ in events if insert_id is not None]
        if not ids:
            return events
        try:
            ours = self._claims.claim(ids)
        except Exception:  # noqa: BLE001 - a claims backend must never cost an event
            self._log.exception("Claiming insert_ids failed; sending the batch anyway")
            return events
        if len(ours) != len(ids):
            return events
        mine = iter(ours)
        kept = [event for event in events if event[0] is None or next(mine)]
        elsewhere = len(events) - len(kept)
        if elsewhere:
            self.dropped.add("claimed_elsewhere", elsewhere)
            self._settle(elsewhere)
        return kept

    def _release(self, events: List[_Ready]) -> None:
        """Give up the claims of events nobody delivered, so another process may send them."""
        if self._claims is None:
            return
        ids = [insert_id for insert_id, _ in events if insert_id is not None]
        if not ids:
            return
        try:
            self._claims.release(ids)
        except Exception:  # noqa: BLE001 - best effort: the claims then expire at the end of the day
            self._log.exception("Releasing insert_id claims failed")

    def _tell_unbuildable(self, item: PendingEvent, error: Exception) -> None:
        """The callback hears of an event dropped before sending, if it can be built at all."""
        if self._callback is None:
            return
        try:
            event = pending_build(item)
        except Exception:  # noqa: BLE001 - already logged
            return
        self._call_back(event, 0, f"event could not be encoded: {error.__class__.__name__}: {error}")

    def _encode(self, events: List[_Ready]) -> bytes:
        """The request body: one pass over the events' JSON (a megabyte copied once, not twice)."""
        datas = [data for _, data in events]
        if not datas:
            return self._body_prefix + b"]}"
        datas[0] = self._body_prefix + datas[0]
        datas[-1] = datas[-1] + b"]}"
        return b",".join(datas)

    def _post(self, body: bytes) -> _Outcome:
        timeout = self._timeout
        if self._deadline is not None:  # stopping: end by the deadline plus (most of) the margin
            budget = max(0.05, self._deadline + STOP_MARGIN * 0.8 - self._clock.monotonic())
            timeout = (min(timeout[0], budget), min(timeout[1], budget))
        try:
            response = self._session.post(self.url, data=body, verify=verify_of(self._session),
                                          headers={"Content-Type": "application/json", "Accept": "*/*",
                                                   "User-Agent": USER_AGENT},
                                          timeout=timeout)
        except requests.RequestException as exc:
            return _Outcome(0, error=f"{exc.__class__.__name__}", maybe_received=_maybe_received(exc))
        try:
            try:
                answer = response.json()
            except ValueError:
                answer = None
            retry_after = parse_retry_after(response.headers.get("Retry-After"), now=self._clock.time())
            return _Outcome(response.status_code, answer, retry_after=retry_after)
        finally:
            response.close()

    # -- one batch, every documented answer ------------------------------------------------------

    def _deliver(self, events: List[_Ready]) -> None:
        attempts = [_Attempt(events)]
        while attempts:
            attempt = attempts.pop()
            if attempt.failures and not self._wait_to_retry(attempt):
                continue
            body = self._encode(attempt.events)
            if len(body) > self.max_payload_bytes:  # Amplitude would answer 413: split without asking
                self._split(attempt.events, attempts)
                continue
            outcome = self._post(body)
            status = outcome.status
            if status == 200:
                self._finish(attempt.events, 200, "Event sent successfully.", sent=True)
            elif status == 400:
                self._rejected(attempt, outcome, attempts)
            elif status == 413:
                self._split(attempt.events, attempts)
            elif status == 429:
                self._throttled(attempt, outcome, attempts)
            elif status == 0 or status in _RETRYABLE:
                self._retry_later(attempt.events, attempt.failures, outcome, attempts)
            else:
                self._warn(f"status-{status}", "Dropped %d event(s): %s answered %s, which is not retried; check "
                           "the ingestion URL (AssignmentConfig(server_url=...))", len(attempt.events), self.url,
                           outcome.describe())
                self._finish(attempt.events, status, f"rejected: {outcome.describe()}", reason="rejected")

    def _split(self, events: List[_Ready], attempts: List[_Attempt]) -> None:
        """The one 413 path: halve the batch (the first half goes first); drop a lone event."""
        if len(events) == 1:
            self._warn("too_large", "Dropped 1 event larger than %s accepts in one request (%d bytes at most)",
                       self.url, self.max_payload_bytes)
            self._finish(events, 413, "event too large for the ingestion API", reason="too_large")
            return
        half = len(events) // 2
        attempts.append(_Attempt(events[half:]))
        attempts.append(_Attempt(events[:half]))

    def _rejected(self, attempt: _Attempt, outcome: _Outcome, attempts: List[_Attempt]) -> None:
        events = attempt.events
        rejection = Rejection(outcome.body, len(events))
        if rejection.reason == "invalid_api_key":
            self._error_once("invalid_api_key", "Amplitude rejected the analytics API key (HTTP 400 from %s): %d "
                             "event(s) dropped, and every later batch will be too. Fix: pass your Amplitude "
                             "project's API key as AssignmentConfig(api_key=...) / ExposureConfig(api_key=...)",
                             self.url, len(events))
            self._finish(events, 400, "rejected: Invalid API key", reason="invalid_api_key")
            return
        if rejection.reason == "missing_field":
            self._error_once("missing_field", "Amplitude rejected a request for missing field %r (HTTP 400 from "
                             "%s): %d event(s) dropped. Fix: check that AssignmentConfig(server_url=...) is "
                             "Amplitude's ingestion URL and that no proxy rewrites the body; otherwise please "
                             "report this bug", rejection.missing_field, self.url, len(events))
            self._finish(events, 400, f"rejected: missing field {rejection.missing_field}", reason="missing_field")
            return
        if rejection.reason is not None:
            self._warn("bad_request", "Dropped %d event(s): %s answered %s naming no event, so the whole request "
                       "was rejected", len(events), self.url, outcome.describe())
            self._finish(events, 400, f"payload rejected: {outcome.describe()}", reason="bad_request")
            return
        by_reason: Dict[str, List[_Ready]] = {}
        rest: List[_Ready] = []
        for index, event in enumerate(events):
            reason = rejection.named.get(index)
            if reason is None:
                rest.append(event)
            else:
                by_reason.setdefault(reason, []).append(event)
        for reason, dropped in sorted(by_reason.items()):
            fields = ", ".join(sorted(rejection.fields.get(reason, ())))
            self._warn_rejected(reason, fields, len(dropped), len(rest))
            self._finish(dropped, 400, f"event rejected ({reason}{': ' + fields if fields else ''}): "
                         f"{outcome.describe()}", reason=reason)
        if rest:
            attempts.append(_Attempt(rest, attempt.failures))

    def _warn_rejected(self, reason: str, fields: str, dropped: int, rest: int) -> None:
        if reason == "invalid_id_length":
            minimum = self.min_id_length if self.min_id_length is not None else _DEFAULT_MIN_ID_LENGTH
            self._warn(reason, "Dropped %d event(s): %s rejected their %s as shorter than %d characters (HTTP 400); "
                       "resending the other %d. Fix: use longer ids, or accept short ones with "
                       "AssignmentConfig(min_id_length=...) / ExposureConfig(min_id_length=...)",
                       dropped, self.url, fields or "user_id/device_id", minimum, rest)
        elif reason == "silenced":
            self._warn(reason, "Dropped %d event(s) from devices Amplitude silenced (HTTP 400 from %s); resending "
                       "the other %d", dropped, self.url, rest)
        else:
            self._warn(reason, "Dropped %d event(s): %s reported %s %s (HTTP 400); resending the other %d",
                       dropped, self.url, reason.replace("_", " "), fields, rest)

    def _throttled(self, attempt: _Attempt, outcome: _Outcome, attempts: List[_Attempt]) -> None:
        events = attempt.events
        throttling = Throttling(outcome.body, len(events))
        ids = [self._ids(data) for _, data in events] if throttling.needs_ids else None
        over_quota: List[_Ready] = []
        throttled: List[_Ready] = []
        free: List[_Ready] = []
        for index, event in enumerate(events):
            user_id, device_id = ids[index] if ids is not None else (None, None)
            if throttling.over_quota(user_id, device_id):
                over_quota.append(event)
            elif throttling.throttled(index, user_id, device_id):
                throttled.append(event)
            else:
                free.append(event)
        if over_quota:
            self._warn("daily_quota", "Dropped %d event(s) of users or devices over Amplitude's daily quota "
                       "(HTTP 429 from %s)", len(over_quota), self.url)
            self._finish(over_quota, 429, "daily quota exceeded", reason="daily_quota")
        if throttled:
            self._retry_later(throttled, attempt.failures, outcome, attempts)
        if free:  # not throttled themselves: resent at once (popped before the throttled ones)
            attempts.append(_Attempt(free, attempt.failures))

    @staticmethod
    def _ids(data: bytes) -> Tuple[Any, Any]:
        try:
            event = json.loads(data)
        except ValueError:
            return None, None
        if not isinstance(event, dict):
            return None, None
        return event.get("user_id"), event.get("device_id")

    def _retry_later(self, events: List[_Ready], failures: int, outcome: _Outcome,
                     attempts: List[_Attempt]) -> None:
        failures += 1
        if failures > self.max_retries:
            self._warn("max_retries", "Dropped %d event(s): %s still answered %s after %d attempts",
                       len(events), self.url, outcome.describe(), failures)
            self._finish(events, outcome.status, f"gave up after {failures} attempts: {outcome.describe()}",
                         reason="max_retries")
            return
        wait = self.backoff.delay(failures, outcome.retry_after)
        if not self._stopping.is_set():
            self._warn("retry", "Sending %d event(s) to %s failed (%s); retry %d of %d in %.1f s",
                       len(events), self.url, outcome.describe(), failures, self.max_retries, wait)
        attempts.append(_Attempt(events, failures, wait, outcome))

    def _wait_to_retry(self, attempt: _Attempt) -> bool:
        """Wait before a resend; False if stop() leaves no time for it (the events are then dropped)."""
        clock = self._clock
        give_up = False
        if not self._stopping.is_set():
            clock.wait(self._stopping, attempt.wait)  # stop() cuts the wait short: one last try
        elif self._deadline is not None and attempt.wait >= self._deadline - clock.monotonic():
            give_up = True  # the resend could not start before stop()'s deadline
        else:
            clock.wait(self._abort, attempt.wait)
        if give_up or self._abort.is_set() or (self._deadline is not None and clock.monotonic() >= self._deadline):
            outcome = attempt.outcome
            unconfirmed = outcome is not None and outcome.maybe_received
            reason = "unconfirmed" if unconfirmed else "shutdown"
            self._log.warning("Dropped %d event(s) not delivered to %s before stop(timeout=%s) ran out (reason "
                              "%s, last answer: %s)", len(attempt.events), self.url, self._stop_timeout, reason,
                              outcome.describe() if outcome is not None else "none")
            self._finish(attempt.events, outcome.status if outcome is not None else 0,
                         "not delivered before stop()", reason=reason)
            return False
        self.retried.increment()
        return True

    # -- accounting -------------------------------------------------------------------------------

    def _settle(self, n: int) -> None:
        with self._idle:
            self._in_flight = max(0, self._in_flight - n)
            self._local.outstanding = getattr(self._local, "outstanding", n) - n

    def _finish(self, events: List[_Ready], status: int, message: str, *, sent: bool = False,
                reason: Optional[str] = None) -> None:
        if sent:
            self.sent.add(len(events))
        else:
            assert reason is not None
            self.dropped.add(reason, len(events))
            if reason in _RELEASED_ON:
                self._release(events)
        self._settle(len(events))
        if self._callback is None:
            return
        for _, data in events:
            try:
                event = json.loads(data)  # the event exactly as it was sent
            except ValueError:
                continue
            self._call_back(event, status, message)

    def _call_back(self, event: Dict[str, Any], status: int, message: str) -> None:
        assert self._callback is not None
        try:
            self._callback(event, status, message)
        except Exception:  # noqa: BLE001 - a user's callback must not stop delivery
            self._log.exception("Event callback raised")

    def _warn(self, kind: str, message: str, *args: Any) -> None:
        """A warning, at most one of each kind per 10 s; the others go to DEBUG and are counted."""
        now = self._clock.monotonic()
        last = self._last_warning.get(kind)
        if last is not None and now - last < _WARN_INTERVAL:
            self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
            self._log.debug(message, *args)
            return
        self._last_warning[kind] = now
        suppressed = self._suppressed.pop(kind, 0)
        if suppressed:
            message += " (%d similar warning(s) in the last %d s not shown)"
            args = args + (suppressed, int(_WARN_INTERVAL))
        self._log.warning(message, *args)

    def _error_once(self, kind: str, message: str, *args: Any) -> None:
        if kind in self._errors_logged:
            self._log.debug(message, *args)
            return
        self._errors_logged.add(kind)
        self._log.error(message, *args)

    def stats(self) -> Dict[str, Any]:
        """Counters of this sender: ``enqueued``, ``sent``, ``retried``, ``duplicates``, ``dropped``
        (reason -> count), ``queue_depth`` and ``in_flight``."""
        return {
            "enqueued": self.enqueued.value,
            "sent": self.sent.value,
            "retried": self.retried.value,
            "duplicates": self.duplicates.value,
            "dropped": self.dropped.snapshot(),
            "queue_depth": len(self._queue),
            "in_flight": self._in_flight,
        }
