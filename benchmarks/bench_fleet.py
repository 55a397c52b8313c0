"""Benchmark the Redis fleet primitives and a simulated fleet of N processes (issue 14).

Usage::

    python benchmarks/bench_fleet.py [--processes 1,4,16] [--seconds 5] [--interval 0.5] [--users 2000]
                                     [--redis-url redis://127.0.0.1:6379/0] [--json]

Without ``--redis-url`` a private ``redis-server`` (no persistence) is started on a free loopback
port and stopped at the end.

Part 1, primitives (one process): latency of one ``try_lead`` (acquire/renew script), one version
check, one unchanged ``publish``, and ``claim`` per batch size (one pipelined round trip each).

Part 2, a fleet of N processes (full clients): each process runs a ``LocalEvaluationClient``
polling every ``--interval`` against an in-process Amplitude stand-in (20 flags) and evaluates the
same ``--users`` users (assignment tracking on) over ``--seconds``; reported: flag requests the
stand-in received, cohort requests (one more flag targets two cohorts of 1000 members, cohort sync
on) and assignment events sent, with and without the fleet.

Part 3, evaluation latency: ``evaluate_v2`` with assignment tracking, one process, with the fleet
and without (median and p99; the request path never touches Redis).
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
from typing import Any, Dict, Iterator, List

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


FLAGS = [{"key": f"flag-{i}", "metadata": {"flagType": "experiment", "flagVersion": 1},
          "variants": {"on": {"key": "on", "value": "on"}, "off": {"key": "off", "metadata": {"default": True}}},
          "segments": [{"bucket": {"selector": ["context", "user", "device_id"], "salt": f"s{i}",
                                   "allocations": [{"range": [0, 100], "distributions": [
                                       {"variant": "on", "range": [0, 42949673]}]}]}, "variant": "off"}]}
         for i in range(20)]


COHORT_KEY, COHORT_SECRET = "benchCohortKey", "benchCohortSecret"
COHORT_FLAG = {"key": "cohort-flag", "metadata": {"flagType": "release", "flagVersion": 1},
               "variants": {"on": {"key": "on", "value": "on"}, "off": {"key": "off", "metadata": {"default": True}}},
               "segments": [{"conditions": [[{"selector": ["context", "user", "cohort_ids"],
                                              "op": "set contains any", "values": ["bench-c1", "bench-c2"]}]],
                             "variant": "on"}, {"variant": "off"}]}


def _config(flags_url: str, events_url: str, interval: float, fleet: Any, cohorts: bool = False) -> Any:
    from amplitude_experiment import AssignmentConfig, CohortSyncConfig, LocalEvaluationConfig

    return LocalEvaluationConfig(
        server_url=flags_url, flag_config_polling_interval_millis=int(interval * 1000), fleet=fleet,
        assignment_config=AssignmentConfig(api_key=API_KEY, server_url=events_url, flush_interval_millis=500),
        cohort_sync_config=CohortSyncConfig(COHORT_KEY, COHORT_SECRET, cohort_server_url=flags_url) if cohorts
        else None)


def _member(url: str, prefix: str, flags_url: str, events_url: str, seconds: float, interval: float, users: int,
            use_fleet: bool, out: Any) -> None:
    """One process: a full LocalEvaluationClient evaluating the same ``users`` users over ``seconds``."""
    from amplitude_experiment import LocalEvaluationClient, User
    from amplitude_experiment.redis import RedisFleet

    fleet = RedisFleet(url, prefix) if use_fleet else None
    client = LocalEvaluationClient(DEPLOYMENT, _config(flags_url, events_url, interval, fleet, cohorts=True))
    client.start()
    people = [User(user_id=f"user-{i}", device_id=f"device-{i}") for i in range(users)]
    ends = time.monotonic() + seconds
    for index, user in enumerate(people):
        client.evaluate_v2(user)
        if index % 100 == 99:
            time.sleep(seconds / 2 / (users / 100))  # spread the users over the first half of the run
    while time.monotonic() < ends:
        time.sleep(0.05)
    client.stop(10.0)
    if fleet is not None:
        fleet.close()
    out.put(client.stats()["events"]["sent"])


def fleet_run(url: str, counts: List[int], seconds: float, interval: float, users: int) -> List[Dict[str, Any]]:
    from amplitude_experiment.testing import AmplitudeStandIn

    ctx = multiprocessing.get_context("spawn")
    rows = []
    for n in counts:
        for use_fleet in (False, True):
            with AmplitudeStandIn(flags=FLAGS + [COHORT_FLAG]) as stand_in:
                for cohort in ("bench-c1", "bench-c2"):
                    stand_in.set_cohort(cohort, [f"user-{i}" for i in range(1000)], last_modified=1000)
                out = ctx.Queue()
                prefix = f"bench-{n}-{int(use_fleet)}-{os.getpid()}-{time.time_ns()}"
                procs = [ctx.Process(target=_member, args=(url, prefix, stand_in.url, stand_in.events_url, seconds,
                                                           interval, users, use_fleet, out)) for _ in range(n)]
                for proc in procs:
                    proc.start()
                sent = sum(out.get(timeout=seconds + 120) for _ in procs)
                for proc in procs:
                    proc.join(30)
                ids = stand_in.accepted_insert_ids()
                rows.append({"processes": n, "fleet": use_fleet, "flag_requests": len(stand_in.requests("flags")),
                             "cohort_requests": len(stand_in.requests("cohort")),
                             "events_sent": sent, "events_received": len(ids), "unique_events": len(set(ids))})
    return rows


def latency(url: str, users: int = 20_000) -> Dict[str, Any]:
    """evaluate_v2 (with assignment tracking) in one process, without and with the fleet."""
    from amplitude_experiment import LocalEvaluationClient, User
    from amplitude_experiment.redis import RedisFleet
    from amplitude_experiment.testing import AmplitudeStandIn

    result: Dict[str, Any] = {}
    with AmplitudeStandIn(flags=FLAGS) as stand_in:
        for rounds in range(2):  # alternate, twice, so that warm-up and noise hit both alike
            for use_fleet in (False, True):
                fleet = RedisFleet(url, f"bench-lat-{os.getpid()}-{time.time_ns()}") if use_fleet else None
                client = LocalEvaluationClient(DEPLOYMENT, _config(stand_in.url, stand_in.events_url, 30.0, fleet))
                client.start()
                people = [User(user_id=f"lat-{rounds}-{i}", device_id=f"dev-{i}") for i in range(users)]
                samples = []
                for user in people:
                    started = time.perf_counter()
                    client.evaluate_v2(user)
                    samples.append(time.perf_counter() - started)
                client.stop(10.0)
                if fleet is not None:
                    fleet.close()
                if rounds == 1:
                    result["with_fleet" if use_fleet else "without_fleet"] = _micros(samples)
    result["median_ratio"] = round(result["with_fleet"]["median_us"] / result["without_fleet"]["median_us"], 3)
    return result


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
                  "fleet": fleet_run(url, [int(n) for n in args.processes.split(",")], args.seconds,
                                     args.interval, args.users),
                  "latency": latency(url),
                  "seconds": args.seconds, "interval": args.interval, "cpus": os.cpu_count()}
        if args.json:
            print(json.dumps(report, indent=2))
            return
        print(f"Redis fleet primitives (one process, loopback, {os.cpu_count()} CPUs):")
        for name, row in report["primitives"].items():
            print(f"  {name:32} " + "  ".join(f"{k}={v}" for k, v in row.items()))
        print(f"\nFleet of full clients: {args.seconds:g} s, poll every {args.interval:g} s, {args.users} users each:")
        print(f"  {'processes':>9} {'fleet':>6} {'flag requests':>14} {'cohort requests':>16} {'events sent':>12} "
              f"{'unique':>7}")
        for row in report["fleet"]:
            print(f"  {row['processes']:>9} {str(row['fleet']):>6} {row['flag_requests']:>14} "
                  f"{row['cohort_requests']:>16} {row['events_sent']:>12} {row['unique_events']:>7}")
        print("\nevaluate_v2 latency (assignment tracking on): " + json.dumps(report["latency"]))


if __name__ == "__main__":
    main()
