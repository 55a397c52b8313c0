"""Benchmark big cohorts: this package ("ours") against the official SDK ("reference").

Usage::

    python benchmarks/bench_cohorts.py [--reference-python /work/refvenv/bin/python] [--members 1000000]
                                       [--reps 3] [--json]

Workload (issue 12 point 7): two user cohorts of ``--members`` members each, half of them
shared, targeted by two flags (``set contains any`` on ``context.user.cohort_ids``); a third
flag without cohorts keeps the deployment realistic. A stand-alone ``http.server`` (a
separate process, so its bodies are nobody's RSS) serves the flags at ``/sdk/v2/flags`` and
the cohorts at ``/sdk/v1/cohort/<id>`` as Amplitude's cohort API does.

Each measurement is a fresh process (``--worker``) of the side's interpreter that imports
``amplitude_experiment``, builds ``LocalEvaluationClient`` with a ``CohortSyncConfig`` through
the public API only, and reports:

* ``load_s``: wall time of ``start()`` (flags, then both cohorts downloaded and stored);
* ``load_cpu_s``: CPU time of the process (all threads) during ``start()``: steadier than the
  wall time on a busy machine;
* ``rss_mb``: RSS after ``start()`` and a ``gc.collect()``, minus RSS before ``start()``;
* ``eval_us``: one ``evaluate_v2`` of the three flags, for members and non-members in turn;
* ``eval_without_us`` (ours): the same flags and users with cohort sync off, so the ratio
  ``eval_us / eval_without_us`` is what cohort targeting adds (target: <= 1.5);
* ``eval_own_ids_us`` (ours): cohort sync off, each user carrying the cohort ids it belongs to,
  so ``eval_us / eval_own_ids_us`` is the cost of the membership lookup alone;
* ``eval_new_users_us`` (ours): cohort sync on, 100,000 distinct users in turn, so that no
  lookup is answered from the store's memory of recent user ids (``eval_us`` cycles through
  1,000 users, as a service with returning users does);
* ``small_load_s``, ``small_rss_mb`` and ``small_eval_new_users_us``: a second deployment, ``SMALL_COHORTS`` flags
  each targeting a cohort of ``SMALL_SIZE`` members (neighbours sharing half), plus the rollout
  flag: ``start()``, the RSS it adds, and ``evaluate_v2`` of 100,000 never-seen users, half of
  them members;
  ``small_eval_without_us`` (ours): the same with cohort sync off;
* ``realistic_eval_new_users_us``: ``deployment.realistic_deployment(40)`` plus the two flags on
  the big cohorts, 100,000 realistic users (properties of ``deployment.realistic_users``), each
  with a new user id (three in four are members); ``realistic_eval_without_us`` (ours): sync off.

Last, the driver measures the pure-Python floor on the same bodies with the standard library
only (:func:`floor`): decoding both cohorts and sorting one key per member, and a never-seen id's
key plus one binary search per cohort. They bound what any pure-Python compact structure can
reach, and are printed beside the targets they would have to meet.

Sides and reps are interleaved (ours, reference, ours, ...) and medians are printed with the
ratio reference / ours (higher is better for ours). The reference runs isolated (``-I``, no
``PYTHONPATH``, a temporary cwd) so it imports the official package.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import logging
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Optional

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(BENCH_DIR)
API_KEY = "server-benchmark-key"
COHORT_IDS = ("cohort-a", "cohort-b")


# --------------------------------------------------------------------------------------------
# Workload


def member_id(i: int) -> str:
    return f"user-{i:09d}"


def cohort_flag(key: str, cohort_id: str) -> Dict[str, Any]:
    """A flag that is "on" for the members of one cohort."""
    return {
        "key": key,
        "metadata": {"deployed": True, "evaluationMode": "local", "flagType": "release", "flagVersion": 3},
        "variants": {"off": {"key": "off", "metadata": {"default": True}}, "on": {"key": "on", "value": "on"}},
        "segments": [
            {"conditions": [[{"selector": ["context", "user", "cohort_ids"], "op": "set contains any",
                              "values": [cohort_id]}]],
             "variant": "on", "metadata": {"segmentName": "In cohort"}},
            {"variant": "off", "metadata": {"segmentName": "All Other Users"}},
        ],
    }


ROLLOUT_FLAG = {
    "key": "rollout",
    "metadata": {"deployed": True, "evaluationMode": "local", "flagType": "release", "flagVersion": 1},
    "variants": {"off": {"key": "off", "metadata": {"default": True}}, "on": {"key": "on", "value": "on"}},
    "segments": [{"bucket": {"selector": ["context", "user", "device_id"], "salt": "s",
                             "allocations": [{"range": [0, 50], "distributions": [
                                 {"variant": "on", "range": [0, 42949673]}]}]},
                  "variant": "off", "metadata": {"segmentName": "All Other Users"}}],
}


def flags() -> List[Dict[str, Any]]:
    return [cohort_flag("in-a", COHORT_IDS[0]), cohort_flag("in-b", COHORT_IDS[1]), ROLLOUT_FLAG]


# The second workload: many small cohorts, each targeted by a flag of its own (the flags on a
# server of their own, the cohorts beside the big ones). Cohort j holds members j * step .. j * step + size - 1,
# so neighbours share half their members.
SMALL_COHORTS = 20
SMALL_SIZE = 10_000


def small_cohort_id(j: int) -> str:
    return f"small-{j:02d}"


def small_flags() -> List[Dict[str, Any]]:
    return [cohort_flag(f"in-{small_cohort_id(j)}", small_cohort_id(j)) for j in range(SMALL_COHORTS)] + [ROLLOUT_FLAG]


def small_cohort_body(j: int) -> bytes:
    ids = [member_id(i) for i in range(j * SMALL_SIZE // 2, j * SMALL_SIZE // 2 + SMALL_SIZE)]
    random.Random(j).shuffle(ids)
    return json.dumps({"cohortId": small_cohort_id(j), "groupType": "User", "groupTypeId": 0,
                       "lastModified": 1700000000000, "size": len(ids), "memberIds": ids},
                      separators=(",", ":")).encode()


def cohort_body(cohort_id: str, members: int) -> bytes:
    # cohort-a: members 0 .. n-1; cohort-b: n/2 .. 3n/2 - 1 (half shared)
    start = 0 if cohort_id == COHORT_IDS[0] else members // 2
    ids = [member_id(i) for i in range(start, start + members)]
    random.Random(cohort_id).shuffle(ids)  # no order to exploit, as with real member lists
    return json.dumps({"cohortId": cohort_id, "groupType": "User", "groupTypeId": 0, "lastModified": 1700000000000,
                       "size": members, "memberIds": ids}, separators=(",", ":")).encode()


def serve(members: int) -> None:
    """Serve flags and cohorts until stdin closes; prints the base URL first."""
    bodies = {f"/sdk/v1/cohort/{cid}": cohort_body(cid, members) for cid in COHORT_IDS}
    bodies["/sdk/v2/flags"] = json.dumps(flags()).encode()
    bodies.update({f"/sdk/v1/cohort/{small_cohort_id(j)}": small_cohort_body(j) for j in range(SMALL_COHORTS)})
    small_bodies = {"/sdk/v2/flags": json.dumps(small_flags()).encode()}  # its own server: the official SDK
    # takes a bare host as server_url
    import deployment  # benchmarks/deployment.py (this process runs without -I)

    realistic_bodies = {"/sdk/v2/flags": json.dumps(deployment.realistic_deployment(40) + flags()[:2]).encode()}
    bodies["/bench/users"] = json.dumps(deployment.realistic_users(1000)).encode()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802 (http.server naming)
            body = self.server.bodies.get(self.path.split("?")[0])  # type: ignore[attr-defined]
            if body is None:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    class Server(ThreadingHTTPServer):
        bodies: Dict[str, bytes] = {}

        def handle_error(self, request: Any, client_address: Any) -> None:
            if not isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
                super().handle_error(request, client_address)  # a client gone mid-body is no news

    servers = []
    for served in (bodies, small_bodies, realistic_bodies):
        server = Server(("127.0.0.1", 0), Handler)
        server.bodies = served
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    print(" ".join(f"http://127.0.0.1:{server.server_address[1]}" for server in servers), flush=True)
    sys.stdin.read()
    for server in servers:
        server.shutdown()


# --------------------------------------------------------------------------------------------
# Measuring (runs under either interpreter)


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def bench_users(user_type: Any, members: int, with_ids: bool = False, count: int = 1000) -> List[Any]:
    """``count`` users, about half of them members (of one or both cohorts); ``with_ids``: each
    carries the cohort ids it belongs to, as a caller without cohort sync would pass them."""
    users = []
    for i in range(count):
        n = i * 7919 % (members * 3 // 2 + members // 2)
        starts = ((COHORT_IDS[0], 0), (COHORT_IDS[1], members // 2))
        ids = [cid for cid, start in starts if start <= n < start + members]
        users.append(user_type(user_id=member_id(n), device_id=f"d{i}", cohort_ids=ids if with_ids else None))
    return users


def measure_evaluation(client: Any, users: List[Any], calls: int = 20000) -> float:
    for user in users[:100]:
        client.evaluate_v2(user)
    best = float("inf")
    n = len(users)
    for rep in range(5):
        started = time.perf_counter()
        for i in range(rep * calls, (rep + 1) * calls):
            client.evaluate_v2(users[i % n])
        best = min(best, (time.perf_counter() - started) / calls)
    return best * 1e6


def worker(url: str, small_url: str, realistic_url: str, members: int, side: str) -> Dict[str, Any]:
    logging.disable(logging.CRITICAL)
    from amplitude_experiment import CohortSyncConfig, LocalEvaluationClient, LocalEvaluationConfig, User

    def config(with_cohorts: bool, flags_url: str = url) -> Any:
        sync = CohortSyncConfig("cohort-key", "cohort-secret", cohort_server_url=url) if with_cohorts else None
        return LocalEvaluationConfig(server_url=flags_url, flag_config_polling_interval_millis=3_600_000,
                                     cohort_sync_config=sync)

    gc.collect()
    before = rss_mb()
    client = LocalEvaluationClient(API_KEY, config(True))
    started, cpu = time.perf_counter(), time.process_time()
    client.start()
    load_s, load_cpu_s = time.perf_counter() - started, time.process_time() - cpu
    gc.collect()
    out: Dict[str, Any] = {"side": side, "load_s": load_s, "load_cpu_s": load_cpu_s, "rss_mb": rss_mb() - before}
    member = User(user_id=member_id(members // 2), device_id="d")
    out["check"] = {k: v.key for k, v in sorted(client.evaluate_v2(member).items())}
    out["eval_us"] = measure_evaluation(client, bench_users(User, members))
    if side == "ours":
        out["eval_new_users_us"] = measure_evaluation(client, bench_users(User, members, count=100_000))
        plain = LocalEvaluationClient(API_KEY, config(False))
        plain.start()
        out["eval_without_us"] = measure_evaluation(plain, bench_users(User, members))
        out["eval_own_ids_us"] = measure_evaluation(plain, bench_users(User, members, with_ids=True))
        plain.stop()
    client.stop()

    # Many small cohorts, never-seen users (a user id each call): ~half are members of one or two.
    small_users = [User(user_id=member_id(i * 7919 % (SMALL_COHORTS * SMALL_SIZE)), device_id=f"d{i}")
                   for i in range(100_000)]
    gc.collect()
    before = rss_mb()
    many = LocalEvaluationClient(API_KEY, config(True, small_url))
    started = time.perf_counter()
    many.start()
    out["small_load_s"] = time.perf_counter() - started
    gc.collect()
    out["small_rss_mb"] = rss_mb() - before
    out["small_check"] = sum(v.key == "on" for v in many.evaluate_v2(User(user_id=member_id(SMALL_SIZE))).values())
    out["small_eval_new_users_us"] = measure_evaluation(many, small_users)
    many.stop()
    if side == "ours":
        out["small_eval_without_us"] = measure_without_sync(config(False, small_url), small_users)

    # A realistic deployment (benchmarks/deployment.py's 40 flags) plus the two flags on the big
    # cohorts; realistic users (their properties from the server), each with a new user id.
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"{url}/bench/users", timeout=60) as response:
        profiles = json.loads(response.read())
    realistic_users = []
    for i in range(100_000):
        kwargs = dict(profiles[i % len(profiles)], user_id=member_id(i * 7919 % (members * 2)), device_id=f"d{i}")
        realistic_users.append(User(**kwargs))
    realistic = LocalEvaluationClient(API_KEY, config(True, realistic_url))
    realistic.start()
    out["realistic_eval_new_users_us"] = measure_evaluation(realistic, realistic_users)
    realistic.stop()
    if side == "ours":
        out["realistic_eval_without_us"] = measure_without_sync(config(False, realistic_url), realistic_users)
    return out


def measure_without_sync(config: Any, users: List[Any]) -> float:
    """:func:`measure_evaluation` of a fresh client with ``config`` (cohort sync off)."""
    from amplitude_experiment import LocalEvaluationClient

    plain = LocalEvaluationClient(API_KEY, config)
    plain.start()
    try:
        return measure_evaluation(plain, users)
    finally:
        plain.stop()


# --------------------------------------------------------------------------------------------
# The pure-Python floor (stdlib only, no SDK): what any compact, sorted-key membership structure
# must at least spend, measured on the same bodies. Our design (cohorts/members.py) is one such
# structure; the floor shows how far a pure-Python implementation could get at best.


def floor(url: str, members: int, reps: int = 3) -> Dict[str, float]:
    """Best of ``reps``: ``load_s``, decoding both cohort bodies and sorting one 8-byte key per
    member (``sorted(map(float, map(hash, ids)))``, download excluded); ``lookup_us``, for a
    never-seen id, its key plus one binary search per cohort in a window of 16 keys (what a
    directory of 8 keys per bucket would leave; ours has 64), run from C: no Python step per search."""
    import urllib.request
    from array import array
    from bisect import bisect_left

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    bodies = []
    for cid in COHORT_IDS:
        with opener.open(f"{url}/sdk/v1/cohort/{cid}", timeout=60) as response:
            bodies.append(response.read())
    load = float("inf")
    keys: List[Any] = []
    for _ in range(reps):
        gc.collect()
        started = time.perf_counter()
        keys = [array("d", sorted(map(float, map(hash, json.loads(body)["memberIds"])))) for body in bodies]
        load = min(load, time.perf_counter() - started)
    # The lookup floor: the key of a fresh id, then per cohort one binary search in C over a window
    # of 16 keys, with every argument precomputed and the loop in C (map): no Python code runs per
    # search, so nothing written in Python can search for less.
    ids = [f"never-seen-{i}" for i in range(200_000)]
    lookup = float("inf")
    for _ in range(reps):
        fresh = [i + "x" for i in ids]  # new strings: their hash is not cached yet
        started = time.perf_counter()
        probes = list(map(float, map(hash, fresh)))
        spent = time.perf_counter() - started
        for k in keys:
            n = len(k)
            starts = [min(max(int((p + 2.0 ** 63) / 2.0 ** 64 * n) - 8, 0), n - 16) for p in probes]
            ends = [lo + 16 for lo in starts]
            started = time.perf_counter()
            list(map(bisect_left, itertools.repeat(k), probes, starts, ends))
            spent += time.perf_counter() - started
        lookup = min(lookup, spent / len(fresh))
    return {"load_s": load, "lookup_us": lookup * 1e6}


# --------------------------------------------------------------------------------------------
# Driver


def run_worker(python: str, urls: List[str], members: int, side: str) -> Dict[str, Any]:
    url, small_url, realistic_url = urls
    if side == "ours":
        cmd = [python, os.path.abspath(__file__), "--worker", side, "--url", url, "--small-url", small_url,
               "--realistic-url", realistic_url, "--members", str(members)]
        env = dict(os.environ, PYTHONPATH=REPO_ROOT)
        cwd = REPO_ROOT
    else:
        cmd = [python, "-I", os.path.abspath(__file__), "--worker", side, "--url", url, "--small-url", small_url,
               "--realistic-url", realistic_url, "--members", str(members)]
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        cwd = tempfile.gettempdir()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, timeout=600, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{side} worker failed:\n{proc.stderr}")
    result: Dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference-python", help="python of a venv with amplitude-experiment==1.13.0")
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--small-url", help=argparse.SUPPRESS)
    parser.add_argument("--realistic-url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.members)
        return 0
    if args.worker:
        if args.worker == "ours":
            sys.path.insert(0, REPO_ROOT)
        print(json.dumps(worker(args.url, args.small_url, args.realistic_url, args.members, args.worker)),
              flush=True)
        os._exit(0)  # the reference's stopped threads can delay a normal exit by seconds

    server = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--serve", "--members", str(args.members)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None and server.stdin is not None
    urls = server.stdout.readline().split()
    url = urls[0]
    runs: Dict[str, List[Dict[str, Any]]] = {"ours": [], "reference": []}
    try:
        for _ in range(args.reps):
            runs["ours"].append(run_worker(sys.executable, urls, args.members, "ours"))
            if args.reference_python:
                runs["reference"].append(run_worker(args.reference_python, urls, args.members, "reference"))
        runs["floor"] = [floor(url, args.members)]
    finally:
        server.stdin.close()
        server.wait(10)
    report(runs, args)
    return 0


def report(runs: Dict[str, List[Dict[str, Any]]], args: argparse.Namespace) -> None:
    def median(side: str, key: str) -> Optional[float]:
        values = [r[key] for r in runs[side] if key in r]
        return statistics.median(values) if values else None

    rows = []
    for key, label, unit in (("load_s", "start() with two cohorts", "s"),
                             ("load_cpu_s", "start(), CPU time", "s"),
                             ("rss_mb", "RSS after start()", "MB"),
                             ("eval_us", "evaluate_v2 (3 flags, 2 cohort-targeted)", "us"),
                             ("small_load_s", f"{SMALL_COHORTS} small cohorts: start()", "s"),
                             ("small_rss_mb", "... RSS after start()", "MB"),
                             ("small_eval_new_users_us", f"... evaluate_v2 ({SMALL_COHORTS + 1} flags), new users",
                              "us"),
                             ("realistic_eval_new_users_us", "realistic 40 flags + the 2 on big cohorts, new users",
                              "us")):
        ours, ref = median("ours", key), median("reference", key)
        rows.append({"measure": label, "unit": unit, "ours": ours, "reference": ref,
                     "reference / ours": (ref / ours) if ours and ref else None})
    with_, without = median("ours", "eval_us"), median("ours", "eval_without_us")
    own, new_users = median("ours", "eval_own_ids_us"), median("ours", "eval_new_users_us")
    small_with, small_without = median("ours", "small_eval_new_users_us"), median("ours", "small_eval_without_us")
    real_with, real_without = median("ours", "realistic_eval_new_users_us"), median("ours", "realistic_eval_without_us")
    summary = {"members_per_cohort": args.members, "reps": args.reps, "rows": rows,
               "ours_eval_with_over_without_cohorts": (with_ / without) if with_ and without else None,
               "ours_eval_with_over_own_ids": (with_ / own) if with_ and own else None,
               "ours_eval_new_users_over_without_cohorts": (new_users / without) if new_users and without else None,
               "ours_small_eval_new_users_over_without_cohorts": (small_with / small_without)
               if small_with and small_without else None,
               "ours_realistic_eval_new_users_over_without_cohorts": (real_with / real_without)
               if real_with and real_without else None,
               "floor": runs["floor"][0],
               "checks": {side: [(r["check"], r["small_check"]) for r in runs[side]][:1]
                          for side in ("ours", "reference")}}
    if args.json:
        print(json.dumps(summary, indent=1))
        return
    print(f"two user cohorts of {args.members:,} members each (half shared); medians of {args.reps} interleaved reps")
    print(f"{'measure':<44} {'ours':>10} {'reference':>10} {'ref/ours':>9}")
    def fmt(value: Optional[float], unit: str) -> str:
        return "-" if value is None else f"{value:.1f}" if unit == "MB" else f"{value:.3f}"

    for row in rows:
        ratio = "-" if row["reference / ours"] is None else f"{row['reference / ours']:.2f}x"
        print(f"{row['measure'] + ' (' + row['unit'] + ')':<44} {fmt(row['ours'], row['unit']):>10} "
              f"{fmt(row['reference'], row['unit']):>10} {ratio:>9}")
    if summary["ours_eval_with_over_without_cohorts"] is not None:
        print(f"ours: evaluate_v2 with cohort sync / same flags, sync off, no cohort ids: "
              f"{summary['ours_eval_with_over_without_cohorts']:.2f}x ({with_:.3f} / {without:.3f} us)")
        print(f"ours: evaluate_v2 with cohort sync / sync off, users passing their cohort ids: "
              f"{summary['ours_eval_with_over_own_ids']:.2f}x ({with_:.3f} / {own:.3f} us)")
    if summary["ours_eval_new_users_over_without_cohorts"] is not None:
        print(f"ours: evaluate_v2 with cohort sync, 100,000 distinct users (no memo hits) / sync off: "
              f"{summary['ours_eval_new_users_over_without_cohorts']:.2f}x ({new_users:.3f} / {without:.3f} us)")
    if summary["ours_small_eval_new_users_over_without_cohorts"] is not None:
        print(f"ours: {SMALL_COHORTS} small cohorts ({SMALL_SIZE:,} members each), new users, with cohort sync / "
              f"sync off: {summary['ours_small_eval_new_users_over_without_cohorts']:.2f}x "
              f"({small_with:.3f} / {small_without:.3f} us)")
    if summary["ours_realistic_eval_new_users_over_without_cohorts"] is not None:
        print(f"ours: realistic 40 flags + 2 on the big cohorts, new users, with cohort sync / sync off: "
              f"{summary['ours_realistic_eval_new_users_over_without_cohorts']:.2f}x "
              f"({real_with:.3f} / {real_without:.3f} us)")
    floor_run = runs["floor"][0]
    ref_load = median("reference", "load_s")
    print(f"pure-Python floor (stdlib only, same bodies): decode + sort one key per member, both cohorts: "
          f"{floor_run['load_s']:.3f} s" + (f" (target for start(): <= {ref_load / 2:.3f} s, half the "
                                             f"reference's)" if ref_load else ""))
    if without:
        print(f"pure-Python floor: a never-seen id's key + one binary search per cohort, nothing else: "
              f"{floor_run['lookup_us']:.3f} us (all that cohorts may add within 1.5x: {without / 2:.3f} us)")
    for side in ("ours", "reference"):
        if runs[side]:
            print(f"{side} per rep: start s " + " ".join(f"{r['load_s']:.3f}" for r in runs[side])
                  + " | eval us " + " ".join(f"{r['eval_us']:.2f}" for r in runs[side]))
    print("variants of a member of both big cohorts, and how many small-cohort flags are on for a member of two:",
          summary["checks"])


if __name__ == "__main__":
    sys.exit(main())
