"""Per-request options of a remote fetch (the official SDK's ``FetchOptions``)."""

from __future__ import annotations

from typing import Any, List, Optional, Sequence


def _optional_bool(name: str, value: Any) -> Optional[bool]:
    if value is not None and not isinstance(value, bool):
        raise TypeError(f"FetchOptions {name} must be True, False or None, not {type(value).__name__}")
    return value


class FetchOptions:
    """What Amplitude should track and which flags it should evaluate for one fetch.

    The attribute names are the official SDK's (camelCase, as on the wire).

    Args:
        tracksAssignment: ``True``/``False`` asks Amplitude to track (or not) an assignment
            event for this fetch (``X-Amp-Exp-Track``); ``None`` leaves the project setting.
        tracksExposure: the same for exposure events (``X-Amp-Exp-Exposure-Track``).
        flagKeys: evaluate only these flags (``X-Amp-Exp-Flag-Keys``). ``None`` or an empty
            list means every flag, as in the official SDK.

    Raises:
        TypeError: a tracking option that is not a bool or ``None``, or ``flagKeys`` that is a
            single string or holds something other than strings.
    """

    def __init__(
        self,
        tracksAssignment: Optional[bool] = None,  # noqa: N803 - the official keyword names
        tracksExposure: Optional[bool] = None,  # noqa: N803
        flagKeys: Optional[Sequence[str]] = None,  # noqa: N803
    ) -> None:
        self.tracksAssignment = _optional_bool("tracksAssignment", tracksAssignment)
        self.tracksExposure = _optional_bool("tracksExposure", tracksExposure)
        keys: Optional[List[str]] = None
        if flagKeys is not None:
            if isinstance(flagKeys, (str, bytes)) or not all(isinstance(k, str) for k in flagKeys):
                raise TypeError("FetchOptions flagKeys must be a list of flag keys (strings) or None")
            keys = list(flagKeys)
        self.flagKeys = keys

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FetchOptions):
            return NotImplemented
        return (self.tracksAssignment, self.tracksExposure, self.flagKeys) == (
            other.tracksAssignment, other.tracksExposure, other.flagKeys)

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return (f"FetchOptions(tracksAssignment={self.tracksAssignment}, tracksExposure={self.tracksExposure}, "
                f"flagKeys={self.flagKeys})")

    __str__ = __repr__
