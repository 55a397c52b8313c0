"""Remote evaluation: Amplitude evaluates the flags, one request per fetch.

Use it for flags that target what only Amplitude knows about a user (e.g. cohorts or user
properties set from other sources); local evaluation answers everything else in microseconds.

The script fetches variants three ways: ``fetch_v2`` (blocking), ``fetch_v2`` with
``FetchOptions`` (only some flags, no assignment tracking) and ``afetch_v2`` from asyncio (many
users concurrently, without blocking the event loop). Failures are retried twice, then raise
``FetchException``.

Demo (offline, against a local stand-in for Amplitude that evaluates with this SDK's engine)::

    python examples/remote_evaluation.py

With ``AMPLITUDE_SERVER_URL`` (``https://api.lab.amplitude.com``) and
``AMPLITUDE_DEPLOYMENT_KEY`` set it talks to those instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import Any, Dict, Iterator, List, Optional

from amplitude_experiment import (
    Experiment,
    FetchException,
    FetchOptions,
    RemoteEvaluationClient,
    RemoteEvaluationConfig,
    User,
    Variant,
)

FLAG_KEY = "checkout-redesign"
USERS = ["user-1", "user-4", "alice", "user-6"]

# What the offline demo serves: one 50/50 experiment bucketed by user id.
DEMO_FLAGS: List[Dict[str, Any]] = [{
    "key": FLAG_KEY,
    "metadata": {"deployed": True, "flagType": "experiment", "flagVersion": 1, "experimentKey": "exp-checkout"},
    "variants": {"control": {"key": "control", "value": "control"},
                 "treatment": {"key": "treatment", "value": "treatment", "payload": {"layout": "one-page"}},
                 "off": {"key": "off", "metadata": {"default": True}}},
    "segments": [{"metadata": {"segmentName": "All Other Users"}, "variant": "off", "bucket": {
        "selector": ["context", "user", "user_id"], "salt": FLAG_KEY, "allocations": [
            {"range": [0, 100], "distributions": [{"variant": "control", "range": [0, 21474837]},
                                                  {"variant": "treatment", "range": [21474837, 42949673]}]}]}}],
}]


def experiment_from_env() -> RemoteEvaluationClient:
    """The remote-evaluation client, configured from the environment (one per deployment key)."""
    config = RemoteEvaluationConfig(server_url=os.environ["AMPLITUDE_SERVER_URL"], fetch_retries=2,
                                    fetch_timeout_millis=2000, connection_pool_max_size=4)
    return Experiment.initialize_remote(os.environ["AMPLITUDE_DEPLOYMENT_KEY"], config)


def describe(variant: Optional[Variant]) -> str:
    if variant is None:
        return "(no variant)"
    return f"{variant.key}" + (f" payload={variant.payload}" if variant.payload is not None else "")


async def fetch_concurrently(experiment: RemoteEvaluationClient, user_ids: List[str]) -> List[Dict[str, Variant]]:
    """asyncio code (FastAPI, aiohttp): ``afetch_v2`` runs on the client's small thread pool."""
    return await asyncio.gather(*(experiment.afetch_v2(User(user_id=uid)) for uid in user_ids))


def run(experiment: RemoteEvaluationClient) -> None:
    for user_id in USERS:
        try:
            variants = experiment.fetch_v2(User(user_id=user_id, device_id=f"device-{user_id}"))
        except FetchException as error:  # only after fetch_retries retries failed
            print(f"{user_id}: Amplitude unreachable ({error.status_code}); serving defaults")
            continue
        print(f"{user_id:>8}: {FLAG_KEY}={describe(variants.get(FLAG_KEY))}")

    options = FetchOptions(flagKeys=[FLAG_KEY], tracksAssignment=False)
    only = experiment.fetch_v2(User(user_id="alice"), options)
    print(f"only {FLAG_KEY}, untracked: {sorted(only)}")

    results = asyncio.run(fetch_concurrently(experiment, USERS))
    print("async: " + ", ".join(f"{uid}={r[FLAG_KEY].key}" for uid, r in zip(USERS, results)))


@contextlib.contextmanager
def demo_stand_in() -> Iterator[None]:
    """Without AMPLITUDE_SERVER_URL, run against a local stand-in for Amplitude (offline demo)."""
    if "AMPLITUDE_SERVER_URL" in os.environ:
        yield
        return
    from amplitude_experiment.testing import AmplitudeStandIn

    with AmplitudeStandIn(flags=DEMO_FLAGS) as amplitude:
        os.environ.update(AMPLITUDE_SERVER_URL=amplitude.url, AMPLITUDE_DEPLOYMENT_KEY="server-demo")
        yield


def main() -> None:
    with demo_stand_in():
        with experiment_from_env() as experiment:
            run(experiment)


if __name__ == "__main__":
    main()
