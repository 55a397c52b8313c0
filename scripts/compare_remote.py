"""Black-box comparison of remote evaluation: the official SDK and ours, same script, same server.

Runs a recording loopback server (answers ``POST /sdk/v2/vardata`` with our engine, or with the
failure a step asks for), runs the scenario below once under each interpreter (one venv each),
and compares, step by step, the requests each side sent (method, path, headers other than the
transport ones, body other than the SDK's ``library``) and what each side got back (variants,
``None``, or the exception type and ``status_code``; callbacks for the async fetches).

Usage::

    python scripts/compare_remote.py [--reference /work/refvenv/bin/python] [--ours .venv/bin/python]
                                     [--write-fixture tests/remote/fixtures/compare_remote.json]

It exits 1 when a step differs that is not a documented divergence (``DIVERGES`` below: where
the official client is broken and ours is fixed on purpose), or when a documented divergence
no longer diverges.

The scenario (``--scenario URL``) uses only the official SDK's public API, so the reference's
venv runs this very file; nothing else of this package is imported in that mode.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Optional, Tuple

# ----- the flags the server evaluates (v2 schema) -------------------------------------------------

_OFF = {"key": "off", "metadata": {"default": True}}
_DEPLOYED = {"deployed": True, "evaluationMode": "remote", "flagVersion": 3}


def _flag(key: str, variants: Dict[str, Any], segments: List[Any], **extra: Any) -> Dict[str, Any]:
    metadata: Dict[str, Any] = {**_DEPLOYED, "flagType": "release", **extra.pop("metadata", {})}
    return {"key": key, "metadata": metadata, "variants": {"off": _OFF, **variants}, "segments": segments, **extra}


FLAGS: List[Dict[str, Any]] = [
    _flag("flag-on", {"on": {"key": "on", "value": "on", "payload": {"a": [1, 2], "b": None}}},
          [{"metadata": {"segmentName": "All Other Users"}, "variant": "on"}]),
    _flag("flag-targeted", {"on": {"key": "on", "value": "on"}}, [
        {"conditions": [[{"selector": ["context", "user", "user_properties", "plan"], "op": "is",
                          "values": ["pro"]}]], "metadata": {"segmentName": "Pro"}, "variant": "on"},
        {"metadata": {"segmentName": "All Other Users"}, "variant": "off"}]),
    _flag("flag-undeployed", {"on": {"key": "on", "value": "on"}},
          [{"metadata": {"segmentName": "All Other Users"}, "variant": "off"}], metadata={"deployed": False}),
    _flag("flag-exp", {"control": {"key": "control", "value": "control"},
                       "treatment": {"key": "treatment", "value": "treatment", "payload": [1, "two"]}}, [
        {"metadata": {"segmentName": "All Other Users"}, "variant": "off",
         "bucket": {"selector": ["context", "user", "device_id"], "salt": "flag-exp", "allocations": [
             {"range": [0, 100], "distributions": [{"variant": "control", "range": [0, 21474837]},
                                                   {"variant": "treatment", "range": [21474837, 42949673]}]}]}}],
          metadata={"flagType": "experiment", "experimentKey": "exp-1"}),
    _flag("flag-dep-parent", {"on": {"key": "on", "value": "on"}},
          [{"metadata": {"segmentName": "All Other Users"}, "variant": "on"}]),
    _flag("flag-dep-child", {"on": {"key": "on", "value": "on"}}, [
        {"conditions": [[{"selector": ["result", "flag-dep-parent", "key"], "op": "is", "values": ["on"]}]],
         "variant": "on"}], dependencies=["flag-dep-parent"]),
    _flag("é-flag", {"on": {"key": "on", "value": "oui"}}, [{"variant": "on"}]),
]

# ----- the steps ----------------------------------------------------------------------------------

_RICH_USER = {"user_id": "user-1", "device_id": "device-1", "country": "NZ", "language": "en", "version": "1.2.3",
              "user_properties": {"plan": "pro", "n": 3, "tags": ["a", "b"]},
              "groups": {"org": ["acme"]}, "group_properties": {"org": {"acme": {"tier": "gold"}}}}
_FAST = {"fetch_retry_backoff_min_millis": 0, "fetch_retry_backoff_max_millis": 0}

#: name -> what the scenario does. ``plan``: how the server answers this step's requests in
#: order (``500``: that status, keep-alive; ``500:close``: with ``Connection: close``; ``drop``:
#: close without an answer); then 200s evaluated by our engine.
STEPS: Dict[str, Dict[str, Any]] = {
    "fetch_v2-basic": {"call": "fetch_v2", "user": _RICH_USER},
    "fetch_v2-minimal-user": {"call": "fetch_v2", "user": {"device_id": "d-2"}},
    "fetch_v2-own-library": {"call": "fetch_v2", "user": {"user_id": "u-3", "library": "my-app/2.0"}},
    "fetch_v2-options-all": {"call": "fetch_v2", "user": _RICH_USER, "options": {
        "tracksAssignment": False, "tracksExposure": True, "flagKeys": ["flag-on", "flag-dep-child"]}},
    "fetch_v2-options-tracking": {"call": "fetch_v2", "user": _RICH_USER,
                                  "options": {"tracksAssignment": True, "tracksExposure": False}},
    "fetch_v2-options-empty-keys": {"call": "fetch_v2", "user": _RICH_USER, "options": {"flagKeys": []}},
    "fetch_v2-options-unicode-keys": {"call": "fetch_v2", "user": _RICH_USER,
                                      "options": {"flagKeys": ["é-flag", "flag-exp"]}},
    "fetch-deprecated": {"call": "fetch", "user": {"user_id": "u-4", "device_id": "d-4"}},
    "fetch-deprecated-options": {"call": "fetch", "user": {"user_id": "u-4", "device_id": "d-4"},
                                 "options": {"flagKeys": ["flag-undeployed", "flag-on"], "tracksAssignment": False}},
    "fetch_async_v2": {"call": "fetch_async_v2", "user": _RICH_USER},
    "fetch_async-deprecated": {"call": "fetch_async", "user": {"user_id": "u-5"}},
    "fetch_async-deprecated-5xx-exhausted": {"call": "fetch_async", "user": {"user_id": "u-6"},
                                             "config": dict(_FAST, fetch_retries=1),
                                             "plan": ["500:close", "500:close"]},
    "fetch_async_v2-5xx-exhausted": {"call": "fetch_async_v2", "user": {"user_id": "u-6"},
                                     "config": dict(_FAST, fetch_retries=1), "plan": ["500:close", "500:close"]},
    "fetch_async_v2-5xx-no-retries": {"call": "fetch_async_v2", "user": {"user_id": "u-6"}, "plan": ["503:close"]},
    "5xx-no-retries": {"call": "fetch_v2", "user": {"user_id": "u-7"}, "plan": ["503:close"]},
    "5xx-then-ok": {"call": "fetch_v2", "user": {"user_id": "u-7"}, "config": dict(_FAST, fetch_retries=2),
                    "plan": ["503:close", "500:close"]},
    "5xx-exhausted": {"call": "fetch_v2", "user": {"user_id": "u-7"}, "config": dict(_FAST, fetch_retries=2),
                      "plan": ["500:close", "502:close", "504:close"]},
    "5xx-keepalive-exhausted": {"call": "fetch_v2", "user": {"user_id": "u-7"},
                                "config": dict(_FAST, fetch_retries=2), "plan": ["503", "503", "503"]},
    "5xx-no-retries-keepalive": {"call": "fetch_v2", "user": {"user_id": "u-7"}, "plan": ["500"]},
    "429-then-ok": {"call": "fetch_v2", "user": {"user_id": "u-8"}, "config": dict(_FAST, fetch_retries=1),
                    "plan": ["429:close"]},
    "network-then-ok": {"call": "fetch_v2", "user": {"user_id": "u-8"}, "config": dict(_FAST, fetch_retries=1),
                        "plan": ["drop"]},
    "network-no-retries": {"call": "fetch_v2", "user": {"user_id": "u-8"}, "plan": ["drop"]},
    # Documented divergences (see DIVERGES).
    "5xx-keepalive-then-ok": {"call": "fetch_v2", "user": {"user_id": "u-9"},
                              "config": dict(_FAST, fetch_retries=2), "plan": ["503"]},
    "5xx-keepalive-one-retry": {"call": "fetch_v2", "user": {"user_id": "u-9"},
                                "config": dict(_FAST, fetch_retries=1), "plan": ["503", "503"]},
    "network-exhausted": {"call": "fetch_v2", "user": {"user_id": "u-9"}, "config": dict(_FAST, fetch_retries=1),
                          "plan": ["drop", "drop"]},
    "4xx": {"call": "fetch_v2", "user": {"user_id": "u-10"}, "config": dict(_FAST, fetch_retries=1),
            "plan": ["400:close"]},
    "user-not-changed": {"call": "fetch_v2", "user": {"user_id": "u-11"}, "report_user_library": True},
}

#: Steps where the official client is broken and ours differs on purpose (README, CHANGELOG).
DIVERGES: Dict[str, str] = {
    "5xx-keepalive-then-ok": "the official client reuses a connection whose error answer it did not read, so "
                             "the next request's answer is lost (http.client ResponseNotReady) and counts as "
                             "a failed retry: it sends 3 requests where 2 do",
    "5xx-keepalive-one-retry": "same bug: the official client's only retry fails locally and it raises "
                               "http.client.ResponseNotReady instead of FetchException(503)",
    "network-exhausted": "the official client raises the raw http.client error; ours raises FetchException "
                         "(status_code None, the cause chained; also an OSError like the original)",
    "4xx": "the official client returns None on a non-retryable 4xx; ours returns {} and logs the status",
    "user-not-changed": "the official client writes its library into the caller's User; ours leaves it alone",
}

#: Headers that belong to the HTTP stack, not the SDK: not compared (reported in the text output).
TRANSPORT_HEADERS = ("host", "user-agent", "content-length", "accept", "accept-encoding", "connection")

# ----- the scenario (official public API only) ----------------------------------------------------


def _describe_error(error: Optional[BaseException]) -> Optional[Dict[str, Any]]:
    if error is None:
        return None
    return {"type": type(error).__name__, "status_code": getattr(error, "status_code", None)}


def _variants_json(variants: Any) -> Any:
    if variants is None:
        return None
    return {key: {"key": v.key, "value": v.value, "payload": v.payload, "metadata": v.metadata}
            for key, v in sorted(variants.items())}


def run_scenario(url: str, steps: Optional[List[str]] = None) -> Dict[str, Any]:
    """Run every step against ``url`` with whichever ``amplitude_experiment`` is importable."""
    from amplitude_experiment import Experiment, RemoteEvaluationConfig, User
    from amplitude_experiment.remote.fetch_options import FetchOptions

    quiet = [logging.getLogger(name) for name in ("amplitude_experiment", "Amplitude")]
    levels = [logger.level for logger in quiet]
    for logger in quiet:
        logger.setLevel(logging.CRITICAL)
    try:
        return _run_steps(steps or list(STEPS), url, Experiment, RemoteEvaluationConfig, User, FetchOptions)
    finally:
        for logger, level in zip(quiet, levels):
            logger.setLevel(level)


def _run_steps(names: List[str], url: str, Experiment: Any, RemoteEvaluationConfig: Any, User: Any,  # noqa: N803
               FetchOptions: Any) -> Dict[str, Any]:
    outcomes: Dict[str, Any] = {}
    for name in names:
        step = STEPS[name]
        client = Experiment.initialize_remote("server-" + name, RemoteEvaluationConfig(
            server_url=url, **step.get("config", {})))
        user = User(**step["user"])
        options = FetchOptions(**step["options"]) if "options" in step else None
        outcome: Dict[str, Any] = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            try:
                if step["call"] in ("fetch_async_v2", "fetch_async"):
                    done = threading.Event()
                    calls: List[Any] = []

                    def callback(*args: Any, calls: List[Any] = calls, done: threading.Event = done) -> None:
                        calls.append(args)
                        done.set()

                    getattr(client, step["call"])(user, callback)
                    if not done.wait(10):
                        raise RuntimeError("no callback within 10 s")
                    args = calls[0]
                    outcome["callback"] = {"arguments": len(args), "same_user": args[0] is user,
                                           "variants": _variants_json(args[1]),
                                           "error": _describe_error(args[2]) if len(args) > 2 else None}
                elif options is not None:
                    outcome["result"] = _variants_json(getattr(client, step["call"])(user, options))
                else:
                    outcome["result"] = _variants_json(getattr(client, step["call"])(user))
            except Exception as error:  # noqa: BLE001 - recording what each SDK raises is the point
                outcome["raised"] = _describe_error(error)
        if step.get("report_user_library"):
            outcome["user_library_after"] = user.library
        client.close()
        outcomes[name] = outcome
    return outcomes


# ----- the recording server (our venv only) -------------------------------------------------------


class RecordingServer:
    """A loopback vardata server: scripted failures per deployment key, then our engine's answers."""

    def __init__(self, flags: Optional[List[Dict[str, Any]]] = None) -> None:
        from amplitude_experiment.testing.vardata import answer_vardata

        self._answer = answer_vardata
        self._flags_body = json.dumps(flags if flags is not None else FLAGS).encode("utf-8")
        self._lock = threading.Lock()
        self.requests: List[Dict[str, Any]] = []
        self._plans: Dict[str, List[str]] = {}
        self.reset()
        server = _QuietServer(("127.0.0.1", 0), _handler_for(self))
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return "http://127.0.0.1:%d" % self._server.server_address[1]

    def reset(self) -> None:
        """Forget recorded requests and re-arm every step's plan."""
        with self._lock:
            self.requests = []
            self._plans = {"server-" + name: list(step.get("plan", [])) for name, step in STEPS.items()}

    def next_action(self, key: str) -> Optional[str]:
        with self._lock:
            plan = self._plans.get(key)
            return plan.pop(0) if plan else None

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # The official client hangs up mid-answer in the DIVERGES steps; that is the point, not an error.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


def _handler_for(recorder: RecordingServer) -> Any:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out in separate writes

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = list(self.headers.items())
            with recorder._lock:
                recorder.requests.append({"method": self.command, "path": self.path, "headers": headers,
                                          "body": body.decode("utf-8", "replace")})
            key = (self.headers.get("Authorization") or "").replace("Api-Key ", "", 1)
            action = recorder.next_action(key)
            if action == "drop":
                self.close_connection = True
                return
            if action is not None:
                status_text, _, mode = action.partition(":")
                self._reply(int(status_text), {"code": int(status_text), "error": "scripted"}, close=mode == "close")
                return
            status, answer = recorder._answer(recorder._flags_body, dict(headers), body)
            self._reply(status, answer, close=False)

        def _reply(self, status: int, value: Any, close: bool) -> None:
            out = json.dumps(value).encode("utf-8")
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                if close:
                    self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(out)
            except OSError:
                pass  # the official client may hang up mid-answer (see DIVERGES)

    return Handler


# ----- normalising and comparing ------------------------------------------------------------------


def _normal_body(text: str, user_library: Optional[str]) -> str:
    """The body with the SDK's own ``library`` value masked (a library the user set is kept)."""
    try:
        library = json.loads(text).get("library")
    except (ValueError, AttributeError):
        return text
    if isinstance(library, str) and library != user_library:
        return text.replace('"library": ' + json.dumps(library), '"library": "<sdk library>"', 1)
    return text


def normalise(requests: List[Dict[str, Any]]) -> Dict[str, List[Dict[str, Any]]]:
    """Recorded requests by step, without transport headers and with the SDK's library masked."""
    by_step: Dict[str, List[Dict[str, Any]]] = {}
    for request in requests:
        headers = dict(request["headers"])
        step = headers.get("Authorization", "").replace("Api-Key server-", "", 1)
        by_step.setdefault(step, []).append({
            "method": request["method"], "path": request["path"],
            "headers": sorted([name, value] for name, value in request["headers"]
                              if name.lower() not in TRANSPORT_HEADERS),
            "body": _normal_body(request["body"], STEPS.get(step, {}).get("user", {}).get("library")),
        })
    return by_step


def transport_headers(requests: List[Dict[str, Any]]) -> List[Tuple[str, str]]:
    seen = {(name, value) for r in requests for name, value in r["headers"]
            if name.lower() in TRANSPORT_HEADERS and name.lower() not in ("host", "content-length")}
    return sorted(seen)


def side_record(outcomes: Dict[str, Any], requests: List[Dict[str, Any]]) -> Dict[str, Any]:
    """What one SDK did, step by step: ``{step: {"requests": [...], "outcome": {...}}}``."""
    by_step = normalise(requests)
    return {name: {"requests": by_step.get(name, []), "outcome": outcomes.get(name)} for name in STEPS}


def _run_side(python: str, url: str) -> Dict[str, Any]:
    with tempfile.TemporaryDirectory() as workdir:  # so no checkout shadows the venv's package
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        done = subprocess.run([python, os.path.abspath(__file__), "--scenario", url], cwd=workdir, env=env,
                              capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise SystemExit(f"{python} failed running the scenario:\n{done.stderr}")
    result: Dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def compare(reference: str, ours: str) -> Tuple[Dict[str, Any], List[str], List[str]]:
    """Run both sides; the fixture document, the report lines and the unexpected differences."""
    server = RecordingServer()
    try:
        sides = {}
        transport = {}
        for label, python in (("reference", reference), ("ours", ours)):
            server.reset()
            outcomes = _run_side(python, server.url)
            sides[label] = side_record(outcomes, server.requests)
            transport[label] = transport_headers(server.requests)
    finally:
        server.close()
    lines: List[str] = []
    problems: List[str] = []
    fixture: Dict[str, Any] = {"steps": {}, "divergences": DIVERGES}
    for name in STEPS:
        ref, our = sides["reference"][name], sides["ours"][name]
        same = ref == our
        entry: Dict[str, Any] = {"ours": our}
        if name in DIVERGES:
            entry["reference"] = ref
            verdict = "DIVERGES as documented" if not same else "UNEXPECTEDLY SAME"
            if same:
                problems.append(f"{name}: documented divergence no longer diverges")
        else:
            verdict = "same" if same else "DIFFERENT"
            if not same:
                problems.append(f"{name}: requests or outcome differ")
        fixture["steps"][name] = entry
        lines.append(f"{name:38} {len(ref['requests'])} vs {len(our['requests'])} requests  {verdict}")
        if not same:
            for label, side in (("reference", ref), ("ours", our)):
                lines.append(f"    {label:9} outcome: {json.dumps(side['outcome'], ensure_ascii=False)}")
            if ref["requests"] != our["requests"]:
                lines.append("    requests differ:")
                for label, side in (("reference", ref), ("ours", our)):
                    for request in side["requests"]:
                        lines.append(f"      {label:9} {json.dumps(request, ensure_ascii=False)[:400]}")
            if name in DIVERGES:
                lines.append(f"    why: {DIVERGES[name]}")
    lines.append("")
    lines.append("Transport headers (not compared): ")
    for label in ("reference", "ours"):
        lines.append(f"    {label:9} {transport[label]}")
    return fixture, lines, problems


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", metavar="URL", help="run the scenario against URL and print JSON (internal)")
    parser.add_argument("--reference", default="/work/refvenv/bin/python", help="Python of the official SDK's venv")
    parser.add_argument("--ours", default=sys.executable, help="Python of this package's venv")
    parser.add_argument("--write-fixture", metavar="PATH", help="write the comparison as JSON (the test fixture)")
    args = parser.parse_args(argv)
    if args.scenario:
        print(json.dumps(run_scenario(args.scenario), ensure_ascii=False))
        return 0
    fixture, lines, problems = compare(args.reference, args.ours)
    print("\n".join(lines))
    if args.write_fixture:
        with open(args.write_fixture, "w", encoding="utf-8") as out:
            json.dump(fixture, out, indent=1, ensure_ascii=False, sort_keys=True)
            out.write("\n")
    if problems:
        print("\nUNEXPECTED:\n  " + "\n  ".join(problems))
        return 1
    print(f"\n{len(STEPS)} steps: {len(STEPS) - len(DIVERGES)} identical, {len(DIVERGES)} documented divergences")
    return 0


if __name__ == "__main__":
    sys.exit(main())
