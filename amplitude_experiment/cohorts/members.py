"""Cohort membership in compact form, and parsing a cohort download into it.

A cohort of a million members held as a ``frozenset`` of their ids costs ~130 MB (the
strings and the set table); every worker process of every host pays it. Here a cohort keeps
only a sorted ``array('d')`` of one 8-byte key per member: 8 MB per million members
(``benchmarks/bench_cohorts.py``: two cohorts of a million, half shared, ~19 MB of RSS against
~197 MB for the official SDK). Parsing builds the ids once, turns them into keys, frees them,
sorts the keys, and asks glibc to give the freed memory back.

The key of an id is ``float(hash(id))``: Python's 64-bit string hash, rounded to a double's
53-bit precision (sorting doubles is about 1.6x as fast as sorting 64-bit ints in CPython, and the
keys never leave the process, so the per-process hash seed does not matter). Membership is
a binary search. A non-member is reported as a member only when its key equals a member's key:
with ``N`` members that happens with probability at most ``N * 2**-53`` per lookup, about
1e-10 for a million members.

Where the time of a parse goes, per million members (CPU, measured on the benchmark's bodies):
``json.loads`` and the type check ~70 ms, a float key per id ~60 ms, sorting the keys ~180 ms,
packing them and freeing the floats ~50 ms, the directory ~8 ms. The sort is what a compact
structure costs: a ``set`` needs none but holds ~60 bytes per member. Splitting the memberIds
text with ``bytes.split`` instead of ``json.loads`` was measured too: with the checks that keep
its results identical to json's (no escapes, quotes or control characters inside ids) it
saved nothing end to end, so json parses.
"""

from __future__ import annotations

import ctypes
import json
import sys
import threading
from array import array
from bisect import bisect_left
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

# Parsing is CPU-bound under the GIL anyway; one at a time keeps the transient peak of one
# cohort's strings and floats from overlapping another's (and lets their memory go back whole).
_PARSE_LOCK = threading.Lock()


# glibc's malloc_trim, looked up on first use ([None] when unavailable: not Linux/glibc).
_malloc_trim: List[Optional[Callable[[int], int]]] = []


def release_freed_memory() -> None:
    """Hand memory freed by a parse back to the OS.

    Parsing a million-member cohort allocates and frees ~100 MB of strings, floats and
    buffers; glibc keeps most of that mapped (RSS) unless asked with ``malloc_trim``. Best
    effort, a few milliseconds; a no-op where glibc is not the allocator.
    """
    if not _malloc_trim:
        trim: Optional[Callable[[int], int]] = None
        if sys.platform.startswith("linux"):
            try:
                trim = ctypes.CDLL(None).malloc_trim
            except (OSError, AttributeError):
                trim = None
        _malloc_trim.append(trim)
    trim = _malloc_trim[0]
    if trim is not None:
        trim(0)


class CohortBodyError(ValueError):
    """A cohort download that is not a cohort (what is wrong is the message)."""


# Keys span [-2**63, 2**63]; a key's bucket is int((key + _OFFSET) * buckets / 2**64).
_OFFSET = 2.0 ** 63
_SPAN = 2.0 ** 64
# About this many keys per bucket of the directory (4 bytes per bucket: 1/16 byte per member).
# A lookup searches two buckets (~7 comparisons); the directory costs one bisect per bucket to
# build: ~8 ms per million keys (16 keys per bucket: ~27 ms for one comparison less).
_PER_BUCKET = 64


class Members:
    """The member ids of one cohort, as sorted 8-byte keys (immutable).

    ``member_id in members`` is a binary search. A directory (the first key index of each of
    ``buckets`` equal slices of the key space) narrows it to two neighbouring buckets, so a
    lookup touches a few cache lines instead of twenty (the keys of many cohorts do not stay in
    the CPU cache). ``len(members)`` is the number of keys (the number of ids, as
    Amplitude lists each member once). Ids are text: other values never match.
    """

    __slots__ = ("keys", "index", "scale", "_size")

    def __init__(self, keys: "array[float]") -> None:
        #: the sorted keys (read-only by contract: the store searches them directly)
        self.keys = keys
        self._size = len(keys)
        buckets = 1
        while buckets * _PER_BUCKET < self._size:
            buckets *= 2
        #: bucket of a key: ``int((key + 2**63) * scale)``, in ``[0, buckets]``
        self.scale = buckets / _SPAN
        # Bucket starts are multiples of 2**64 / buckets: exact doubles, so index[b] is exactly
        # the number of keys below the start of bucket b.
        step = _SPAN / buckets
        #: ``index[b]``: the first key at or above the start of bucket ``b`` (``buckets + 1`` entries)
        self.index = array("I" if self._size < 2 ** 32 else "Q",
                           [bisect_left(keys, b * step - _OFFSET) for b in range(buckets + 1)])

    @classmethod
    def from_ids(cls, ids: Iterable[str]) -> "Members":
        """Members from ids (duplicates are kept once)."""
        return cls(sorted_keys(list(set(ids))))

    def __contains__(self, member_id: object) -> bool:
        if type(member_id) is not str:
            return False
        return self.contains_key(float(hash(member_id)))

    def contains_key(self, key: float) -> bool:
        """Membership of an id by its key (``float(hash(id))``), when several cohorts are asked."""
        return self.position(key) >= 0

    def position(self, key: float) -> int:
        """Where ``key`` is in ``keys``, or -1."""
        # The computed bucket c is the key's bucket or the next one (key + 2**63 may round up to
        # the start of the next bucket, never past it): searching buckets c-1 and c is exact.
        c = int((key + _OFFSET) * self.scale)
        index = self.index
        i = bisect_left(self.keys, key, index[c - 1] if c else 0, index[c + 1] if c + 1 < len(index) else self._size)
        return i if i < self._size and self.keys[i] == key else -1

    def __len__(self) -> int:
        return self._size

    @property
    def nbytes(self) -> int:
        """Bytes held by the keys and their directory."""
        return self._size * self.keys.itemsize + len(self.index) * self.index.itemsize

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Members):
            return NotImplemented
        return self.keys == other.keys

    def __hash__(self) -> int:
        return hash(self.keys.tobytes())

    def __repr__(self) -> str:
        return f"Members({self._size} ids)"


class MembersUnion:
    """The members of several cohorts in one sorted key array, each key with the ids of the cohorts
    that hold it: one binary search answers for all of them (immutable).

    Built by a Python loop over every member (0.25-0.5 µs each, with the sort), so the store
    unites only small cohorts (see ``storage.MERGE_MAX_TOTAL``). It holds 10 bytes per distinct
    member besides the cohorts' own keys: the key, and a 2-byte number naming the set of cohorts
    holding it.

    Args:
        cohorts: ``(cohort id, members)`` pairs, in cohort id order.
    """

    __slots__ = ("members", "owners", "holders")

    def __init__(self, cohorts: Sequence[Tuple[str, Members]]) -> None:
        # key -> the cohorts holding it, as bits (bit i: cohorts[i])
        bits: Dict[float, int] = {}
        get = bits.get
        for i, (_, members) in enumerate(cohorts):
            bit = 1 << i
            for key in members.keys:
                bits[key] = get(key, 0) | bit
        distinct = sorted(set(bits.values()))
        #: the sets of cohort ids that hold some key, each in cohort id order
        self.holders: Tuple[Tuple[str, ...], ...] = tuple(
            tuple(cid for i, (cid, _) in enumerate(cohorts) if mask >> i & 1) for mask in distinct)
        keys = sorted(bits)
        #: the keys of every member of any of the cohorts (with their directory)
        self.members = Members(array("d", keys))
        numbering = {mask: n for n, mask in enumerate(distinct)}
        #: ``holders[owners[i]]`` hold ``members.keys[i]``
        self.owners = array("H" if len(distinct) <= 1 << 16 else "I",
                            map(numbering.__getitem__, map(bits.__getitem__, keys)))

    def cohorts_of(self, member_id: object) -> Tuple[str, ...]:
        """The ids of the cohorts holding ``member_id`` (in cohort id order; empty when none)."""
        if type(member_id) is not str:
            return ()
        i = self.members.position(member_key(member_id))
        return self.holders[self.owners[i]] if i >= 0 else ()

    def __len__(self) -> int:
        return len(self.members)

    def __repr__(self) -> str:
        return f"MembersUnion({len(self.members)} ids, {len(self.holders)} sets of cohorts)"


def member_key(member_id: str) -> float:
    """The key :class:`Members` keeps for ``member_id``."""
    return float(hash(member_id))


def sorted_keys(ids: List[Any]) -> "array[float]":
    """The sorted keys of ``ids`` (one ``float(hash(id))`` each); empties ``ids``.

    Two choices here are measured (``benchmarks/bench_cohorts.py``, two cohorts of a million):

    * a list of floats from one pass over the ids, sorted by ``sorted()``: building an ``array``
      from the iterator instead (and sorting that) costs ~40 ms more per million ids;
    * the packed array is made while the two lists still exist, and they go after it: glibc then
      puts their memory back in its free lists, which ``malloc_trim`` returns to the OS. Freed
      first, they would join the top of a worker thread's heap, which glibc keeps resident (up
      to twice its dynamic mmap threshold, tens of MB): 19 MB of RSS after ``start()`` in the
      benchmark instead of 30.
    """
    unsorted = list(map(float, map(hash, ids)))
    ids.clear()
    packed = array("d", sorted(unsorted))
    del unsorted
    return packed


def _fields(cohort_id: str, doc: Any) -> Tuple[str, int, Any]:
    """(groupType, lastModified, memberIds) of a decoded body, checked."""
    if not isinstance(doc, dict):
        raise CohortBodyError(f"expected a JSON object, got {type(doc).__name__}")
    returned_id = doc.get("cohortId", cohort_id)
    if returned_id != cohort_id:
        raise CohortBodyError(f"cohortId is {returned_id!r}")
    group_type = doc.get("groupType")
    if not isinstance(group_type, str) or not group_type:
        raise CohortBodyError("groupType is missing or not a string")
    last_modified = doc.get("lastModified")
    if isinstance(last_modified, bool) or not isinstance(last_modified, int):
        raise CohortBodyError("lastModified is missing or not an integer")
    member_ids = doc.get("memberIds")
    if not isinstance(member_ids, list):
        raise CohortBodyError("memberIds is missing or not an array")
    return group_type, last_modified, member_ids


def parse_cohort_body(cohort_id: str, body: Any) -> Tuple[str, int, Members]:
    """``(group_type, last_modified, members)`` from a 200 body of the cohort API.

    Args:
        cohort_id: the cohort asked for (the body must not name another).
        body: the body (bytes, bytearray or str); a bytearray is emptied to save memory.

    Raises:
        CohortBodyError: the body is not JSON of the documented shape.
    """
    with _PARSE_LOCK:
        try:
            doc = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise CohortBodyError(f"not valid JSON ({exc.__class__.__name__})") from exc
        if isinstance(body, bytearray):
            del body[:]  # the caller's buffer: its bytes can go before the keys are built
        group_type, last_modified, member_ids = _fields(cohort_id, doc)
        doc.clear()
        if not set(map(type, member_ids)) <= {str}:
            raise CohortBodyError("memberIds holds a non-string member")
        keys = sorted_keys(member_ids)
        del member_ids
        members = Members(keys)
        release_freed_memory()
    return group_type, last_modified, members
