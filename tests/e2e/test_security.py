"""Security, black-box over HTTP against the local system: each attack gets its refusal, and
nothing identifying (session id, client id, token, IP) ever reaches a log line or Redis."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import cast

import jwt
import pytest
from redis import Redis

from community_tracker.settings import Settings
from infra.redis_servers import free_port
from infra.tokens import mint_token
from tests.e2e.conftest import LocalSystem, start_local_system, stop_local_system

SETTINGS = Settings()  # the local run's defaults


@pytest.fixture(scope="module")
def system() -> Iterator[LocalSystem]:
    """A system of its own with a tiny rate limit, logging at INFO so every log line is checked."""
    started = start_local_system(
        free_port(),
        free_port(),
        extra_env={"VT_RATE_LIMIT_PER_MINUTE": "3", "POWERTOOLS_LOG_LEVEL": "INFO"},
    )
    yield started
    stop_local_system(started)


def admin() -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(SETTINGS, 'ops', roles=['admin'])}"}


def community(system: LocalSystem) -> str:
    community_id = f"sec-{uuid.uuid4().hex[:8]}"
    answer = system.request("PUT", f"/v1/communities/{community_id}", {"slug": "s", "name": "n"}, admin())
    assert answer.status == 200
    return community_id


def redis_of(system: LocalSystem) -> Redis:
    line = next(line for line in system.output if line.strip().startswith("Redis "))
    return Redis.from_url(line.split()[1], decode_responses=True)


FORGED = {
    "none": jwt.encode({"sub": "mallory", "iss": SETTINGS.jwt_issuer, "aud": SETTINGS.jwt_audience}, None, "none"),  # type: ignore[arg-type]
    "expired": mint_token(SETTINGS, "mallory", ttl_seconds=-600),
    "wrong issuer": mint_token(SETTINGS, "mallory", iss="https://evil.example"),
    "wrong audience": mint_token(SETTINGS, "mallory", aud="someone-else"),
    "alg confusion": jwt.encode(
        {"sub": "mallory", "iss": SETTINGS.jwt_issuer, "aud": SETTINGS.jwt_audience, "exp": 4102444800},
        SETTINGS.jwt_secret,
        algorithm="HS512",
    ),
    "tampered": mint_token(SETTINGS, "mallory").rsplit(".", 1)[0] + ".c2lnbmF0dXJl",
}


@pytest.mark.parametrize("kind", sorted(FORGED))
def test_forged_tokens_are_refused_everywhere(system: LocalSystem, kind: str) -> None:
    cid = community(system)
    header = {"Authorization": f"Bearer {FORGED[kind]}"}

    beacon = system.request("POST", f"/v1/communities/{cid}/visits", {"url": "https://x/"}, header)
    in_body = system.request("POST", f"/v1/communities/{cid}/visits", {"url": "https://x/", "token": FORGED[kind]})
    stats = system.request("GET", f"/v1/communities/{cid}/stats", headers=header)

    assert (beacon.status, in_body.status, stats.status) == (401, 401, 401)
    assert redis_of(system).zcard(f"{{c:{cid}}}:live") == 0


def test_spoofed_ids_in_body_and_headers_change_nothing(system: LocalSystem) -> None:
    cid = community(system)
    spoof = {"X-Forwarded-For": "10.9.8.7", "X-User-Id": "admin", "X-Division-Id": "montreal"}

    answer = system.request(
        "POST",
        f"/v1/communities/{cid}/visits",
        {"url": "https://x/", "user_id": "admin", "division_id": "montreal", "is_authenticated": True},
        spoof,
    )

    assert answer.status == 200
    assert answer.json()["visitor_division"] is None
    [member] = cast(list[str], redis_of(system).zrange(f"{{c:{cid}}}:live", 0, -1))
    assert member.startswith("a:")


def test_rate_limit_ignores_a_spoofed_forwarded_for(system: LocalSystem) -> None:
    cid = community(system)
    statuses = [
        system.request(
            "POST",
            f"/v1/communities/{cid}/visits",
            {"url": "https://x/", "visitor_id": f"tab-rate-{i:06d}"},
            {"X-Forwarded-For": f"203.0.113.{i}"},  # a new "address" each time: not believed
        ).status
        for i in range(4)
    ]

    assert statuses == [200, 200, 200, 429]


def test_cors_is_refused_to_foreign_origins(system: LocalSystem) -> None:
    cid = community(system)
    for method in ("POST", "GET"):
        preflight = system.request(
            "OPTIONS",
            f"/v1/communities/{cid}/{'visits' if method == 'POST' else 'stats'}",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": method},
        )
        assert "access-control-allow-origin" not in preflight.headers
    simple = system.request(
        "POST", f"/v1/communities/{cid}/visits", {"url": "https://x/"}, {"Origin": "https://evil.example"}
    )
    assert "access-control-allow-origin" not in simple.headers


def test_stats_without_a_token_and_other_users_histories_are_refused(system: LocalSystem) -> None:
    cid = community(system)
    alice = {"Authorization": f"Bearer {mint_token(SETTINGS, 'alice')}"}

    assert system.request("GET", f"/v1/communities/{cid}/summary").status == 401
    assert system.request("GET", f"/v1/communities/{cid}/visitors", headers=alice).status == 403
    assert system.request("GET", "/v1/users/bob/visits", headers=alice).status == 403
    assert system.request("GET", "/v1/users/bob/visits/export", headers=alice).status == 403
    assert system.request("DELETE", "/v1/users/bob/visits", headers=alice).status == 403
    assert system.request("GET", "/v1/users/alice/visits", headers=alice).status == 200


def test_oversized_bodies_are_refused(system: LocalSystem) -> None:
    cid = community(system)
    body = json.dumps({"url": "https://x/" + "a" * 10_000}).encode()

    answer = system.request("POST", f"/v1/communities/{cid}/visits", body, {"Content-Type": "text/plain"})

    assert answer.status == 413
    assert answer.json()["error"]["code"] == "body_too_large"


def test_random_community_ids_never_create_keys(system: LocalSystem) -> None:
    redis = redis_of(system)
    before = redis.dbsize()

    statuses = {
        system.request("POST", f"/v1/communities/{uuid.uuid4().hex}/{kind}", {"url": "https://x/"}).status
        for kind in ("visits", "heartbeat", "leave")
        for _ in range(20)
    }

    assert statuses == {404}
    assert redis.dbsize() == before


def test_nothing_identifying_reaches_any_log_line(system: LocalSystem) -> None:
    cid = community(system)
    session_id = f"tab-SECRET-{uuid.uuid4().hex[:12]}"
    token = mint_token(SETTINGS, "log-user", division_id="laval")
    bad_token = FORGED["tampered"]

    system.request("POST", f"/v1/communities/{cid}/visits", {"url": "https://x/?sid=abc", "visitor_id": session_id})
    system.request(
        "POST", f"/v1/communities/{cid}/visits", {"url": "https://x/", "visitor_id": session_id, "token": token}
    )
    system.request(
        "POST", f"/v1/communities/{cid}/heartbeat", {"visitor_id": session_id}, {"Authorization": f"Bearer {bad_token}"}
    )
    system.request("GET", f"/v1/communities/{cid}/summary", headers={"Authorization": f"Bearer {token}"})
    system.request("POST", f"/v1/communities/{cid}/visits", b"{broken", {"Content-Type": "application/json"})
    system.request("POST", "/_local/cleanup")

    ready = next(i for i, line in enumerate(system.output) if line.startswith("READY "))

    def logs() -> str:
        return "".join(system.output[ready + 1 :])  # the banner itself names 127.0.0.1 (Redis's URL)

    # The child's output is read by a thread: wait until the last request's log line is in
    deadline = time.monotonic() + 10
    while '"message":"cleanup pass"' not in logs() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert '"message":"cleanup pass"' in logs()  # INFO lines of the functions are in there
    for secret in (session_id, token, bad_token, "127.0.0.1", "sid=abc"):
        assert secret not in logs(), secret
    stored = redis_of(system)
    assert not [key for key in stored.keys("*") if session_id in key or "127.0.0.1" in key]
