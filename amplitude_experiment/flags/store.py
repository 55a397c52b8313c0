"""The current flag snapshot, published by one reference swap.

Writers (poller, stream, bootstrap, cache file) call :meth:`FlagStore.publish`; readers take
``store.current`` once per evaluation and use that object for the whole call, so an
evaluation always sees one consistent config even while a new one is being published.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Set

from ..evaluation import CompiledFlags, compile_flags

logger = logging.getLogger("amplitude_experiment.flags")

#: ``listener(changed_flag_keys)``: added, removed or modified flags of a new config.
FlagsListener = Callable[[Set[str]], None]


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

    def __repr__(self) -> str:
        return (f"FlagSnapshot(flags={len(self.flags)}, skipped={len(self.flags.skipped)}, source={self.source!r}, "
                f"age={self.age():.1f}s)")


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()[:20]


def changed_keys(old: Optional[CompiledFlags], new: CompiledFlags) -> Set[str]:
    """Flag keys added, removed or modified between two configs."""
    def by_key(flags: Optional[CompiledFlags]) -> Dict[str, Any]:
        if flags is None:
            return {}
        return {raw["key"]: raw for raw in flags.raw if isinstance(raw, dict) and isinstance(raw.get("key"), str)}

    before, after = by_key(old), by_key(new)
    return {key for key in before.keys() | after.keys() if before.get(key) != after.get(key)}


class FlagStore:
    """Holds the current snapshot; compiles and swaps in new configs; tells listeners."""

    def __init__(self) -> None:
        self.current: Optional[FlagSnapshot] = None
        self._lock = threading.Lock()  # serialises writers only; readers never take it
        self._listeners: List[FlagsListener] = []
        #: Called with each newly compiled config before it is published (e.g. to load cohorts).
        self.prepare: Optional[Callable[[CompiledFlags], None]] = None

    def add_listener(self, listener: FlagsListener) -> None:
        self._listeners.append(listener)

    def reset_lock(self) -> None:
        """A fresh writer lock (after ``fork()``, where another thread may have held the old one)."""
        self._lock = threading.Lock()

    def publish(self, raw_flags: List[Any], body: bytes, source: str, age: float = 0.0) -> FlagSnapshot:
        """Make ``raw_flags`` the current config (recompiling only if the body changed).

        Args:
            raw_flags: decoded flag JSON.
            body: the bytes it was decoded from (identifies the version).
            source: where it came from.
            age: how old the config already is, in seconds (for a cache file).
        """
        digest = body_digest(body)
        with self._lock:
            previous = self.current
            if previous is not None and previous.digest == digest:
                compiled = previous.flags
                changed: Set[str] = set()
            else:
                compiled = compile_flags(raw_flags)
                if self.prepare is not None:
                    try:
                        self.prepare(compiled)
                    except Exception:  # noqa: BLE001 - publishing the flags matters more
                        logger.exception("Preparing the new flag config failed; publishing it anyway")
                changed = changed_keys(previous.flags if previous else None, compiled)
                logger.debug("Loaded %d flags from %s (%d skipped, %d changed)", len(compiled), source,
                             len(compiled.skipped), len(changed))
            snapshot = FlagSnapshot(compiled, source, digest, time.time() - age, time.monotonic() - age)
            self.current = snapshot
        if changed:
            for listener in list(self._listeners):
                try:
                    listener(changed)
                except Exception:  # noqa: BLE001 - a user's listener must not break delivery
                    logger.exception("Flag update listener raised")
        return snapshot
