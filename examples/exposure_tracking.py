"""Exposure tracking: ``$exposure`` events, automatic per evaluation or explicit per view.

An assignment says which variant a user *was given*; an exposure says the user *saw* it, which is
what experiment analysis counts. Two ways to track exposures (both need an ``ExposureConfig``):

- automatic: ``evaluate_v2(user, options=EvaluateOptions(tracks_exposure=True))`` tracks one for
  every non-default variant in the result: right when the evaluation is for something shown now;
- explicit: ``track_exposure(user, flag_key, variant)`` at the moment the user actually sees the
  feature, when that is later than, or not always after, the evaluation.

Either way an exposure is sent once per user, flag and variant a day (repeats are deduplicated).

Runs offline against a local stand-in for Amplitude and prints the ``$exposure`` events it received:

    python examples/exposure_tracking.py
"""

from __future__ import annotations

import json

from amplitude_experiment import EvaluateOptions, ExposureConfig, LocalEvaluationClient, LocalEvaluationConfig, User
from amplitude_experiment.testing import AmplitudeStandIn

FLAGS = [
    {
        "key": "checkout-redesign",
        "metadata": {"flagType": "experiment", "flagVersion": 1, "experimentKey": "exp-checkout"},
        "variants": {"control": {"key": "control", "value": "control"},
                     "treatment": {"key": "treatment", "value": "treatment"}},
        "segments": [{"bucket": {
            "selector": ["context", "user", "user_id"], "salt": "checkout-redesign",
            "allocations": [{"range": [0, 100], "distributions": [
                {"variant": "control", "range": [0, 21474837]},
                {"variant": "treatment", "range": [21474837, 42949673]}]}]}}],
    },
    {
        "key": "dark-mode",
        "metadata": {"flagType": "release", "flagVersion": 3},
        "variants": {"on": {"key": "on", "value": "on"}, "off": {"key": "off", "metadata": {"default": True}}},
        "segments": [
            {"conditions": [[{"selector": ["context", "user", "user_properties", "plan"], "op": "is",
                              "values": ["pro"]}]],
             "variant": "on"},
            {"variant": "off"},
        ],
    },
]


def main() -> None:
    with AmplitudeStandIn(flags=FLAGS) as amplitude:
        config = LocalEvaluationConfig(
            server_url=amplitude.url,  # a real deployment leaves this at its default
            exposure_config=ExposureConfig(api_key="demo-analytics-key", server_url=amplitude.url + "/2/httpapi"),
        )
        with LocalEvaluationClient("server-demo-deployment-key", config) as experiment:
            print("Automatic: evaluate_v2(user, options=EvaluateOptions(tracks_exposure=True))")
            for user in (User(user_id="user-ada", user_properties={"plan": "pro"}),
                         User(user_id="user-bob", user_properties={"plan": "free"})):
                variants = experiment.evaluate_v2(user, options=EvaluateOptions(tracks_exposure=True))
                shown = ", ".join(f"{flag}={variant.key}" for flag, variant in sorted(variants.items()))
                print(f"  {user.user_id}: {shown}")

            print("Explicit: track_exposure(user, flag_key, variant) when the user opens the checkout")
            cleo = User(user_id="user-cleo", user_properties={"plan": "free"})
            variant = experiment.evaluate_v2(cleo, ["checkout-redesign"])["checkout-redesign"]  # no exposure yet
            for visit in (1, 2):
                tracked = experiment.track_exposure(cleo, "checkout-redesign", variant)
                outcome = "tracked" if tracked else "deduplicated (already exposed today)"
                print(f"  visit {visit}: {cleo.user_id} sees checkout-redesign={variant.key}: {outcome}")
        # leaving the block called stop(), which sent the queued exposure events

        stats = experiment.stats()
        print(f"\nExposure tracking: {stats['exposure']['tracked']} tracked, "
              f"{stats['exposure']['deduplicated']} deduplicated, "
              f"{stats['exposure']['skipped'].get('default_variant', 0)} skipped (default variant); "
              f"{stats['events']['sent']} events sent, {sum(stats['events']['dropped'].values())} dropped")
        print("$exposure events the stand-in received:")
        for event in amplitude.events:
            props = event["event_properties"]
            print(f"  {event['event_type']} {event['user_id']:<10} {props['flag_key']}={props['variant']}"
                  f" (experiment: {props.get('experiment_key', '-')})")
        print("First event as Amplitude received it:")
        print(json.dumps(amplitude.events[0], indent=2))


if __name__ == "__main__":
    main()
