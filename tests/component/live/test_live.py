"""Live push: the WebSocket routes, the connection registry and the pusher (real Redis, moto)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from community_tracker.factories import reset_factories
from community_tracker.live import Lease, LivePusher, run_pusher
from community_tracker.models import Community, PageContext
from community_tracker.redis.keys import SUBSCRIPTION_IDLE_MS
from community_tracker.redis.live_state import get_tracker
from community_tracker.redis.subscriptions import ConnectionRegistry
from community_tracker.settings import get_settings
from infra.tokens import mint_token
from live.handler import lambda_handler
from tests.builders import SECOND, T0, anonymous, user, visit
from tests.component.live.doubles import RecordingPoster
from tests.helpers import LambdaContext


def ws_event(route_key: str, connection_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "requestContext": {
            "routeKey": route_key,
            "connectionId": connection_id,
            "requestTimeEpoch": T0,
            "stage": "prod",
            "domainName": "ws.example",
        },
        **extra,
    }


def connect(community_id: str, token: str | None, connection_id: str = "conn-1") -> dict[str, Any]:
    query = {"community_id": community_id, **({"token": token} if token else {})}
    answer: dict[str, Any] = lambda_handler(
        ws_event("$connect", connection_id, queryStringParameters=query), LambdaContext()
    )
    return answer


def viewer_token() -> str:
    return mint_token(get_settings(), "viewer")


# -- the routes --------------------------------------------------------------------------------


def test_connect_subscribes_with_a_valid_token(community: Community, registry: ConnectionRegistry) -> None:
    assert connect(community.community_id, viewer_token())["statusCode"] == 200

    assert registry.connections(community.community_id, T0) == ["conn-1"]
    assert community.community_id in registry.communities()


@pytest.mark.parametrize(
    ("community_id", "token", "status"),
    [
        ("VALID", None, 401),
        ("VALID", "not.a.token", 401),
        ("not-registered", "VIEWER", 404),
        ("{bad}", "VIEWER", 400),
    ],
)
def test_connect_refusals(
    community: Community, registry: ConnectionRegistry, community_id: str, token: str | None, status: int
) -> None:
    cid = community.community_id if community_id == "VALID" else community_id
    answer = connect(cid, viewer_token() if token == "VIEWER" else token)

    assert answer["statusCode"] == status
    assert json.loads(answer["body"])["error"]["code"] == "refused"
    assert registry.connections(community.community_id, T0) == []


def test_public_counts_allow_connecting_without_a_token(community: Community, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VT_PUBLIC_COUNTS", "true")
    reset_factories()

    assert connect(community.community_id, None)["statusCode"] == 200


def test_ping_keeps_a_connection_and_disconnect_removes_it(community: Community, registry: ConnectionRegistry) -> None:
    connect(community.community_id, viewer_token(), "conn-p")

    ping = lambda_handler(ws_event("$default", "conn-p", body='{"action": "ping"}'), LambdaContext())
    other = lambda_handler(ws_event("$default", "conn-p", body="hello"), LambdaContext())
    lambda_handler(ws_event("$disconnect", "conn-p"), LambdaContext())

    assert ping["statusCode"] == 200
    assert other["statusCode"] == 400
    assert registry.connections(community.community_id, T0) == []


def test_idle_connections_expire(community: Community, registry: ConnectionRegistry) -> None:
    registry.subscribe("idle", community.community_id, T0)
    registry.subscribe("pinged", community.community_id, T0)
    registry.touch("pinged", T0 + SUBSCRIPTION_IDLE_MS - SECOND)

    assert registry.connections(community.community_id, T0 + SUBSCRIPTION_IDLE_MS) == ["pinged"]


# -- the pusher --------------------------------------------------------------------------------


def test_subscribers_get_coalesced_changes(community: Community, registry: ConnectionRegistry) -> None:
    cid = community.community_id
    tracker = get_tracker()
    registry.subscribe("a", cid, T0)
    registry.subscribe("b", cid, T0)
    poster = RecordingPoster()
    pusher = LivePusher(tracker, registry, poster)

    # Twenty beacons within one second produce one message of each kind at the next tick
    for i in range(20):
        tracker.add_visitor(visit(cid, user(f"u{i}", "montreal") if i % 2 else anonymous(f"s{i}")), T0 + i)
    pusher.tick(T0 + SECOND)
    # Nothing changed: nothing sent
    pusher.tick(T0 + 2 * SECOND)
    # A visitor from an unknown division joins: both the counts and the divisions change
    tracker.add_visitor(visit(cid, anonymous("s-late")), T0 + 2500)
    pusher.tick(T0 + 3 * SECOND)

    assert poster.types("a") == poster.types("b")
    assert poster.types("a") == [
        "visitor_count_changed",
        "visitor_divisions_updated",
        "visitor_count_changed",
        "visitor_divisions_updated",
    ]
    first = poster.sent["a"][0]
    assert {
        k: first[k] for k in ("community_id", "total", "authenticated", "anonymous", "present_now", "connections")
    } == {
        "community_id": cid,
        "total": 20,
        "authenticated": 10,
        "anonymous": 10,
        "present_now": 20,
        "connections": 20,
    }
    assert poster.sent["a"][1]["cross_division"]["cross_division_visits"] == 10
    assert poster.sent["a"][2]["total"] == 21


def test_a_change_of_page_alone_pushes_the_new_context(community: Community, registry: ConnectionRegistry) -> None:
    cid = community.community_id
    tracker = get_tracker()
    registry.subscribe("a", cid, T0)
    poster = RecordingPoster()
    pusher = LivePusher(tracker, registry, poster)
    alice = visit(cid, user("alice", "quebec"))
    tracker.add_visitor(alice.model_copy(update={"context": page("/events")}), T0)
    pusher.tick(T0 + SECOND)

    # The same person on another page: nobody joined, only where they are changed
    tracker.add_visitor(alice.model_copy(update={"context": page("/members")}), T0 + 1500)
    pusher.tick(T0 + 2 * SECOND)

    assert poster.types("a") == ["visitor_count_changed", "visitor_divisions_updated", "visitor_divisions_updated"]
    assert [m["context"]["pages"] for m in poster.sent["a"][1:]] == [
        {"top": [{"value": "/events", "people": 1}], "other": 0},
        {"top": [{"value": "/members", "people": 1}], "other": 0},
    ]


def page(path: str) -> PageContext:
    return PageContext(page=path, referrer="", device="desktop", country="unknown")


def test_gone_connections_are_pruned(community: Community, registry: ConnectionRegistry) -> None:
    cid = community.community_id
    registry.subscribe("alive", cid, T0)
    registry.subscribe("gone", cid, T0)
    get_tracker().add_visitor(visit(cid, anonymous("s")), T0)

    report = LivePusher(get_tracker(), registry, RecordingPoster(gone={"gone"})).tick(T0 + SECOND)

    assert report.pruned == 1
    assert registry.connections(cid, T0 + SECOND) == ["alive"]


def test_one_pusher_at_a_time_until_the_deadline(community: Community, registry: ConnectionRegistry) -> None:
    clock = {"ms": T0}
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock["ms"] += int(seconds * 1000) or 1000

    registry.subscribe(f"{community.community_id}-c", community.community_id, T0)
    get_tracker().add_visitor(visit(community.community_id, anonymous("s")), T0)
    pusher = LivePusher(get_tracker(), registry, RecordingPoster())
    assert registry.hold_pusher_lease("someone-else", T0, 60_000) is Lease.TAKEN
    deadline = T0 + 10_000
    blocked = run_pusher(pusher, clock=lambda: clock["ms"], time_left_ms=lambda: deadline - clock["ms"], sleep=sleep)
    registry.release_pusher_lease("someone-else")

    deadline = clock["ms"] + 10_000
    pushed = run_pusher(pusher, clock=lambda: clock["ms"], time_left_ms=lambda: deadline - clock["ms"], sleep=sleep)

    assert (blocked.messages, blocked.waited) == (0, 8)  # waited for the lease the whole run
    assert (pushed.messages, pushed.waited) == (2, 0)
    assert sleeps == [1.0] * 16  # ticks once a second, stops with the 2 s margin
    assert registry.hold_pusher_lease("next", clock["ms"], 5000) is Lease.TAKEN  # the lease was released
