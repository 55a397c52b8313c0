"""examples/exposure_tracking.py: automatic and explicit $exposure events, as the stand-in received them."""

from __future__ import annotations

import json
import subprocess
import sys

from .helpers import EXAMPLES, subprocess_env


def test_exposure_tracking() -> None:
    done = subprocess.run([sys.executable, "-W", "error", str(EXAMPLES / "exposure_tracking.py")],
                          env=subprocess_env({}), capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    report, first_event = done.stdout.split("First event as Amplitude received it:\n")
    assert report == (
        "Automatic: evaluate_v2(user, options=EvaluateOptions(tracks_exposure=True))\n"
        "  user-ada: checkout-redesign=treatment, dark-mode=on\n"
        "  user-bob: checkout-redesign=control, dark-mode=off\n"
        "Explicit: track_exposure(user, flag_key, variant) when the user opens the checkout\n"
        "  visit 1: user-cleo sees checkout-redesign=control: tracked\n"
        "  visit 2: user-cleo sees checkout-redesign=control: deduplicated (already exposed today)\n"
        "\n"
        "Exposure tracking: 4 tracked, 1 deduplicated, 1 skipped (default variant); 4 events sent, 0 dropped\n"
        "$exposure events the stand-in received:\n"
        "  $exposure user-ada   checkout-redesign=treatment (experiment: exp-checkout)\n"
        "  $exposure user-ada   dark-mode=on (experiment: -)\n"
        "  $exposure user-bob   checkout-redesign=control (experiment: exp-checkout)\n"
        "  $exposure user-cleo  checkout-redesign=control (experiment: exp-checkout)\n"
    )
    event = json.loads(first_event)
    assert {name: event[name] for name in ("event_type", "user_id", "event_properties")} == {
        "event_type": "$exposure",
        "user_id": "user-ada",
        "event_properties": {"flag_key": "checkout-redesign", "variant": "treatment",
                             "experiment_key": "exp-checkout"},
    }
    assert event["library"].startswith("amplitude-local-evaluation/")
