"""Run the official SDK as a black box and capture the assignment events it sends.

Runs only inside a separate virtualenv that has ``amplitude-experiment==1.13.0``
installed (never in ours: both use the import name ``amplitude_experiment``); it is
driven by ``scripts/generate_event_fixtures.py``.

Input (stdin, JSON)::

    {"cases": [{"flags": [...], "send_evaluated_props": bool,
                "calls": [{"method": "evaluate_v2" | "evaluate", "user": {User kwargs},
                           "flag_keys": null | [...]}]}]}

Output (stdout, JSON): a list, one entry per case, of::

    {"results": [{flag_key: {"key", "value", "payload", "metadata"}}, ...],  # one per call
     "events": [event, ...],            # every event POSTed, in arrival order
     "requests": [{body without "events"}, ...]}   # or {"error": "..."}

For each case a throwaway local HTTP server serves the flags at ``GET /sdk/v2/flags`` and
records POST bodies at ``/2/httpapi``; a fresh ``LocalEvaluationClient`` (so no
deduplication state leaks between cases) is started, the calls are made, and ``stop()``
flushes the events.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List

QUIET_SECONDS = 0.05  # after stop(): wait until no POST has arrived for this long
MAX_WAIT_SECONDS = 3.0


class Recorder:
    """What the fake Amplitude backend serves and what it has received."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.flags_body = b"[]"
        self.bodies: List[Dict[str, Any]] = []
        self.last_post = 0.0

    def reset(self, flags: List[Dict[str, Any]]) -> None:
        with self.lock:
            self.flags_body = json.dumps(flags).encode()
            self.bodies = []
            self.last_post = 0.0


def _serve(recorder: Recorder) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def _reply(self, body: bytes) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 (http.server naming)
            with recorder.lock:
                body = recorder.flags_body
            self._reply(body)

        def do_POST(self) -> None:  # noqa: N802
            data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with recorder.lock:
                if self.path.startswith("/2/httpapi"):
                    recorder.bodies.append(json.loads(data))
                    recorder.last_post = time.monotonic()
            self._reply(b'{"code": 200}')

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _variant_dict(variant: Any) -> Dict[str, Any]:
    return {"key": variant.key, "value": variant.value, "payload": variant.payload,
            "metadata": variant.metadata}


def run_case(case: Dict[str, Any], recorder: Recorder, base: str) -> Dict[str, Any]:
    """Evaluate one case with a fresh client and collect what it POSTed."""
    from amplitude_experiment import AssignmentConfig, LocalEvaluationClient, LocalEvaluationConfig, User

    recorder.reset(case["flags"])
    assignment = AssignmentConfig(
        api_key="a-key",
        server_url=base + "/2/httpapi",
        flush_queue_size=1,
        send_evaluated_props=bool(case.get("send_evaluated_props", False)),
    )
    client = LocalEvaluationClient(
        "server-events-oracle",
        LocalEvaluationConfig(server_url=base, flag_config_polling_interval_millis=3_600_000,
                              assignment_config=assignment),
    )
    client.start()
    results = []
    try:
        for call in case["calls"]:
            user = User(**call["user"])
            keys = call.get("flag_keys")
            if call["method"] == "evaluate":
                variants = client.evaluate(user, list(keys) if keys is not None else None)
            else:
                variants = client.evaluate_v2(user, set(keys) if keys is not None else None)
            results.append({k: _variant_dict(v) for k, v in variants.items()})
    finally:
        client.stop()
    deadline = time.monotonic() + MAX_WAIT_SECONDS
    started = time.monotonic()
    while time.monotonic() < deadline:
        with recorder.lock:
            quiet_since = max(recorder.last_post, started)
        if time.monotonic() - quiet_since >= QUIET_SECONDS:
            break
        time.sleep(0.01)
    with recorder.lock:
        bodies = list(recorder.bodies)
    events = [event for body in bodies for event in body.get("events", [])]
    requests = [{k: v for k, v in body.items() if k != "events"} for body in bodies]
    return {"results": results, "events": events, "requests": requests}


def main() -> None:
    logging.disable(logging.CRITICAL)
    warnings.simplefilter("ignore")  # the reference's dependencies emit deprecation warnings
    request = json.load(sys.stdin)
    recorder = Recorder()
    server = _serve(recorder)
    host, port = server.server_address[:2]
    base = f"http://{host}:{port}"
    out = []
    for case in request["cases"]:
        try:
            out.append(run_case(case, recorder, base))
        except Exception as exc:  # the oracle reports, it does not judge
            out.append({"error": f"{type(exc).__name__}: {exc}"})
    server.shutdown()
    json.dump(out, sys.stdout)
    sys.stdout.flush()
    # Stopped clients can leave background threads that delay interpreter exit by seconds.
    os._exit(0)


if __name__ == "__main__":
    main()
