"""Fleet-wide insert_id claims: exactly once across instances and processes, expiry, release (issue 14 pt 2)."""

from __future__ import annotations

import re
from typing import List

from amplitude_experiment.events.claims import InsertIdClaims
from amplitude_experiment.redis.claims import DAY_MILLIS
from amplitude_experiment.redis.fleet import key_digest
from amplitude_experiment.testing import ManualClock

from ._workers import claim_worker
from .conftest import process_context

API_KEY = "analytics-API-key-0001"
# design.md §5: insert_id = "<user_id> <device_id> <hash> <day>".
DAY = 19_675
IDS = [(f"u{i} d{i} {1000 + i} {DAY}", DAY) for i in range(300)]


def test_is_insert_id_claims(make_fleet):
    assert isinstance(make_fleet().claims(API_KEY), InsertIdClaims)


def test_claim_is_exactly_once_across_two_instances(make_fleet):
    a = make_fleet().claims(API_KEY)
    b = make_fleet().claims(API_KEY)
    assert a.claim(IDS[:100]) == [True] * 100
    assert b.claim(IDS[:150]) == [False] * 100 + [True] * 50
    assert a.claim(IDS[:150]) == [False] * 150
    assert a.claim([]) == []


def test_a_duplicate_within_one_batch_is_ours_once(make_fleet):
    claims = make_fleet().claims(API_KEY)
    item = ("u1 d1 1708274269 19675", 19675)
    assert claims.claim([item, item, ("u2 d2 5 19675", 19675)]) == [True, False, True]


def test_claims_expire_at_the_end_of_the_insert_ids_day_plus_margin(make_fleet, admin):
    # Noon UTC of DAY by the injected clock: half a day plus the margin remain.
    clock = ManualClock(epoch=(DAY * DAY_MILLIS + DAY_MILLIS // 2) / 1000)
    claims = make_fleet(clock=clock, claim_margin=600.0).claims(API_KEY)
    assert claims.claim([IDS[0], (f"u0 d0 1 {DAY - 3}", DAY - 3)]) == [True, True]
    expected = DAY_MILLIS // 2 + 600_000
    assert expected - 2000 < admin.pttl(claims.key(IDS[0][0])) <= expected
    # A day already over (e.g. a skewed clock elsewhere) still gets the margin, not 0 or a negative TTL.
    assert 598_000 < admin.pttl(claims.key(f"u0 d0 1 {DAY - 3}")) <= 600_000


def test_release_frees_only_our_own_claims(make_fleet):
    a = make_fleet().claims(API_KEY)
    b = make_fleet().claims(API_KEY)
    assert a.claim(IDS[:3]) == [True, True, True]
    b.release([IDS[0][0]])  # not B's claim: stays claimed
    assert b.claim(IDS[:1]) == [False]
    a.release([IDS[0][0], IDS[1][0], IDS[1][0]])  # the send of these failed
    assert b.claim(IDS[:3]) == [True, True, False]
    a.release([])


def test_keys_hold_neither_the_api_key_nor_user_ids(make_fleet, admin, prefix):
    claims = make_fleet().claims(API_KEY)
    claims.claim(IDS[:5])
    keys = [key.decode() for key in admin.keys("*")]
    # Only this test's prefix is counted: a fleet of an earlier test may still be winding down.
    ours = [key for key in keys if key.startswith(prefix + ":")]
    assert sorted(ours) == sorted(claims.key(insert_id) for insert_id, _ in IDS[:5])
    for key in ours:  # digests only (a raw id has spaces, "u" and "d"; hex digits may spell "d1" by chance)
        assert re.fullmatch(rf"{prefix}:{key_digest(API_KEY)}:claim:[0-9a-f]+", key), key
    for key in keys:
        assert API_KEY not in key


def test_claim_is_exactly_once_across_four_processes(redis_server, prefix):
    ctx = process_context()
    out = ctx.Queue()
    # Every process claims the same ids, each in its own order, so the races are real.
    orders = [IDS, list(reversed(IDS)), IDS[150:] + IDS[:150], IDS[::2] + IDS[1::2]]
    workers = [ctx.Process(target=claim_worker, args=(redis_server.url, prefix, API_KEY, order, 25, out))
               for order in orders]
    for worker in workers:
        worker.start()
    won: List[List[str]] = [out.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(30)
        assert worker.exitcode == 0
    all_won = [insert_id for ids in won for insert_id in ids]
    assert len(all_won) == len(IDS)
    assert set(all_won) == {insert_id for insert_id, _ in IDS}
    assert sum(1 for ids in won if ids) >= 1

