"""Issue #19, "counts for everyone, push for dashboards": the live count a community page shows to
every visitor is one short-lived answer a CDN may keep and share (`public, s-maxage=5`), so the
origin sees one request per edge every 5 s however many people look; WebSocket push stays for
dashboards."""

from __future__ import annotations

import pytest

from community_tracker.factories import reset_factories
from community_tracker.models import Community
from community_tracker.redis.live_state import get_tracker
from community_tracker.settings import get_settings
from infra.tokens import mint_token
from stats.handler import lambda_handler
from tests.builders import SECOND, T0, anonymous, visit
from tests.helpers import HttpAnswer, api_request, call

SHARED_FOR_5_SECONDS = "public, max-age=5, s-maxage=5"


def badge(community_id: str, *, query: str = "", headers: dict[str, str] | None = None) -> HttpAnswer:
    event = api_request(
        "GET",
        f"/v1/badge/{community_id}",
        template="/v1/badge/{community_id}",
        path_parameters={"community_id": community_id},
        headers=headers or {},
        query=query,
        now_ms=T0 + SECOND,
    )
    return call(lambda_handler, event)


@pytest.fixture
def public(community: Community, monkeypatch: pytest.MonkeyPatch) -> Community:
    monkeypatch.setenv("VT_PUBLIC_COUNTS", "true")
    monkeypatch.setenv("VT_BADGE_MIN_COUNT", "0")  # exact counts, to compare them
    reset_factories()
    get_tracker().add_visitor(visit(community.community_id, anonymous("tab-1")), T0)
    return community


@pytest.mark.parametrize("query", ["", "format=json", "format=svg"])
def test_the_live_count_is_cacheable_by_a_cdn_for_5_seconds(public: Community, query: str) -> None:
    answer = badge(public.community_id, query=query)

    assert answer.status == 200
    assert answer.headers["cache-control"] == SHARED_FOR_5_SECONDS
    # CORS grants depend on the Origin header: a shared cache must keep one answer per origin
    assert "origin" in answer.headers["vary"].lower()


def test_the_cached_answer_is_the_same_for_every_caller(public: Community) -> None:
    anonymous_caller = badge(public.community_id)
    signed_in = badge(public.community_id, headers={"authorization": f"Bearer {mint_token(get_settings(), 'alice')}"})

    assert anonymous_caller.body == signed_in.body  # nothing personal in what the CDN keeps
    assert anonymous_caller.json()["current_count"] == 1
    assert "set-cookie" not in anonymous_caller.headers
