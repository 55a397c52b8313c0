"""Benchmark local evaluation: this package ("ours") against the official SDK ("reference").

Usage::

    python benchmarks/bench_evaluate.py [--reference-python /work/refvenv/bin/python] [--quick] [--json]

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
measures and ``stop()``s.

Adding a scenario: write a function ``def my_scenario(bench: Bench) -> Optional[float]``
(return ``None`` when the package does not support what is measured), then append a
``Scenario`` to ``SCENARIOS``. ``Bench.client(deployment, **config)`` accepts any
``LocalEvaluationConfig`` keyword (e.g. ``assignment_config=...`` for tracking
scenarios), and ``Bench.sink_url`` is a local endpoint that accepts and counts POSTed
events (``Bench.posts``), so tracking can be pointed at it instead of the Amplitude API.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
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
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(BENCH_DIR)
API_KEY = "server-benchmark-key"
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


FULL = Settings()
QUICK = Settings(
    warmup_seconds=0.2, round_seconds=0.03, min_rounds=3, max_rounds=9, budget_seconds=0.5, load_repeats=3
)


# ============================================================================ measuring side
# Everything in this section runs in the measuring interpreter (ours or the reference) and
# only imports ``amplitude_experiment``'s public API.


class _Server:
    """Serves one response body to every GET; accepts and counts POSTs (an event sink)."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.posts = 0
        server_ref = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server naming)
                self._reply(server_ref.body)

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                server_ref.posts += 1
                self._reply(b'{"code": 200}')

            def _reply(self, payload: bytes) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        host, port = self._httpd.server_address[:2]
        self.url = f"http://{host}:{port}"
        threading.Thread(target=self._httpd.serve_forever, name="bench-http", daemon=True).start()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


class Bench:
    """What a scenario gets: the workload, the users and a way to get started clients."""

    def __init__(self, workload: Dict[str, Any]) -> None:
        from amplitude_experiment import User

        self.settings = Settings(**workload["settings"])
        self.deployments: Dict[str, List[Dict[str, Any]]] = workload["deployments"]
        self.bodies = {name: json.dumps(flags).encode() for name, flags in self.deployments.items()}
        self.users = [User(**kwargs) for kwargs in workload["users"]]
        self._servers: Dict[str, _Server] = {}
        self._sink: Optional[_Server] = None

    def server_url(self, deployment: str) -> str:
        """URL of a local flags server for one of the workload's deployments."""
        if deployment not in self._servers:
            self._servers[deployment] = _Server(self.bodies[deployment])
        return self._servers[deployment].url

    @property
    def sink_url(self) -> str:
        """URL that accepts (and counts) POSTed events."""
        if self._sink is None:
            self._sink = _Server(b"")
        return self._sink.url

    @property
    def posts(self) -> int:
        return 0 if self._sink is None else self._sink.posts

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

    def close(self) -> None:
        for server in self._servers.values():
            server.close()
        if self._sink is not None:
            self._sink.close()


def time_per_call(func: Callable[[Any], Any], args: Sequence[Any], settings: Settings) -> float:
    """Median over timed rounds of the seconds per ``func(arg)``, cycling through ``args``."""
    # Warm-up: at most one pass over the arguments, at most ``warmup_seconds``.
    start = time.perf_counter()
    calls = 0
    for arg in args:
        func(arg)
        calls += 1
        if calls % 64 == 0 and time.perf_counter() - start > settings.warmup_seconds:
            break
    per_call = (time.perf_counter() - start) / calls
    calls_per_round = max(len(args) // 10, int(settings.round_seconds / per_call) + 1)

    cycle = itertools.cycle(args)  # rounds continue where the previous one stopped
    rounds: List[float] = []
    began = time.perf_counter()
    while len(rounds) < settings.max_rounds and (
        len(rounds) < settings.min_rounds or time.perf_counter() - began < settings.budget_seconds
    ):
        batch = list(itertools.islice(cycle, calls_per_round))
        gc.collect()
        t0 = time.perf_counter()
        for arg in batch:
            func(arg)
        rounds.append((time.perf_counter() - t0) / calls_per_round)
    return statistics.median(rounds)


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


def evaluate_realistic_us(bench: Bench) -> float:
    """µs per ``evaluate_v2(user)``, realistic 40-flag deployment, no tracking."""
    with bench.client("realistic") as client:
        return time_per_call(client.evaluate_v2, bench.users, bench.settings) * 1e6


def evaluate_single_rollout_us(bench: Bench) -> float:
    """µs per ``evaluate_v2(user)``, one 50/50 rollout flag, no tracking."""
    with bench.client("single_rollout") as client:
        return time_per_call(client.evaluate_v2, bench.users, bench.settings) * 1e6


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


@dataclass(frozen=True)
class Target:
    text: str
    met: Callable[[float, Optional[float]], Optional[bool]]  # (ours, reference) -> met? (None: unknown)


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    unit: str
    run: Callable[[Bench], Optional[float]]
    target: Optional[Target] = None
    #: Reference value to show when the reference cannot run this scenario (``run`` gave None).
    reference_fallback: Optional[str] = None


SCENARIOS: List[Scenario] = [
    Scenario(
        "evaluate_realistic",
        "1. evaluate_v2, realistic 40 flags",
        "us/call",
        evaluate_realistic_us,
        Target(">= 15x", lambda ours, ref: None if ref is None else ref / ours >= 15),
    ),
    Scenario(
        "evaluate_single_rollout",
        "2. evaluate_v2, single rollout flag",
        "us/call",
        evaluate_single_rollout_us,
        Target("<= 3 us", lambda ours, ref: ours <= 3),
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


def measure(workload: Dict[str, Any]) -> Dict[str, Any]:
    """Run every scenario in this interpreter; never raises for a failing scenario."""
    logging.disable(logging.CRITICAL)
    out: Dict[str, Any] = {"environment": environment_info(), "results": {}, "errors": {}}
    try:
        out["package"] = package_info()
        bench = Bench(workload)
    except Exception as exc:  # e.g. the package does not import yet
        out["fatal"] = f"{type(exc).__name__}: {exc}"
        return out
    # The harness's own objects (workload, users, bodies) are moved out of the collector's
    # reach, so GC cost during measurements comes from the package under test only. GC stays on.
    gc.collect()
    gc.freeze()
    try:
        for scenario in SCENARIOS:
            try:
                out["results"][scenario.key] = scenario.run(bench)
            except Exception as exc:
                out["results"][scenario.key] = None
                out["errors"][scenario.key] = f"{type(exc).__name__}: {exc}"
        try:
            out["check"] = result_check(bench)
        except Exception as exc:
            out["errors"]["check"] = f"{type(exc).__name__}: {exc}"
    finally:
        bench.close()
        gc.unfreeze()
    return out


def worker_main() -> None:
    workload = json.load(sys.stdin)
    json.dump(measure(workload), sys.stdout)


# ============================================================================ driver
# Runs in the interpreter the user started; builds the workload, measures, prints.


def build_workload(settings: Settings) -> Dict[str, Any]:
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
                timeout=900,
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


def summarize(ours: Dict[str, Any], reference: Optional[Dict[str, Any]]) -> List[Dict[str, Any]]:
    rows = []
    for scenario in SCENARIOS:
        ours_value = ours.get("results", {}).get(scenario.key)
        ref_value = None
        ref_note = None
        if reference is not None:
            results = reference.get("results", {})
            ref_value = results.get(scenario.key)
            fallback = scenario.reference_fallback
            if ref_value is None and fallback and results.get(fallback) is not None:
                if scenario.key not in reference.get("errors", {}):  # not applicable, rather than broken
                    ref_value = results[fallback]
                    ref_note = f"reference approximated by {fallback}"
        ratio = ref_value / ours_value if ours_value and ref_value is not None else None
        met = None
        if scenario.target is not None and ours_value is not None:
            met = scenario.target.met(ours_value, ref_value)
        rows.append(
            {
                "key": scenario.key,
                "title": scenario.title,
                "unit": scenario.unit,
                "ours": ours_value,
                "reference": ref_value,
                "reference_note": ref_note,
                "ratio": ratio,
                "target": scenario.target.text if scenario.target else None,
                "target_met": met,
            }
        )
    return rows


def _fmt(value: Optional[float]) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3g}" if value < 10 else f"{value:.1f}"


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
    return lines


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
                _fmt(row["ours"]),
                _fmt(row["reference"]) + ("*" if row["reference_note"] else ""),
                f"{row['ratio']:.1f}x" if row["ratio"] is not None else "n/a",
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
    for note in notes:
        print(f"note: {note}")


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--reference-python",
        metavar="PYTHON",
        help="interpreter with the official amplitude-experiment installed (e.g. /work/refvenv/bin/python)",
    )
    parser.add_argument("--quick", action="store_true", help="fewer, shorter rounds (well under 30 s)")
    parser.add_argument("--json", action="store_true", help="print machine-readable results, not a table")
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
    workload = build_workload(settings)
    ours = measure_in_subprocess(args.ours_python, workload) if args.ours_python else measure_here(workload)
    reference = measure_in_subprocess(args.reference_python, workload) if args.reference_python else None

    notes = []
    if reference is not None:
        mismatch = compare_checks(ours, reference)
        if mismatch:
            notes.append(mismatch)
        if ours.get("package") and ours["package"] == reference.get("package"):
            notes.append("both sides imported the same amplitude_experiment package")
    rows = summarize(ours, reference)
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
