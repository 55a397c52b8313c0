"""Semantic versions as condition values: ``major.minor[.patch[-prerelease]]``.

A parsed version is a tuple that sorts correctly with plain tuple comparison:
``(major, minor, patch, is_release, prerelease)``. A prerelease sorts below its release and
prereleases compare as strings. Digits are ASCII only and the whole string must match (a
trailing newline does not parse); a part too long for ``int()`` (over 4300 digits) does not parse.
"""

from __future__ import annotations

import re
from typing import Optional, Tuple

Version = Tuple[int, int, int, int, str]

# Written without nested quantifiers so that a long non-matching string cannot backtrack
# exponentially: words of [-A-Za-z0-9_] separated by single dots, optionally ending in a dot.
_VERSION = re.compile(r"(\d+)\.(\d+)(?:\.(\d+)(?:-((?:[-\w]+(?:\.[-\w]+)*\.?)?))?)?", re.ASCII)


def parse_version(text: str) -> Optional[Version]:
    """Parse a version string, or return ``None`` if it is not one."""
    match = _VERSION.fullmatch(text)
    if match is None:
        return None
    major, minor, patch, prerelease = match.groups()
    try:
        numbers = (int(major), int(minor), int(patch or 0))
    except ValueError:  # a part longer than Python's int-from-str limit (4300 digits)
        return None
    if prerelease is None:
        return (*numbers, 1, "")
    return (*numbers, 0, prerelease)
