"""examples/fastapi_app.py: the lifespan starts and stops the client; a dependency hands it to the route."""

from __future__ import annotations

from typing import Dict

import pytest

from amplitude_experiment.testing import AmplitudeStandIn

from .helpers import EXPECTED, FLAG_KEY, assignments, check_event_requests, load_example


# Third-party warnings about third-party code, in some combinations of versions only: recent
# Starlette's TestClient prefers httpx2 (installed by requirements-examples.txt where it exists) and
# warns when it falls back to httpx; Starlette before 0.49 uses an alias that recent anyio deprecates.
@pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient` is deprecated:UserWarning")
@pytest.mark.filterwarnings("ignore:The anyio.abc.BlockingPortal alias is deprecated:DeprecationWarning")
def test_fastapi_app(amplitude: AmplitudeStandIn, amplitude_env: Dict[str, str]) -> None:
    # Imported here, not at collection: only the worker that runs this test pays for FastAPI.
    pytest.importorskip("fastapi")
    pytest.importorskip("httpx")  # FastAPI's TestClient is built on it
    from fastapi.testclient import TestClient

    app = load_example("fastapi_app.py").app
    with TestClient(app) as client:  # runs the lifespan: start() on entry, stop() on exit
        experiment = app.state.experiment
        assert experiment.snapshot_source == "network"
        for user_id, variant in EXPECTED.items():
            response = client.get("/checkout", params={"user_id": user_id})
            assert response.status_code == 200
            assert response.json() == {"user_id": user_id, "flag": FLAG_KEY, "variant": variant}
        assert client.get("/checkout").status_code == 422  # user_id is a required query parameter
        assert amplitude.events == []  # queued: the default flush interval is 10 s
    # The lifespan's shutdown stopped the client, which sent the queued events.
    assert experiment.stats()["events"]["queue_depth"] == 0
    assert assignments(amplitude) == sorted(EXPECTED.items())
    check_event_requests(amplitude)
