"""A background worker (Celery-style, plain Python): jobs from a queue, a flag evaluated per job.

Jobs arrive as JSON lines on standard input (``{"id": 1, "user_id": "user-1"}``) and go through a
``queue.Queue``, standing in for a broker; two worker threads consume it. Each job is evaluated
locally, which tracks an assignment event for its user. On SIGTERM (or Ctrl-C) the worker stops
taking jobs, lets the running ones finish, then stops the client: that sends the queued
assignment events (bounded wait) before the process exits. At the end of the input it does the
same once every job is done.

With Celery itself: one client per worker process, created at import (a client created before the
prefork pool forks reinitialises itself in each child process), ``evaluate_v2`` inside tasks, and
``stop()`` from the ``worker_process_shutdown`` signal: pool processes end with ``os._exit()``,
which skips the client's own exit hook.

Demo (offline, against a local stand-in for Amplitude)::

    printf '{"id": 1, "user_id": "user-1"}\\n{"id": 2, "user_id": "user-2"}\\n' | python examples/worker.py

With ``AMPLITUDE_SERVER_URL`` set it uses the given servers instead of a stand-in; in production set
``AMPLITUDE_DEPLOYMENT_KEY`` and ``AMPLITUDE_API_KEY``, and ``AMPLITUDE_SERVER_URL`` and
``AMPLITUDE_EVENTS_URL`` to Amplitude's (``https://api.lab.amplitude.com``,
``https://api2.amplitude.com/2/httpapi``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import signal
import sys
import threading
from typing import IO, Any, Dict, Iterator, Optional

from amplitude_experiment import AssignmentConfig, FetchError, LocalEvaluationClient, LocalEvaluationConfig, User

FLAG_KEY = "checkout-redesign"
CONCURRENCY = 2

logger = logging.getLogger(__name__)


def experiment_from_env() -> LocalEvaluationClient:
    """The Experiment client, configured from the environment."""
    config = LocalEvaluationConfig(
        server_url=os.environ["AMPLITUDE_SERVER_URL"],
        assignment_config=AssignmentConfig(api_key=os.environ["AMPLITUDE_API_KEY"],
                                           server_url=os.environ["AMPLITUDE_EVENTS_URL"]),
    )
    return LocalEvaluationClient(os.environ["AMPLITUDE_DEPLOYMENT_KEY"], config)


def handle(experiment: LocalEvaluationClient, job: Dict[str, Any]) -> None:
    """The task: pick the checkout flow for the job's user (and track the assignment)."""
    variant = experiment.evaluate_v2(User(user_id=job["user_id"]), [FLAG_KEY]).get(FLAG_KEY)
    flow = variant.key if variant else "control"
    logger.info("job %s: %s -> %s=%s", job["id"], job["user_id"], FLAG_KEY, flow)


def consume(experiment: LocalEvaluationClient, jobs: "queue.Queue[Dict[str, Any]]",
            stopping: threading.Event) -> None:
    """One worker thread: take jobs until told to stop."""
    while not stopping.is_set():
        try:
            job = jobs.get(timeout=0.1)
        except queue.Empty:
            continue
        try:
            handle(experiment, job)
        except Exception:  # noqa: BLE001 - one bad job must not kill the worker
            logger.exception("job %r failed", job.get("id"))
        finally:
            jobs.task_done()


def feed(lines: IO[str], jobs: "queue.Queue[Dict[str, Any]]", stopping: threading.Event) -> None:
    """The "broker": one job per input line; at the end of the input, stop once every job is done."""
    for line in lines:
        if not line.strip():
            continue
        try:
            jobs.put(json.loads(line))
        except ValueError:
            logger.error("skipping a malformed job: %r", line)
    jobs.join()
    stopping.set()


def run(lines: IO[str]) -> int:
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())

    experiment = experiment_from_env()
    try:
        experiment.start()  # blocks for the first flag download only
    except FetchError:
        # Amplitude unreachable: use the fallback for now; the client keeps retrying in the background.
        logger.warning("Experiment flags unavailable at start-up; using fallbacks until they arrive")

    logger.info("worker %d ready", os.getpid())
    jobs: "queue.Queue[Dict[str, Any]]" = queue.Queue()
    workers = [threading.Thread(target=consume, args=(experiment, jobs, stopping), name=f"worker-{n}")
               for n in range(CONCURRENCY)]
    for worker in workers:
        worker.start()
    # A daemon thread: a read blocked on an idle input must not keep the process alive.
    threading.Thread(target=feed, args=(lines, jobs, stopping), name="feeder", daemon=True).start()

    stopping.wait()  # SIGTERM/SIGINT, or the end of the input
    for worker in workers:
        worker.join()  # each finishes the job it is running
    experiment.stop()  # sends the queued assignment events (bounded wait), stops the background threads
    events = experiment.stats()["events"]
    logger.info("stopped: %d jobs left in the queue, %d events sent, %d dropped",
                jobs.qsize(), events["sent"], sum(events["dropped"].values()))
    return 0


@contextlib.contextmanager
def demo_stand_in() -> Iterator[Optional[Any]]:
    """Without AMPLITUDE_SERVER_URL, run against a local stand-in for Amplitude (offline demo)."""
    if "AMPLITUDE_SERVER_URL" in os.environ:
        yield None
        return
    from amplitude_experiment.testing import AmplitudeStandIn, experiment

    demo_flags = [experiment(FLAG_KEY, bucket_by="user_id", experiment_key="exp-checkout")]  # 50/50 control/treatment

    with AmplitudeStandIn(flags=demo_flags) as amplitude:
        os.environ.update(AMPLITUDE_SERVER_URL=amplitude.url, AMPLITUDE_EVENTS_URL=amplitude.url + "/2/httpapi",
                          AMPLITUDE_DEPLOYMENT_KEY="server-demo", AMPLITUDE_API_KEY="demo-analytics-key")
        yield amplitude


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="[%(threadName)s] %(message)s", stream=sys.stdout)
    with demo_stand_in() as stand_in:
        code = run(sys.stdin)
        if stand_in is not None:
            logger.info("the stand-in received %d assignment events", len(stand_in.events))
    sys.exit(code)
