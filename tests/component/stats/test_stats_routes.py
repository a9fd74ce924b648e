"""The stats API in-process: API Gateway v2 events in, real Redis and moto DynamoDB behind."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from community_tracker.aws.stores import get_stores
from community_tracker.factories import reset_factories
from community_tracker.models import Community, Peak, VisitEvent, VisitMetadata
from community_tracker.redis.live_state import get_tracker
from community_tracker.settings import get_settings
from community_tracker.timeutil import UTC_CALENDAR, iso
from infra.openapi import spec_is_current
from infra.tokens import mint_token
from stats.handler import lambda_handler
from tests.builders import MINUTE, SECOND, T0, anonymous, user, visit
from tests.helpers import HttpAnswer, api_request, call

ADMIN = "admin-1"


@pytest.fixture
def busy(community: Community) -> Community:
    """Two users (one from Montreal), one anonymous visitor from Laval, and one stale visitor."""
    tracker = get_tracker()
    cid = community.community_id
    tracker.add_visitor(visit(cid, user("gone", "montreal")), T0 - 6 * MINUTE)
    tracker.add_visitor(visit(cid, user("alice", "quebec")), T0)
    tracker.add_visitor(visit(cid, user("bob", "montreal")), T0 + SECOND)
    tracker.add_visitor(visit(cid, anonymous("tab-1", "laval")), T0 + 2 * SECOND)
    return community


def token(user_id: str = "reader", *, admin: bool = False) -> dict[str, str]:
    roles = ["admin"] if admin else []
    return {"authorization": f"Bearer {mint_token(get_settings(), user_id, roles=roles)}"}


def get(
    path: str, template: str, params: dict[str, str], *, headers: dict[str, str] | None = None, query: str = ""
) -> HttpAnswer:
    event = api_request(
        "GET",
        path,
        template=template,
        path_parameters=params,
        headers=headers,
        query=query,
        now_ms=T0 + 3 * SECOND,
    )
    return call(lambda_handler, event)


def community_get(
    community: Community, suffix: str, *, headers: dict[str, str] | None = None, query: str = ""
) -> HttpAnswer:
    cid = community.community_id
    return get(
        f"/v1/communities/{cid}/{suffix}",
        f"/v1/communities/{{community_id}}/{suffix}",
        {"community_id": cid},
        headers=token() if headers is None else headers,
        query=query,
    )


def registration(community: Community, *, headers: dict[str, str] | None = None) -> HttpAnswer:
    cid = community.community_id
    return get(
        f"/v1/communities/{cid}",
        "/v1/communities/{community_id}",
        {"community_id": cid},
        headers=token() if headers is None else headers,
    )


# -- aggregates, field by field ----------------------------------------------------------------


def test_the_registration_names_the_community_for_its_readers(community: Community) -> None:
    answer = registration(community)

    assert answer.status == 200
    assert answer.json() == community.model_dump(mode="json")
    assert answer.json()["name"] == "Quebec City"
    assert registration(community, headers={}).status == 401


def test_stats(busy: Community) -> None:
    answer = community_get(busy, "stats")

    assert answer.status == 200
    assert answer.json() == {
        "total_visitors": 3,
        "authenticated_visitors": 2,
        "anonymous_visitors": 1,
        "authenticated_percentage": 66.67,
        "anonymous_percentage": 33.33,
        "present_now": 3,
        "connections": 3,
    }
    assert answer.headers["cache-control"] == "private, max-age=5"


def test_divisions(busy: Community) -> None:
    assert community_get(busy, "divisions").json() == {
        "community_id": busy.community_id,
        "total_visitors": 3,
        "divisions": [
            {"division_id": "laval", "count": 1},
            {"division_id": "montreal", "count": 1},
            {"division_id": "quebec", "count": 1},
        ],
    }


def test_cross_division(busy: Community) -> None:
    assert community_get(busy, "cross-division").json() == {
        "total_visitors": 3,
        "cross_division_visits": 2,
        "cross_division_percentage": 66.67,
        "breakdown": [
            {"from_division": "laval", "to_division": "quebec", "count": 1},
            {"from_division": "montreal", "to_division": "quebec", "count": 1},
        ],
    }
    assert len(community_get(busy, "cross-division", query="limit=1").json()["breakdown"]) == 1


def test_cross_division_history(busy: Community) -> None:
    answer = community_get(busy, "cross-division/history", query="day=2031-03-05")

    # Cumulative page views of the day: the stale visitor from Montreal still counts here
    assert answer.json() == {
        "community_id": busy.community_id,
        "day": "2031-03-05",
        "buckets": [
            {
                "period": "day",
                "bucket": "2031-03-05",
                "time_zone": "UTC",
                "start": "2031-03-05T00:00:00.000Z",
                "end": "2031-03-06T00:00:00.000Z",
            }
        ],
        "breakdown": [
            {"from_division": "montreal", "to_division": "quebec", "count": 2},
            {"from_division": "laval", "to_division": "quebec", "count": 1},
        ],
    }


def test_peaks_with_history_from_dynamodb(busy: Community) -> None:
    get_stores().peaks.put_rollup(
        busy.community_id, Peak.at(UTC_CALENDAR.bucket("day", T0 - 86_400_000), 9, iso(T0 - 86_400_000), 4)
    )

    plain = community_get(busy, "peaks").json()
    with_history = community_get(busy, "peaks", query="history=day").json()

    # "gone" had left (stale) before the others came, so the peak is the three of them
    assert (plain["daily"], plain["weekly"], plain["monthly"]) == (3, 3, 3)
    assert plain["current"][0] == {
        "period": "day",
        "bucket": "2031-03-05",
        "time_zone": "UTC",
        "start": "2031-03-05T00:00:00.000Z",
        "end": "2031-03-06T00:00:00.000Z",
        "count": 3,
        "reached_at": iso(T0 + 2000),
        "unique_visitors": None,
    }
    assert plain["history"] == []
    assert with_history["history"][0] == {
        "period": "day",
        "bucket": "2031-03-04",
        "time_zone": "UTC",
        "start": "2031-03-04T00:00:00.000Z",
        "end": "2031-03-05T00:00:00.000Z",
        "count": 9,
        "reached_at": iso(T0 - 86_400_000),
        "unique_visitors": 4,
    }


def test_summary_has_everything_and_an_etag(busy: Community) -> None:
    answer = community_get(busy, "summary", query="minutes=5")

    body = answer.json()
    assert set(body) == {
        "community_id",
        "stats",
        "divisions",
        "cross_division",
        "peaks",
        "peak_details",
        "unique_visitors",
        "timeline",
        "context",
        "timestamp",
    }
    assert body["stats"]["total_visitors"] == 3
    # Beacons without a page's details: every person under each dimension's default
    assert body["context"] == {
        "pages": {"top": [{"value": "(unknown)", "people": 3}], "other": 0},
        "referrers": {"top": [{"value": "(direct)", "people": 3}], "other": 0},
        "devices": {"top": [{"value": "other", "people": 3}], "other": 0},
        "countries": {"top": [{"value": "unknown", "people": 3}], "other": 0},
    }
    assert body["peaks"] == {"daily": 3, "weekly": 3, "monthly": 3}
    assert len(body["timeline"]) == 5
    assert answer.headers["etag"].startswith('W/"')

    again = community_get(
        busy, "summary", query="minutes=5", headers={**token(), "if-none-match": answer.headers["etag"]}
    )
    assert again.status == 304
    assert again.body == ""


def test_timeline_and_drops(busy: Community) -> None:
    timeline = community_get(busy, "timeline", query="minutes=3").json()
    drops = community_get(busy, "drops").json()

    assert [p["visitors"] for p in timeline["points"]][-1] == 3
    assert timeline["minutes"] == 3
    assert drops == {
        "day": "2031-03-05",
        "time_zone": "UTC",
        "start": "2031-03-05T00:00:00.000Z",
        "end": "2031-03-06T00:00:00.000Z",
        "bot": 0,
        "rate_limited": 0,
        "duplicate": 0,
        "invalid": 0,
        "too_many_people": 0,
    }


def test_reads_are_exact_with_stale_visitors_and_no_cleanup(busy: Community) -> None:
    # "gone" arrived 6 minutes before T0; nothing removed it, and nobody reads it
    assert community_get(busy, "stats").json()["total_visitors"] == 3
    assert "montreal" in {d["division_id"] for d in community_get(busy, "divisions").json()["divisions"]}
    assert community_get(busy, "cross-division").json()["cross_division_visits"] == 2


# -- visitor lists (admin) ---------------------------------------------------------------------


def test_visitor_list_pages_with_an_opaque_cursor(busy: Community) -> None:
    first = community_get(busy, "visitors", query="limit=2", headers=token(ADMIN, admin=True)).json()
    second = community_get(
        busy, "visitors", query=f"limit=2&cursor={first['next_cursor']}", headers=token(ADMIN, admin=True)
    ).json()

    assert [v["user_id"] for v in first["visitors"]] == [None, "bob"]
    assert first["total_visitors"] == 3
    assert not first["next_cursor"].isdigit()
    assert [v["user_id"] for v in second["visitors"]] == ["alice"]
    assert second["next_cursor"] is None
    assert first["visitors"][0] == {
        "user_id": None,
        "is_authenticated": False,
        "division_id": "laval",
        "joined_at": iso(T0 + 2000),
        "pages_viewed": 1,
        "last_activity": iso(T0 + 2000),
    }


def test_a_forged_cursor_is_400(busy: Community) -> None:
    answer = community_get(busy, "visitors", query="cursor=bm90LWEtY3Vyc29y", headers=token(ADMIN, admin=True))

    assert answer.status == 400
    assert answer.json()["error"]["code"] == "invalid_cursor"


def test_is_user_visiting(busy: Community) -> None:
    cid = busy.community_id
    template = "/v1/communities/{community_id}/visitors/{user_id}"

    own = get(
        f"/v1/communities/{cid}/visitors/bob", template, {"community_id": cid, "user_id": "bob"}, headers=token("bob")
    )
    other = get(
        f"/v1/communities/{cid}/visitors/bob", template, {"community_id": cid, "user_id": "bob"}, headers=token("eve")
    )
    gone = get(
        f"/v1/communities/{cid}/visitors/gone",
        template,
        {"community_id": cid, "user_id": "gone"},
        headers=token(ADMIN, admin=True),
    )

    assert own.json() == {"community_id": cid, "user_id": "bob", "is_visiting": True}
    assert other.status == 403
    assert gone.json()["is_visiting"] is False


# -- access rules ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "suffix", ["stats", "divisions", "cross-division", "peaks", "summary", "timeline", "drops", "context/pages"]
)
def test_aggregates_need_a_token_by_default(busy: Community, suffix: str) -> None:
    anonymous_answer = community_get(busy, suffix, headers={})
    forged = community_get(busy, suffix, headers={"authorization": "Bearer not.a.token"})

    assert anonymous_answer.status == 401
    assert anonymous_answer.json()["error"]["code"] == "token_required"
    assert forged.status == 401


def test_public_counts_open_aggregates_but_not_lists(busy: Community, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VT_PUBLIC_COUNTS", "true")
    reset_factories()

    assert community_get(busy, "stats", headers={}).status == 200
    assert community_get(busy, "context/devices", headers={}).status == 200
    assert community_get(busy, "visitors", headers={}).status == 401
    assert community_get(busy, "visits", headers={}).status == 401


@pytest.mark.parametrize("suffix", ["visitors", "visits"])
def test_lists_and_histories_need_the_admin_role(busy: Community, suffix: str) -> None:
    assert community_get(busy, suffix, headers=token("bob")).status == 403
    assert community_get(busy, suffix, headers=token(ADMIN, admin=True)).status == 200


# -- histories from DynamoDB -------------------------------------------------------------------


def _store_visits(community: Community, user_id: str, count: int) -> None:
    for i in range(count):
        get_stores().visits.put_visit(
            VisitEvent(
                event_id=f"evt-{user_id}-{i:04d}",
                user_id=user_id,
                timestamp=iso(T0 + i * SECOND),
                metadata=VisitMetadata(
                    community_id=community.community_id,
                    community_slug=community.slug,
                    visitor_division_id="montreal",
                    community_division_id="quebec",
                    is_cross_division=True,
                    is_authenticated=True,
                    url="https://platform.example/communities/quebec-city/",
                    referrer=None,
                ),
            )
        )


def user_get(user_id: str, suffix: str, *, headers: dict[str, str], query: str = "") -> HttpAnswer:
    return get(
        f"/v1/users/{user_id}/{suffix}",
        f"/v1/users/{{user_id}}/{suffix}",
        {"user_id": user_id},
        headers=headers,
        query=query,
    )


def test_community_visit_history_is_paginated_newest_first(community: Community) -> None:
    _store_visits(community, "hist-user", 3)

    first = community_get(community, "visits", query="limit=2", headers=token(ADMIN, admin=True)).json()
    second = community_get(
        community, "visits", query=f"limit=2&cursor={first['next_cursor']}", headers=token(ADMIN, admin=True)
    ).json()

    assert [v["event_id"] for v in first["visits"]] == ["evt-hist-user-0002", "evt-hist-user-0001"]
    assert [v["event_id"] for v in second["visits"]] == ["evt-hist-user-0000"]
    assert first["visits"][0]["metadata"]["community_division_id"] == "quebec"


def test_a_user_reads_exports_and_erases_their_own_history(community: Community) -> None:
    user_id = f"self-{uuid.uuid4().hex[:6]}"
    _store_visits(community, user_id, 3)
    own = token(user_id)

    listed = user_get(user_id, "visits", headers=own, query="limit=2").json()
    exported = user_get(user_id, "visits/export", headers=own)
    refused = user_get(user_id, "visits", headers=token("someone-else"))
    erased = call(
        lambda_handler,
        api_request(
            "DELETE",
            f"/v1/users/{user_id}/visits",
            template="/v1/users/{user_id}/visits",
            path_parameters={"user_id": user_id},
            headers=own,
        ),
    )

    assert len(listed["visits"]) == 2
    assert listed["next_cursor"] is not None
    assert len(exported.json()["visits"]) == 3
    assert exported.headers["content-disposition"].startswith("attachment")
    assert refused.status == 403
    assert erased.json() == {"user_id": user_id, "deleted": 3, "complete": True}
    assert user_get(user_id, "visits", headers=token(ADMIN, admin=True)).json()["visits"] == []


def test_where_a_user_is_now(busy: Community) -> None:
    answer = user_get("bob", "communities", headers=token("bob"))

    assert busy.community_id in answer.json()["communities"]
    assert user_get("bob", "communities", headers=token("eve")).status == 403


# -- the badge ---------------------------------------------------------------------------------


def badge(community: Community, query: str = "") -> HttpAnswer:
    cid = community.community_id
    return get(f"/v1/badge/{cid}", "/v1/badge/{community_id}", {"community_id": cid}, headers={}, query=query)


def test_badge_exists_only_with_public_counts(busy: Community, monkeypatch: pytest.MonkeyPatch) -> None:
    assert badge(busy).status == 404

    monkeypatch.setenv("VT_PUBLIC_COUNTS", "true")
    monkeypatch.setenv("VT_BADGE_MIN_COUNT", "0")  # exact counts (small ones: test_badge_routes.py)
    reset_factories()
    as_json = badge(busy)
    as_svg = badge(busy, "format=svg")

    assert as_json.json() == {"community_id": busy.community_id, "current_count": 3, "fewer_than": None, "label": "3"}
    assert as_json.headers["cache-control"] == "public, max-age=5, s-maxage=5"  # test_badge_cache.py
    assert as_svg.headers["content-type"] == "image/svg+xml"
    assert ">3</text>" in as_svg.body


# -- bad parameters ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("suffix", "query", "mentions"),
    [
        ("visitors", "limit=0", "query.limit"),
        ("visitors", "limit=abc", "query.limit"),
        ("peaks", "history=year", "query.history"),
        ("timeline", "minutes=99999", "query.minutes"),
        ("cross-division/history", "day=yesterday", "query.day"),
        ("summary", "minutes=-1", "query.minutes"),
        ("context/pages", "limit=0", "query.limit"),
        ("context/pages", "limit=101", "query.limit"),
        ("context/cities", "", "path.dimension"),
    ],
)
def test_bad_parameters_are_422_naming_them(busy: Community, suffix: str, query: str, mentions: str) -> None:
    answer = community_get(busy, suffix, query=query, headers=token(ADMIN, admin=True))

    assert answer.status == 422, answer.body
    assert mentions in answer.json()["error"]["message"]


def test_unknown_and_invalid_communities(function_env: None) -> None:
    unknown = get(
        "/v1/communities/nobody/stats",
        "/v1/communities/{community_id}/stats",
        {"community_id": "nobody"},
        headers=token(),
    )
    invalid = get(
        "/v1/communities/{x}/stats", "/v1/communities/{community_id}/stats", {"community_id": "{x}"}, headers=token()
    )
    no_route = get("/v1/nothing", "/v1/nothing", {}, headers=token())
    unregistered = get(
        "/v1/communities/nobody", "/v1/communities/{community_id}", {"community_id": "nobody"}, headers=token()
    )

    assert unknown.status == 404
    assert unknown.json()["error"]["code"] == "unknown_community"
    assert unregistered.status == 404
    assert invalid.status == 422
    assert no_route.status == 404
    assert no_route.json()["error"]["code"] == "not_found"


# -- the API document --------------------------------------------------------------------------


def test_openapi_is_served_and_current(function_env: None) -> None:
    spec = get("/v1/openapi.json", "/v1/openapi.json", {})
    docs = get("/v1/docs", "/v1/docs", {})

    assert spec.status == 200
    paths: dict[str, Any] = spec.json()["paths"]
    assert "/v1/communities/{community_id}/visits" in paths
    assert "/v1/communities/{community_id}/summary" in paths
    assert docs.headers["content-type"] == "text/html"
    assert "swagger" in docs.body.lower()
    assert spec_is_current(), "run `make openapi` and commit layers/community_tracker/openapi.json"
