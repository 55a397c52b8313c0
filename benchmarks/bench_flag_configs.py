"""Issue 12 points 3 and 4: what a big flag config costs at rest and when it is polled unchanged.

A realistic 1,002-flag deployment (``deployment.many_flags``) served by a static flag server.
For ours and the official SDK (``/work/refvenv``), each in its own process:

* retained memory (tracemalloc) of a started client, minus the same for an empty deployment;
* CPU per unchanged re-poll: process CPU time over a window of polls at a short interval
  (the main thread sleeps; the server runs in another process), divided by the polls the
  server logged, minus the same for an empty deployment (the cost of a request as such).

Usage::

    python benchmarks/bench_flag_configs.py [--flags 1002] [--window 4] [--reference-python PY]
                                            [--ours-python PY] [--ours-path DIR]
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
import tracemalloc
from typing import Any, Dict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _flagbench  # noqa: E402

POLL_MS = 100


def retained(url: str) -> int:
    from amplitude_experiment import LocalEvaluationClient, LocalEvaluationConfig

    gc.collect()
    before = tracemalloc.get_traced_memory()[0]
    client = LocalEvaluationClient(_flagbench.API_KEY, LocalEvaluationConfig(
        server_url=url, flag_config_polling_interval_millis=3_600_000))
    client.start()
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    client.stop()
    return after - before


def cpu_per_poll(url: str, log: str, window: float) -> float:
    from amplitude_experiment import LocalEvaluationClient, LocalEvaluationConfig

    client = LocalEvaluationClient(_flagbench.API_KEY, LocalEvaluationConfig(
        server_url=url, flag_config_polling_interval_millis=POLL_MS))
    client.start()
    time.sleep(0.5)  # the measuring window starts after a few polls
    polls, cpu = _flagbench.count_requests(log), time.process_time()
    time.sleep(window)  # the window of the measurement, not a synchronisation
    cpu, polls = time.process_time() - cpu, _flagbench.count_requests(log) - polls
    client.stop()
    return cpu / max(polls, 1)


def measure(spec: Dict[str, Any]) -> Dict[str, Any]:
    urls, logs = spec["urls"], spec["logs"]
    tracemalloc.start()
    memory = retained(urls["many"]) - retained(urls["empty"])
    tracemalloc.stop()
    many = cpu_per_poll(urls["many"], logs["many"], spec["window"])
    empty = cpu_per_poll(urls["empty"], logs["empty"], spec["window"])
    return {"retained_bytes": memory, "repoll_ms": many * 1e3, "request_ms": empty * 1e3}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flags", type=int, default=1002)
    parser.add_argument("--window", type=float, default=4.0, help="seconds of polling measured per deployment")
    parser.add_argument("--reference-python", default=_flagbench.REFERENCE_PYTHON)
    parser.add_argument("--ours-python", default=sys.executable)
    parser.add_argument("--ours-path", default=_flagbench.REPO_ROOT, help="where our package is imported from")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _flagbench.worker_main(measure)
    import deployment

    server = _flagbench.StaticFlagServer({"empty": [], "many": deployment.many_flags(args.flags)})
    try:
        spec = {"urls": server.urls, "logs": server.logs, "window": args.window}
        ours = _flagbench.run_worker(args.ours_python, os.path.abspath(__file__), {**spec, "path": args.ours_path})
        reference = _flagbench.run_worker(args.reference_python, os.path.abspath(__file__), spec)
    finally:
        server.close()
    print(f"{args.flags} flags: memory retained after start() (tracemalloc, minus an empty deployment) and CPU per "
          f"unchanged re-poll (polling every {POLL_MS} ms)")
    print(f"{'':36}{'ours':>10}{'official':>10}{'ratio':>12}")
    rows = [("retained memory (MB)", ours["retained_bytes"] / 1e6, reference["retained_bytes"] / 1e6),
            ("CPU per unchanged re-poll (ms)", ours["repoll_ms"], reference["repoll_ms"]),
            ("  of which the request as such (ms)", ours["request_ms"], reference["request_ms"])]
    for label, mine, theirs in rows:
        print(f"{label:36}{mine:10.2f}{theirs:10.2f}{_flagbench.ratio(mine, theirs):>12}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
