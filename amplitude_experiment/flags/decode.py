"""Decoding a flag-config body: bytes in, the flag entries and one fingerprint per entry out.

The array is decoded entry by entry with the standard library's C scanner, so each entry's
JSON text is known and can be fingerprinted for change detection (which flags changed
between two configs) without keeping the raw JSON or re-encoding it. :func:`iter_entries`
hands each entry over as soon as it is decoded, so the compiler reads it while it is still in
the CPU cache and the decoded JSON of the whole config never exists at once.

Every failure is a :class:`FlagConfigError`, including input nested deeper than the
decoder can follow (it would otherwise surface as ``RecursionError``).
"""

from __future__ import annotations

import json
import re
from typing import Any, Iterator, List, NamedTuple, Tuple, Union

from ..exceptions import FlagConfigError

__all__ = ["DecodedFlags", "decode_flags", "encode_flags", "iter_entries"]

_SPACE = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


class DecodedFlags(NamedTuple):
    """The entries of a flag array, and a fingerprint of each entry's JSON text."""

    flags: List[Any]
    fingerprints: List[int]


def decode_flags(body: Union[bytes, str]) -> DecodedFlags:
    """Decode a flag-config body; it must be a JSON array.

    Individual malformed entries are not rejected here; the compiler skips them.

    Raises:
        FlagConfigError: the body is not JSON, not an array, or nested too deeply to decode.
    """
    flags: List[Any] = []
    fingerprints: List[int] = []
    for entry, fingerprint in iter_entries(body):
        flags.append(entry)
        fingerprints.append(fingerprint)
    return DecodedFlags(flags, fingerprints)


def iter_entries(body: Union[bytes, str]) -> Iterator[Tuple[Any, int]]:
    """``(entry, fingerprint)`` for each entry of a flag-config body, decoded one at a time.

    Raises (while iterating, possibly after some entries were yielded):
        FlagConfigError: the body is not JSON, not an array, or nested too deeply to decode.
    """
    try:
        text = body if isinstance(body, str) else body.decode(json.detect_encoding(body), "surrogatepass")
        yield from _entries(text)
    except FlagConfigError:
        raise
    except RecursionError:
        raise FlagConfigError("flag configs are nested too deeply to decode") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise FlagConfigError(f"flag configs are not valid JSON ({exc.__class__.__name__})") from exc


def _entries(text: str) -> Iterator[Tuple[Any, int]]:
    position = _SPACE.match(text).end()  # type: ignore[union-attr]  # matches the empty string too
    if not text.startswith("[", position):
        decoded = json.loads(text)  # raises for non-JSON; otherwise say what it is
        raise FlagConfigError(f"flag configs must be a JSON array, got {type(decoded).__name__}")
    position = _SPACE.match(text, position + 1).end()  # type: ignore[union-attr]
    if text.startswith("]", position):
        position = _SPACE.match(text, position + 1).end()  # type: ignore[union-attr]
    else:
        while True:
            entry, end = _DECODER.raw_decode(text, position)
            yield entry, hash(text[position:end])
            position = _SPACE.match(text, end).end()  # type: ignore[union-attr]
            separator = text[position:position + 1]
            position = _SPACE.match(text, position + 1).end()  # type: ignore[union-attr]
            if separator == "]":
                break
            if separator != ",":
                raise json.JSONDecodeError("Expecting ',' delimiter", text, position)
    if position != len(text):
        raise json.JSONDecodeError("Extra data", text, position)


def encode_flags(flags: List[Any]) -> bytes:
    """Compact JSON of decoded flags (for flags given in code), as a body :func:`decode_flags` reads.

    Raises:
        FlagConfigError: the value cannot be written as JSON (circular, too deep, or not JSON types).
    """
    try:
        return json.dumps(flags, separators=(",", ":"), ensure_ascii=False, allow_nan=True).encode("utf-8")
    except RecursionError:
        raise FlagConfigError("flag configs are nested too deeply to encode") from None
    except (TypeError, ValueError) as exc:
        raise FlagConfigError(f"flag configs are not JSON data: {exc}") from exc
