"""examples/worker.py: jobs in, one evaluation per job; SIGTERM drains, flushes and stops."""

from __future__ import annotations

import json
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from typing import IO, Dict, List

from amplitude_experiment.testing import AmplitudeStandIn

from .helpers import EXAMPLES, EXPECTED, FLAG_KEY, assignments, check_event_requests, subprocess_env

JOB_LINE = re.compile(r"\[worker-\d\] job (\d+): (\S+) -> " + re.escape(FLAG_KEY) + r"=(\w+)")


def _pump(stream: IO[str], lines: "queue.Queue[str]") -> None:
    for line in stream:
        lines.put(line.rstrip("\n"))


def _wait_for_jobs(lines: "queue.Queue[str]", seen: List[str], count: int, timeout: float) -> Dict[str, str]:
    """Read output lines until ``count`` jobs were reported; {user_id: variant}."""
    deadline = time.monotonic() + timeout
    done: Dict[str, str] = {}
    while len(done) < count:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"only {len(done)} of {count} jobs reported; output so far: {seen}"
        try:
            line = lines.get(timeout=remaining)
        except queue.Empty:
            continue
        seen.append(line)
        match = JOB_LINE.fullmatch(line)
        if match:
            done[match.group(2)] = match.group(3)
    return done


def test_worker_stops_on_sigterm(amplitude: AmplitudeStandIn, amplitude_env: Dict[str, str]) -> None:
    output: List[str] = []
    with subprocess.Popen([sys.executable, str(EXAMPLES / "worker.py")], env=subprocess_env(amplitude_env),
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True) as worker:
        assert worker.stdin is not None and worker.stdout is not None
        lines: "queue.Queue[str]" = queue.Queue()
        pump = threading.Thread(target=_pump, args=(worker.stdout, lines), daemon=True)
        pump.start()
        try:
            for number, user_id in enumerate(EXPECTED, start=1):
                worker.stdin.write(json.dumps({"id": number, "user_id": user_id}) + "\n")
            worker.stdin.flush()  # and the input stays open: the worker would wait for more jobs

            assert _wait_for_jobs(lines, output, len(EXPECTED), timeout=10) == EXPECTED
            assert amplitude.events == []  # all queued: the default flush interval is 10 s

            started = time.monotonic()
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(timeout=10) == 0
            assert time.monotonic() - started < 5
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
            pump.join(timeout=5)
    while not lines.empty():
        output.append(lines.get())
    assert output[0].startswith("[MainThread] worker ") and output[0].endswith(" ready")
    assert output[-1] == "[MainThread] stopped: 0 jobs left in the queue, 4 events sent, 0 dropped"
    assert len(output) == len(EXPECTED) + 2, output
    # Sent by stop() before the process exited.
    assert assignments(amplitude) == sorted(EXPECTED.items())
    check_event_requests(amplitude)


def test_worker_demo_mode_drains_its_input() -> None:
    """Run directly without AMPLITUDE_* variables: its own stand-in; at the end of the input it drains and exits."""
    jobs = "".join(json.dumps({"id": n, "user_id": u}) + "\n" for n, u in enumerate(EXPECTED, start=1))
    done = subprocess.run([sys.executable, str(EXAMPLES / "worker.py")], env=subprocess_env({}),
                          input=jobs + "not json\n", capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    out = done.stdout.splitlines()
    assert sorted(line.split("] ", 1)[1] for line in out[1:-2]) == sorted(
        [f"job {n}: {u} -> {FLAG_KEY}={v}" for n, (u, v) in enumerate(EXPECTED.items(), start=1)]
        + ["skipping a malformed job: 'not json\\n'"])
    assert out[-2:] == ["[MainThread] stopped: 0 jobs left in the queue, 4 events sent, 0 dropped",
                        "[MainThread] the stand-in received 4 assignment events"]
