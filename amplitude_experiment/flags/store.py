"""The current flag snapshot, published by one reference swap.

Writers (poller, stream, bootstrap, cache file) call :meth:`FlagStore.publish` with the body
bytes they received; readers take ``store.current`` once per evaluation and use that object
for the whole call, so an evaluation always sees one consistent config even while a new one
is being published.

An unchanged body is recognised by its digest before it is decoded, so an unchanged re-poll
costs a hash of the bytes, not a decode and a compile.

A download that parses but is not usable never replaces good flags (see
:func:`rejection`): it raises :class:`FlagConfigError` and the current snapshot stays.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from typing import Callable, Dict, List, Optional, Set

from .._clock import SYSTEM_CLOCK, Clock
from ..evaluation import CompiledFlags
from ..evaluation.compiler import compile_entries, report_problems
from ..exceptions import FlagConfigError
from .decode import iter_entries

_default_logger = logging.getLogger("amplitude_experiment.flags")

#: ``listener(changed_flag_keys)``: added, removed or modified flags of a new config.
FlagsListener = Callable[[Set[str]], None]


class FlagSnapshot:
    """One immutable config version and where it came from.

    Attributes:
        flags: the compiled flags.
        source: ``"network"``, ``"stream"``, ``"bootstrap"`` or ``"cache"``.
        digest: a hash of the config body (equal digests mean an unchanged config).
        updated_at: wall-clock time (epoch seconds) the config was last confirmed current.
    """

    __slots__ = ("flags", "source", "digest", "updated_at", "_updated_monotonic", "_clock")

    def __init__(self, flags: CompiledFlags, source: str, digest: str, updated_at: float,
                 updated_monotonic: float, clock: Clock = SYSTEM_CLOCK) -> None:
        self.flags = flags
        self.source = source
        self.digest = digest
        self.updated_at = updated_at
        self._updated_monotonic = updated_monotonic
        self._clock = clock

    def age(self) -> float:
        """Seconds since this config was last confirmed current."""
        return max(0.0, self._clock.monotonic() - self._updated_monotonic)

    def __repr__(self) -> str:
        return (f"FlagSnapshot(flags={len(self.flags)}, skipped={len(self.flags.skipped)}, source={self.source!r}, "
                f"age={self.age():.1f}s)")


def body_digest(body: bytes) -> str:
    """Identifies a config body: equal digests, equal configs."""
    return hashlib.sha256(body).hexdigest()[:20]


def changed_keys(old: Optional[CompiledFlags], new: CompiledFlags) -> Set[str]:
    """Flag keys added, removed or modified between two configs (by each entry's JSON fingerprint).

    Skipped (malformed) flags count too; a flag without a fingerprint counts as modified.
    """
    before: Dict[str, Optional[int]] = {} if old is None else old.fingerprints
    after = new.fingerprints
    return {key for key in before.keys() | after.keys()
            if key not in before or key not in after or before[key] is None or before[key] != after[key]}


def rejection(compiled: CompiledFlags, previous: Optional[CompiledFlags]) -> Optional[str]:
    """Why a compiled download must not replace ``previous``, or ``None`` if it may.

    The rule:

    * an empty array is a real config (every flag was deleted) and is applied;
    * a config in which every entry was rejected is a failed download (a server error body
      such as ``[{"error": "rate limited"}]``, or ``[null]``);
    * a config in which more than half of the entries were rejected is suspect when there
      are good flags to lose: it is refused while the current config has usable flags, and
      applied (the usable part) when there is nothing better yet.

    Otherwise the good flags are applied and the rejected ones are skipped with a warning, as
    one bad flag among good ones is a problem of that flag, not of the download.
    """
    entries, rejected = compiled.entries, compiled.rejected
    if entries == 0 or rejected == 0:
        return None
    first_key, first_reason = next(iter(compiled.skipped.items()))
    first = f"first: {first_key!r}: {first_reason}"
    if not compiled.flags:
        return f"all {entries} flag entries were rejected ({first})"
    if rejected * 2 > entries and previous is not None and previous.flags:
        return f"{rejected} of {entries} flag entries were rejected, more than half ({first})"
    return None


class FlagStore:
    """Holds the current snapshot; decodes, compiles and swaps in new configs; tells listeners.

    Args:
        clock: time source of the snapshots' timestamps.
        logger: where problems of a config are reported.
    """

    def __init__(self, *, clock: Clock = SYSTEM_CLOCK, logger: Optional[logging.Logger] = None) -> None:
        self.current: Optional[FlagSnapshot] = None
        self.clock = clock
        self.logger = logger or _default_logger
        self._lock = threading.Lock()  # serialises writers only; readers never take it
        self._listeners: List[FlagsListener] = []
        #: Called with each newly compiled config before it is published (e.g. to load cohorts).
        self.prepare: Optional[Callable[[CompiledFlags], None]] = None

    def add_listener(self, listener: FlagsListener) -> None:
        self._listeners.append(listener)

    def reset_lock(self) -> None:
        """A fresh writer lock (after ``fork()``, where another thread may have held the old one)."""
        self._lock = threading.Lock()

    def _snapshot(self, flags: CompiledFlags, source: str, digest: str, age: float) -> FlagSnapshot:
        clock = self.clock
        return FlagSnapshot(flags, source, digest, clock.time() - age, clock.monotonic() - age, clock)

    def confirm(self, source: str) -> Optional[FlagSnapshot]:
        """The current config is still current (e.g. ``304 Not Modified``): refresh its age."""
        with self._lock:
            previous = self.current
            if previous is None:
                return None
            self.current = self._snapshot(previous.flags, source, previous.digest, 0.0)
            return self.current

    def publish(self, body: bytes, source: str, age: float = 0.0) -> FlagSnapshot:
        """Make the config in ``body`` current (decoding and compiling only if it changed).

        Args:
            body: the config as received (a JSON array of flags).
            source: where it came from.
            age: how old the config already is, in seconds (for a cache file).

        Raises:
            FlagConfigError: the body is not a JSON array, or it is not usable (see
                :func:`rejection`); the current snapshot is kept.
        """
        digest = body_digest(body)
        with self._lock:
            previous = self.current
            if previous is not None and previous.digest == digest:
                self.current = self._snapshot(previous.flags, source, digest, age)
                return self.current
            compiled = compile_entries(iter_entries(body), report=False)
            reason = rejection(compiled, previous.flags if previous else None)
            if reason is not None:
                raise FlagConfigError(reason)
            report_problems(compiled, self.logger)
            self._prepare(compiled)
            changed = changed_keys(previous.flags if previous else None, compiled)
            self.logger.debug("Loaded %d flags from %s (%d skipped, %d changed)", len(compiled), source,
                              len(compiled.skipped), len(changed))
            snapshot = self._snapshot(compiled, source, digest, age)
            self.current = snapshot
        if changed:
            self._notify(changed)
        return snapshot

    def _prepare(self, compiled: CompiledFlags) -> None:
        if self.prepare is None:
            return
        try:
            self.prepare(compiled)
        except Exception:  # noqa: BLE001 - publishing the flags matters more
            self.logger.exception("Preparing the new flag config failed; publishing it anyway")

    def _notify(self, changed: Set[str]) -> None:
        for listener in list(self._listeners):
            try:
                listener(changed)
            except Exception:  # noqa: BLE001 - a user's listener must not break delivery
                self.logger.exception("Flag update listener raised")
