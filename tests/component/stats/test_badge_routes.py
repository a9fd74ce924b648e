"""The public badge shows small counts as "fewer than k" (VT_BADGE_MIN_COUNT, default 5)."""

from __future__ import annotations

import pytest

from community_tracker.factories import reset_factories
from community_tracker.models import Community
from community_tracker.redis.live_state import get_tracker
from tests.builders import T0, anonymous, visit
from tests.component.stats.test_stats_routes import badge


@pytest.fixture
def public(community: Community, monkeypatch: pytest.MonkeyPatch) -> Community:
    monkeypatch.setenv("VT_PUBLIC_COUNTS", "true")
    reset_factories()
    return community


def arrive(community: Community, count: int) -> None:
    for i in range(count):
        get_tracker().add_visitor(visit(community.community_id, anonymous(f"badge-{i}")), T0)


def test_fewer_than_the_threshold_is_never_the_exact_count(public: Community) -> None:
    arrive(public, 3)

    as_json = badge(public)
    as_svg = badge(public, "format=svg")

    assert as_json.json() == {
        "community_id": public.community_id,
        "current_count": None,
        "fewer_than": 5,
        "label": "fewer than 5",
    }
    assert ">fewer than 5</text>" in as_svg.body
    assert ">3<" not in as_svg.body


def test_at_the_threshold_the_count_shows(public: Community) -> None:
    arrive(public, 5)

    assert badge(public).json() == {
        "community_id": public.community_id,
        "current_count": 5,
        "fewer_than": None,
        "label": "5",
    }


def test_the_threshold_is_a_setting(public: Community, monkeypatch: pytest.MonkeyPatch) -> None:
    arrive(public, 2)
    monkeypatch.setenv("VT_BADGE_MIN_COUNT", "0")
    reset_factories()
    assert badge(public).json()["current_count"] == 2

    monkeypatch.setenv("VT_BADGE_MIN_COUNT", "10")
    reset_factories()
    assert badge(public).json()["label"] == "fewer than 10"
