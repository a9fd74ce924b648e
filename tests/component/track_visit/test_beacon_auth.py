"""The edges of a beacon's identity: a malformed `Authorization` header, tokens that disagree, and
claims that must never become a 500 (README, "Identity")."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis import Redis

from community_tracker.models import Community
from community_tracker.redis.keys import CommunityKeys
from community_tracker.settings import get_settings
from infra.redis_servers import RedisProcess
from infra.tokens import mint_token
from tests.helpers import beacon

PAGE = {"url": "https://x.example/c/", "visitor_id": "tab-auth-0001"}


@pytest.fixture
def redis(redis_server: RedisProcess) -> Iterator[Redis]:
    client = redis_server.client()
    yield client
    client.close()


def live_count(redis: Redis, community_id: str) -> int:
    return int(redis.zcard(CommunityKeys(community_id).live))


def hs256(payload: dict[str, Any]) -> str:
    """Signed with the process's secret, by hand: PyJWT will not encode every claim sent here."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = f"{b64(json.dumps({'alg': 'HS256', 'typ': 'JWT'}).encode())}.{b64(json.dumps(payload).encode())}"
    signature = hmac.new(get_settings().jwt_secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def claims(**overrides: Any) -> dict[str, Any]:
    config = get_settings()
    now = int(time.time())
    return {
        "sub": "u-1",
        "iss": config.jwt_issuer,
        "aud": config.jwt_audience,
        "iat": now,
        "exp": now + 600,
        **overrides,
    }


@pytest.mark.parametrize(
    "authorization",
    ["Basic dXNlcjpwYXNzd29yZA==", "Token {token}", "{token}", "Bearer ", "Bearer", "Bearer not-a-jwt", "Digest x"],
)
@pytest.mark.parametrize("kind", ["visits", "heartbeat", "leave"])
def test_a_malformed_authorization_header_is_401_never_anonymous(
    community: Community, redis: Redis, authorization: str, kind: str
) -> None:
    header = authorization.format(token=mint_token(get_settings(), "user-1"))

    answer = beacon(community.community_id, PAGE, kind=kind, headers={"authorization": header})

    assert answer.status == 401, answer.body
    assert answer.json()["error"]["code"] == "invalid_token"
    assert "Authorization" in answer.json()["error"]["message"]
    assert answer.headers["www-authenticate"].startswith("Bearer")
    assert live_count(redis, community.community_id) == 0


def test_header_and_body_tokens_that_disagree_are_401(community: Community, redis: Redis) -> None:
    header = mint_token(get_settings(), "alice")
    body = mint_token(get_settings(), "mallory")

    answer = beacon(community.community_id, {**PAGE, "token": body}, headers={"authorization": f"Bearer {header}"})

    assert answer.status == 401, answer.body
    assert "different tokens" in answer.json()["error"]["message"]
    assert live_count(redis, community.community_id) == 0


def test_the_same_token_in_header_and_body_is_one_user(community: Community, redis: Redis) -> None:
    token = mint_token(get_settings(), "alice")

    answer = beacon(community.community_id, {**PAGE, "token": token}, headers={"authorization": f"Bearer {token}"})

    assert answer.status == 200, answer.body
    assert redis.zscore(CommunityKeys(community.community_id).live, "u:alice") is not None


@pytest.mark.parametrize("sub", ["\ud800", "alice\udfff", "alice\n", "bob\r\n"])
def test_a_subject_that_is_not_a_user_id_is_401_not_500(community: Community, redis: Redis, sub: str) -> None:
    answer = beacon(community.community_id, PAGE, headers={"authorization": f"Bearer {hs256(claims(sub=sub))}"})

    assert answer.status == 401, answer.body
    assert "subject" in answer.json()["error"]["message"]
    assert live_count(redis, community.community_id) == 0


def test_a_subject_with_a_provider_prefix_is_a_user(community: Community, redis: Redis) -> None:
    answer = beacon(community.community_id, PAGE, headers={"authorization": f"Bearer {hs256(claims(sub='auth0|abc'))}"})

    assert answer.status == 200, answer.body
    assert redis.zscore(CommunityKeys(community.community_id).live, "u:auth0|abc") is not None


CLAIM_VALUES = st.one_of(
    st.text(max_size=12),
    st.integers(),
    st.floats(),
    st.booleans(),
    st.none(),
    st.lists(st.text(max_size=4), max_size=2),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.dictionaries(
        st.sampled_from(["sub", "exp", "iat", "nbf", "division_id", "roles"]), CLAIM_VALUES, min_size=1, max_size=3
    )
)
def test_no_claim_is_ever_a_500(community: Community, fuzzed: dict[str, Any]) -> None:
    answer = beacon(community.community_id, PAGE, headers={"authorization": f"Bearer {hs256(claims(**fuzzed))}"})

    assert answer.status in {200, 401}, answer.body
