"""Live context end to end: page views into the beacon function, the context routes and the
summary out of the stats function, real Redis and moto behind (README, "Live context")."""

from __future__ import annotations

from typing import Any

import pytest

from community_tracker.factories import reset_factories
from community_tracker.models import Community
from community_tracker.redis.keys import CommunityKeys
from community_tracker.redis.live_state import get_tracker
from stats.handler import lambda_handler
from tests.builders import MINUTE, SECOND, T0
from tests.component.stats.test_stats_routes import token
from tests.helpers import HttpAnswer, api_request, beacon, call

IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Mobile/15E148 Safari/604.1"
)
SITE = "https://platform.example"


@pytest.fixture
def trusted_locations(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VT_TRUST_LOCATION_HEADERS", "true")
    reset_factories()


def page_view(
    community: Community,
    visitor: str,
    path: str,
    *,
    referrer: str | None = None,
    country: str | None = None,
    user_agent: str | None = None,
    now_ms: int = T0,
) -> None:
    headers = {"cloudfront-viewer-country": country} if country else {}
    if user_agent:
        headers["user-agent"] = user_agent
    body = {
        "url": SITE + path,
        "referrer": referrer,
        "visitor_id": f"browser-ctx-{visitor}",
        "connection_id": f"tab-ctx-{visitor}",
    }
    answer = beacon(community.community_id, body, headers=headers, now_ms=now_ms)
    assert answer.status == 200, answer.body


def get(path: str, template: str, params: dict[str, str], *, now_ms: int, query: str = "") -> HttpAnswer:
    event = api_request(
        "GET", path, template=template, path_parameters=params, headers=token(), query=query, now_ms=now_ms
    )
    return call(lambda_handler, event)


def context(community: Community, dimension: str, query: str = "", now_ms: int = T0 + SECOND) -> Any:
    cid = community.community_id
    answer = get(
        f"/v1/communities/{cid}/context/{dimension}",
        "/v1/communities/{community_id}/context/{dimension}",
        {"community_id": cid, "dimension": dimension},
        query=query,
        now_ms=now_ms,
    )
    assert answer.status == 200, answer.body
    body = answer.json()
    assert sum(v["people"] for v in body["top"]) + body["other"] == body["total_visitors"]
    return body


def counts(community: Community, dimension: str, now_ms: int = T0 + SECOND) -> dict[str, int]:
    body = context(community, dimension, "limit=100", now_ms)
    assert body["other"] == 0
    return {v["value"]: v["people"] for v in body["top"]}


def test_each_person_counts_once_per_dimension_with_their_latest_page(
    community: Community, trusted_locations: None
) -> None:
    # Given three people: one on a phone in France came from a search, two in Canada on desktops
    page_view(
        community,
        "1",
        "/events?session=s3cr3t#today",
        referrer="https://www.google.com/search?q=x",
        country="FR",
        user_agent=IPHONE,
    )
    page_view(community, "2", "/events/", country="CA")
    page_view(community, "3", "/members", referrer="https://t.co/abc", country="CA")
    # When the first navigates within the site (its referrer is the site itself)
    page_view(community, "1", "/members", referrer=SITE + "/events", country="FR", user_agent=IPHONE, now_ms=T0 + 1)

    # Then each dimension counts the three people once, by their latest page view; the referrer
    # stays where the visit came from
    assert counts(community, "pages", T0 + 2) == {"/members": 2, "/events": 1}
    assert counts(community, "referrers", T0 + 2) == {"google.com": 1, "t.co": 1, "(direct)": 1}
    assert counts(community, "devices", T0 + 2) == {"desktop": 2, "mobile": 1}
    assert counts(community, "countries", T0 + 2) == {"CA": 2, "FR": 1}
    top = context(community, "pages", "limit=1", T0 + 2)
    assert top == {
        "community_id": community.community_id,
        "dimension": "pages",
        "total_visitors": 3,
        "top": [{"value": "/members", "people": 2}],
        "other": 1,
        "timestamp": "2031-03-05T12:00:00.002Z",
    }


def test_without_trusted_location_headers_everyone_is_unknown(community: Community) -> None:
    page_view(community, "1", "/", country="FR")
    page_view(community, "2", "/", country="CA")

    assert counts(community, "countries") == {"unknown": 2}


def test_heartbeats_and_leaves_keep_the_context_until_the_person_goes(community: Community) -> None:
    page_view(community, "1", "/a")
    page_view(community, "2", "/b")
    heartbeat = {"visitor_id": "browser-ctx-1", "connection_id": "tab-ctx-1"}

    assert beacon(community.community_id, heartbeat, kind="heartbeat", now_ms=T0 + 30 * SECOND).status == 200
    assert counts(community, "pages", T0 + 31 * SECOND) == {"/a": 1, "/b": 1}

    # The second leaves: counted until the grace ends; the first stays on /a by its heartbeat
    assert (
        beacon(
            community.community_id, {"connection_id": "tab-ctx-2", "visitor_id": "browser-ctx-2"}, kind="leave"
        ).status
        == 200
    )
    assert counts(community, "pages", T0 + 10 * SECOND) == {"/a": 1, "/b": 1}
    assert counts(community, "pages", T0 + 20 * SECOND) == {"/a": 1}
    # Past the window nobody is left, though no beacon or cleanup pruned them yet (reads prune nothing)
    assert context(community, "pages", now_ms=T0 + 30 * SECOND + 5 * MINUTE)["top"] == []


def test_a_dimension_keeps_at_most_its_cap_of_values_and_counts_the_rest_as_other(
    community: Community, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VT_CONTEXT_VALUES", "2")
    reset_factories()
    keys = CommunityKeys(community.community_id)

    # Given a dimension full with two values
    page_view(community, "1", "/a")
    page_view(community, "2", "/b")
    # When a third value arrives, and a person on a kept value stays on it
    page_view(community, "3", "/c")
    page_view(community, "4", "/a")

    # Then the third is counted as "(other)": the dimension still sums to the people live
    assert context(community, "pages", "limit=10") == {
        "community_id": community.community_id,
        "dimension": "pages",
        "total_visitors": 4,
        "top": [{"value": "/a", "people": 2}, {"value": "/b", "people": 1}],
        "other": 1,
        "timestamp": "2031-03-05T12:00:01.000Z",
    }
    assert get_tracker().client.zrange(keys.context("pages"), 0, -1) == ["(other)", "/b", "/a"]

    # When the only person on /b moves to /a, its value is let go, and the next new one is kept
    page_view(community, "2", "/a", now_ms=T0 + 1)
    page_view(community, "5", "/d", now_ms=T0 + 2)
    assert counts_with_other(community) == ({"/a": 3, "/d": 1}, 1)


def counts_with_other(community: Community) -> tuple[dict[str, int], int]:
    body = context(community, "pages", "limit=100", T0 + 3)
    return {v["value"]: v["people"] for v in body["top"]}, body["other"]


def test_the_summary_carries_the_context(community: Community) -> None:
    page_view(community, "1", "/a", referrer="https://news.example/x", user_agent=IPHONE)

    cid = community.community_id
    summary = get(
        f"/v1/communities/{cid}/summary",
        "/v1/communities/{community_id}/summary",
        {"community_id": cid},
        now_ms=T0 + SECOND,
    ).json()

    assert summary["context"] == {
        "pages": {"top": [{"value": "/a", "people": 1}], "other": 0},
        "referrers": {"top": [{"value": "news.example", "people": 1}], "other": 0},
        "devices": {"top": [{"value": "mobile", "people": 1}], "other": 0},
        "countries": {"top": [{"value": "unknown", "people": 1}], "other": 0},
    }
