"""Compatibility path: ``from amplitude_experiment.exposure import ExposureConfig``."""

from ..events.config import ExposureConfig

__all__ = ["ExposureConfig"]
