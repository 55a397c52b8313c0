"""Per-call evaluation options."""

from __future__ import annotations

from typing import Optional


class EvaluateOptions:
    """Options for one ``evaluate_v2`` call.

    Args:
        tracks_exposure: when true (and an ``ExposureConfig`` was given at init), track a
            ``$exposure`` event for every non-default variant in the result.
    """

    __slots__ = ("tracks_exposure",)

    def __init__(self, tracks_exposure: Optional[bool] = None) -> None:
        self.tracks_exposure = tracks_exposure

    def __repr__(self) -> str:
        return f"EvaluateOptions(tracks_exposure={self.tracks_exposure!r})"
