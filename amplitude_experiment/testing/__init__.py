"""Test helpers: a loopback stand-in for Amplitude's HTTP APIs."""

from amplitude_experiment.testing.server import (
    FAULT_ACTIONS,
    ROUTES,
    AmplitudeStandIn,
    RecordedRequest,
    wait_for,
)

__all__ = ["AmplitudeStandIn", "RecordedRequest", "ROUTES", "FAULT_ACTIONS", "wait_for"]
