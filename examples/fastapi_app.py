"""FastAPI: the Experiment client lives as long as the app, through a lifespan handler.

Demo (offline, against a local stand-in for Amplitude; serving needs uvicorn)::

    pip install -e . -r requirements-examples.txt
    python examples/fastapi_app.py
    curl 'http://127.0.0.1:8000/checkout?user_id=user-1'

In production: ``uvicorn fastapi_app:app`` with ``AMPLITUDE_DEPLOYMENT_KEY`` and ``AMPLITUDE_API_KEY``
set. Leave ``AMPLITUDE_SERVER_URL`` and ``AMPLITUDE_EVENTS_URL`` unset: they default to Amplitude's
servers and exist so that tests can point the app at a stand-in.
"""

import asyncio
import contextlib
import logging
import os
from typing import Annotated, Any, AsyncIterator, Dict, Optional

from fastapi import Depends, FastAPI, Request

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


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    experiment = experiment_from_env()
    try:
        # start() blocks for the first flag download: keep it off the event loop.
        await asyncio.to_thread(experiment.start)
    except FetchError:
        # Amplitude unreachable: serve the fallback for now; the client keeps retrying in the background.
        logger.warning("Experiment flags unavailable at start-up; serving fallbacks until they arrive")
    app.state.experiment = experiment
    try:
        yield
    finally:
        # Sends queued assignment events (bounded wait) and stops the background threads.
        await asyncio.to_thread(experiment.stop)


app = FastAPI(lifespan=lifespan)


def get_experiment(request: Request) -> LocalEvaluationClient:
    """Dependency: the app's Experiment client."""
    return request.app.state.experiment


Experiment = Annotated[LocalEvaluationClient, Depends(get_experiment)]


@app.get("/checkout")
async def checkout(user_id: str, experiment: Experiment, device_id: Optional[str] = None) -> Dict[str, Any]:
    # evaluate_v2 is local and CPU-only (microseconds, no I/O): call it directly, even in async code.
    variant = experiment.evaluate_v2(User(user_id=user_id, device_id=device_id), [FLAG_KEY]).get(FLAG_KEY)
    return {"user_id": user_id, "flag": FLAG_KEY, "variant": variant.key if variant else "control"}


# -- demo mode: `python examples/fastapi_app.py` serves against a local stand-in for Amplitude ----------

if __name__ == "__main__":
    import uvicorn

    from amplitude_experiment.testing import AmplitudeStandIn, experiment

    DEMO_FLAGS = [experiment(FLAG_KEY, bucket_by="user_id", experiment_key="exp-checkout")]  # 50/50 control/treatment

    with AmplitudeStandIn(flags=DEMO_FLAGS) as amplitude:
        os.environ.update(AMPLITUDE_SERVER_URL=amplitude.url, AMPLITUDE_EVENTS_URL=amplitude.url + "/2/httpapi",
                          AMPLITUDE_DEPLOYMENT_KEY="server-demo", AMPLITUDE_API_KEY="demo-analytics-key")
        uvicorn.run(app, host="127.0.0.1", port=int(os.environ.get("PORT", "8000")))  # until Ctrl-C
        print(f"The stand-in received {len(amplitude.events)} assignment events.")
