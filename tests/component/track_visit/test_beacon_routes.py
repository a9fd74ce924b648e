"""The beacon function end to end in-process: API Gateway v2 events in, real Redis, moto DynamoDB."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any, cast

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.retries.standard import ExponentialBackoff
from redis import Redis

from community_tracker.aws.stores import get_stores
from community_tracker.factories import reset_factories
from community_tracker.models import Community
from community_tracker.observability import logger
from community_tracker.redis.keys import CommunityKeys
from community_tracker.redis.live_state import get_tracker
from community_tracker.settings import get_settings
from infra.redis_servers import RedisProcess
from infra.tokens import mint_token
from tests.builders import MINUTE, T0
from tests.helpers import (
    DYNAMODB_ERROR_TYPE,
    HttpAnswer,
    api_request,
    aws_error,
    beacon,
    call,
    load_event,
    only_this_answers,
)
from track_visit.handler import lambda_handler


@pytest.fixture
def redis(redis_server: RedisProcess) -> Iterator[Redis]:
    client = redis_server.client()
    yield client
    client.close()


def token(user_id: str = "user-1", **kwargs: Any) -> str:
    return mint_token(get_settings(), user_id, **kwargs)


def bearer(user_id: str = "user-1", **kwargs: Any) -> dict[str, str]:
    return {"authorization": f"Bearer {token(user_id, **kwargs)}"}


def visit_items(community_id: str) -> list[dict[str, Any]]:
    table = boto3.resource("dynamodb", region_name="us-east-1").Table(get_settings().table_name)
    response = table.query(
        KeyConditionExpression="PK = :pk AND begins_with(SK, :visit)",
        ExpressionAttributeValues={":pk": f"COMMUNITY#{community_id}", ":visit": "VISIT#"},
    )
    return response["Items"]


def live_count(redis: Redis, community_id: str) -> int:
    return int(redis.zcard(CommunityKeys(community_id).live))


# -- the sample events -------------------------------------------------------------------------


@pytest.mark.parametrize("sample", ["beacon_visit", "beacon_visit_text_plain"])
def test_sample_events_are_counted(function_env: None, redis: Redis, sample: str) -> None:
    # Given the community of the sample events
    get_stores().communities.put(
        Community(community_id="quebec-city", slug="quebec-city", name="Quebec City", division_id="quebec")
    )
    event = load_event(sample)
    before = live_count(redis, "quebec-city")

    # When API Gateway delivers the sample beacon
    answer = call(lambda_handler, event)

    # Then it is counted, and the answer is the add_visitor shape
    assert answer.status == 200, answer.body
    assert set(answer.json()) == {
        "current_count",
        "is_cross_division",
        "visitor_division",
        "community_division",
        "timestamp",
        "event_id",
        "event_id_generated",
    }
    assert answer.json()["community_division"] == "quebec"
    assert answer.headers["access-control-allow-origin"] == "http://localhost:3000"
    assert live_count(redis, "quebec-city") in {before, before + 1}  # the same sample id twice is one


# -- anonymous and authenticated page views ----------------------------------------------------


def test_anonymous_visit_is_live_but_leaves_no_history(community: Community, redis: Redis) -> None:
    answer = beacon(community.community_id, {"url": "https://x.example/c/", "visitor_id": "tab-aaaaaaaa"})

    assert answer.status == 200
    assert answer.json()["current_count"] == 1
    assert answer.json()["visitor_division"] is None
    assert visit_items(community.community_id) == []


def test_authenticated_visit_writes_one_community_visit_event(community: Community) -> None:
    answer = beacon(
        community.community_id,
        {
            "event_id": "evt-auth-00000001",
            "url": "https://platform.example/communities/quebec-city/?session=abc#top",
            "referrer": "https://platform.example/?q=search",
        },
        headers=bearer("user-42", division_id="montreal"),
    )

    assert answer.status == 200, answer.body
    assert answer.json()["is_cross_division"] is True
    [item] = visit_items(community.community_id)
    assert item["SK"].startswith("VISIT#2031-03-05T12:00:00.000Z#evt-auth-00000001")
    assert item["GSI1PK"] == "USER#user-42"
    assert item["event_type"] == "community_visit"
    assert item["user_id"] == "user-42"
    assert item["timestamp"] == "2031-03-05T12:00:00.000Z"
    assert item["metadata"] == {
        "community_id": community.community_id,
        "community_slug": "quebec-city",
        "visitor_division_id": "montreal",
        "community_division_id": "quebec",
        "is_cross_division": True,
        "is_authenticated": True,
        "url": "https://platform.example/communities/quebec-city/",
        "referrer": "https://platform.example/",
    }


def test_token_in_the_body_is_verified_like_the_header(community: Community, redis: Redis) -> None:
    answer = beacon(
        community.community_id,
        {"url": "https://x.example/", "token": token("beacon-user", division_id="laval")},
        headers={"content-type": "text/plain;charset=UTF-8"},
    )

    assert answer.status == 200, answer.body
    assert answer.json()["visitor_division"] == "laval"
    assert redis.zscore(CommunityKeys(community.community_id).live, "u:beacon-user") == T0


def test_a_retried_beacon_is_counted_once_and_stored_once(community: Community, redis: Redis) -> None:
    body = {"event_id": "evt-retry-000001", "url": "https://x.example/"}

    first = beacon(community.community_id, body, headers=bearer("user-r"))
    retry = beacon(community.community_id, body, headers=bearer("user-r"), now_ms=T0 + 2000)

    assert first.status == retry.status == 200
    assert retry.headers["x-beacon-duplicate"] == "true"
    assert len(visit_items(community.community_id)) == 1
    assert live_count(redis, community.community_id) == 1


def test_login_folds_the_anonymous_entry_into_the_user(community: Community) -> None:
    cid = community.community_id
    beacon(cid, {"url": "https://x.example/a", "visitor_id": "tab-login-0001"})
    beacon(cid, {"url": "https://x.example/b", "visitor_id": "tab-login-0001"}, now_ms=T0 + 1000)

    answer = beacon(
        cid,
        {"url": "https://x.example/c", "visitor_id": "tab-login-0001"},
        headers=bearer("user-m"),
        now_ms=T0 + 2000,
    )

    assert answer.json()["current_count"] == 1
    visitors = get_tracker().get_visitor_list(cid, T0 + 3000).visitors
    assert [(v.user_id, v.pages_viewed) for v in visitors] == [("user-m", 3)]


# -- heartbeat and leave -----------------------------------------------------------------------


def test_heartbeat_and_leave(community: Community, redis: Redis) -> None:
    cid = community.community_id
    body = {"visitor_id": "tab-hb-000001"}
    beacon(cid, {**body, "url": "https://x.example/"})

    alive = beacon(cid, body, kind="heartbeat", now_ms=T0 + 4 * MINUTE)
    late = beacon(cid, {"visitor_id": "tab-hb-unknown"}, kind="heartbeat", now_ms=T0 + 4 * MINUTE)
    left = beacon(cid, body, kind="leave", now_ms=T0 + 5 * MINUTE)
    after_grace = beacon(cid, {"visitor_id": "tab-hb-other"}, kind="heartbeat", now_ms=T0 + 5 * MINUTE + 15_000)

    assert (alive.status, alive.json()["active"], alive.json()["current_count"]) == (200, True, 1)
    assert (late.status, late.json()["active"]) == (200, False)
    # The leave takes effect after its grace (the next page of the same visit would cancel it)
    assert (left.status, left.json()["current_count"]) == (200, 1)
    assert after_grace.json()["current_count"] == 0
    assert live_count(redis, cid) == 0


# -- CORS --------------------------------------------------------------------------------------


def test_cors_preflight_for_an_allowed_origin(function_env: None) -> None:
    answer = call(lambda_handler, load_event("cors_preflight"))

    assert answer.status == 204
    assert answer.headers["access-control-allow-origin"] == "http://localhost:3000"
    assert "POST" in answer.headers["access-control-allow-methods"]
    assert "authorization" in answer.headers["access-control-allow-headers"].lower()


def test_no_cors_grant_for_a_foreign_origin(community: Community) -> None:
    preflight = load_event("cors_preflight")
    preflight["headers"]["origin"] = "https://evil.example"

    refused = call(lambda_handler, preflight)
    posted = beacon(community.community_id, {"url": "https://x.example/"}, headers={"origin": "https://evil.example"})

    assert "access-control-allow-origin" not in refused.headers
    assert "access-control-allow-origin" not in posted.headers


# -- refusals ----------------------------------------------------------------------------------


def test_unknown_community_is_404_and_creates_no_key(function_env: None, redis: Redis) -> None:
    answer = beacon("no-such-community", {"url": "https://x.example/"})

    assert answer.status == 404
    assert answer.json()["error"]["code"] == "unknown_community"
    assert redis.keys("*no-such-community*") == []


@pytest.mark.parametrize(
    ("body", "headers", "status", "code", "mentions"),
    [
        ({"visitor_id": "tab-aaaaaaaa"}, {}, 422, "validation_error", "body.url"),
        ({"url": 12}, {}, 422, "validation_error", "body.url"),
        ({"url": "https://x.example/", "event_id": "bad id!"}, {}, 422, "validation_error", "body.event_id"),
        (
            {"url": "https://x.example/", "visitor_id": "short"},
            {},
            422,
            "validation_error",
            "body.visitor_id",
        ),
        ('{"url": ', {"content-type": "application/json"}, 400, "invalid_json", "JSON"),
        ("[" * 3000, {"content-type": "text/plain"}, 400, "invalid_json", "nested"),
        ("x" * 5000, {"content-type": "text/plain"}, 413, "body_too_large", "4096"),
        ("<visit/>", {"content-type": "application/xml"}, 415, "unsupported_media_type", "text/plain"),
        ([1, 2], {}, 422, "validation_error", "body"),
    ],
)
def test_bad_input_is_a_4xx_naming_the_problem(
    community: Community,
    redis: Redis,
    body: Any,
    headers: dict[str, str],
    status: int,
    code: str,
    mentions: str,
) -> None:
    payload = json.dumps(body) if isinstance(body, list) else body
    if isinstance(body, list):
        headers = {"content-type": "application/json"}

    answer = beacon(community.community_id, payload, headers=headers)

    assert answer.status == status, answer.body
    assert answer.json()["error"]["code"] == code
    assert mentions in answer.json()["error"]["message"]
    assert live_count(redis, community.community_id) == 0


def test_invalid_community_id_is_refused(function_env: None) -> None:
    answer = beacon("{c:evil}", {"url": "https://x.example/"})

    assert answer.status == 422
    assert "community_id" in answer.json()["error"]["message"]


def test_a_body_cannot_set_a_user_or_a_division(community: Community, redis: Redis) -> None:
    answer = beacon(
        community.community_id,
        {
            "url": "https://x.example/",
            "visitor_id": "tab-spoof-0001",
            "user_id": "admin",
            "division_id": "montreal",
            "is_authenticated": True,
        },
    )

    assert answer.status == 200
    assert answer.json()["visitor_division"] is None
    [member] = cast(list[str], redis.zrange(CommunityKeys(community.community_id).live, 0, -1))
    assert member.startswith("a:")
    assert visit_items(community.community_id) == []


# -- login tokens ------------------------------------------------------------------------------


def _forged_tokens() -> dict[str, str]:
    import jwt

    settings = get_settings()
    claims = {"sub": "mallory", "iss": settings.jwt_issuer, "aud": settings.jwt_audience, "exp": 4102444800}
    return {
        "expired": mint_token(settings, "mallory", ttl_seconds=-3600),
        "wrong audience": mint_token(settings, "mallory", aud="another-service"),
        "wrong issuer": mint_token(settings, "mallory", iss="https://evil.example"),
        "wrong secret": jwt.encode(claims, "not-the-secret-at-all-0123456789", algorithm="HS256"),
        "alg none": jwt.encode(claims, None, algorithm="none"),  # type: ignore[arg-type]
        "no subject": jwt.encode({k: v for k, v in claims.items() if k != "sub"}, settings.jwt_secret),
        "garbage": "not.a.token",
        "tampered": mint_token(settings, "mallory")[:-4] + "AAAA",
    }


@pytest.mark.parametrize(
    "kind",
    [
        "expired",
        "wrong audience",
        "wrong issuer",
        "wrong secret",
        "alg none",
        "no subject",
        "garbage",
        "tampered",
    ],
)
def test_a_bad_token_is_401_never_anonymous(community: Community, redis: Redis, kind: str) -> None:
    forged = _forged_tokens()[kind]

    in_header = beacon(
        community.community_id, {"url": "https://x.example/"}, headers={"authorization": f"Bearer {forged}"}
    )
    in_body = beacon(community.community_id, {"url": "https://x.example/", "token": forged})

    assert in_header.status == in_body.status == 401
    assert in_header.json()["error"]["code"] == "invalid_token"
    assert in_header.headers["www-authenticate"].startswith("Bearer")
    assert live_count(redis, community.community_id) == 0
    assert visit_items(community.community_id) == []


# -- not counted -------------------------------------------------------------------------------


@pytest.mark.parametrize("agent", ["Googlebot/2.1 (+http://www.google.com/bot.html)", "HeadlessChrome/120.0", ""])
def test_bots_are_accepted_but_not_counted(community: Community, redis: Redis, agent: str) -> None:
    answer = beacon(community.community_id, {"url": "https://x.example/"}, headers={"user-agent": agent})

    assert answer.status == 202
    assert answer.headers["x-beacon-dropped"] == "bot"
    assert answer.json()["counted"] is False
    assert live_count(redis, community.community_id) == 0
    assert redis.hget(CommunityKeys(community.community_id).drops("2031-03-05@UTC"), "bot") == "1"


def test_rate_limit_answers_429_with_retry_after(
    community: Community, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VT_RATE_LIMIT_PER_MINUTE", "2")
    reset_factories()
    answers = [
        beacon(
            community.community_id,
            {"url": "https://x.example/", "visitor_id": f"tab-rate-{i:04d}"},
            now_ms=T0 + i,
        )
        for i in range(3)
    ]

    assert [a.status for a in answers] == [200, 200, 429]
    assert answers[2].json()["error"]["code"] == "rate_limited"
    assert answers[2].headers["retry-after"] == "60"
    assert live_count(redis, community.community_id) == 2


def test_debug_explains_without_counting(community: Community, redis: Redis) -> None:
    answer = beacon(
        community.community_id,
        {"url": "https://x.example/", "visitor_id": "tab-debug-001"},
        headers=bearer("user-d", division_id="laval"),
        query="debug=1",
    )

    assert answer.status == 200
    assert answer.json() == {
        "would_count": True,
        "reason": None,
        "visitor": "authenticated",
        "visitor_division": "laval",
        "community_division": "quebec",
        "is_cross_division": True,
        "merges_anonymous_entry": True,
    }
    assert live_count(redis, community.community_id) == 0
    assert visit_items(community.community_id) == []


def test_debug_of_a_bot_says_it_would_not_count_and_counts_no_drop(community: Community, redis: Redis) -> None:
    # Given a crawler asking what its beacon would do
    answer = beacon(
        community.community_id,
        {"url": "https://x.example/"},
        headers={"user-agent": "Googlebot/2.1 (+http://www.google.com/bot.html)"},
        query="debug=1",
    )

    # Then it is told, and nothing at all is written (not even the bot drop counter)
    assert answer.status == 200
    assert answer.json()["would_count"] is False
    assert "automated" in answer.json()["reason"]
    assert redis.exists(CommunityKeys(community.community_id).drops("2031-03-05@UTC")) == 0


def test_debug_of_a_retry_says_it_is_a_duplicate(community: Community, redis: Redis) -> None:
    # Given a page view that was counted
    body = {"url": "https://x.example/", "visitor_id": "tab-debug-002", "event_id": "evt-debug-0001"}
    assert beacon(community.community_id, body).status == 200

    # When the same beacon is explained
    answer = beacon(community.community_id, body, query="debug=1")

    # Then it would not count again
    assert answer.status == 200
    assert answer.json()["would_count"] is False
    assert "duplicate" in answer.json()["reason"]
    assert live_count(redis, community.community_id) == 1


# -- outages -----------------------------------------------------------------------------------


@pytest.fixture
def redis_down(function_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VT_REDIS_URL", "redis://127.0.0.1:1/0")
    monkeypatch.setenv("VT_REDIS_SOCKET_TIMEOUT_SECONDS", "0.2")
    reset_factories()


def test_redis_down_keeps_the_authenticated_event(community: Community, redis_down: None) -> None:
    answer = beacon(
        community.community_id, {"event_id": "evt-down-000001", "url": "https://x.example/"}, headers=bearer()
    )

    assert answer.status == 202
    assert answer.headers["x-live-state"] == "not-updated"
    assert answer.json() == {"counted": False, "reason": "live state unavailable", "history_recorded": True}
    assert len(visit_items(community.community_id)) == 1


def test_redis_down_refuses_anonymous_beacons_with_503(community: Community, redis_down: None) -> None:
    for kind in ("visits", "heartbeat", "leave"):
        answer = beacon(community.community_id, {"url": "https://x.example/"}, kind=kind)

        assert answer.status == 503
        assert answer.json()["error"]["code"] == "live_state_unavailable"
        assert answer.headers["retry-after"] == "5"


def test_dynamodb_throttling_after_retries_is_503(
    community: Community, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    # botocore retries as configured; only its backoff sleeps are skipped to keep the test quick
    monkeypatch.setattr(ExponentialBackoff, "delay_amount", lambda _self, _context: 0)
    attempts: list[str] = []

    def throttle(**kwargs: Any) -> AWSResponse:
        attempts.append("TransactWriteItems")
        return aws_error(400, "ProvisionedThroughputExceededException", json_type=DYNAMODB_ERROR_TYPE)

    client = get_stores().visits._table.meta.client
    with only_this_answers(client, "before-send.dynamodb.TransactWriteItems", throttle):
        answer = beacon(
            community.community_id,
            {"event_id": "evt-throttle-001", "url": "https://x.example/"},
            headers=bearer(),
        )

    assert answer.status == 503
    assert answer.json()["error"]["code"] == "history_unavailable"
    assert answer.headers["retry-after"] == "5"
    assert len(attempts) == 2  # the first try and the one retry that fits the function's timeout
    assert visit_items(community.community_id) == []  # the failure reached the code: nothing stored
    retry = beacon(
        community.community_id,
        {"event_id": "evt-throttle-001", "url": "https://x.example/"},
        headers=bearer(),
        now_ms=T0 + 5000,
    )
    assert retry.status == 200
    [item] = visit_items(community.community_id)
    assert item["timestamp"] == "2031-03-05T12:00:00.000Z"  # the first attempt's time: one record


# -- community registration --------------------------------------------------------------------


def _put_community(community_id: str, body: Any, headers: dict[str, str]) -> HttpAnswer:
    event = api_request(
        "PUT",
        f"/v1/communities/{community_id}",
        template="/v1/communities/{community_id}",
        path_parameters={"community_id": community_id},
        body=body,
        headers=headers,
    )
    return call(lambda_handler, event)


def test_admin_registers_a_community(function_env: None) -> None:
    answer = _put_community(
        "laval-north",
        {"slug": "laval-north", "name": "Laval North", "division_id": "laval"},
        bearer(roles=["admin"]),
    )

    assert answer.status == 200, answer.body
    assert answer.json() == {
        "community_id": "laval-north",
        "slug": "laval-north",
        "name": "Laval North",
        "division_id": "laval",
        "time_zone": "UTC",
        "zone_history": [],
        "version": 1,
        "parts": 1,
        "history_parts": 1,
    }
    assert get_stores().communities.get("laval-north") is not None


@pytest.mark.parametrize(
    ("caller", "body", "status"),
    [
        (None, {"slug": "s", "name": "n"}, 401),
        ("user", {"slug": "s", "name": "n"}, 403),
        ("admin", {"slug": "s", "name": "n", "division_id": "bad division!"}, 422),
        ("admin", {"name": "n"}, 422),
    ],
)
def test_community_registration_refusals(function_env: None, caller: str | None, body: Any, status: int) -> None:
    headers = {"user": bearer(), "admin": bearer(roles=["admin"])}[caller] if caller else {}

    answer = _put_community("refused-one", body, headers)

    assert answer.status == status, answer.body
    assert get_stores().communities.get("refused-one") is None


# -- nothing identifying is kept ---------------------------------------------------------------


def test_no_raw_session_or_client_id_anywhere(
    community: Community, redis_server: RedisProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    raw_redis = Redis.from_url(redis_server.url)
    secret_session = "tab-SECRET-SESSION-77"
    secret_ip = "203.0.113.199"
    answers = [
        beacon(
            community.community_id,
            {"url": "https://x.example/", "visitor_id": secret_session},
            source_ip=secret_ip,
        ),
        beacon(community.community_id, {"visitor_id": secret_session}, kind="heartbeat", source_ip=secret_ip),
        beacon(community.community_id, {"url": "https://x.example/"}, source_ip=secret_ip),
        beacon(
            community.community_id,
            {"url": "https://x.example/", "visitor_id": secret_session},
            headers=bearer("user-p"),
            source_ip=secret_ip,
        ),
    ]

    items = visit_items(community.community_id)
    texts = [json.dumps(items, default=str), *(a.body for a in answers), capsys.readouterr().out]
    for secret in (secret_session, secret_ip):
        assert secret.encode() not in _everything_in_redis(raw_redis)
        assert all(secret not in text for text in texts)


def test_no_raw_id_or_token_in_powertools_debug_logs(community: Community, caplog: pytest.LogCaptureFixture) -> None:
    # Given Powertools' own debug logging on (POWERTOOLS_DEBUG), which formats each route's arguments
    secret_browser, secret_tab, secret_token = "browser-SECRET-55", "tab-SECRET-66", token("user-q")
    body = {"url": "https://x.example/", "visitor_id": secret_browser, "connection_id": secret_tab}

    # When beacons carry a browser id, a tab id and (sendBeacon) a body token
    with caplog.at_level(logging.DEBUG, logger="aws_lambda_powertools"):
        answers = [
            beacon(community.community_id, body),
            beacon(community.community_id, {**body, "token": secret_token}, kind="heartbeat"),
        ]

    # Then they were handled, and no log line holds any of them
    assert [a.status for a in answers] == [200, 200]
    assert any("Calling API Route Handler" in r.getMessage() for r in caplog.records)
    for secret in (secret_browser, secret_tab, secret_token):
        assert all(secret not in r.getMessage() for r in caplog.records)


def _everything_in_redis(redis: Redis) -> bytes:
    """Every key and value, as bytes (HyperLogLogs are binary strings; the client does not decode)."""
    parts: list[bytes] = []
    for key in cast(list[bytes], redis.keys("*")):
        kind = redis.type(key)
        parts.append(key)
        if kind == b"string":
            parts.append(cast(bytes, redis.get(key)))
        elif kind == b"hash":
            parts.extend(field + b"=" + value for field, value in cast(dict[bytes, bytes], redis.hgetall(key)).items())
        elif kind == b"zset":
            parts.extend(cast(list[bytes], redis.zrange(key, 0, -1)))
    return b"\n".join(parts)


def test_logs_carry_the_api_gateway_request_id(function_env: None, redis: Redis) -> None:
    # Given the sample beacon, which API Gateway gave a request id
    get_stores().communities.put(Community(community_id="quebec-city", slug="quebec-city", name="Quebec City"))
    event = load_event("beacon_visit")

    # When it is handled
    answer = call(lambda_handler, event)

    # Then the request's logs are correlated by that id
    assert answer.status == 200, answer.body
    assert logger.get_correlation_id() == event["requestContext"]["requestId"]


def test_metrics_are_emitted(community: Community, capsys: pytest.CaptureFixture[str]) -> None:
    beacon(community.community_id, {"url": "https://x.example/"}, headers=bearer(division_id="montreal"))

    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    emitted = {
        m["Name"] for line in lines for d in line.get("_aws", {}).get("CloudWatchMetrics", []) for m in d["Metrics"]
    }
    assert {"VisitsRecorded", "CrossDivisionVisits"} <= emitted


def test_malformed_beacons_are_counted_as_invalid_drops(community: Community, redis: Redis) -> None:
    beacon(community.community_id, {"visitor_id": "tab-aaaaaaaa"})
    beacon(community.community_id, "<x/>", headers={"content-type": "application/xml"})
    beacon(community.community_id, "x" * 5000, headers={"content-type": "text/plain"})
    beacon("not-registered", {"visitor_id": "tab-aaaaaaaa"})

    assert redis.hget(CommunityKeys(community.community_id).drops("2031-03-05@UTC"), "invalid") == "3"
    assert redis.keys("*not-registered*") == []


def test_a_page_view_s_new_tab_hint_reaches_the_tracker(community: Community, monkeypatch: pytest.MonkeyPatch) -> None:
    tracker = get_tracker()
    seen: list[bool] = []
    record = tracker.add_visitor

    def add_visitor(visit: Any, now_ms: int) -> Any:
        seen.append(visit.new_tab)
        return record(visit, now_ms)

    monkeypatch.setattr(tracker, "add_visitor", add_visitor)
    body = {"url": "https://x.example/", "visitor_id": "browser-hint-01", "connection_id": "tab-hint-0001"}

    first = beacon(community.community_id, {**body, "new_tab": True})
    second = beacon(community.community_id, body, now_ms=T0 + 1)
    wrong = beacon(community.community_id, {**body, "new_tab": 0}, now_ms=T0 + 2)

    assert (first.status, second.status) == (200, 200)
    assert seen == [True, False]
    # A hint of the wrong type is refused like any other malformed field, naming it
    assert wrong.status == 422
    assert "new_tab" in wrong.body
