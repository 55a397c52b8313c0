"""Shared plumbing of the flag-config benchmarks: a static flag server in its own process, and
running one measuring function under our interpreter and under the reference's.

Both sides import ``amplitude_experiment`` and use only the public API (``LocalEvaluationClient``,
``LocalEvaluationConfig``, ``User``), so the same worker code measures either package. The flag
server is ``python -m http.server`` in a subprocess, so its CPU and memory never count.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(BENCH_DIR)
REFERENCE_PYTHON = "/work/refvenv/bin/python"
API_KEY = "server-benchmark-key"


class StaticFlagServer:
    """Serves ``{urls[name]}/sdk/v2/flags`` for each named deployment, one ``http.server`` process each
    (the official SDK takes a bare host as ``server_url``). Each request is logged to a file."""

    def __init__(self, deployments: Dict[str, List[Any]]) -> None:
        self.root = tempfile.mkdtemp(prefix="flagbench-")
        self.urls: Dict[str, str] = {}
        self.logs: Dict[str, str] = {}
        self._procs: List[subprocess.Popen] = []  # type: ignore[type-arg]
        for name, flags in deployments.items():
            root = os.path.join(self.root, name)
            os.makedirs(os.path.join(root, "sdk", "v2"))
            with open(os.path.join(root, "sdk", "v2", "flags"), "wb") as handle:
                handle.write(json.dumps(flags, separators=(",", ":")).encode())
            self.urls[name], self.logs[name] = self._serve(root, os.path.join(self.root, f"{name}.log"))

    def _serve(self, root: str, log_path: str) -> "tuple[str, str]":
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        with open(log_path, "wb") as log:
            self._procs.append(subprocess.Popen(
                [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", root],
                stdout=subprocess.DEVNULL, stderr=log))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return f"http://127.0.0.1:{port}", log_path
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("a static flag server did not start")

    def close(self) -> None:
        for proc in self._procs:
            proc.terminate()
            proc.wait(10)


def count_requests(log_path: str) -> int:
    """Flag requests logged so far (``http.server`` logs one line per request)."""
    with open(log_path, "rb") as handle:
        return handle.read().count(b"GET /sdk/v2/flags")


def run_worker(python: str, script: str, spec: Dict[str, Any]) -> Dict[str, Any]:
    """Run ``script --worker`` under ``python``, isolated (``-I``, temporary cwd); JSON in, JSON out."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
    with tempfile.TemporaryDirectory(prefix="flagbench-worker-") as cwd:
        proc = subprocess.run([python, "-I", script, "--worker"], input=json.dumps(spec), capture_output=True,
                              text=True, cwd=cwd, env=env, timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"{python} failed: {proc.stderr.strip()[-3000:]}")
    result: Dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def worker_main(measure: Callable[[Dict[str, Any]], Dict[str, Any]]) -> None:
    """The ``--worker`` side: read the spec, import the package from ``spec["path"]`` if given, measure."""
    spec = json.load(sys.stdin)
    if spec.get("path"):
        sys.path.insert(0, spec["path"])
    real_stdout = sys.stdout
    sys.stdout = sys.stderr  # whatever the package prints must not corrupt the JSON line
    result = measure(spec)
    real_stdout.write(json.dumps(result) + "\n")
    real_stdout.flush()
    os._exit(0)  # do not wait for threads a package left behind


def ratio(ours: Optional[float], reference: Optional[float]) -> str:
    if not ours or not reference:
        return "n/a"
    return f"{reference / ours:.1f}x" if reference >= ours else f"{ours / reference:.1f}x worse"

