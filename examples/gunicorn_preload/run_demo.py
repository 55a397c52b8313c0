"""Demo of app.py, offline: a local stand-in for Amplitude, and gunicorn (with ./gunicorn.conf.py) pointed at it.

    python examples/gunicorn_preload/run_demo.py
    curl 'http://127.0.0.1:8000/checkout?user_id=user-1'    # answers name the worker ("pid")

Ctrl-C stops gunicorn, whose workers send their queued assignment events as they exit.
"""

from __future__ import annotations

import os
import subprocess
import sys

from amplitude_experiment.testing import AmplitudeStandIn, experiment

FLAG_KEY = "checkout-redesign"
DEMO_FLAGS = [experiment(FLAG_KEY, bucket_by="user_id", experiment_key="exp-checkout")]  # 50/50 control/treatment


def main() -> int:
    with AmplitudeStandIn(flags=DEMO_FLAGS) as amplitude:
        env = dict(os.environ, AMPLITUDE_SERVER_URL=amplitude.url, AMPLITUDE_EVENTS_URL=amplitude.url + "/2/httpapi",
                   AMPLITUDE_DEPLOYMENT_KEY="server-demo", AMPLITUDE_API_KEY="demo-analytics-key")
        here = os.path.dirname(os.path.abspath(__file__))
        gunicorn = subprocess.Popen([sys.executable, "-m", "gunicorn"], cwd=here, env=env)
        try:
            gunicorn.wait()
        except KeyboardInterrupt:  # Ctrl-C reached gunicorn too: let it stop its workers, which send their events
            gunicorn.wait()
        print(f"The stand-in received {len(amplitude.events)} assignment events.")
        return gunicorn.returncode


if __name__ == "__main__":
    sys.exit(main())
