"""Assignment tracking under load, ours against the official SDK (issue 12 points 3 and 6).

Usage::

    python benchmarks/bench_tracking.py --reference-python /work/refvenv/bin/python [--users N]
        [--burst-users N] [--only sustained|burst] [--skip-reference]

Two scenarios, each run in a fresh interpreter per SDK (public API only), side by side:

- ``sustained``: ``--users`` (default 400,000) never-seen users evaluated back to back at full
  speed on a realistic 10-flag deployment, default ``AssignmentConfig`` (only ``api_key`` and
  ``server_url``), then ``stop()``. Reports the loop time, ``stop()`` time, the events and
  distinct insert_ids the collector received, the deepest event queue seen (ours: sampled from
  ``stats()`` every 10,000 users), and the RSS of the measured process sampled every 0.2 s from
  outside (peak, and the plateau: the median over the last half of the loop).
- ``burst``: ``--burst-users`` (default 20,000) never-seen users on one rollout flag with the
  ingestion endpoint down (a port nobody listens on): peak RSS (``VmHWM``) after the loop.

The collector is a separate process (so it takes no time from the measured interpreter's
GIL): it serves the flags, answers every ingestion POST ``200 {"code":200}`` and counts events
and distinct insert_ids. Users are made on the fly from 1,000 realistic templates with numbered
ids, so the benchmark itself holds no per-user memory.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Optional, Sequence, Set

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from deployment import realistic_deployment, realistic_users, single_rollout_flag  # noqa: E402

API_KEY = "server-bench-tracking"
EVENTS_API_KEY = "bench-events-key"
EVENTS_PATH = "/2/httpapi"
_INSERT_ID = re.compile(rb'"insert_id":\s*"((?:[^"\\]|\\.)*)"')


# ============================================================================ collector process


def collector_main(flags_file: str, port_file: str) -> None:
    """Serve flags (any GET but /counts), count ingested events, report on ``GET /counts``."""
    with open(flags_file, "rb") as f:
        flags_body = f.read()
    lock = threading.Lock()
    seen: Set[bytes] = set()
    totals = {"posts": 0, "events": 0}
    ok = b'{"code":200}'

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def do_GET(self) -> None:  # noqa: N802 (http.server naming)
            if self.path == "/counts":
                with lock:
                    body = json.dumps({**totals, "distinct_insert_ids": len(seen)}).encode()
            else:
                body = flags_body
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                             % (len(body), body))

        def do_POST(self) -> None:  # noqa: N802 (http.server naming)
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if (self.headers.get("Content-Encoding") or "").lower() == "gzip":
                import gzip

                body = gzip.decompress(body)
            ids = _INSERT_ID.findall(body)
            with lock:
                totals["posts"] += 1
                totals["events"] += len(ids)
                seen.update(ids)
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                             % (len(ok), ok))

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    with open(port_file + ".tmp", "w") as f:
        f.write(str(httpd.server_address[1]))
    os.replace(port_file + ".tmp", port_file)
    httpd.serve_forever()


# ============================================================================ measured process


def _users(n: int) -> Any:
    """``n`` distinct users, made one at a time from 1,000 realistic templates."""
    from amplitude_experiment import User

    templates = realistic_users(1000)
    for index in range(n):
        kwargs = dict(templates[index % 1000])
        if kwargs.get("user_id") is not None:
            kwargs["user_id"] = f"{kwargs['user_id']}-n{index}"
        kwargs["device_id"] = f"{kwargs['device_id']}-n{index}"
        yield User(**kwargs)


def _rss_kb(field: str = "VmRSS") -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def measure_main(flags_url: str, events_url: str, users: int, stop_timeout: float) -> None:
    """Evaluate ``users`` new users with tracking; print one JSON line of results."""
    from amplitude_experiment import AssignmentConfig, LocalEvaluationClient, LocalEvaluationConfig

    config = LocalEvaluationConfig(server_url=flags_url, flag_config_polling_interval_millis=3_600_000,
                                   assignment_config=AssignmentConfig(api_key=EVENTS_API_KEY, server_url=events_url))
    client = LocalEvaluationClient(API_KEY, config)
    client.start()
    evaluate = client.evaluate_v2
    stats = getattr(client, "stats", None)  # ours only
    deepest = 0  # the most events seen waiting in the queue (sampled every 10,000 users)
    print(json.dumps({"phase": "loop", "rss_kb": _rss_kb()}), flush=True)
    t0 = time.perf_counter()
    for index, user in enumerate(_users(users)):
        evaluate(user)
        if stats is not None and index % 10_000 == 0:
            deepest = max(deepest, stats()["events"]["queue_depth"])
    loop = time.perf_counter() - t0
    peak_kb = _rss_kb("VmHWM")
    print(json.dumps({"phase": "stop"}), flush=True)
    t1 = time.perf_counter()
    client.stop(stop_timeout) if _takes_timeout(client.stop) else client.stop()
    stopped = time.perf_counter() - t1
    print(json.dumps({"phase": "done", "loop_seconds": loop, "stop_seconds": stopped, "peak_rss_kb": peak_kb,
                      "deepest_queue": deepest if stats is not None else None,
                      "stats": stats() if callable(stats) else None}), flush=True)


def _takes_timeout(func: Any) -> bool:
    import inspect

    try:
        return "timeout" in inspect.signature(func).parameters
    except (TypeError, ValueError):
        return False


# ============================================================================ driver


class Collector:
    """The collector process (flags + ingestion), started from ``python``."""

    def __init__(self, python: str, flags: List[Dict[str, Any]], workdir: str) -> None:
        flags_file = os.path.join(workdir, "flags.json")
        port_file = os.path.join(workdir, "port")
        with open(flags_file, "w") as f:
            json.dump(flags, f)
        if os.path.exists(port_file):
            os.remove(port_file)
        self.process = subprocess.Popen([python, os.path.abspath(__file__), "--collector", flags_file, port_file])
        deadline = time.monotonic() + 10
        while not os.path.exists(port_file):
            if time.monotonic() > deadline:
                raise RuntimeError("the collector did not start")
            time.sleep(0.05)
        with open(port_file) as f:
            self.url = f"http://127.0.0.1:{int(f.read())}"

    def counts(self) -> Dict[str, int]:
        import urllib.request

        with urllib.request.urlopen(self.url + "/counts", timeout=10) as response:
            counts: Dict[str, int] = json.loads(response.read())
            return counts

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def _dead_url() -> str:
    import socket

    with socket.socket() as s:  # a port that was free a moment ago: connections are refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}{EVENTS_PATH}"


def run_side(python: str, flags: List[Dict[str, Any]], users: int, endpoint_down: bool,
             stop_timeout: float, workdir: str) -> Dict[str, Any]:
    """One measured run in ``python``; RSS sampled from outside every 0.2 s."""
    collector = Collector(sys.executable, flags, workdir)
    try:
        events_url = _dead_url() if endpoint_down else collector.url + EVENTS_PATH
        process = subprocess.Popen([python, os.path.abspath(__file__), "--measure", collector.url, events_url,
                                    str(users), str(stop_timeout)], stdout=subprocess.PIPE, text=True)
        assert process.stdout is not None
        samples: List[int] = []
        phase = {"name": "start"}
        lines: List[str] = []

        def read() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                lines.append(line)
                try:
                    phase["name"] = json.loads(line).get("phase", phase["name"])
                except ValueError:
                    pass

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        status_file = f"/proc/{process.pid}/status"
        while process.poll() is None:
            if phase["name"] == "loop":
                try:
                    with open(status_file) as f:
                        samples += [int(line.split()[1]) for line in f if line.startswith("VmRSS:")]
                except OSError:
                    pass
            time.sleep(0.2)
        reader.join(10)
        done = json.loads(lines[-1])
        counts = collector.counts()
    finally:
        collector.close()
    tail = sorted(samples[len(samples) // 2:]) or [0]
    return {
        "users": users,
        "loop_seconds": done["loop_seconds"],
        "stop_seconds": done["stop_seconds"],
        "peak_rss_mb": done["peak_rss_kb"] / 1024,
        "plateau_rss_mb": tail[len(tail) // 2] / 1024,
        "received_events": counts["events"],
        "distinct_insert_ids": counts["distinct_insert_ids"],
        "posts": counts["posts"],
        "deepest_queue": done.get("deepest_queue"),
        "stats": done.get("stats"),
    }


def _print_rows(title: str, ours: Dict[str, Any], reference: Optional[Dict[str, Any]], keys: Sequence[str]) -> None:
    print(f"\n{title}")
    print(f"  {'':<22}{'ours':>14}{'official':>14}{'ratio (ref/ours)':>18}")
    for key in keys:
        mine = ours.get(key)
        theirs = None if reference is None else reference.get(key)
        ratio = "" if not mine or theirs is None else f"{theirs / mine:.2f}"
        print(f"  {key:<22}{_fmt(mine):>14}{_fmt(theirs):>14}{ratio:>18}")


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}"
    return f"{value:,}"


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", default=sys.executable, help="interpreter with our package")
    parser.add_argument("--reference-python", help="interpreter with amplitude-experiment 1.13.0")
    parser.add_argument("--users", type=int, default=400_000, help="users in the sustained scenario")
    parser.add_argument("--burst-users", type=int, default=20_000, help="users in the endpoint-down burst")
    parser.add_argument("--only", choices=("sustained", "burst"))
    parser.add_argument("--skip-reference", action="store_true", help="measure ours only")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    import tempfile

    pythons = {"ours": args.python}
    if args.reference_python and not args.skip_reference:
        pythons["official"] = args.reference_python
    results: Dict[str, Dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as workdir:
        if args.only in (None, "sustained"):
            flags = realistic_deployment(10)
            results["sustained"] = {side: run_side(python, flags, args.users, False, 600.0, workdir)
                                    for side, python in pythons.items()}
        if args.only in (None, "burst"):
            flags = single_rollout_flag()
            results["burst"] = {side: run_side(python, flags, args.burst_users, True, 1.0, workdir)
                                for side, python in pythons.items()}
    if "sustained" in results:
        side = results["sustained"]
        _print_rows(f"sustained: {args.users:,} new users, 10 flags, default AssignmentConfig, collector healthy",
                    side["ours"], side.get("official"),
                    ["loop_seconds", "stop_seconds", "received_events", "distinct_insert_ids", "posts",
                     "deepest_queue", "plateau_rss_mb", "peak_rss_mb"])
        ours = side["ours"]
        exact = ours["distinct_insert_ids"] == ours["received_events"] == args.users
        print(f"  ours: {'every event delivered once' if exact else 'LOST OR DUPLICATED EVENTS'}")
        if ours.get("stats"):
            print(f"  ours stats: {json.dumps(ours['stats'].get('events', ours['stats']))}")
    if "burst" in results:
        side = results["burst"]
        _print_rows(f"burst: {args.burst_users:,} new users, one rollout flag, ingestion endpoint down",
                    side["ours"], side.get("official"), ["loop_seconds", "peak_rss_mb"])
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--collector":
        collector_main(sys.argv[2], sys.argv[3])
    elif len(sys.argv) > 1 and sys.argv[1] == "--measure":
        measure_main(sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5]))
    else:
        sys.exit(main())
