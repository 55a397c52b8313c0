"""The seam through which a fleet of processes sends each insert_id once (e.g. ``RedisFleet``).

``events/`` owns this interface; an implementation plugs in from outside and this package never
imports it. Claims are made on the sender thread in batches, never on the request path.
"""

from __future__ import annotations

from typing import Iterable, List, Protocol, Sequence, Tuple, runtime_checkable


@runtime_checkable
class InsertIdClaims(Protocol):
    """A fleet-wide "first sender wins" record of insert_ids, kept until the end of each id's day."""

    def claim(self, items: Sequence[Tuple[str, int]]) -> List[bool]:
        """Claim a batch of ``(insert_id, day)`` pairs (``day`` = epoch milliseconds // 86_400_000).

        Returns:
            One flag per item, in order: True when this process claimed it and should send the event;
            False when another process (or an earlier item of the same batch) already did. When the
            backend is unreachable every item is ours, so no event is lost (duplicates are then
            removed by Amplitude's own insert_id dedup).
        """
        ...

    def release(self, insert_ids: Iterable[str]) -> None:
        """Give up claims this process made whose send ultimately failed, so another process may send them.

        Claims held by other processes are left alone. Best effort: when the backend is unreachable
        the claims stay until they expire.
        """
        ...
