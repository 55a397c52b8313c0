"""A loopback HTTP stand-in for the Amplitude endpoints the SDK talks to.

Serves flag configs (polling and server-sent events), cohort downloads and event
ingestion on 127.0.0.1, records every request, and can inject faults at run time. Event
ingestion answers as Amplitude documents it (see ``ingestion.py`` and ``BEHAVIOURS.md``).
"""

from __future__ import annotations

import base64
import contextlib
import json
import queue
import select
import selectors
import socket
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Deque, Dict, Iterable, List, Optional, Set, Tuple
from urllib.parse import parse_qs, unquote, urlsplit

from .ingestion import BATCH_PATH, DEFAULT_MIN_ID_LENGTH, HTTPAPI_PATH, Ingestion
from .vardata import answer_vardata

__all__ = ["AmplitudeStandIn", "RecordedRequest", "ROUTES", "FAULT_ACTIONS", "wait_for"]

ROUTES = ("flags", "stream", "cohort", "events", "vardata")
FAULT_ACTIONS = ("respond", "close", "hang", "garbage", "silent")

_FLAGS_PATH = "/sdk/v2/flags"
_STREAM_PATH = "/sdk/stream/v1/flags"
_COHORT_PREFIX = "/sdk/v1/cohort/"
_EVENTS_PATHS = (HTTPAPI_PATH, BATCH_PATH)
_KEEPALIVE = b"data:  \n\n"
_GARBAGE = b"<html>not json"


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0, interval: float = 0.01) -> bool:
    """Poll ``predicate`` until it returns truthy or ``timeout`` seconds pass; return the outcome."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the stand-in received it."""

    route: str  # one of ROUTES, or "other" for unknown paths
    method: str
    path: str
    query: Dict[str, str]
    headers: Dict[str, str]
    body: bytes
    time: float  # time.monotonic() at receipt

    def json(self) -> Any:
        """The body decoded as JSON."""
        return json.loads(self.body)

    def header(self, name: str) -> Optional[str]:
        """Case-insensitive header lookup."""
        lowered = name.lower()
        for key, value in self.headers.items():
            if key.lower() == lowered:
                return value
        return None


@dataclass
class _Fault:
    action: str
    status: int
    remaining: Optional[int]
    body: Optional[bytes]
    headers: Dict[str, str]
    delay: float


def _compact(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode("utf-8")


def _sse_event(payload: bytes) -> bytes:
    # Multi-line payloads (only possible via set_flags_raw) need one data: field per line.
    return b"".join(b"data: " + line + b"\n" for line in payload.split(b"\n")) + b"\n"


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _route_of(method: str, path: str) -> Optional[str]:
    if method == "GET" and path == _FLAGS_PATH:
        return "flags"
    if method == "GET" and path == _STREAM_PATH:
        return "stream"
    if method == "GET" and path.startswith(_COHORT_PREFIX) and len(path) > len(_COHORT_PREFIX):
        return "cohort"
    if method == "POST" and path in _EVENTS_PATHS:
        return "events"
    if method == "POST" and path == "/sdk/v2/vardata":
        return "vardata"
    return None


class _Outbox:
    """Messages for one open stream; a socket pair wakes its handler the moment one is queued."""

    def __init__(self) -> None:
        self.messages: "queue.Queue[Optional[bytes]]" = queue.Queue()
        self.wake_reader, self._wake_writer = socket.socketpair()
        self._wake_writer.setblocking(False)

    def put(self, message: Optional[bytes]) -> None:
        # Called with the stand-in's lock held, while the outbox is registered: never after close().
        self.messages.put(message)
        with contextlib.suppress(BlockingIOError):  # a full pipe holds wake-ups enough
            self._wake_writer.send(b"\0")

    def close(self) -> None:
        self.wake_reader.close()
        self._wake_writer.close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    timeout = 0  # handle_request() is called only once a connection is waiting
    stand_in: "AmplitudeStandIn"

    def __init__(self, address: Tuple[str, int], handler: Any) -> None:
        super().__init__(address, handler)
        # serve_forever() polls for shutdown; this loop is woken through a socket pair instead,
        # so stop() returns at once (tests start and stop hundreds of stand-ins).
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._closing = False

    def serve_until_closed(self) -> None:
        """Accept connections until :meth:`wake_to_close`."""
        with selectors.DefaultSelector() as selector:
            selector.register(self.socket, selectors.EVENT_READ)
            selector.register(self._wake_reader, selectors.EVENT_READ)
            while not self._closing:
                for key, _ in selector.select():
                    if key.fileobj is self.socket and not self._closing:
                        self.handle_request()

    def wake_to_close(self) -> None:
        self._closing = True
        self._wake_writer.send(b"\0")

    def server_close(self) -> None:
        super().server_close()
        self._wake_reader.close()
        self._wake_writer.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hanging up and stop() shutting sockets are routine here, not errors.
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)


class AmplitudeStandIn:
    """A real HTTP server on 127.0.0.1 that imitates Amplitude's flag, stream, cohort and ingestion APIs.

    Use as a context manager or call ``start()``/``stop()``; point the SDK at ``url``.
    """

    def __init__(
        self,
        flags: Optional[List[Dict[str, Any]]] = None,
        *,
        deployment_key: Optional[str] = None,
        cohort_api_key: Optional[str] = None,
        cohort_secret_key: Optional[str] = None,
        keepalive_interval: float = 15.0,
        max_payload_bytes: Optional[int] = None,
        min_id_length: int = DEFAULT_MIN_ID_LENGTH,
        port: int = 0,
        api_key: Optional[str] = None,
    ) -> None:
        self.deployment_key = deployment_key
        self.cohort_api_key = cohort_api_key
        self.cohort_secret_key = cohort_secret_key
        self.keepalive_interval = keepalive_interval
        self._ingestion = Ingestion(api_key, min_id_length, max_payload_bytes)
        self._port = port
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)  # notified when the last connection ends
        self._stopping = threading.Event()
        self._flags_body = _compact(list(flags or []))
        self._cohorts: Dict[str, Dict[str, Any]] = {}
        self._last_modified = 0
        self._faults: Dict[str, Deque[_Fault]] = {route: deque() for route in ROUTES}
        self._delays: Dict[str, float] = {}
        self._requests: List[RecordedRequest] = []
        self._streams: List[_Outbox] = []
        self._connections: Set[socket.socket] = set()
        self._httpd: Optional[_Server] = None
        self._thread: Optional[threading.Thread] = None

    # ----- lifecycle -------------------------------------------------------------------------

    def start(self) -> "AmplitudeStandIn":
        """Bind and start serving in a daemon thread. Returns self."""
        if self._httpd is not None:
            raise RuntimeError("AmplitudeStandIn is already running")
        self._stopping.clear()
        httpd = _Server(("127.0.0.1", self._port), _Handler)
        httpd.stand_in = self
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_until_closed, name="amplitude-stand-in", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and drop every open connection. Idempotent; returns promptly."""
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        self._stopping.set()
        self.close_streams()
        httpd.wake_to_close()
        if thread is not None:
            thread.join(timeout=2.0)
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            # Unblocks handlers idle on a keep-alive read or mid-write to a slow client.
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        httpd.server_close()
        with self._idle:
            self._idle.wait_for(lambda: not self._connections, timeout=1.0)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> "AmplitudeStandIn":
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321``."""
        if self._httpd is None:
            raise RuntimeError("AmplitudeStandIn is not running")
        return "http://127.0.0.1:%d" % self._httpd.server_address[1]

    @property
    def events_url(self) -> str:
        """The full HTTP V2 ingestion URL, ``{url}/2/httpapi``: pass it as ``AssignmentConfig(server_url=...)``."""
        return self.url + HTTPAPI_PATH

    @property
    def batch_url(self) -> str:
        """The full Batch Event Upload URL, ``{url}/batch``."""
        return self.url + BATCH_PATH

    # ----- served state ----------------------------------------------------------------------

    def set_flags(self, flags: List[Dict[str, Any]]) -> None:
        """Replace the served flags and push them to every open stream."""
        self.set_flags_raw(_compact(list(flags)))

    def set_flags_raw(self, body: bytes) -> None:
        """Serve arbitrary bytes as the flags body (and push them to open streams)."""
        with self._lock:
            self._flags_body = bytes(body)
            for stream in self._streams:
                stream.put(self._flags_body)

    def set_cohort(
        self,
        cohort_id: str,
        member_ids: List[str],
        group_type: str = "User",
        last_modified: Optional[int] = None,
    ) -> None:
        """Create or replace a cohort; ``last_modified`` (ms) defaults to an increasing clock."""
        with self._lock:
            if last_modified is None:
                last_modified = max(int(time.time() * 1000), self._last_modified + 1)
            self._last_modified = max(self._last_modified, last_modified)
            self._cohorts[cohort_id] = {
                "cohortId": cohort_id,
                "groupType": group_type,
                "groupTypeId": 0,
                "lastModified": last_modified,
                "size": len(member_ids),
                "memberIds": list(member_ids),
            }

    # ----- ingestion limits (Amplitude's documented answers; see BEHAVIOURS.md) ----------------

    @property
    def api_key(self) -> Optional[str]:
        """The only analytics API key ingestion accepts (``None``: any non-empty key)."""
        return self._ingestion.api_key

    @api_key.setter
    def api_key(self, value: Optional[str]) -> None:
        self._ingestion.api_key = value

    @property
    def min_id_length(self) -> int:
        """Minimum ``user_id``/``device_id`` length when a request sets no ``options.min_id_length``."""
        return self._ingestion.min_id_length

    @min_id_length.setter
    def min_id_length(self, value: int) -> None:
        self._ingestion.min_id_length = value

    @property
    def max_payload_bytes(self) -> Optional[int]:
        """Byte limit of one upload (``None``: Amplitude's, 1 MB on /2/httpapi and 20 MB on /batch)."""
        return self._ingestion.max_payload_bytes

    @max_payload_bytes.setter
    def max_payload_bytes(self, value: Optional[int]) -> None:
        self._ingestion.max_payload_bytes = value

    def silence_insert_ids(self, insert_ids: Iterable[str]) -> None:
        """Answer uploads holding these insert_ids with a 400 listing them in ``silenced_events``.

        A test convenience: Amplitude silences devices (see :meth:`silence_devices`), not insert_ids.
        """
        self._ingestion.silence_insert_ids(insert_ids)

    def silence_devices(self, device_ids: Iterable[str]) -> None:
        """Answer uploads with events of these devices with a 400 (``silenced_events``, ``silenced_devices``)."""
        self._ingestion.silence_devices(device_ids)

    def throttle(self, users: Iterable[str] = (), devices: Iterable[str] = (),
                 times: Optional[int] = None) -> None:
        """Answer uploads with events of these users/devices with 429 (``throttled_events``, ...).

        Each id is throttled for its next ``times`` uploads (``None``: until :meth:`clear_limits`).
        The whole upload is rejected, as Amplitude does.
        """
        self._ingestion.throttle(users, devices, times)

    def exceed_daily_quota(self, users: Iterable[str] = (), devices: Iterable[str] = (),
                           times: Optional[int] = None) -> None:
        """Like :meth:`throttle`, but listed under ``exceeded_daily_quota_users``/``_devices``."""
        self._ingestion.exceed_daily_quota(users, devices, times)

    def clear_limits(self) -> None:
        """Lift every throttle, daily quota and silencing."""
        self._ingestion.clear_limits()

    def close_streams(self) -> None:
        """End every open stream connection."""
        with self._lock:
            for stream in self._streams:
                stream.put(None)

    @property
    def open_streams(self) -> int:
        """Number of stream connections currently open."""
        with self._lock:
            return len(self._streams)

    # ----- faults ----------------------------------------------------------------------------

    def add_fault(
        self,
        route: str,
        status: int = 503,
        times: Optional[int] = 1,
        body: Any = None,
        headers: Optional[Dict[str, str]] = None,
        delay: float = 0.0,
        action: str = "respond",
    ) -> None:
        """Queue a fault for the next ``times`` requests on ``route`` (``None``: until cleared).

        Actions: ``respond`` (send ``status``/``body``/``headers`` after ``delay``), ``close`` (drop
        the socket without a response), ``hang`` (hold the connection for ``delay`` seconds, or until
        stop() when ``delay`` is 0, then drop it), ``garbage`` (200 with a non-JSON body unless
        ``body`` is given) and, for ``stream`` only, ``silent`` (headers, then nothing). ``body`` may
        be bytes, str or a JSON-serialisable value; by default it is ``{"code": status, "error": ...}``.
        """
        self._check_route(route)
        if action not in FAULT_ACTIONS:
            raise ValueError("unknown fault action %r" % (action,))
        if action == "silent" and route != "stream":
            raise ValueError("the 'silent' action only applies to the stream route")
        if times is not None and times < 1:
            raise ValueError("times must be >= 1 or None")
        if body is None or isinstance(body, bytes):
            raw = body
        elif isinstance(body, str):
            raw = body.encode("utf-8")
        else:
            raw = _compact(body)
        fault = _Fault(action, status, times, raw, dict(headers or {}), delay)
        with self._lock:
            self._faults[route].append(fault)

    def clear_faults(self, route: Optional[str] = None) -> None:
        """Drop queued faults for ``route`` (all routes when ``None``)."""
        with self._lock:
            for name in [route] if route is not None else ROUTES:
                self._check_route(name)
                self._faults[name].clear()

    def set_delay(self, route: str, seconds: float) -> None:
        """Delay every request on ``route`` by ``seconds`` before it is handled (0 removes)."""
        self._check_route(route)
        with self._lock:
            self._delays[route] = seconds

    # ----- records ---------------------------------------------------------------------------

    def requests(self, route: Optional[str] = None) -> List[RecordedRequest]:
        """Recorded requests, oldest first, optionally for one route."""
        with self._lock:
            return [r for r in self._requests if route is None or r.route == route]

    @property
    def events(self) -> List[Dict[str, Any]]:
        """Accepted events in arrival order."""
        return self._ingestion.events

    def accepted_insert_ids(self) -> List[str]:
        """insert_ids of accepted events, duplicates kept."""
        return [e["insert_id"] for e in self._ingestion.events if e.get("insert_id") is not None]

    def reset_records(self) -> None:
        """Forget recorded requests and accepted events."""
        with self._lock:
            self._requests.clear()
        self._ingestion.reset()

    def wait_for_events(self, n: int, timeout: float = 5.0) -> bool:
        """Wait until at least ``n`` events have been accepted."""
        return wait_for(lambda: self._ingestion.count >= n, timeout)

    # ----- internals used by the handler -----------------------------------------------------

    @staticmethod
    def _check_route(route: str) -> None:
        if route not in ROUTES:
            raise ValueError("unknown route %r; expected one of %s" % (route, ", ".join(ROUTES)))

    def _take_fault(self, route: str) -> Optional[_Fault]:
        with self._lock:
            faults = self._faults[route]
            if not faults:
                return None
            fault = faults[0]
            if fault.remaining is not None:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    faults.popleft()
            return fault

    def _ingest(self, path: str, body: bytes) -> Tuple[int, Dict[str, Any]]:
        return self._ingestion.handle(path, body)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        with self.server.stand_in._lock:
            self.server.stand_in._connections.add(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            stand_in = self.server.stand_in
            with stand_in._idle:
                stand_in._connections.discard(self.connection)
                if not stand_in._connections:
                    stand_in._idle.notify_all()

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    # ----- plumbing --------------------------------------------------------------------------

    @property
    def _stand_in(self) -> AmplitudeStandIn:
        return self.server.stand_in

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts: List[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # skip trailers
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send(self, status: int, body: bytes = b"", headers: Optional[Dict[str, str]] = None) -> None:
        merged = {"Content-Type": "application/json"}
        merged.update(headers or {})
        self.send_response(status)
        for name, value in merged.items():
            self.send_header(name, value)
        if status != 204:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and status != 204:
            self.wfile.write(body)

    def _send_json(self, status: int, value: Any, headers: Optional[Dict[str, str]] = None) -> None:
        self._send(status, _compact(value), headers)

    def _drop(self) -> None:
        # Returning without writing anything makes the server close the socket: no response at all.
        self.close_connection = True

    def _pause(self, seconds: float) -> bool:
        """Sleep interruptibly; False when the server is stopping."""
        if seconds > 0:
            self._stand_in._stopping.wait(seconds)
        return not self._stand_in._stopping.is_set()

    def _authorized(self, route: str) -> bool:
        stand_in = self._stand_in
        given = self.headers.get("Authorization")
        if route in ("flags", "stream", "vardata") and stand_in.deployment_key is not None:
            return given == "Api-Key " + stand_in.deployment_key
        if route == "cohort" and (stand_in.cohort_api_key is not None or stand_in.cohort_secret_key is not None):
            pair = "%s:%s" % (stand_in.cohort_api_key or "", stand_in.cohort_secret_key or "")
            return given == "Basic " + base64.b64encode(pair.encode("utf-8")).decode("ascii")
        return True

    # ----- request flow ----------------------------------------------------------------------

    def _dispatch(self) -> None:
        stand_in = self._stand_in
        url = urlsplit(self.path)
        route = _route_of(self.command, url.path)
        body = self._read_body()
        query = {key: values[0] for key, values in parse_qs(url.query, keep_blank_values=True).items()}
        record = RecordedRequest(
            route or "other", self.command, url.path, query, dict(self.headers.items()), body, time.monotonic()
        )
        with stand_in._lock:
            stand_in._requests.append(record)
            delay = stand_in._delays.get(route or "", 0.0)
        if route is None:
            self._send_json(404, {"code": 404, "error": "Not found"})
            return
        if not self._pause(delay):
            return self._drop()
        fault = stand_in._take_fault(route)
        if fault is not None and fault.action != "silent":
            return self._apply_fault(fault)
        if not self._authorized(route):
            return self._send_json(401, {"code": 401, "error": "Unauthorized"})
        if route == "flags":
            with stand_in._lock:
                flags_body = stand_in._flags_body
            self._send(200, flags_body)
        elif route == "stream":
            self._serve_stream(silent=fault is not None)
        elif route == "cohort":
            self._serve_cohort(unquote(url.path[len(_COHORT_PREFIX):]), query)
        elif route == "vardata":  # remote evaluation, answered by our engine (testing/vardata.py)
            with stand_in._lock:
                flags_body = stand_in._flags_body
            self._send_json(*answer_vardata(flags_body, dict(self.headers.items()), body))
        else:
            status, response = stand_in._ingest(url.path, body)
            self._send_json(status, response)

    def _apply_fault(self, fault: _Fault) -> None:
        if fault.action == "hang":
            # No delay means hang until the server stops.
            if fault.delay > 0:
                self._pause(fault.delay)
            else:
                self._stand_in._stopping.wait()
            return self._drop()
        if not self._pause(fault.delay) or fault.action == "close":
            return self._drop()
        if fault.action == "garbage":
            body = _GARBAGE if fault.body is None else fault.body
            headers = {"Content-Type": "text/html"}
            headers.update(fault.headers)
            return self._send(200, body, headers)
        if fault.body is None:
            return self._send_json(fault.status, {"code": fault.status, "error": _phrase(fault.status)}, fault.headers)
        self._send(fault.status, fault.body, fault.headers)

    def _serve_cohort(self, cohort_id: str, query: Dict[str, str]) -> None:
        with self._stand_in._lock:
            cohort = self._stand_in._cohorts.get(cohort_id)
        if cohort is None:
            return self._send_json(404, {"code": 404, "error": "Cohort not found"})
        try:
            last_modified = int(query["lastModified"]) if "lastModified" in query else None
            max_size = int(query["maxCohortSize"]) if "maxCohortSize" in query else None
        except ValueError:
            return self._send_json(400, {"code": 400, "error": "Invalid query parameter"})
        if last_modified is not None and last_modified >= cohort["lastModified"]:
            return self._send(204)
        if max_size is not None and cohort["size"] > max_size:
            return self._send_json(413, {"code": 413, "error": "Cohort exceeds max cohort size"})
        self._send_json(200, cohort)

    def _serve_stream(self, silent: bool) -> None:
        stand_in = self._stand_in
        outbox = _Outbox()
        with stand_in._lock:
            initial = stand_in._flags_body
            stand_in._streams.append(outbox)
        self.close_connection = True
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Connection", "close")
            self.end_headers()
            # Chunked framing lets clients (urllib3's read_chunked) see each event as soon as it is written.
            if not silent:
                self._write_chunk(_sse_event(initial))
            next_keepalive = time.monotonic() + stand_in.keepalive_interval
            while not stand_in._stopping.is_set():
                # Sleep until a message is queued, the client hangs up (so open_streams stays
                # accurate) or the next keep-alive is due; nothing polls.
                wait = max(0.0, next_keepalive - time.monotonic())
                readable, _, _ = select.select([self.connection, outbox.wake_reader], [], [], wait)
                if self.connection in readable:
                    if not self.connection.recv(4096):  # EOF: the client hung up (anything else is ignored)
                        break
                if outbox.wake_reader in readable:
                    outbox.wake_reader.recv(4096)
                pending: List[Optional[bytes]] = []
                while not outbox.messages.empty():
                    pending.append(outbox.messages.get_nowait())
                if None in pending:
                    break
                chunks = [_sse_event(message) for message in pending if message is not None]
                if time.monotonic() >= next_keepalive:
                    next_keepalive = time.monotonic() + stand_in.keepalive_interval
                    chunks.append(_KEEPALIVE)
                if not silent:
                    for chunk in chunks:
                        self._write_chunk(chunk)
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            pass  # the client went away
        finally:
            with stand_in._lock:
                stand_in._streams.remove(outbox)
            outbox.close()

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()
