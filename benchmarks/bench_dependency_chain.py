"""Issue 15 point 3: memory and tail-evaluation cost of flags chained by dependencies.

``N`` flags where flag ``i`` depends on flag ``i-1`` (and targets its result), served by a
static flag server. For ours and the official SDK (``/work/refvenv``), each in its own process:

* retained memory (tracemalloc) of a started client on the chain, minus an empty deployment;
* µs per ``evaluate_v2(user, [tail flag])`` (median of rounds), which evaluates the whole chain.

Usage::

    python benchmarks/bench_dependency_chain.py [--flags 5000] [--reference-python /work/refvenv/bin/python]
                                                [--ours-python PY] [--ours-path DIR]
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
import tracemalloc
from typing import Any, Dict, List

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _flagbench  # noqa: E402

ON_OFF = {"on": {"key": "on", "value": "on"}, "off": {"key": "off", "metadata": {"default": True}}}


def chain(n: int) -> List[Dict[str, Any]]:
    flags: List[Dict[str, Any]] = []
    for i in range(n):
        segments: List[Dict[str, Any]] = [{"variant": "off", "metadata": {"segmentName": "All Other Users"}}]
        flag: Dict[str, Any] = {"key": f"chain-{i}", "variants": ON_OFF, "metadata": {"flagVersion": 1}}
        if i:
            flag["dependencies"] = [f"chain-{i - 1}"]
            segments.insert(0, {"conditions": [[{"selector": ["result", f"chain-{i - 1}", "key"], "op": "is",
                                                 "values": ["on", "off"]}]], "variant": "on"})
        flag["segments"] = segments
        flags.append(flag)
    return flags


def retained(config_cls: Any, client_cls: Any, url: str) -> int:
    gc.collect()
    before = tracemalloc.get_traced_memory()[0]
    client = client_cls(_flagbench.API_KEY, config_cls(server_url=url, flag_config_polling_interval_millis=3_600_000))
    client.start()
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    client.stop()
    return after - before


def measure(spec: Dict[str, Any]) -> Dict[str, Any]:
    from amplitude_experiment import LocalEvaluationClient, LocalEvaluationConfig, User

    tracemalloc.start()
    empty = retained(LocalEvaluationConfig, LocalEvaluationClient, spec["urls"]["empty"])
    full = retained(LocalEvaluationConfig, LocalEvaluationClient, spec["urls"]["chain"])
    tracemalloc.stop()
    client = LocalEvaluationClient(_flagbench.API_KEY, LocalEvaluationConfig(
        server_url=spec["urls"]["chain"], flag_config_polling_interval_millis=3_600_000))
    client.start()
    user, tail = User(user_id="user-1", device_id="device-1"), [f"chain-{spec['flags'] - 1}"]
    out: Dict[str, Any] = {"retained_bytes": full - empty, "tail_eval_us": None, "tail_eval_error": None}
    try:
        evaluated = len(client.evaluate_v2(user, tail))
        if evaluated != spec["flags"]:
            raise AssertionError(f"{evaluated} flags evaluated, expected {spec['flags']}")
        rounds = []
        for _ in range(spec["rounds"]):
            t0 = time.perf_counter()
            for _ in range(spec["calls"]):
                client.evaluate_v2(user, tail)
            rounds.append((time.perf_counter() - t0) / spec["calls"])
        out["tail_eval_us"] = statistics.median(rounds) * 1e6
    except Exception as exc:  # noqa: BLE001 - a package that cannot evaluate the chain is a result too
        out["tail_eval_error"] = type(exc).__name__
    client.stop()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flags", type=int, default=5000)
    parser.add_argument("--reference-python", default=_flagbench.REFERENCE_PYTHON)
    parser.add_argument("--ours-python", default=sys.executable)
    parser.add_argument("--ours-path", default=_flagbench.REPO_ROOT, help="where our package is imported from")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _flagbench.worker_main(measure)
    server = _flagbench.StaticFlagServer({"empty": [], "chain": chain(args.flags)})
    try:
        spec = {"urls": server.urls, "flags": args.flags, "rounds": 5, "calls": 3}
        ours = _flagbench.run_worker(args.ours_python, os.path.abspath(__file__), {**spec, "path": args.ours_path})
        reference = _flagbench.run_worker(args.reference_python, os.path.abspath(__file__), spec)
    finally:
        server.close()
    print(f"{args.flags} flags chained by dependencies (tracemalloc retained after start(), minus an empty deployment)")
    print(f"{'':28}{'ours':>12}{'official':>12}{'ratio':>14}")
    mb_ours, mb_ref = ours["retained_bytes"] / 1e6, reference["retained_bytes"] / 1e6
    print(f"{'retained memory (MB)':28}{mb_ours:12.1f}{mb_ref:12.1f}{_flagbench.ratio(mb_ours, mb_ref):>14}")
    cells = [f"{side['tail_eval_us']:.0f}" if side["tail_eval_us"] is not None else side["tail_eval_error"]
             for side in (ours, reference)]
    print(f"{'evaluate tail flag (µs)':28}{cells[0]:>12}{cells[1]:>12}"
          f"{_flagbench.ratio(ours['tail_eval_us'], reference['tail_eval_us']):>14}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
