"""A WSGI app for gunicorn with ``preload_app``: the Experiment client is created and started at import.

Run it with the ``gunicorn.conf.py`` beside it (gunicorn reads ``./gunicorn.conf.py`` by default)::

    cd examples/gunicorn_preload
    AMPLITUDE_DEPLOYMENT_KEY=server-... AMPLITUDE_API_KEY=... gunicorn
    curl 'http://127.0.0.1:8000/checkout?user_id=user-1'

Demo (offline: starts a local stand-in for Amplitude, then gunicorn as above)::

    python examples/gunicorn_preload/run_demo.py

Fork safety
-----------
With ``preload_app = True`` gunicorn imports this module once, in the master process, and then
forks the workers. So the client below is created, and its first flag download done, in the master.
A forked process inherits the client but not its background threads (threads do not survive
``fork()``), and it must not share the master's pooled HTTP connections. The client takes care of
that by itself: it registers with ``os.register_at_fork``, and in each worker it reinitialises
right after the fork, with new background threads (flag refresh, event sending), a new HTTP
session and an empty event queue. The flags the master downloaded are kept, so every worker
evaluates from its first request without downloading anything.

No ``post_fork`` hook is needed, and nothing in the app has to know whether it runs preloaded.
Each worker sends its own assignment events; when gunicorn stops (SIGTERM) or restarts a worker,
the worker's client sends what it still has queued as the process exits (bounded wait).

Leave ``AMPLITUDE_SERVER_URL`` and ``AMPLITUDE_EVENTS_URL`` unset in production: they default to
Amplitude's servers and exist so that tests can point the app at a stand-in.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any, Callable, Dict, Iterable, List, Tuple
from urllib.parse import parse_qs

from amplitude_experiment import AssignmentConfig, FetchError, LocalEvaluationClient, LocalEvaluationConfig, User

FLAG_KEY = "checkout-redesign"
StartResponse = Callable[[str, List[Tuple[str, str]]], Any]

logger = logging.getLogger(__name__)

# At import: with preload_app this runs once, in the gunicorn master.
LOADED_IN_PID = os.getpid()

experiment = LocalEvaluationClient(
    os.environ["AMPLITUDE_DEPLOYMENT_KEY"],
    LocalEvaluationConfig(
        server_url=os.environ.get("AMPLITUDE_SERVER_URL", "https://api.lab.amplitude.com"),
        assignment_config=AssignmentConfig(
            api_key=os.environ["AMPLITUDE_API_KEY"],
            server_url=os.environ.get("AMPLITUDE_EVENTS_URL", "https://api2.amplitude.com/2/httpapi"),
            # How often each worker sends its queued events (also sent once 200 are queued).
            flush_interval_millis=int(os.environ.get("AMPLITUDE_FLUSH_INTERVAL_MILLIS", "10000")),
        ),
    ),
)
try:
    experiment.start()  # blocks for the first flag download only
except FetchError:
    # Amplitude unreachable: serve the fallback for now; the client keeps retrying in the background.
    logger.warning("Experiment flags unavailable at start-up; serving fallbacks until they arrive")


def app(environ: Dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """GET /checkout?user_id=...: the user's variant, and which process evaluated it."""
    if environ["PATH_INFO"] != "/checkout":
        return _json(start_response, "404 Not Found", {"error": "not found"})
    user_id = parse_qs(environ.get("QUERY_STRING", "")).get("user_id", [""])[0]
    if not user_id:
        return _json(start_response, "400 Bad Request", {"error": "user_id is required"})
    # Local evaluation: microseconds, no network. Tracks an assignment event for the user.
    variant = experiment.evaluate_v2(User(user_id=user_id), [FLAG_KEY]).get(FLAG_KEY)
    return _json(start_response, "200 OK", {
        "user_id": user_id,
        "flag": FLAG_KEY,
        "variant": variant.key if variant else "control",
        "pid": os.getpid(),  # the worker that answered
        "loaded_in_pid": LOADED_IN_PID,  # the process that imported this module: the master, when preloaded
    })


def _json(start_response: StartResponse, status: str, body: Dict[str, Any]) -> List[bytes]:
    data = json.dumps(body).encode("utf-8")
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]
