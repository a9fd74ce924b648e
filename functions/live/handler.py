"""The WebSocket routes: `$connect` (subscribe to one community), `$disconnect`, `$default` (ping).

Browsers cannot set headers on a WebSocket, so the token comes as the `token` query parameter of
the connection URL; the same rules as the stats API apply (a token unless public counts are on).
Refusing `$connect` with a status refuses the connection.
"""

from __future__ import annotations

import json
import re
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from community_tracker.access import authorize_aggregate_read
from community_tracker.aws.stores import get_stores
from community_tracker.communities import registered_community
from community_tracker.errors import (
    DirectoryUnavailable,
    IdentityProviderUnavailable,
    InvalidToken,
    LiveStateUnavailable,
    SecretUnavailable,
    TokenRequired,
    UnknownCommunity,
)
from community_tracker.factories import warm_before_snapshot
from community_tracker.identity import get_token_verifier
from community_tracker.live import SubscriptionExpired
from community_tracker.models import COMMUNITY_ID_PATTERN
from community_tracker.observability import logger, tracer
from community_tracker.redis.subscriptions import get_subscriptions
from community_tracker.settings import get_settings
from community_tracker.timeutil import iso, system_clock

_COMMUNITY_ID = re.compile(COMMUNITY_ID_PATTERN)

# SnapStart: the DynamoDB resource (the community lookup's) is built before the snapshot.
warm_before_snapshot(get_stores)


def _answer(status: int, message: str = "") -> dict[str, Any]:
    body = json.dumps({"error": {"code": "refused", "message": message}}) if status >= 400 else ""
    return {"statusCode": status, "body": body}


def _connect(connection_id: str, query: dict[str, str], now_ms: int) -> dict[str, Any]:
    community_id = query.get("community_id", "")
    if not _COMMUNITY_ID.match(community_id):
        return _answer(400, "community_id is missing or not a valid id")
    token = query.get("token")
    try:
        principal = get_token_verifier().verify(token) if token else None
        authorize_aggregate_read(principal, public_counts=get_settings().public_counts)
        community = registered_community(community_id, get_stores().communities)
        get_subscriptions().subscribe(connection_id, community.community_id, now_ms)
    except TokenRequired:
        return _answer(401, "a token is required")
    except InvalidToken as error:
        return _answer(401, str(error))
    except UnknownCommunity as error:
        return _answer(404, str(error))
    except (IdentityProviderUnavailable, SecretUnavailable, DirectoryUnavailable, LiveStateUnavailable) as error:
        logger.warning("websocket connect refused: a dependency is unavailable", extra={"error": type(error).__name__})
        return _answer(503, "the live service is unavailable, try again shortly")
    return _answer(200)


def route(event: dict[str, Any]) -> dict[str, Any]:
    try:
        return _route(event)
    except LiveStateUnavailable as error:
        logger.warning(
            "websocket route failed: live state unavailable", extra={"error": type(error.__cause__).__name__}
        )
        return _answer(503, "the live service is unavailable, try again shortly")


def _route(event: dict[str, Any]) -> dict[str, Any]:
    context = event["requestContext"]
    connection_id = context["connectionId"]
    now_ms = int(context.get("requestTimeEpoch") or system_clock())
    registry = get_subscriptions()
    match context["routeKey"]:
        case "$connect":
            return _connect(connection_id, event.get("queryStringParameters") or {}, now_ms)
        case "$disconnect":
            registry.unsubscribe(connection_id)
            return _answer(200)
        case _:
            try:
                action = json.loads(event.get("body") or "{}").get("action")
            except (ValueError, AttributeError):
                action = None
            if action != "ping":
                return _answer(400, 'send {"action": "ping"} to stay subscribed')
            if registry.touch(connection_id, now_ms):
                return _answer(200)
            # What the pusher will also post to it (a browser sees a `$default` answer only when
            # the route has a route response): the page opens a new connection.
            return {"statusCode": 410, "body": SubscriptionExpired(timestamp=iso(now_ms)).model_dump_json()}


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:  # noqa: ARG001 (Lambda's signature)
    return route(event)
