"""Flask: one Experiment client per process, created and started in the app factory.

Demo (offline, against a local stand-in for Amplitude)::

    pip install -e . -r requirements-examples.txt
    python examples/flask_app.py
    curl 'http://127.0.0.1:5000/checkout?user_id=user-1'

In production run it like any Flask app (``flask --app flask_app run``, ``gunicorn 'flask_app:create_app()'``)
with ``AMPLITUDE_DEPLOYMENT_KEY`` and ``AMPLITUDE_API_KEY`` set. Leave ``AMPLITUDE_SERVER_URL`` and
``AMPLITUDE_EVENTS_URL`` unset: they default to Amplitude's servers and exist so that tests can point
the app at a stand-in.
"""

from __future__ import annotations

import atexit
import logging
import os

from flask import Flask, jsonify, request

from amplitude_experiment import AssignmentConfig, FetchError, LocalEvaluationClient, LocalEvaluationConfig, User

FLAG_KEY = "checkout-redesign"

logger = logging.getLogger(__name__)


def experiment_from_env() -> LocalEvaluationClient:
    """The Experiment client, configured from the environment."""
    config = LocalEvaluationConfig(
        server_url=os.environ.get("AMPLITUDE_SERVER_URL", "https://api.lab.amplitude.com"),
        assignment_config=AssignmentConfig(
            api_key=os.environ["AMPLITUDE_API_KEY"],
            server_url=os.environ.get("AMPLITUDE_EVENTS_URL", "https://api2.amplitude.com/2/httpapi"),
        ),
    )
    return LocalEvaluationClient(os.environ["AMPLITUDE_DEPLOYMENT_KEY"], config)


def create_app() -> Flask:
    app = Flask(__name__)

    # One client for the whole process, shared by every request thread.
    experiment = experiment_from_env()
    try:
        experiment.start()  # blocks for the first flag download only; then refreshes in the background
    except FetchError:
        # Amplitude unreachable: serve the fallback for now; the client keeps retrying in the background.
        logger.warning("Experiment flags unavailable at start-up; serving fallbacks until they arrive")
    atexit.register(experiment.stop)  # sends queued assignment events (bounded wait) when the process exits
    app.extensions["experiment"] = experiment

    @app.get("/checkout")
    def checkout():
        user_id = request.args.get("user_id")
        if not user_id:
            return jsonify(error="user_id is required"), 400
        user = User(user_id=user_id, device_id=request.args.get("device_id"))
        # Local evaluation: microseconds, no network. Tracks an assignment event for the user.
        variant = experiment.evaluate_v2(user, [FLAG_KEY]).get(FLAG_KEY)
        return jsonify(user_id=user_id, flag=FLAG_KEY, variant=variant.key if variant else "control")

    return app


# -- demo mode: `python examples/flask_app.py` serves against a local stand-in for Amplitude ------------

if __name__ == "__main__":
    from amplitude_experiment.testing import AmplitudeStandIn, experiment

    DEMO_FLAGS = [experiment(FLAG_KEY, bucket_by="user_id", experiment_key="exp-checkout")]  # 50/50 control/treatment

    with AmplitudeStandIn(flags=DEMO_FLAGS) as amplitude:
        os.environ.update(AMPLITUDE_SERVER_URL=amplitude.url, AMPLITUDE_EVENTS_URL=amplitude.url + "/2/httpapi",
                          AMPLITUDE_DEPLOYMENT_KEY="server-demo", AMPLITUDE_API_KEY="demo-analytics-key")
        demo = create_app()
        demo.run(host="127.0.0.1", port=int(os.environ.get("PORT", "5000")))  # until Ctrl-C
        demo.extensions["experiment"].stop()
        print(f"The stand-in received {len(amplitude.events)} assignment events.")
