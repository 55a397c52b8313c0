"""Compatibility path: ``from amplitude_experiment.assignment import AssignmentConfig``."""

from ..events.config import AssignmentConfig

__all__ = ["AssignmentConfig"]
