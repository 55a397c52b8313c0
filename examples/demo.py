"""Demo: evaluate users locally and track assignments, against the bundled stand-in for Amplitude.

Everything runs on 127.0.0.1, so it works offline. Run: python examples/demo.py
"""

from __future__ import annotations

import json

from amplitude_experiment import AssignmentConfig, LocalEvaluationClient, LocalEvaluationConfig, User
from amplitude_experiment.testing import AmplitudeStandIn

FLAGS = [
    {
        "key": "checkout-redesign",
        "metadata": {"flagType": "experiment", "flagVersion": 7, "experimentKey": "exp-1", "deployed": True},
        "variants": {
            "control": {"key": "control", "value": "control"},
            "treatment": {"key": "treatment", "value": "treatment", "payload": {"button": "green"}},
            "off": {"key": "off", "metadata": {"default": True}},
        },
        "segments": [
            {
                "metadata": {"segmentName": "Internal users"},
                "conditions": [[{"selector": ["context", "user", "user_properties", "email"],
                                 "op": "contains", "values": ["@corp.example"]}]],
                "variant": "treatment",
            },
            {
                "metadata": {"segmentName": "All Other Users"},
                "bucket": {
                    "selector": ["context", "user", "device_id"],
                    "salt": "checkout",
                    "allocations": [{"range": [0, 100], "distributions": [
                        {"variant": "control", "range": [0, 21474837]},
                        {"variant": "treatment", "range": [21474837, 42949673]},
                    ]}],
                },
                "variant": "off",
            },
        ],
    },
    {
        "key": "dark-mode",
        "metadata": {"flagType": "release", "flagVersion": 3, "deployed": True},
        "variants": {"on": {"key": "on", "value": "on"}, "off": {"key": "off", "metadata": {"default": True}}},
        "segments": [
            {"metadata": {"segmentName": "Pro plan"},
             "conditions": [[{"selector": ["context", "user", "user_properties", "plan"], "op": "is",
                              "values": ["pro"]}]],
             "variant": "on"},
            {"metadata": {"segmentName": "All Other Users"}, "variant": "off"},
        ],
    },
]

USERS = [
    User(user_id="alice@corp.example", device_id="device-alice",
         user_properties={"email": "alice@corp.example", "plan": "pro"}),
    User(user_id="user-bob", device_id="device-bob", user_properties={"plan": "free"}),
    User(user_id="user-carol", device_id="device-carol", user_properties={"plan": "pro"}),
    User(user_id="user-dave", device_id="device-dave"),
    User(device_id="device-anonymous"),
]


def main() -> None:
    with AmplitudeStandIn(flags=FLAGS) as amplitude:
        config = LocalEvaluationConfig(
            server_url=amplitude.url,  # a real deployment leaves this at its default
            assignment_config=AssignmentConfig(api_key="demo-analytics-key", server_url=amplitude.url + "/2/httpapi"),
        )
        with LocalEvaluationClient("server-demo-deployment-key", config) as experiment:
            print("Variants:")
            for user in USERS:
                variants = experiment.evaluate_v2(user)
                shown = ", ".join(f"{flag}={variant.key}" for flag, variant in variants.items())
                print(f"  {user.user_id or user.device_id:>20}: {shown}")
            experiment.evaluate_v2(USERS[0])  # the same user and result again: deduplicated
        # leaving the block called stop(), which flushed the queued assignment events
        stats = experiment.stats()
        print(f"\nAssignment tracking: {stats['assignment']['evaluated']} evaluations, "
              f"{stats['assignment']['deduplicated']} deduplicated, {stats['events']['sent']} events sent, "
              f"{sum(stats['events']['dropped'].values())} dropped")
        print("First event as Amplitude received it:")
        print(json.dumps(amplitude.events[0], indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
