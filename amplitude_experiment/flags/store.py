"""The current flag snapshot, published by one reference swap.

Writers (poller, stream, bootstrap) call :meth:`FlagStore.publish`; readers take
``store.current`` once per evaluation and use that object for the whole call, so an
evaluation always sees one consistent config even while a new one is being published.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from typing import Any, List, Optional

from ..evaluation import CompiledFlags, compile_flags

logger = logging.getLogger("amplitude_experiment.flags")


class FlagSnapshot:
    """One immutable config version and where it came from.

    Attributes:
        flags: the compiled flags.
        source: ``"network"``, ``"stream"``, ``"bootstrap"`` or ``"cache"``.
        digest: a hash of the config body (equal digests mean an unchanged config).
        updated_at: wall-clock time (``time.time()``) the config was last confirmed current.
    """

    __slots__ = ("flags", "source", "digest", "updated_at", "_updated_monotonic")

    def __init__(self, flags: CompiledFlags, source: str, digest: str, updated_at: float,
                 updated_monotonic: float) -> None:
        self.flags = flags
        self.source = source
        self.digest = digest
        self.updated_at = updated_at
        self._updated_monotonic = updated_monotonic

    def age(self) -> float:
        """Seconds since this config was last confirmed current."""
        return max(0.0, time.monotonic() - self._updated_monotonic)


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()[:20]


class FlagStore:
    """Holds the current snapshot; compiles and swaps in new configs."""

    def __init__(self) -> None:
        self.current: Optional[FlagSnapshot] = None
        self._lock = threading.Lock()  # serialises writers only; readers never take it

    def publish(self, raw_flags: List[Any], body: bytes, source: str) -> FlagSnapshot:
        """Make ``raw_flags`` the current config (recompiling only if the body changed)."""
        digest = body_digest(body)
        with self._lock:
            previous = self.current
            if previous is not None and previous.digest == digest:
                compiled = previous.flags
            else:
                compiled = compile_flags(raw_flags)
                logger.debug("Loaded %d flags from %s (%d skipped)", len(compiled), source, len(compiled.skipped))
            snapshot = FlagSnapshot(compiled, source, digest, time.time(), time.monotonic())
            self.current = snapshot
        return snapshot
