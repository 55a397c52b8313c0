"""Flag configs from outside the network: bootstrap data and the last-known-good cache file."""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from typing import Any, List, Tuple, Union

from ..exceptions import FlagConfigError
from .fetcher import parse_flag_body

logger = logging.getLogger("amplitude_experiment.flags")

PathLike = Union[str, "os.PathLike[str]"]


def bootstrap_body(flags: Union[List[Any], str, bytes]) -> Tuple[List[Any], bytes]:
    """Flags given in code (a decoded list, or JSON text) as ``(flags, body)``.

    Raises:
        FlagConfigError: the JSON does not decode to an array.
    """
    if isinstance(flags, list):
        return flags, json.dumps(flags, sort_keys=True, separators=(",", ":")).encode()
    body = flags.encode() if isinstance(flags, str) else bytes(flags)
    return parse_flag_body(body), body


def read_flag_file(path: PathLike) -> Tuple[List[Any], bytes, float]:
    """Read a flag file: ``(flags, body, age in seconds)``.

    Raises:
        OSError: the file cannot be read.
        FlagConfigError: its content is not a JSON array.
    """
    with open(path, "rb") as handle:
        body = handle.read()
        modified = os.fstat(handle.fileno()).st_mtime
    return parse_flag_body(body), body, max(0.0, time.time() - modified)


def write_flag_file(path: PathLike, body: bytes) -> None:
    """Replace the file with ``body`` atomically: readers see the old or the new file, never half.

    Raises:
        OSError: the file cannot be written.
    """
    directory = os.path.dirname(os.path.abspath(path))
    fd, temporary = tempfile.mkstemp(prefix=".flags-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(body)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise


__all__ = ["FlagConfigError", "bootstrap_body", "read_flag_file", "write_flag_file"]
