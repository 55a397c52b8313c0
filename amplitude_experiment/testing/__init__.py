"""Test helpers: a loopback stand-in for Amplitude's HTTP APIs, and flag builders.

>>> from amplitude_experiment.testing import AmplitudeStandIn, experiment, on_flag
"""

from amplitude_experiment.testing.builders import (
    FlagBuilder,
    any_of,
    cohorts,
    condition,
    distributions,
    experiment,
    group,
    group_prop,
    in_cohort,
    not_in_cohort,
    off_flag,
    on_flag,
    prop,
    result,
    rollout,
)
from amplitude_experiment.testing.clock import ManualClock
from amplitude_experiment.testing.server import (
    FAULT_ACTIONS,
    ROUTES,
    AmplitudeStandIn,
    RecordedRequest,
    wait_for,
)

__all__ = [
    "FAULT_ACTIONS",
    "ROUTES",
    "AmplitudeStandIn",
    "FlagBuilder",
    "ManualClock",
    "RecordedRequest",
    "any_of",
    "cohorts",
    "condition",
    "distributions",
    "experiment",
    "group",
    "group_prop",
    "in_cohort",
    "not_in_cohort",
    "off_flag",
    "on_flag",
    "prop",
    "result",
    "rollout",
    "wait_for",
]
