"""The edges of the stats API: a forged cursor of any size is a 400, and an answer that echoes one
of several allowed origins varies on Origin."""

from __future__ import annotations

import base64
import json

import pytest

from community_tracker.models import Community
from community_tracker.redis.live_state import get_tracker
from community_tracker.settings import get_settings
from infra.tokens import mint_token
from stats.handler import lambda_handler
from tests.builders import SECOND, T0, user, visit
from tests.helpers import HttpAnswer, api_request, call

SECOND_ORIGIN = "http://127.0.0.1:3000"  # the default settings allow two origins


def admin() -> dict[str, str]:
    return {"authorization": f"Bearer {mint_token(get_settings(), 'ops', roles=['admin'])}"}


def get(community: Community, suffix: str, query: str = "", headers: dict[str, str] | None = None) -> HttpAnswer:
    cid = community.community_id
    event = api_request(
        "GET",
        f"/v1/communities/{cid}/{suffix}",
        template=f"/v1/communities/{{community_id}}/{suffix}",
        path_parameters={"community_id": cid},
        headers=headers or admin(),
        query=query,
        now_ms=T0 + SECOND,
    )
    return call(lambda_handler, event)


def cursor(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()


@pytest.fixture
def visited(community: Community) -> Community:
    for name in ("alice", "bob", "carol"):
        get_tracker().add_visitor(visit(community.community_id, user(name)), T0)
    return community


@pytest.mark.parametrize(
    "forged",
    [
        cursor({"offset": "9" * 500}),  # was a 503: Redis refused the offset
        cursor({"offset": "9" * 19}),
        cursor({"offset": "²"}),  # a digit to str.isdigit, not to int()
        cursor({"offset": "٣"}),
        cursor({"offset": "007"}),
        cursor({"offset": "0"}),
        cursor({"offset": "-1"}),
        cursor({"offset": 2}),
        cursor({"offset": "2", "extra": "x"}),
        cursor(["offset", "2"]),
        cursor("2"),
        "A" * 5000,  # was a 422: longer than the query parameter allowed
        "not base64 at all!",
        "",
    ],
)
def test_a_forged_visitor_cursor_of_any_size_is_400(visited: Community, forged: str) -> None:
    answer = get(visited, "visitors", query=f"limit=1&cursor={forged}")

    assert answer.status == 400, answer.body
    assert answer.json()["error"]["code"] == "invalid_cursor"


def test_the_visitor_cursor_handed_out_still_pages(visited: Community) -> None:
    first = get(visited, "visitors", query="limit=2").json()
    second = get(visited, "visitors", query=f"limit=2&cursor={first['next_cursor']}").json()

    assert len(first["visitors"]) == 2
    assert len(second["visitors"]) == 1
    assert second["next_cursor"] is None


@pytest.mark.parametrize("forged", ["A" * 5000, cursor({"PK": "x" * 600, "SK": "y"})])
def test_a_forged_history_cursor_of_any_size_is_400(visited: Community, forged: str) -> None:
    answer = get(visited, "visits", query=f"cursor={forged}")

    assert answer.status == 400, answer.body
    assert answer.json()["error"]["code"] == "invalid_cursor"


def test_an_echoed_origin_varies_on_origin(visited: Community) -> None:
    answer = get(visited, "stats", headers={**admin(), "origin": SECOND_ORIGIN})

    assert answer.status == 200
    assert answer.headers["access-control-allow-origin"] == SECOND_ORIGIN
    assert "Origin" in [v.strip() for v in answer.headers["vary"].split(",")]
