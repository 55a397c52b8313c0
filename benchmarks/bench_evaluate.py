"""Benchmark local evaluation: this package ("ours") against the official SDK ("reference").

Usage::

    python benchmarks/bench_evaluate.py [--reference-python /work/refvenv/bin/python] [--quick] [--json]
                                        [--burst-users N] [--scenarios KEY[,KEY]]

Both packages are imported as ``amplitude_experiment`` and used through the same public
API, so the measuring code below runs unchanged under either:

* ours is measured in the current interpreter, with the repository root put first on
  ``sys.path``;
* the reference is measured by running this same file with ``--worker`` under the
  reference interpreter, isolated (``-I``, ``PYTHONPATH`` cleared, temporary cwd) so
  that it imports the official package. The workload (flags and users, built by
  ``deployment.py``) is sent to it as JSON on stdin, so both sides see identical data.

Flags are served by a tiny ``http.server`` on 127.0.0.1 inside the measuring process and
each scenario builds a ``LocalEvaluationClient`` pointed at it, calls ``start()``,
measures and ``stop()``s. Assignment-tracking scenarios point ``AssignmentConfig`` at a
local stand-in for Amplitude's HTTP API (``_EventSink``, a fresh one per client) and
report, besides the timings, what it received by the time ``stop()`` returned.

Adding a scenario: write a function ``def my_scenario(bench: Bench) -> Optional[float]``
(return ``None`` when the package does not support what is measured), then append a
``Scenario`` to ``SCENARIOS``. A scenario that reports more than one number returns a
``Measured`` (its extra numbers are declared as ``Scenario.rows``).
``Bench.client(deployment, **config)`` accepts any ``LocalEvaluationConfig`` keyword, and
``Bench.tracking(deployment, **assignment)`` gives a started client with assignment
tracking whose events go to a fresh ``_EventSink``.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import gc
import gzip
import itertools
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Deque, Dict, Iterator, List, Optional, Sequence, Set, Tuple, Type, Union

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(BENCH_DIR)
API_KEY = "server-benchmark-key"
EVENTS_API_KEY = "bench-key"  # the analytics key assignment events are sent with
POLL_INTERVAL_MS = 3_600_000  # effectively no polling during a measurement
CHECK_USERS = 200  # users whose realistic-deployment results are compared between the sides


# ============================================================================ settings


@dataclass(frozen=True)
class Settings:
    """How long and how often to measure."""

    users: int = 1000  # distinct users cycled through by the evaluation scenarios
    warmup_seconds: float = 0.5  # evaluation warm-up (at most one pass over the users)
    round_seconds: float = 0.1  # each timed round lasts at least this long
    min_rounds: int = 7
    max_rounds: int = 41
    budget_seconds: float = 4.0  # stop adding rounds (beyond min_rounds) after this long
    load_repeats: int = 5  # best-of-N for the load scenarios
    many_flags: int = 1000  # size of the deployment loaded by the load scenarios
    distinct_users: int = 50_000  # at most this many new users in the "distinct users" tracking scenarios
    burst_users: int = 100_000  # distinct users evaluated back to back in the burst scenario
    stop_timeout_seconds: float = 120.0  # how long a tracking client's stop() may take before we give up


FULL = Settings()
QUICK = Settings(
    warmup_seconds=0.2,
    round_seconds=0.03,
    min_rounds=3,
    max_rounds=9,
    budget_seconds=0.5,
    load_repeats=3,
    distinct_users=20_000,
    burst_users=20_000,
    stop_timeout_seconds=20.0,
)


# ============================================================================ measuring side
# Everything in this section runs in the measuring interpreter (ours or the reference) and
# only imports ``amplitude_experiment``'s public API.


def _serve(handler: Type[BaseHTTPRequestHandler]) -> Tuple[ThreadingHTTPServer, str]:
    """Serve ``handler`` on a random 127.0.0.1 port from a daemon thread; (server, base URL)."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    port = httpd.server_address[1]
    threading.Thread(target=httpd.serve_forever, name="bench-http", daemon=True).start()
    return httpd, f"http://127.0.0.1:{port}"


class _Server:
    """Serves one response body (a flags deployment) to every GET."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        server_ref = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server naming)
                payload = server_ref.body
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self._httpd, self.url = _serve(Handler)

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


class _EventSink:
    """A stand-in for Amplitude's HTTP API: accepts ``POST /2/httpapi`` and counts the events.

    Replies ``200 {"code":200}`` to every POST on ``/2/httpapi`` (404 elsewhere). The request
    handler only queues the raw body, so the sink takes as little as possible from the
    measured process; :meth:`counts` decodes what arrived when asked. HTTP/1.1 keep-alive,
    ``TCP_NODELAY`` and one write per response keep a round trip well under a millisecond
    (a response written as two segments on a kept-alive connection can wait ~40 ms for a
    delayed ACK).
    """

    PATH = "/2/httpapi"
    _OK_BODY = b'{"code":200}'
    _OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
        len(_OK_BODY),
        _OK_BODY,
    )
    _NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"

    def __init__(self) -> None:
        self._bodies: Deque[bytes] = collections.deque()  # appended by handler threads, drained by counts()
        self._lock = threading.Lock()
        self._posts = 0
        self._events = 0
        self._insert_ids: Set[Any] = set()
        self._without_insert_id = 0
        self._undecodable = 0
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive
            disable_nagle_algorithm = True

            def do_POST(self) -> None:  # noqa: N802 (http.server naming)
                body = self._read_body()
                if self.path.split("?", 1)[0] != sink.PATH:
                    self.wfile.write(sink._NOT_FOUND)
                    return
                if (self.headers.get("Content-Encoding") or "").lower() == "gzip":
                    body = gzip.decompress(body)
                sink._bodies.append(body)  # before replying: a client that saw the reply is counted
                self.wfile.write(sink._OK)

            def _read_body(self) -> bytes:
                if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                    chunks: List[bytes] = []
                    while True:
                        size = int(self.rfile.readline().split(b";", 1)[0], 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass  # trailers
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def log_message(self, *args: Any) -> None:
                pass

        self._httpd, base_url = _serve(Handler)
        self.url = base_url + self.PATH

    @property
    def posts_received(self) -> int:
        """POSTs accepted so far (cheap: nothing is decoded)."""
        return self._posts + len(self._bodies)

    def wait_quiet(self, quiet_seconds: float = 0.3, timeout: float = 15.0) -> None:
        """Wait until no POST has arrived for ``quiet_seconds`` (at most ``timeout`` s).

        Lets a client's sending thread work off a backlog before timing starts.
        """
        deadline = time.monotonic() + timeout
        last_count, last_change = self.posts_received, time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - last_change < quiet_seconds:
            time.sleep(0.02)
            if self.posts_received != last_count:
                last_count, last_change = self.posts_received, time.monotonic()

    def counts(self) -> Dict[str, int]:
        """What arrived so far: POSTs, events, distinct ``insert_id`` values, and oddities."""
        with self._lock:
            while self._bodies:
                self._count(self._bodies.popleft())
            return {
                "posts": self._posts,
                "events": self._events,
                "distinct_insert_ids": len(self._insert_ids),
                "events_without_insert_id": self._without_insert_id,
                "undecodable_posts": self._undecodable,
            }

    def _count(self, body: bytes) -> None:
        self._posts += 1
        try:
            events = json.loads(body)["events"]
            if not isinstance(events, list):
                raise TypeError("events is not a list")
        except (ValueError, KeyError, TypeError):
            self._undecodable += 1
            return
        self._events += len(events)
        for event in events:
            insert_id = event.get("insert_id") if isinstance(event, dict) else None
            if insert_id is None:
                self._without_insert_id += 1
            else:
                self._insert_ids.add(insert_id if isinstance(insert_id, str) else json.dumps(insert_id))

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


class TrackingRun:
    """A started client with assignment tracking whose events go to a fresh :class:`_EventSink`.

    ``assignment`` are extra ``AssignmentConfig`` keywords; without them only ``api_key`` and
    ``server_url`` are set (the package's defaults for batching, intervals and caches).
    """

    def __init__(self, bench: "Bench", deployment: str, **assignment: Any) -> None:
        from amplitude_experiment import AssignmentConfig

        self.sink = bench.new_sink()
        config = AssignmentConfig(api_key=EVENTS_API_KEY, server_url=self.sink.url, **assignment)
        self.client = bench.new_client(deployment, assignment_config=config)
        self.stop_timeout = bench.settings.stop_timeout_seconds
        self.stop_seconds: Optional[float] = None  # None: not stopped, or stop() did not return in time
        self.stop_error: Optional[str] = None
        self._stop_called = False
        self._at_stop: Optional[Dict[str, int]] = None  # sink counts when stop() returned (or timed out)
        self.client.start()

    def stop(self) -> Optional[float]:
        """``client.stop()``, waiting at most ``stop_timeout``: the seconds it took, or None if it did not return.

        A ``stop()`` that does not return in time is left running in a daemon thread.
        """
        if self._stop_called:
            return self.stop_seconds
        self._stop_called = True
        done = threading.Event()

        def run() -> None:
            try:
                self.client.stop()
            except Exception as exc:  # reported, not raised: the delivery report is still useful
                self.stop_error = f"{type(exc).__name__}: {exc}"
            finally:
                done.set()

        t0 = time.perf_counter()
        threading.Thread(target=run, name="bench-stop", daemon=True).start()
        if done.wait(self.stop_timeout):
            self.stop_seconds = time.perf_counter() - t0
        self._at_stop = self.sink.counts()
        return self.stop_seconds

    def report(self, expected_events: int) -> Dict[str, Any]:
        """What the sink had received when stop() returned, how stop() went, and the client's stats().

        ``expected_events``: one assignment event per distinct user evaluated (a user's results
        do not change during a run, so every further evaluation is a dedup hit). When fewer
        had arrived, waits until the sink has been quiet for a second (at most 10 s) and adds
        what arrived after stop() returned (``events_after_stop``, ``distinct_insert_ids_eventually``).
        """
        self.stop()
        assert self._at_stop is not None
        report: Dict[str, Any] = {"expected_events": expected_events, **self._at_stop}
        if self._at_stop["distinct_insert_ids"] < expected_events:
            self.sink.wait_quiet(quiet_seconds=1.0, timeout=10.0)
            eventually = self.sink.counts()
            report["events_after_stop"] = eventually["events"] - self._at_stop["events"]
            report["distinct_insert_ids_eventually"] = eventually["distinct_insert_ids"]
        report["stop_seconds"] = self.stop_seconds
        report["stop_returned"] = self.stop_seconds is not None
        if self.stop_seconds is None:
            report["stop_timeout_seconds"] = self.stop_timeout
        if self.stop_error is not None:
            report["stop_error"] = self.stop_error
        stats = getattr(self.client, "stats", None)  # ours only
        if callable(stats):
            try:
                report["stats"] = stats()
            except Exception as exc:
                report["stats_error"] = f"{type(exc).__name__}: {exc}"
        return report


class Bench:
    """What a scenario gets: the workload, the users and a way to get started clients."""

    def __init__(self, workload: Dict[str, Any]) -> None:
        from amplitude_experiment import User

        self.settings = Settings(**workload["settings"])
        self.deployments: Dict[str, List[Dict[str, Any]]] = workload["deployments"]
        self.bodies = {name: json.dumps(flags).encode() for name, flags in self.deployments.items()}
        self._user_kwargs: List[Dict[str, Any]] = workload["users"]
        self.users = [User(**kwargs) for kwargs in self._user_kwargs]
        self._servers: Dict[str, _Server] = {}
        self._sinks: List[_EventSink] = []
        self._distinct_users: List[Any] = []

    def server_url(self, deployment: str) -> str:
        """URL of a local flags server for one of the workload's deployments."""
        if deployment not in self._servers:
            self._servers[deployment] = _Server(self.bodies[deployment])
        return self._servers[deployment].url

    def new_sink(self) -> _EventSink:
        """A fresh local event endpoint (``sink.url`` is the full ingestion URL); closed by :meth:`close`."""
        sink = _EventSink()
        self._sinks.append(sink)
        return sink

    def distinct_users(self, n: int) -> List[Any]:
        """``n`` users that all differ from each other (and from ``self.users``) in user_id and device_id.

        The workload's users with a numbered suffix on their ids (anonymous ones stay anonymous).
        Built on first use and frozen out of the garbage collector's reach, like the workload.
        """
        if len(self._distinct_users) < n:
            from amplitude_experiment import User

            for index in range(len(self._distinct_users), n):
                kwargs = dict(self._user_kwargs[index % len(self._user_kwargs)])
                if kwargs.get("user_id") is not None:
                    kwargs["user_id"] = f"{kwargs['user_id']}-n{index}"
                kwargs["device_id"] = f"{kwargs['device_id']}-n{index}"
                self._distinct_users.append(User(**kwargs))
            gc.collect()
            gc.freeze()
        return self._distinct_users[:n]

    def new_client(self, deployment: str, **config: Any) -> Any:
        """A client for ``deployment``, not started."""
        from amplitude_experiment import LocalEvaluationClient, LocalEvaluationConfig

        config.setdefault("flag_config_polling_interval_millis", POLL_INTERVAL_MS)
        return LocalEvaluationClient(
            API_KEY, LocalEvaluationConfig(server_url=self.server_url(deployment), **config)
        )

    @contextlib.contextmanager
    def client(self, deployment: str, **config: Any) -> Iterator[Any]:
        """A started client for ``deployment``; stopped on exit."""
        client = self.new_client(deployment, **config)
        client.start()
        try:
            yield client
        finally:
            client.stop()

    @contextlib.contextmanager
    def tracking(self, deployment: str, **assignment: Any) -> Iterator[TrackingRun]:
        """A started client for ``deployment`` with assignment tracking; stopped (bounded) on exit."""
        run = TrackingRun(self, deployment, **assignment)
        try:
            yield run
        finally:
            run.stop()

    def close(self) -> None:
        for server in self._servers.values():
            server.close()
        for sink in self._sinks:
            sink.close()


def time_per_call(func: Callable[[Any], Any], args: Sequence[Any], settings: Settings) -> float:
    """Median over timed rounds of the seconds per ``func(arg)``, cycling through ``args``."""
    return time_per_call_each([func], args, settings)[0]


class _CollectorTime:
    """Seconds the cyclic garbage collector spends collecting while installed (``gc.callbacks``)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._started = 0.0

    def _callback(self, phase: str, info: Dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._started

    def __enter__(self) -> "_CollectorTime":
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)


def time_per_call_each(
    funcs: Sequence[Callable[[Any], Any]], args: Sequence[Any], settings: Settings,
    collector_per_call: Optional[List[float]] = None,
) -> List[float]:
    """:func:`time_per_call` for each of ``funcs``, their timed rounds interleaved.

    Interleaving keeps a difference between two functions (e.g. with and without tracking)
    from absorbing a drift in the machine's load. ``collector_per_call``, when given, receives
    for each function the median seconds per call the garbage collector spent (inside the same
    timed rounds; the ``gc.collect()`` before each round is not counted).
    """
    calls_per_round = []
    for func in funcs:
        # Warm-up: at most one pass over the arguments, at most ``warmup_seconds``.
        start = time.perf_counter()
        calls = 0
        for arg in args:
            func(arg)
            calls += 1
            if calls % 64 == 0 and time.perf_counter() - start > settings.warmup_seconds:
                break
        per_call = (time.perf_counter() - start) / calls
        calls_per_round.append(max(len(args) // 10, int(settings.round_seconds / per_call) + 1))

    cycles = [itertools.cycle(args) for _ in funcs]  # rounds continue where the previous one stopped
    rounds: List[List[float]] = [[] for _ in funcs]
    collector_rounds: List[List[float]] = [[] for _ in funcs]
    began = time.perf_counter()
    with _CollectorTime() as collector:
        while len(rounds[0]) < settings.max_rounds and (
            len(rounds[0]) < settings.min_rounds or time.perf_counter() - began < settings.budget_seconds
        ):
            for func, cycle, calls, timings, collected in zip(funcs, cycles, calls_per_round, rounds,
                                                              collector_rounds):
                batch = list(itertools.islice(cycle, calls))
                gc.collect()
                collector.seconds = 0.0
                t0 = time.perf_counter()
                for arg in batch:
                    func(arg)
                timings.append((time.perf_counter() - t0) / calls)
                collected.append(collector.seconds / calls)
    if collector_per_call is not None:
        collector_per_call[:] = [statistics.median(collected) for collected in collector_rounds]
    return [statistics.median(timings) for timings in rounds]


def time_per_call_distinct(
    func: Callable[[Any], Any], args: Sequence[Any], settings: Settings
) -> Tuple[float, int]:
    """Like :func:`time_per_call`, but every argument is used at most once (e.g. a new user per call).

    Warm-up uses up to a tenth of ``args``; the rest is split into at least ``min_rounds``
    timed rounds, and measuring stops early when ``args`` run out. Returns the median
    seconds per call and how many arguments were used (warm-up included).
    """
    # Warm-up: at least 64 calls, then until ``warmup_seconds`` or a tenth of the arguments.
    warmup_max = max(64, len(args) // 10)
    start = time.perf_counter()
    used = 0
    for arg in args[:warmup_max]:
        func(arg)
        used += 1
        if used >= 64 and used % 64 == 0 and time.perf_counter() - start > settings.warmup_seconds:
            break
    per_call = (time.perf_counter() - start) / used
    calls_per_round = int(settings.round_seconds / per_call) + 1
    calls_per_round = max(16, min(calls_per_round, (len(args) - used) // settings.min_rounds))

    rounds: List[float] = []
    began = time.perf_counter()
    while (
        used + calls_per_round <= len(args)
        and len(rounds) < settings.max_rounds
        and (len(rounds) < settings.min_rounds or time.perf_counter() - began < settings.budget_seconds)
    ):
        batch = args[used : used + calls_per_round]
        used += calls_per_round
        gc.collect()
        t0 = time.perf_counter()
        for arg in batch:
            func(arg)
        rounds.append((time.perf_counter() - t0) / calls_per_round)
    if not rounds:
        raise ValueError(f"{len(args)} arguments are too few for {settings.min_rounds} rounds")
    return statistics.median(rounds), used


def _best_of(repeats: int, func: Callable[[], float]) -> float:
    return min(func() for _ in range(repeats))


def _compile_flags() -> Optional[Callable[[Any], Any]]:
    """Our ``compile_flags``, or ``None`` in a package that does not have it (the reference)."""
    try:
        from amplitude_experiment.evaluation import compile_flags
    except ImportError:
        return None
    return compile_flags


# ---------------------------------------------------------------------------- scenarios


@dataclass
class Measured:
    """What a scenario returns when it reports more than its own number."""

    value: Optional[float]  # the scenario's row
    extra: Dict[str, Optional[float]] = field(default_factory=dict)  # its ``Scenario.rows``, by key
    #: Anything else worth keeping (JSON-able). ``details["delivery"]`` maps a label to a
    #: :meth:`TrackingRun.report`; those are printed under the table.
    details: Dict[str, Any] = field(default_factory=dict)


def evaluate_realistic_us(bench: Bench) -> float:
    """µs per ``evaluate_v2(user)``, realistic 40-flag deployment, no tracking."""
    with bench.client("realistic") as client:
        return time_per_call(client.evaluate_v2, bench.users, bench.settings) * 1e6


def evaluate_single_rollout_us(bench: Bench) -> float:
    """µs per ``evaluate_v2(user)``, one 50/50 rollout flag, no tracking."""
    with bench.client("single_rollout") as client:
        return time_per_call(client.evaluate_v2, bench.users, bench.settings) * 1e6


#: Users cycled through by the per-flag scaling scenario: one call on 1,000 flags costs milliseconds
#: on the reference, so its rounds (at least a tenth of the arguments) stay short.
SCALING_USERS = 200


def evaluate_per_flag_scaling(bench: Bench) -> Measured:
    """µs per flag of ``evaluate_v2(user)``: 1,000 realistic flags vs 40, rounds interleaved.

    Both deployments have the same mix of flag kinds (``deployment.realistic_deployment``), so
    a ratio above 1 is a cost that grows with the size of the deployment, not with the work.

    The garbage collector's share is reported too: a call on 1,000 flags returns ~900 new
    variants, so the collector runs during most calls (and promotes what is alive to older
    generations, whose collections traverse the whole heap); on 40 flags it seldom does.
    """
    collector: List[float] = []
    with bench.client("realistic") as small, bench.client("many") as big:
        flags_small = len(bench.deployments["realistic"])
        flags_big = len(bench.deployments["many"])
        small_s, big_s = time_per_call_each(
            [small.evaluate_v2, big.evaluate_v2], bench.users[:SCALING_USERS], bench.settings, collector
        )
    per_flag_small = small_s * 1e6 / flags_small
    per_flag_big = big_s * 1e6 / flags_big
    collector_small, collector_big = (seconds * 1e6 for seconds in collector)
    return Measured(
        per_flag_big,
        extra={
            "evaluate_per_flag_small": per_flag_small,
            "evaluate_per_flag_ratio": per_flag_big / per_flag_small,
            "evaluate_many_collector": collector_big,
            "evaluate_per_flag_ratio_without_collector": ((big_s * 1e6 - collector_big) / flags_big)
            / ((small_s * 1e6 - collector_small) / flags_small),
        },
    )


def load_compile_ms(bench: Bench) -> Optional[float]:
    """ms for ``compile_flags(flags)`` of the already-decoded many-flags list, best of N."""
    compile_flags = _compile_flags()
    if compile_flags is None:
        return None
    body = bench.bodies["many"]

    def once() -> float:
        flags = json.loads(body)  # a fresh list each time, decoded outside the timer
        gc.collect()
        t0 = time.perf_counter()
        compile_flags(flags)
        return time.perf_counter() - t0

    return _best_of(bench.settings.load_repeats, once) * 1e3


def load_decode_compile_ms(bench: Bench) -> Optional[float]:
    """ms for ``compile_flags(json.loads(body))`` of the many-flags body, best of N."""
    compile_flags = _compile_flags()
    if compile_flags is None:
        return None
    body = bench.bodies["many"]

    def once() -> float:
        gc.collect()
        t0 = time.perf_counter()
        compile_flags(json.loads(body))
        return time.perf_counter() - t0

    return _best_of(bench.settings.load_repeats, once) * 1e3


def load_start_ms(bench: Bench) -> float:
    """ms of ``start()`` with the many-flags deployment minus ``start()`` with an empty one.

    Both best of N; what is left is roughly download of the extra bytes + decode + parse.
    """

    def start_seconds(deployment: str) -> float:
        client = bench.new_client(deployment)
        gc.collect()
        t0 = time.perf_counter()
        client.start()
        elapsed = time.perf_counter() - t0
        client.stop()
        return elapsed

    repeats = bench.settings.load_repeats
    start_seconds("empty")  # first connection, imports done lazily by the client, ...
    many = _best_of(repeats, lambda: start_seconds("many"))
    empty = _best_of(repeats, lambda: start_seconds("empty"))
    return (many - empty) * 1e3


def tracking_dedup_hit(bench: Bench) -> Measured:
    """µs per ``evaluate_v2`` of one user over and over, single rollout flag, with tracking.

    Every call after the first is a dedup hit. Extra row: the same minus a client without
    tracking (timed in interleaved rounds).
    """
    same_user = [bench.users[0]] * bench.settings.users
    with bench.client("single_rollout") as plain, bench.tracking("single_rollout") as run:
        untracked, tracked = time_per_call_each(
            [plain.evaluate_v2, run.client.evaluate_v2], same_user, bench.settings
        )
    return Measured(
        tracked * 1e6,
        extra={"tracking_dedup_overhead": (tracked - untracked) * 1e6},
        details={"untracked_us": untracked * 1e6, "delivery": {"4. dedup hit": run.report(1)}},
    )


def tracking_distinct_users(bench: Bench) -> Measured:
    """µs per ``evaluate_v2`` of a new user each call, single rollout flag, with tracking.

    Every call queues an event; the client's sending thread runs in the same process.
    """
    users = bench.distinct_users(bench.settings.distinct_users)
    with bench.tracking("single_rollout") as run:
        seconds, used = time_per_call_distinct(run.client.evaluate_v2, users, bench.settings)
    return Measured(seconds * 1e6, details={"delivery": {"5. distinct users": run.report(used)}})


def tracking_realistic(bench: Bench) -> Measured:
    """µs per ``evaluate_v2``, realistic 40 flags with tracking, cycling through the 1,000 users.

    One untimed pass first (one event per user) and a pause until those events are sent, so
    the timed calls are dedup hits. Extra row: a new user every call (one event per call),
    with a fresh client.
    """
    with bench.tracking("realistic") as cycled:
        for user in bench.users:
            cycled.client.evaluate_v2(user)
        cycled.sink.wait_quiet()
        seconds = time_per_call(cycled.client.evaluate_v2, bench.users, bench.settings)
    users = bench.distinct_users(bench.settings.distinct_users)
    with bench.tracking("realistic") as distinct:
        distinct_seconds, used = time_per_call_distinct(distinct.client.evaluate_v2, users, bench.settings)
    return Measured(
        seconds * 1e6,
        extra={"tracking_realistic_distinct": distinct_seconds * 1e6},
        details={
            "delivery": {
                "6. realistic, users cycled": cycled.report(len(bench.users)),
                "6b. realistic, distinct users": distinct.report(used),
            }
        },
    )


def tracking_burst(bench: Bench) -> Measured:
    """Seconds to evaluate ``burst_users`` distinct users back to back with default tracking settings.

    Single rollout flag; ``AssignmentConfig`` gets only ``api_key`` and ``server_url``. Extra
    rows: the time including ``stop()`` (None if it did not return within
    ``stop_timeout_seconds``), events and distinct insert_ids the sink received by then,
    and how many events were lost or received twice.
    """
    n = bench.settings.burst_users
    users = bench.distinct_users(n)
    with bench.tracking("single_rollout") as run:
        evaluate = run.client.evaluate_v2
        gc.collect()
        t0 = time.perf_counter()
        for user in users:
            evaluate(user)
        loop_seconds = time.perf_counter() - t0
        posts_during_loop = run.sink.posts_received
        stop_seconds = run.stop()
    report = run.report(n)
    report["posts_during_loop"] = posts_during_loop
    received, distinct = report["events"], report["distinct_insert_ids"]
    return Measured(
        loop_seconds,
        extra={
            "tracking_burst_total": None if stop_seconds is None else loop_seconds + stop_seconds,
            "tracking_burst_events": received,
            "tracking_burst_distinct": distinct,
            "tracking_burst_lost_or_duplicated": max(0, n - distinct) + (received - distinct),
        },
        details={"users": n, "delivery": {"7. burst": report}},
    )


@dataclass(frozen=True)
class Target:
    text: str
    met: Callable[[float, Optional[float]], Optional[bool]]  # (ours, reference) -> met? (None: unknown)


@dataclass(frozen=True)
class Row:
    """A table row: a scenario's own number, or one more it reports (``Measured.extra[key]``)."""

    key: str
    title: str  # may use ``{burst}`` (e.g. "100k", from the settings)
    unit: str
    target: Optional[Target] = None
    compare: bool = True  # show reference / ours (off for counts, where it means nothing)


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    unit: str
    run: Callable[[Bench], Union[None, float, Measured]]
    target: Optional[Target] = None
    #: Reference value to show when the reference cannot run this scenario (``run`` gave None).
    reference_fallback: Optional[str] = None
    #: Further numbers the scenario reports (``run`` returns a ``Measured``).
    rows: Tuple[Row, ...] = ()

    def all_rows(self) -> List[Row]:
        return [Row(self.key, self.title, self.unit, self.target), *self.rows]


SCENARIOS: List[Scenario] = [
    Scenario(
        "evaluate_realistic",
        "1. evaluate_v2, realistic 40 flags",
        "us/call",
        evaluate_realistic_us,
        Target(">= 30x", lambda ours, ref: None if ref is None else ref / ours >= 30),
    ),
    Scenario(
        "evaluate_single_rollout",
        "2. evaluate_v2, single rollout flag",
        "us/call",
        evaluate_single_rollout_us,
        Target("< 1 us", lambda ours, ref: ours < 1),
    ),
    Scenario(
        "evaluate_per_flag_many",
        "2b. evaluate_v2 per flag, 1,000 realistic flags",
        "us/flag",
        evaluate_per_flag_scaling,
        rows=(
            Row("evaluate_per_flag_small", "2c. ... per flag, 40 realistic flags", "us/flag"),
            Row(
                "evaluate_per_flag_ratio",
                "2d. ... per-flag cost, 1,000 / 40 flags",
                "x",
                Target("<= 1.2", lambda ours, ref: ours <= 1.2),
                compare=False,
            ),
            Row("evaluate_many_collector", "2e. ... of 2b's call, cyclic GC time", "us/call", compare=False),
            Row("evaluate_per_flag_ratio_without_collector", "2f. ... 2d without GC time", "x", compare=False),
        ),
    ),
    Scenario(
        "load_compile",
        "3. load 1,000 flags: compile_flags",
        "ms",
        load_compile_ms,
        Target("< 100 ms", lambda ours, ref: ours < 100),
        reference_fallback="load_start",
    ),
    Scenario(
        "load_decode_compile",
        "3b. ... json.loads + compile_flags",
        "ms",
        load_decode_compile_ms,
        reference_fallback="load_start",
    ),
    Scenario("load_start", "3c. ... start() - empty start()", "ms", load_start_ms),
    Scenario(
        "tracking_dedup_hit",
        "4. tracking dedup hit (same user), single flag",
        "us/call",
        tracking_dedup_hit,
        rows=(
            Row(
                "tracking_dedup_overhead",
                "4b. ... tracking overhead (minus no tracking)",
                "us/call",
                Target("<= 1.5 us", lambda ours, ref: ours <= 1.5),
            ),
        ),
    ),
    Scenario(
        "tracking_distinct_users",
        "5. tracking distinct users, one flag",
        "us/call",
        tracking_distinct_users,
        Target("<= 8 us", lambda ours, ref: ours <= 8),
    ),
    Scenario(
        "tracking_realistic",
        "6. realistic 40 flags with tracking (1,000 users)",
        "us/call",
        tracking_realistic,
        Target(">= 15x", lambda ours, ref: None if ref is None else ref / ours >= 15),
        rows=(Row("tracking_realistic_distinct", "6b. ... a new user every call", "us/call"),),
    ),
    Scenario(
        "tracking_burst",
        "7. burst {burst}: evaluate loop",
        "s",
        tracking_burst,
        rows=(
            Row("tracking_burst_total", "7b. ... total incl. stop()", "s"),
            Row("tracking_burst_events", "7c. ... events received", "events", compare=False),
            Row("tracking_burst_distinct", "7d. ... distinct insert_ids received", "events", compare=False),
            Row(
                "tracking_burst_lost_or_duplicated",
                "7e. ... lost + received twice",
                "events",
                Target("= 0", lambda ours, ref: ours == 0),
                compare=False,
            ),
        ),
    ),
]


# ---------------------------------------------------------------------------- worker


def package_info() -> Dict[str, Any]:
    """Which ``amplitude_experiment`` this interpreter imports, and its version."""
    import importlib.metadata as metadata

    import amplitude_experiment

    location = os.path.dirname(os.path.realpath(amplitude_experiment.__file__))
    version = getattr(amplitude_experiment, "__version__", None)
    if version is None:
        try:
            from amplitude_experiment.version import __version__ as version  # type: ignore[no-redef]
        except ImportError:
            pass
    distribution = None
    for name in ("amplitude-local-evaluation", "amplitude-experiment"):
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        if os.path.realpath(str(dist.locate_file("amplitude_experiment"))) == location:
            distribution = f"{name}=={dist.version}"
            version = version or dist.version
    return {"location": location, "version": version, "distribution": distribution}


def environment_info() -> Dict[str, Any]:
    affinity = getattr(os, "sched_getaffinity", None)
    return {
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "executable": sys.executable,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "usable_cpus": len(affinity(0)) if affinity else None,
    }


def result_check(bench: Bench) -> List[List[List[str]]]:
    """Per user (the first CHECK_USERS): sorted ``[flag key, variant key]`` of the realistic deployment."""
    with bench.client("realistic") as client:
        return [
            sorted([key, variant.key] for key, variant in client.evaluate_v2(user).items())
            for user in bench.users[:CHECK_USERS]
        ]


def run_scenario(scenario: Scenario, bench: Bench, out: Dict[str, Any]) -> None:
    """Run one scenario and file its numbers (and details) in ``out``; never raises."""
    results = out["results"]
    try:
        value = scenario.run(bench)
    except Exception as exc:
        for row in scenario.all_rows():
            results[row.key] = None
        out["errors"][scenario.key] = f"{type(exc).__name__}: {exc}"
        return
    if not isinstance(value, Measured):
        value = Measured(value)
    results[scenario.key] = value.value
    for row in scenario.rows:
        results[row.key] = value.extra.get(row.key)
    if value.details:
        out["details"][scenario.key] = value.details


def measure(workload: Dict[str, Any]) -> Dict[str, Any]:
    """Run every scenario in this interpreter; never raises for a failing scenario."""
    logging.disable(logging.CRITICAL)
    out: Dict[str, Any] = {
        "environment": environment_info(),
        "results": {},
        "errors": {},
        "details": {},
        "thread_errors": [],
    }

    def record_thread_error(args: "threading.ExceptHookArgs") -> None:
        # Exceptions escaping the package's background threads (senders, pollers) are findings too.
        name = args.thread.name if args.thread is not None else "?"
        out["thread_errors"].append(f"{name}: {args.exc_type.__name__}: {args.exc_value}")

    previous_hook = threading.excepthook
    threading.excepthook = record_thread_error
    try:
        out["package"] = package_info()
        bench = Bench(workload)
    except Exception as exc:  # e.g. the package does not import yet
        out["fatal"] = f"{type(exc).__name__}: {exc}"
        threading.excepthook = previous_hook
        return out
    # The harness's own objects (workload, users, bodies) are moved out of the collector's
    # reach, so GC cost during measurements comes from the package under test only. GC stays on.
    gc.collect()
    gc.freeze()
    try:
        for scenario in selected_scenarios(workload.get("scenarios")):
            run_scenario(scenario, bench, out)
        try:
            out["check"] = result_check(bench)
        except Exception as exc:
            out["errors"]["check"] = f"{type(exc).__name__}: {exc}"
    finally:
        bench.close()
        gc.unfreeze()
        threading.excepthook = previous_hook
    return out


def worker_main() -> None:
    workload = json.load(sys.stdin)
    result_stream = sys.stdout
    with contextlib.redirect_stdout(sys.stderr):  # whatever the package prints must not corrupt the JSON
        result = measure(workload)
    json.dump(result, result_stream)
    result_stream.flush()
    sys.stderr.flush()
    # Do not wait for threads the package left behind (e.g. a stop() that did not return in time).
    os._exit(0)


# ============================================================================ driver
# Runs in the interpreter the user started; builds the workload, measures, prints.


def selected_scenarios(keys: Optional[Sequence[str]]) -> List[Scenario]:
    """The scenarios named by ``keys`` (all when ``None``), in table order."""
    if keys is None:
        return list(SCENARIOS)
    unknown = set(keys) - {scenario.key for scenario in SCENARIOS}
    if unknown:
        raise SystemExit(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    return [scenario for scenario in SCENARIOS if scenario.key in keys]


def build_workload(settings: Settings, scenarios: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    if BENCH_DIR not in sys.path:
        sys.path.insert(0, BENCH_DIR)
    import deployment

    return {
        "settings": asdict(settings),
        "deployments": {
            "empty": [],
            "realistic": deployment.realistic_deployment(40),
            "single_rollout": deployment.single_rollout_flag(),
            "many": deployment.many_flags(settings.many_flags),
        },
        "users": deployment.realistic_users(settings.users),
        "scenarios": None if scenarios is None else list(scenarios),
    }


def measure_in_subprocess(python: str, workload: Dict[str, Any]) -> Dict[str, Any]:
    """Run the measuring side under ``python``, isolated from this repository."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
    with tempfile.TemporaryDirectory(prefix="bench-evaluate-") as cwd:
        try:
            proc = subprocess.run(
                [python, "-I", os.path.abspath(__file__), "--worker"],
                input=json.dumps(workload),
                capture_output=True,
                text=True,
                cwd=cwd,
                env=env,
                timeout=1800,  # generous: every tracking stop() may take up to stop_timeout_seconds
            )
        except (OSError, subprocess.SubprocessError) as exc:
            return {"fatal": f"could not run {python}: {type(exc).__name__}: {exc}"}
    if proc.returncode != 0:
        return {"fatal": f"{python} exited with {proc.returncode}: {proc.stderr.strip()[-2000:]}"}
    return json.loads(proc.stdout)


def measure_here(workload: Dict[str, Any]) -> Dict[str, Any]:
    """Measure ours in this interpreter, importing the package from the repository."""
    sys.path[:] = [REPO_ROOT] + [entry for entry in sys.path if entry != REPO_ROOT]
    return measure(workload)


def compare_checks(ours: Dict[str, Any], reference: Dict[str, Any]) -> Optional[str]:
    """A note when the two packages disagree on the realistic deployment's results."""
    if "check" not in ours or "check" not in reference:
        return None
    mismatched = [i for i, (a, b) in enumerate(zip(ours["check"], reference["check"])) if a != b]
    if not mismatched:
        return None
    first = mismatched[0]
    return (
        f"results differ for {len(mismatched)}/{len(ours['check'])} users, e.g. user #{first}: "
        f"ours={ours['check'][first]} reference={reference['check'][first]}"
    )


def summarize(
    ours: Dict[str, Any], reference: Optional[Dict[str, Any]], settings: Settings,
    scenarios: Optional[Sequence[str]] = None,
) -> List[Dict[str, Any]]:
    names = {"burst": f"{settings.burst_users // 1000}k" if settings.burst_users % 1000 == 0 else settings.burst_users}
    rows = []
    for scenario in selected_scenarios(scenarios):
        for row in scenario.all_rows():
            ours_value = ours.get("results", {}).get(row.key)
            ref_value = None
            ref_note = None
            if reference is not None:
                results = reference.get("results", {})
                ref_value = results.get(row.key)
                fallback = scenario.reference_fallback if row.key == scenario.key else None
                if ref_value is None and fallback and results.get(fallback) is not None:
                    if scenario.key not in reference.get("errors", {}):  # not applicable, rather than broken
                        ref_value = results[fallback]
                        ref_note = f"reference approximated by {fallback}"
            ratio = None
            if row.compare and ours_value and ours_value > 0 and ref_value is not None:
                ratio = ref_value / ours_value
            met = None
            if row.target is not None and ours_value is not None:
                met = row.target.met(ours_value, ref_value)
            rows.append(
                {
                    "key": row.key,
                    "title": row.title.format_map(names),
                    "unit": row.unit,
                    "ours": ours_value,
                    "reference": ref_value,
                    "reference_note": ref_note,
                    "ratio": ratio,
                    "target": row.target.text if row.target else None,
                    "target_met": met,
                }
            )
    return rows


def _fmt(value: Optional[float], unit: str = "") -> str:
    if value is None:
        return "n/a"
    if unit == "events":
        return f"{int(value):,}"
    return f"{value:#.3g}" if abs(value) < 10 else f"{value:.1f}"


def _describe(label: str, side: Dict[str, Any]) -> List[str]:
    lines = []
    env = side.get("environment")
    if env:
        cpus = env["cpu_count"] if env["usable_cpus"] in (None, env["cpu_count"]) else (
            f"{env['cpu_count']} ({env['usable_cpus']} usable)"
        )
        lines.append(f"{label}: {env['python']} ({env['executable']}), CPUs: {cpus}")
    else:
        lines.append(f"{label}:")
    package = side.get("package")
    if package:
        name = package["distribution"] or f"amplitude_experiment {package['version'] or '?'}"
        lines.append(f"  package: {name} from {package['location']}")
    if "fatal" in side:
        lines.append(f"  FAILED: {side['fatal']}")
    for key, error in side.get("errors", {}).items():
        lines.append(f"  error in {key}: {error}")
    for error in side.get("thread_errors", []):
        lines.append(f"  exception in a background thread: {error}")
    return lines


def deliveries(side: Optional[Dict[str, Any]]) -> List[Tuple[str, Dict[str, Any]]]:
    """The tracking delivery reports of one side, in scenario order: (label, report)."""
    if side is None:
        return []
    details = side.get("details", {})
    return [
        (label, report)
        for scenario in SCENARIOS
        for label, report in details.get(scenario.key, {}).get("delivery", {}).items()
    ]


def delivery_problems(report: Dict[str, Any]) -> List[str]:
    """What looks wrong in one delivery report: lost or duplicated events, a slow or failing stop()."""
    problems = []
    expected, received, distinct = report["expected_events"], report["events"], report["distinct_insert_ids"]
    if not report["stop_returned"]:
        problems.append(f"stop() did not return within {report['stop_timeout_seconds']:g} s")
    if "stop_error" in report:
        problems.append(f"stop() raised {report['stop_error']}")
    if distinct < expected:
        missing = f"{expected - distinct:,} of {expected:,} expected events had not arrived when stop() returned"
        if "distinct_insert_ids_eventually" in report:
            late = report["distinct_insert_ids_eventually"] - distinct
            missing += f"; {late:,} arrived later, {expected - distinct - late:,} never (waited until quiet for 1 s)"
        problems.append(missing)
    if distinct > expected:
        problems.append(f"{distinct - expected:,} more distinct insert_ids than expected")
    if received > distinct:
        problems.append(f"{received - distinct:,} events arrived more than once (or without insert_id)")
    if report["undecodable_posts"]:
        problems.append(f"{report['undecodable_posts']} POST bodies were not {{api_key, events}} JSON")
    dropped = report.get("stats", {}).get("events", {}).get("dropped")
    if dropped:
        problems.append(f"stats() counts dropped events: {dropped}")
    return problems


def _print_deliveries(ours: Dict[str, Any], reference: Optional[Dict[str, Any]]) -> None:
    by_side = {"ours": dict(deliveries(ours)), "reference": dict(deliveries(reference))}
    labels = list(dict.fromkeys([*by_side["ours"], *by_side["reference"]]))  # scenario order, ours first
    lines = [(label, name, by_side[name][label]) for label in labels for name in by_side if label in by_side[name]]
    if not lines:
        return
    headers = ["tracking run", "side", "expected", "received", "distinct ids", "POSTs", "stop()", "after stop()"]
    table = []
    for label, name, report in lines:
        stop = report["stop_seconds"]
        table.append(
            [
                label,
                name,
                f"{report['expected_events']:,}",
                f"{report['events']:,}",
                f"{report['distinct_insert_ids']:,}",
                f"{report['posts']:,}",
                f"{stop:.3f} s" if stop is not None else f"> {report['stop_timeout_seconds']:g} s",
                f"{report['events_after_stop']:,}" if "events_after_stop" in report else "",
            ]
        )
    print(
        "Events the local endpoint received by the time stop() returned (expected: one per distinct user;"
        " 'after stop()': events that arrived later, counted only when some were missing):"
    )
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *table)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip())
    print("  ".join("-" * w for w in widths))
    for cells in table:
        text = [cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in enumerate(zip(cells, widths))]
        print("  ".join(text).rstrip())
    for label, name, report in lines:
        if "posts_during_loop" in report:
            print(f"{label}, {name}: {report['posts_during_loop']:,} of the POSTs arrived during the evaluate loop")
    for label, report in deliveries(ours):
        if label.startswith("7.") and "stats" in report:
            print(f"ours stats() after the burst: {json.dumps(report['stats'], sort_keys=True)}")
    print()


def tracking_notes(ours: Dict[str, Any], reference: Optional[Dict[str, Any]]) -> List[str]:
    notes = []
    for name, side in (("ours", ours), ("reference", reference)):
        for label, report in deliveries(side):
            for problem in delivery_problems(report):
                notes.append(f"{name}, {label}: {problem}")
    return notes


def print_report(
    ours: Dict[str, Any], reference: Optional[Dict[str, Any]], rows: List[Dict[str, Any]], notes: List[str]
) -> None:
    print(f"platform: {platform.platform()}")
    for line in _describe("ours", ours) + (_describe("reference", reference) if reference else []):
        print(line)
    print()
    headers = ["scenario", "unit", "ours", "reference", "ratio (ref/ours)", "target"]
    table = []
    for row in rows:
        target = ""
        if row["target"]:
            status = {True: "met", False: "MISSED", None: "?"}[row["target_met"]]
            target = f"{row['target']}: {status}"
        table.append(
            [
                row["title"],
                row["unit"],
                _fmt(row["ours"], row["unit"]),
                _fmt(row["reference"], row["unit"]) + ("*" if row["reference_note"] else ""),
                f"{row['ratio']:.1f}x" if row["ratio"] is not None else "",
                target,
            ]
        )
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *table)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip())
    print("  ".join("-" * w for w in widths))
    for cells in table:
        text = [cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in enumerate(zip(cells, widths))]
        print("  ".join(text).rstrip())
    print()
    if any(row["reference_note"] for row in rows):
        print(
            "* The reference has no compile_flags: approximated by start() against the local server with "
            "the 1,000-flag body minus start() with an empty deployment (so it also includes the HTTP "
            "download of ~1.5 MB and json decoding)."
        )
        print()
    _print_deliveries(ours, reference)
    for note in notes:
        print(f"note: {note}")


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--reference-python",
        metavar="PYTHON",
        help="interpreter with the official amplitude-experiment installed (e.g. /work/refvenv/bin/python)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="fewer, shorter rounds and smaller bursts (under a minute)"
    )
    parser.add_argument("--json", action="store_true", help="print machine-readable results, not a table")
    parser.add_argument(
        "--scenarios",
        metavar="KEY[,KEY]",
        help="run only these scenarios (keys as in --json output, e.g. evaluate_realistic,evaluate_per_flag_many)",
    )
    parser.add_argument(
        "--burst-users",
        type=int,
        metavar="N",
        help="distinct users in the burst scenario (default: 100,000; 20,000 with --quick)",
    )
    # Development aids: measure "ours" under another interpreter (its installed amplitude_experiment,
    # not the repository), and the entry point of the measuring subprocess.
    parser.add_argument("--ours-python", help=argparse.SUPPRESS)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    if args.worker:
        worker_main()
        return 0
    settings = QUICK if args.quick else FULL
    if args.burst_users:
        settings = replace(settings, burst_users=args.burst_users)
    scenarios = args.scenarios.split(",") if args.scenarios else None
    workload = build_workload(settings, scenarios)
    ours = measure_in_subprocess(args.ours_python, workload) if args.ours_python else measure_here(workload)
    reference = measure_in_subprocess(args.reference_python, workload) if args.reference_python else None

    notes = []
    if reference is not None:
        mismatch = compare_checks(ours, reference)
        if mismatch:
            notes.append(mismatch)
        if ours.get("package") and ours["package"] == reference.get("package"):
            notes.append("both sides imported the same amplitude_experiment package")
    notes += tracking_notes(ours, reference)
    rows = summarize(ours, reference, settings, scenarios)
    if args.json:
        json.dump(
            {
                "settings": asdict(settings),
                "ours": {k: v for k, v in ours.items() if k != "check"},
                "reference": {k: v for k, v in reference.items() if k != "check"} if reference else None,
                "scenarios": rows,
                "notes": notes,
            },
            sys.stdout,
            indent=2,
        )
        print()
    else:
        print_report(ours, reference, rows, notes)
    return 1 if "fatal" in ours or (reference is not None and "fatal" in reference) else 0


if __name__ == "__main__":
    sys.exit(main())
