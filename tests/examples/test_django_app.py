"""examples/django_app.py: AppConfig.ready() starts the client; the view evaluates.

Django's settings are process-wide, so the example runs in a subprocess of its own, driven by
Django's test Client; the client stops at that process's exit, which sends the queued events.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Dict

import pytest

from amplitude_experiment.testing import AmplitudeStandIn

from .helpers import EXAMPLES, EXPECTED, FLAG_KEY, assignments, check_event_requests, subprocess_env

pytest.importorskip("django")

DRIVER = """
import json, sys
sys.path.insert(0, sys.argv[1])
import django_app  # configures the settings and loads the app: ExperimentsConfig.ready() starts the client
from django.apps import apps
from django.test import Client
from django.test.utils import setup_test_environment

setup_test_environment()  # lets the test Client's host, "testserver", through ALLOWED_HOSTS
client = Client()
responses = []
for user_id in sys.argv[2:] + [None]:
    response = client.get("/checkout", {"user_id": user_id} if user_id else {})
    responses.append([response.status_code, response.json()])
experiment = apps.get_app_config("experiments").experiment
print(json.dumps({"responses": responses, "source": experiment.snapshot_source,
                  "queued": experiment.stats()["events"]["queue_depth"]}))
"""


def test_django_app(amplitude: AmplitudeStandIn, amplitude_env: Dict[str, str]) -> None:
    done = subprocess.run([sys.executable, "-W", "error", "-c", DRIVER, str(EXAMPLES), *EXPECTED],
                          env=subprocess_env(amplitude_env), capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    result = json.loads(done.stdout)
    assert result == {
        "responses": [[200, {"user_id": user_id, "flag": FLAG_KEY, "variant": variant}]
                      for user_id, variant in EXPECTED.items()] + [[400, {"error": "user_id is required"}]],
        "source": "network",
        "queued": len(EXPECTED),  # the default flush interval is 10 s: all still queued ...
    }
    # ... and sent when the process exited
    assert assignments(amplitude) == sorted(EXPECTED.items())
    check_event_requests(amplitude)
