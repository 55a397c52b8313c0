"""examples/flask_app.py: the app factory's client evaluates in a request handler and tracks assignments."""

from __future__ import annotations

from typing import Dict

import pytest

from amplitude_experiment.testing import AmplitudeStandIn

from .helpers import EXPECTED, FLAG_KEY, assignments, check_event_requests, load_example


def test_flask_app(amplitude: AmplitudeStandIn, amplitude_env: Dict[str, str]) -> None:
    pytest.importorskip("flask")  # here, not at collection: only the worker that runs this test pays for it
    app = load_example("flask_app.py").create_app()
    experiment = app.extensions["experiment"]
    try:
        assert experiment.snapshot_source == "network"
        client = app.test_client()
        for user_id, variant in EXPECTED.items():
            response = client.get("/checkout", query_string={"user_id": user_id})
            assert response.status_code == 200
            assert response.get_json() == {"user_id": user_id, "flag": FLAG_KEY, "variant": variant}
        missing = client.get("/checkout")
        assert missing.status_code == 400
        assert missing.get_json() == {"error": "user_id is required"}
    finally:
        experiment.stop()  # what the app's atexit hook does: sends the queued events
    assert assignments(amplitude) == sorted(EXPECTED.items())
    check_event_requests(amplitude)
    assert len(amplitude.requests("flags")) == 1
