"""Bots and AI agents through the beacon function, then `GET …/automation` on the stats API."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from redis import Redis

from community_tracker.models import Community
from community_tracker.redis.keys import CommunityKeys
from infra.redis_servers import RedisProcess
from stats.handler import lambda_handler
from tests.builders import MINUTE, SECOND, T0
from tests.component.stats.test_stats_routes import token
from tests.helpers import HttpAnswer, api_request, beacon, call

GPTBOT = "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; +https://openai.com/gptbot)"
CLAUDE_USER = (
    "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; Claude-User/1.0; +Claude-User@anthropic.com)"
)
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
CUBOT_PHONE = (
    "Mozilla/5.0 (Linux; Android 9; CUBOT J3) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/74.0.3729.136 Mobile "
    "Safari/537.36"
)


@pytest.fixture
def redis(redis_server: RedisProcess) -> Iterator[Redis]:
    client = redis_server.client()
    yield client
    client.close()


def automation(community: Community, *, now_ms: int, headers: dict[str, str] | None = None) -> HttpAnswer:
    cid = community.community_id
    event = api_request(
        "GET",
        f"/v1/communities/{cid}/automation",
        template="/v1/communities/{community_id}/automation",
        path_parameters={"community_id": cid},
        headers=token() if headers is None else headers,
        now_ms=now_ms,
    )
    return call(lambda_handler, event)


def page_view(community: Community, agent: str, ip: str, now_ms: int) -> HttpAnswer:
    return beacon(
        community.community_id,
        {"url": "https://x.example/"},
        headers={"user-agent": agent},
        source_ip=ip,
        now_ms=now_ms,
    )


def test_bots_and_agents_are_never_people_but_are_counted_per_class(community: Community, redis: Redis) -> None:
    # Given two GPTBot fetchers, a Claude-User fetch, Googlebot (twice) and a person on a CUBOT phone
    answers = [
        page_view(community, GPTBOT, "203.0.113.1", T0),
        page_view(community, GPTBOT, "203.0.113.2", T0 + SECOND),
        page_view(community, CLAUDE_USER, "203.0.113.3", T0 + 2 * SECOND),
        page_view(community, GOOGLEBOT, "203.0.113.4", T0 + 3 * SECOND),
        page_view(community, GOOGLEBOT, "203.0.113.4", T0 + 4 * SECOND),
    ]
    person = page_view(community, CUBOT_PHONE, "198.51.100.9", T0 + 5 * SECOND)

    # Then the automated ones are dropped as bots, the person is counted
    assert [a.status for a in answers] == [202] * 5
    assert {a.headers["x-beacon-dropped"] for a in answers} == {"bot"}
    assert person.status == 200
    assert redis.zcard(CommunityKeys(community.community_id).live) == 1

    # And the stats API shows them per class, with names, clients counted once each
    answer = automation(community, now_ms=T0 + 6 * SECOND)
    assert answer.status == 200
    assert answer.headers["cache-control"] == "private, max-age=5"
    body = answer.json()
    assert body["bots"] == {"clients": 1, "names": [{"name": "Googlebot", "clients": 1}]}
    assert body["ai_agents"] == {
        "clients": 3,
        "names": [{"name": "GPTBot", "clients": 2}, {"name": "Claude-User", "clients": 1}],
    }
    # No address reaches Redis: clients are keyed hashes
    members = redis.zrange(CommunityKeys(community.community_id).automation_clients("ai_agent", "GPTBot"), 0, -1)
    assert not any("203.0.113" in member for member in members)

    # Five minutes later they are gone, like visitors
    later = automation(community, now_ms=T0 + 5 * MINUTE + 5 * SECOND).json()
    assert later["bots"]["clients"] == later["ai_agents"]["clients"] == 0


def test_a_debug_question_from_a_bot_is_not_counted(community: Community) -> None:
    answer = beacon(
        community.community_id, {"url": "https://x.example/"}, headers={"user-agent": GPTBOT}, query="debug=1"
    )

    assert answer.status == 200
    assert automation(community, now_ms=T0 + SECOND).json()["ai_agents"]["clients"] == 0


def test_automation_needs_a_token_and_a_registered_community(community: Community) -> None:
    assert automation(community, now_ms=T0, headers={}).status == 401
    unknown = Community(community_id="nowhere-1", slug="x", name="x")
    assert automation(unknown, now_ms=T0).status == 404
