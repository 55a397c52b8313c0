"""The seam through which a fleet of processes shares cohort downloads (e.g. ``RedisFleet``).

``cohorts/`` owns this interface; an implementation plugs in from outside and this package never
imports it. No method raises for an unreachable or slow backend; each returns the fallback it
documents, so a client then downloads its cohorts itself.
"""

from __future__ import annotations

from typing import Collection, Dict, Optional, Protocol, Tuple, runtime_checkable


@runtime_checkable
class SharedCohortSource(Protocol):
    """Cohort membership shared by the processes of one project, versioned by ``lastModified``.

    The leader refreshes cohorts from Amplitude and publishes them; every member compares the
    published versions with its own (:meth:`versions`, one round trip) and takes newer bodies
    with :meth:`get`. Any member may publish a cohort it had to download itself (e.g. one a new
    flag config targets that the fleet does not have yet): only a newer ``last_modified`` wins.
    """

    #: Whether this member may download from Amplitude at all (``False``: a read-only member).
    fetch: bool

    def try_lead(self) -> bool:
        """Acquire or renew the cohort refresh lease.

        Returns:
            True when this member should refresh cohorts from Amplitude now (it holds the lease, or
            the backend is unreachable and it falls back to its own downloads); always False for a
            read-only member.
        """
        ...

    def resign(self) -> None:
        """Give the lease up at once."""
        ...

    def publish(self, cohort_id: str, last_modified: int, body: bytes) -> bool:
        """Share one cohort (``body`` in the cohorts package's own encoding).

        Returns:
            True if stored; False if the fleet already has this or a newer ``last_modified``, or
            the backend is unreachable.
        """
        ...

    def versions(self, cohort_ids: Collection[str]) -> Dict[str, int]:
        """``last_modified`` of each of ``cohort_ids`` the fleet has.

        Absent ids are left out; ``{}`` when the backend is unreachable.
        """
        ...

    def get(self, cohort_id: str) -> Optional[Tuple[int, bytes]]:
        """``(last_modified, body)`` of one cohort; None when absent or unreachable."""
        ...
