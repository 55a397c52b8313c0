"""Leader lease: one holder, renewal, takeover after lapse, resign, read-only members (issue 14 points 1, 3)."""

from __future__ import annotations

import time

from .conftest import wait_for

DEPLOYMENT = "server-deploymentKEY0001"


def test_one_holder_at_a_time_and_renewal_keeps_it(make_fleet, admin):
    a = make_fleet(lease_millis=100).flags(DEPLOYMENT)
    b = make_fleet(lease_millis=100).flags(DEPLOYMENT)
    assert a.try_lead() is True
    assert b.try_lead() is False
    # A keeps renewing for three leases; B never gets it meanwhile.
    deadline = time.monotonic() + 0.3
    while time.monotonic() < deadline:
        assert a.try_lead() is True
        assert b.try_lead() is False
        assert admin.get(a.lease.key) == a.lease.token.encode()
    assert 0 < admin.pttl(a.lease.key) <= 100


def test_takeover_after_holder_stops_renewing(make_fleet):
    a = make_fleet(lease_millis=200).flags(DEPLOYMENT)
    b = make_fleet(lease_millis=200).flags(DEPLOYMENT)
    assert a.try_lead() is True
    started = time.monotonic()
    assert wait_for(b.try_lead, timeout=2.0)
    assert 0.1 < time.monotonic() - started < 1.0  # after the lease lapsed (200 ms), not before
    assert a.try_lead() is False  # the old holder learns it lost the lease
    assert a.leading is False and b.leading is True


def test_resign_hands_over_at_once(make_fleet, admin):
    a = make_fleet(lease_millis=60_000).flags(DEPLOYMENT)
    b = make_fleet(lease_millis=60_000).flags(DEPLOYMENT)
    assert a.try_lead() is True
    assert b.try_lead() is False
    b.resign()  # not the holder: must not delete A's lease
    assert admin.get(a.lease.key) == a.lease.token.encode()
    a.resign()
    assert admin.exists(a.lease.key) == 0
    assert b.try_lead() is True


def test_read_only_member_never_leads(make_fleet, admin):
    # issue 14 point 3: fetch=False never contacts Amplitude, so never takes the lease.
    reader = make_fleet(fetch=False).flags(DEPLOYMENT)
    assert reader.fetch is False
    assert reader.try_lead() is False
    assert admin.keys("*") == []
    cohorts = make_fleet(fetch=False).cohorts("cohort-api-key")
    assert cohorts.try_lead() is False
    assert admin.keys("*") == []


def test_flag_and_cohort_leases_are_separate_and_per_deployment(make_fleet):
    fleet = make_fleet()
    other = make_fleet()
    assert fleet.flags(DEPLOYMENT).try_lead() is True
    assert other.cohorts("cohort-key").try_lead() is True
    assert other.flags("server-anotherDeployment").try_lead() is True
    assert other.flags(DEPLOYMENT).try_lead() is False
    assert fleet.flags(DEPLOYMENT) is fleet.flags(DEPLOYMENT)  # one view (and lease) per key
