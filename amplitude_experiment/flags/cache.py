"""Flag configs from outside the network: bootstrap data and the last-known-good cache file.

Both are handed to the store as body bytes, exactly like a download; the store decodes them
(and rejects what is not a JSON array of flags).
"""

from __future__ import annotations

import os
import tempfile
import time
from typing import Any, List, Optional, Tuple, Union

from .decode import encode_flags

PathLike = Union[str, "os.PathLike[str]"]


def bootstrap_body(flags: Union[List[Any], str, bytes]) -> bytes:
    """Flags given in code (a decoded list, or JSON text) as body bytes.

    Raises:
        FlagConfigError: a list that cannot be written as JSON.
    """
    if isinstance(flags, list):
        return encode_flags(flags)
    return flags.encode("utf-8", "surrogatepass") if isinstance(flags, str) else bytes(flags)


def read_flag_file(path: PathLike, now: Optional[float] = None) -> Tuple[bytes, float]:
    """Read a flag file: ``(body, age in seconds)``; ``now`` is the current epoch time.

    Raises:
        OSError: the file cannot be read.
    """
    with open(path, "rb") as handle:
        body = handle.read()
        modified = os.fstat(handle.fileno()).st_mtime
    return body, max(0.0, (time.time() if now is None else now) - modified)


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
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # the permissions a plain open() would give, not mkstemp's 0600
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise


__all__ = ["bootstrap_body", "read_flag_file", "write_flag_file"]
