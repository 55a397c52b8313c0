"""The seam through which a fleet of processes shares one flag download (e.g. ``RedisFleet``).

``flags/`` owns this interface; an implementation plugs in from outside (``amplitude_experiment.redis``)
and this package never imports it. Every method is safe to call from any thread, returns within a
short bounded time and never raises for an unreachable or slow backend: it answers with the
fallback documented per method, so a client keeps working on its own.
"""

from __future__ import annotations

import threading
from typing import Optional, Protocol, Tuple, runtime_checkable


@runtime_checkable
class SharedFlagSource(Protocol):
    """Flag configs shared by the processes of one deployment.

    One member at a time leads: it downloads from Amplitude on the usual schedule and
    :meth:`publish`-es each body; the others take the published body (:meth:`latest`) when
    :meth:`wait_for_version` reports a new version, and compile it once.
    """

    #: Whether this member may download from Amplitude at all (``False``: a read-only member).
    fetch: bool

    #: Seconds between calls to :meth:`try_lead` that keep a held lease alive.
    renew_interval: float

    def try_lead(self) -> bool:
        """Acquire or renew the download lease.

        Returns:
            True when this member should download from Amplitude now: it holds the lease, or the
            shared backend is unreachable and this member falls back to its own downloads. Always
            False for a read-only member.
        """
        ...

    def resign(self) -> None:
        """Give the lease up at once (at ``stop()``) so another member takes over without waiting."""
        ...

    def publish(self, body: bytes, digest: str) -> bool:
        """Share a config body the leader downloaded.

        Args:
            body: the flag config exactly as downloaded.
            digest: its version, a hex prefix (at least 16 characters) of ``sha256(body)``.

        Returns:
            True if the fleet now serves this body (stored now or already current); False when this
            member no longer holds the lease or the backend is unreachable.

        Raises:
            ValueError: ``digest`` is not a prefix of the body's sha256.
        """
        ...

    def current_version(self) -> Optional[str]:
        """The digest the fleet currently serves; None when none is published or it is unreachable."""
        ...

    def latest(self) -> Optional[Tuple[str, bytes]]:
        """The current ``(digest, body)``, read atomically; None when none or unreachable."""
        ...

    def wait_for_version(self, known: Optional[str], timeout: float,
                         stop: Optional[threading.Event] = None) -> Optional[str]:
        """Wait until the fleet serves a version other than ``known``, ``timeout`` s pass, or ``stop`` is set.

        Returns:
            The current version (which may still equal ``known`` after a timeout), or None when
            none is published or the backend is unreachable. Waits the whole ``timeout`` even
            when unreachable, so a loop calling it never spins.
        """
        ...
