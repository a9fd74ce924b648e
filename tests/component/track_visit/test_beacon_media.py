"""The edges of a beacon's body and answer: media types compared as RFC 9110 says (without case),
a JSON array is not an object, a body without a media type is not taken for JSON, and an answer
that echoes one of several allowed origins says it varies on Origin."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from redis import Redis

from community_tracker.models import Community
from community_tracker.redis.keys import CommunityKeys
from community_tracker.settings import get_settings
from infra.redis_servers import RedisProcess
from infra.tokens import mint_token
from tests.helpers import HttpAnswer, api_request, beacon, call, load_event
from track_visit.handler import lambda_handler

PAGE = json.dumps({"url": "https://x.example/c/", "visitor_id": "tab-media-0001"})


@pytest.fixture
def redis(redis_server: RedisProcess) -> Iterator[Redis]:
    client = redis_server.client()
    yield client
    client.close()


def live_count(redis: Redis, community_id: str) -> int:
    return int(redis.zcard(CommunityKeys(community_id).live))


@pytest.mark.parametrize(
    "content_type",
    [
        "APPLICATION/JSON",
        "Application/Json; charset=UTF-8",
        "application/json;charset=utf-8",
        " application/json ",
        "TEXT/PLAIN;charset=UTF-8",
        "Text/Plain",
    ],
)
def test_media_types_are_compared_without_case(community: Community, redis: Redis, content_type: str) -> None:
    answer = beacon(community.community_id, PAGE, headers={"content-type": content_type})

    assert answer.status == 200, answer.body
    assert live_count(redis, community.community_id) == 1


@pytest.mark.parametrize("content_type", ["application/jsonp", "application/json-seq", "text/plainx", "text/html"])
def test_other_media_types_are_415(community: Community, redis: Redis, content_type: str) -> None:
    answer = beacon(community.community_id, PAGE, headers={"content-type": content_type})

    assert answer.status == 415, answer.body
    assert live_count(redis, community.community_id) == 0


@pytest.mark.parametrize("content_type", ["application/json", "text/plain"])
def test_a_json_array_is_not_a_beacon(community: Community, redis: Redis, content_type: str) -> None:
    body = json.dumps([{"url": "https://x.example/c/", "visitor_id": "tab-media-0001"}])

    answer = beacon(community.community_id, body, headers={"content-type": content_type})

    assert answer.status == 422, answer.body
    assert answer.json()["error"]["code"] == "validation_error"
    assert "body" in answer.json()["error"]["message"]
    assert "object" in answer.json()["error"]["message"]
    assert live_count(redis, community.community_id) == 0


@pytest.mark.parametrize("kind", ["visits", "heartbeat", "leave"])
def test_a_body_without_a_media_type_is_415(community: Community, redis: Redis, kind: str) -> None:
    answer = beacon(community.community_id, PAGE, kind=kind, headers={})

    assert answer.status == 415, answer.body
    assert answer.json()["error"]["code"] == "unsupported_media_type"
    assert live_count(redis, community.community_id) == 0


def _put_community(body: str, content_type: str | None) -> HttpAnswer:
    admin = mint_token(get_settings(), "ops", roles=["admin"])
    headers = {"authorization": f"Bearer {admin}"}
    if content_type is not None:
        headers["content-type"] = content_type
    event = api_request(
        "PUT",
        "/v1/communities/media-test",
        template="/v1/communities/{community_id}",
        path_parameters={"community_id": "media-test"},
        body=body,
        headers=headers,
    )
    return call(lambda_handler, event)


def test_community_registration_reads_media_types_the_same_way(function_env: None) -> None:
    body = json.dumps({"slug": "media-test", "name": "Media", "division_id": "quebec"})

    assert _put_community(body, "APPLICATION/JSON; charset=utf-8").status == 200
    assert _put_community(body, None).status == 415
    assert _put_community(f"[{body}]", "application/json").status == 422


# -- Vary: Origin ------------------------------------------------------------------------------

SECOND_ORIGIN = "http://127.0.0.1:3000"  # the default settings allow two origins


def test_an_echoed_origin_varies_on_origin(community: Community) -> None:
    assert len(get_settings().cors_origins) == 2
    preflight = load_event("cors_preflight")
    preflight["headers"]["origin"] = SECOND_ORIGIN

    answers: dict[str, Any] = {
        "preflight": call(lambda_handler, preflight),
        "counted": beacon(
            community.community_id, PAGE, headers={"content-type": "text/plain", "origin": SECOND_ORIGIN}
        ),
        "refused": beacon(community.community_id, "{", headers={"content-type": "text/plain", "origin": SECOND_ORIGIN}),
    }

    for name, answer in answers.items():
        assert answer.headers["access-control-allow-origin"] == SECOND_ORIGIN, name
        assert "origin" in [v.strip().lower() for v in answer.headers.get("vary", "").split(",")], name


def test_an_answer_to_a_foreign_origin_still_varies_on_origin(community: Community) -> None:
    answer = beacon(
        community.community_id, PAGE, headers={"content-type": "text/plain", "origin": "https://evil.example"}
    )

    assert "access-control-allow-origin" not in answer.headers
    assert answer.headers["vary"] == "Origin"  # a cache must not hand this to an allowed origin
