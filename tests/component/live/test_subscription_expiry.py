"""Live push, issue #19: a socket whose subscription expired is never left open and silent. A ping
with the subscription still known puts it back; a ping nobody knows is told to reconnect, through the
pusher (API Gateway does not pass a `$default` answer back to the browser without a route response)."""

from __future__ import annotations

import json
from typing import Any

from community_tracker.live import LivePusher
from community_tracker.models import Community
from community_tracker.redis.client import get_redis_client
from community_tracker.redis.keys import SUBSCRIPTION_IDLE_MS, CommunityKeys, subscription_key
from community_tracker.redis.live_state import get_tracker
from community_tracker.redis.subscriptions import ConnectionRegistry
from community_tracker.settings import get_settings
from infra.tokens import mint_token
from live.handler import lambda_handler
from tests.builders import SECOND, T0, anonymous, visit
from tests.component.live.doubles import RecordingPoster
from tests.helpers import LambdaContext


def ws(route_key: str, connection_id: str, now_ms: int, **extra: Any) -> dict[str, Any]:
    event = {"requestContext": {"routeKey": route_key, "connectionId": connection_id, "requestTimeEpoch": now_ms}}
    answer: dict[str, Any] = lambda_handler({**event, **extra}, LambdaContext())
    return answer


def ping(connection_id: str, now_ms: int) -> dict[str, Any]:
    return ws("$default", connection_id, now_ms, body='{"action": "ping"}')


def test_a_ping_after_the_subscription_expired_subscribes_again(
    community: Community, registry: ConnectionRegistry
) -> None:
    cid, connection_id = community.community_id, f"{community.community_id}-late"
    query = {"community_id": cid, "token": mint_token(get_settings(), "viewer")}
    assert ws("$connect", connection_id, T0, queryStringParameters=query)["statusCode"] == 200
    poster = RecordingPoster()
    pusher = LivePusher(get_tracker(), registry, poster)
    expired = T0 + SUBSCRIPTION_IDLE_MS + SECOND
    pusher.tick(expired)  # the page's ping came late (a throttled background tab): dropped, community forgotten

    answer = ping(connection_id, expired + SECOND)
    get_tracker().add_visitor(visit(cid, anonymous("s")), expired + 2 * SECOND)
    pusher.tick(expired + 3 * SECOND)

    assert answer["statusCode"] == 200
    assert poster.types(connection_id) == ["visitor_count_changed", "visitor_divisions_updated"]


def test_a_ping_nobody_knows_is_told_to_reconnect(community: Community, registry: ConnectionRegistry) -> None:
    connection_id = f"{community.community_id}-lost"
    registry.subscribe(connection_id, community.community_id, T0)
    # Lost: Redis restarted empty, or failed over to a replica that had not seen the subscription yet
    get_redis_client().delete(subscription_key(connection_id), CommunityKeys(community.community_id).subscribers)
    poster = RecordingPoster()
    pusher = LivePusher(get_tracker(), registry, poster)

    answer = ping(connection_id, T0 + SECOND)
    report = pusher.tick(T0 + 2 * SECOND)
    pusher.tick(T0 + 3 * SECOND)

    assert answer["statusCode"] == 410
    assert json.loads(answer["body"])["type"] == "subscription_expired"
    assert poster.types(connection_id) == ["subscription_expired"]  # once: told at the next tick
    assert report.reconnects == 1
