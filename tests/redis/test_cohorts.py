"""Shared cohorts: one hash per cohort, newest lastModified wins, versions in one round trip (issue 14 point 1)."""

from __future__ import annotations

import pytest

from amplitude_experiment.cohorts.shared import SharedCohortSource

API_KEY = "cohort-api-KEY-0001"


def test_is_a_shared_cohort_source(make_fleet):
    assert isinstance(make_fleet().cohorts(API_KEY), SharedCohortSource)


def test_publish_newest_wins_and_versions_and_get(make_fleet, admin):
    writer = make_fleet().cohorts(API_KEY)
    reader = make_fleet().cohorts(API_KEY)
    assert reader.versions(["c1", "c2"]) == {}
    assert writer.publish("c1", 1000, b"members-v1") is True
    assert writer.publish("c2", 5, b"other") is True
    assert writer.publish("c1", 1000, b"members-again") is False  # same version: kept
    assert writer.publish("c1", 999, b"members-older") is False
    assert reader.versions(["c1", "c2", "c3", "c1"]) == {"c1": 1000, "c2": 5}
    assert reader.get("c1") == (1000, b"members-v1")
    assert reader.publish("c1", 2000, b"members-v2") is True  # any member may publish a newer one
    assert writer.get("c1") == (2000, b"members-v2")
    assert writer.get("c3") is None
    assert 0 < admin.pttl(writer.key("c1")) <= 30 * 86_400_000


def test_publish_checks_argument_types(make_fleet):
    source = make_fleet().cohorts(API_KEY)
    with pytest.raises(TypeError):
        source.publish("c1", "1000", b"x")  # type: ignore[arg-type]
