"""Benchmark the Redis fleet primitives and a simulated fleet of N processes (issue 14).

Usage::

    python benchmarks/bench_fleet.py [--processes 1,4,16] [--seconds 5] [--interval 0.5] [--users 2000]
                                     [--redis-url redis://127.0.0.1:6379/0] [--json]

Without ``--redis-url`` a private ``redis-server`` (no persistence) is started on a free loopback
port and stopped at the end.

Part 1, primitives (one process): latency of one ``try_lead`` (acquire/renew script), one version
check, one unchanged ``publish``, and ``claim`` per batch size (one pipelined round trip each).

Part 2, a fleet simulation (phase 1: the primitives driven by a stand-in member loop, not yet the
full client): N processes each run for ``--seconds``; every ``--interval`` a member calls
``try_lead`` and, when it leads, counts one "flag download" and publishes; every member "tracks"
the same ``--users`` users (one insert_id each) and claims them in batches of 200 on a sender
loop, counting the events it would send. Without the fleet every process downloads every interval
and sends every event; the report shows both.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, Iterator, List, Tuple

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

DEPLOYMENT = "server-benchDeploymentKey"
API_KEY = "benchAnalyticsKey"
DAY = 19_675


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _PrivateRedis:
    def __init__(self) -> None:
        server = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.port = _free_port()
        self._dir = tempfile.mkdtemp(prefix="bench-fleet-")
        self.process = subprocess.Popen(
            [server, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", self._dir, "--loglevel", "warning"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.url = f"redis://127.0.0.1:{self.port}/0"
        import redis

        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
        client.close()

    def close(self) -> None:
        self.process.kill()
        self.process.wait(10)
        shutil.rmtree(self._dir, ignore_errors=True)


def _micros(samples: List[float]) -> Dict[str, float]:
    samples = sorted(samples)
    return {"median_us": round(statistics.median(samples) * 1e6, 1),
            "p99_us": round(samples[int(len(samples) * 0.99) - 1] * 1e6, 1)}


def primitives(url: str, prefix: str) -> Dict[str, Any]:
    from amplitude_experiment.redis import RedisFleet

    fleet = RedisFleet(url, prefix)
    flags, claims = fleet.flags(DEPLOYMENT), fleet.claims(API_KEY)
    body = json.dumps([{"key": f"flag-{i}", "variants": {"on": {"key": "on"}}, "segments": [{"variant": "on"}]}
                       for i in range(1000)]).encode()
    digest = hashlib.sha256(body).hexdigest()[:20]
    result: Dict[str, Any] = {}

    def timed(fn: Any, n: int) -> List[float]:
        out = []
        for _ in range(n):
            started = time.perf_counter()
            fn()
            out.append(time.perf_counter() - started)
        return out

    result["try_lead"] = _micros(timed(flags.try_lead, 500))
    result["current_version"] = _micros(timed(flags.current_version, 500))
    flags.publish(body, digest)
    result["publish_unchanged_1000_flags"] = _micros(timed(lambda: flags.publish(body, digest), 200))
    result["latest_1000_flags"] = _micros(timed(flags.latest, 100)) | {"bytes": len(body)}
    counter = iter(range(10**9))
    for batch in (1, 50, 200, 1000):
        samples = timed(lambda n=batch: claims.claim([(f"u{next(counter)} d {DAY}", DAY) for _ in range(n)]), 100)
        result[f"claim_batch_{batch}"] = _micros(samples) | {
            "ids_per_s": round(batch / statistics.median(samples))}
    fleet.close()
    return result


def _member(url: str, prefix: str, seconds: float, interval: float, users: int, use_fleet: bool,
            out: Any) -> None:
    from amplitude_experiment.redis import RedisFleet

    fleet = RedisFleet(url, prefix) if use_fleet else None
    flags = fleet.flags(DEPLOYMENT) if fleet else None
    claims = fleet.claims(API_KEY) if fleet else None
    ids: List[Tuple[str, int]] = [(f"user{i} dev{i} {i * 7919} {DAY}", DAY) for i in range(users)]
    downloads = sent = 0
    body = b"[]"
    digest = hashlib.sha256(body).hexdigest()[:20]
    ends = time.monotonic() + seconds
    next_poll = time.monotonic()
    position = 0
    while time.monotonic() < ends:
        now = time.monotonic()
        if now >= next_poll:
            if flags is None or flags.try_lead():
                downloads += 1
                if flags is not None:
                    flags.publish(body, digest)
            next_poll = now + interval
        if position < len(ids):
            batch = ids[position:position + 200]
            position += len(batch)
            sent += sum(claims.claim(batch)) if claims is not None else len(batch)
        else:
            time.sleep(min(0.05, max(0.0, next_poll - time.monotonic())))
    if fleet is not None:
        fleet.close()
    out.put((downloads, sent))


def fleet_simulation(url: str, counts: List[int], seconds: float, interval: float, users: int) -> List[Dict[str, Any]]:
    ctx = multiprocessing.get_context("spawn")
    rows = []
    for n in counts:
        for use_fleet in (False, True):
            out = ctx.Queue()
            prefix = f"bench-{n}-{int(use_fleet)}-{os.getpid()}-{time.time_ns()}"
            procs = [ctx.Process(target=_member, args=(url, prefix, seconds, interval, users, use_fleet, out))
                     for _ in range(n)]
            for proc in procs:
                proc.start()
            results = [out.get(timeout=seconds + 60) for _ in procs]
            for proc in procs:
                proc.join(30)
            rows.append({"processes": n, "fleet": use_fleet, "flag_downloads": sum(r[0] for r in results),
                         "events_sent": sum(r[1] for r in results), "unique_events": users})
    return rows


def _redis(url: str) -> Iterator[str]:
    if url:
        yield url
        return
    server = _PrivateRedis()
    try:
        yield server.url
    finally:
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", default="1,4,16")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--interval", type=float, default=0.5)
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--redis-url", default="")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    for url in _redis(args.redis_url):
        report = {"primitives": primitives(url, f"bench-prim-{os.getpid()}"),
                  "fleet": fleet_simulation(url, [int(n) for n in args.processes.split(",")], args.seconds,
                                            args.interval, args.users),
                  "seconds": args.seconds, "interval": args.interval, "cpus": os.cpu_count()}
        if args.json:
            print(json.dumps(report, indent=2))
            return
        print(f"Redis fleet primitives (one process, loopback, {os.cpu_count()} CPUs):")
        for name, row in report["primitives"].items():
            print(f"  {name:32} " + "  ".join(f"{k}={v}" for k, v in row.items()))
        print(f"\nSimulated fleet: {args.seconds:g} s, poll every {args.interval:g} s, {args.users} users each:")
        print(f"  {'processes':>9} {'fleet':>6} {'flag downloads':>15} {'events sent':>12} {'unique':>7}")
        for row in report["fleet"]:
            print(f"  {row['processes']:>9} {str(row['fleet']):>6} {row['flag_downloads']:>15} "
                  f"{row['events_sent']:>12} {row['unique_events']:>7}")


if __name__ == "__main__":
    main()
