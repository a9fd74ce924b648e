"""The three beacon routes: parse, call the layer's beacon rules, shape the answer."""

from __future__ import annotations

import re
from http import HTTPStatus
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel
from redis.exceptions import RedisError

from community_tracker.api import (
    ApiError,
    error_responses,
    http_router,
    json_answer,
    json_response,
    principal_from,
    registered_community,
    request_time_ms,
)
from community_tracker.beacons import Beacon, bot_reason, record_heartbeat, record_leave, record_page_view
from community_tracker.identity import beacon_identity, get_visitor_hasher, location_division
from community_tracker.models import COMMUNITY_ID_PATTERN, AddVisitorResult, Community
from community_tracker.observability import count, count_dropped, logger
from community_tracker.settings import get_settings
from community_tracker.stores import get_stores
from community_tracker.timeutil import iso
from community_tracker.tracker import get_tracker
from track_visit.schemas import (
    DebugExplanation,
    HeartbeatAnswer,
    LeaveAnswer,
    NotCounted,
    PresenceBody,
    VisitBody,
)

router = http_router()
_COMMUNITY_ID = re.compile(COMMUNITY_ID_PATTERN)

CommunityPath = Annotated[str, Path(pattern=COMMUNITY_ID_PATTERN, description="A registered community")]
DebugQuery = Annotated[bool, Query(description="Validate and explain without counting")]
BEACON_ERRORS = error_responses(
    HTTPStatus.BAD_REQUEST,
    HTTPStatus.UNAUTHORIZED,
    HTTPStatus.NOT_FOUND,
    HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
    HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
    HTTPStatus.UNPROCESSABLE_ENTITY,
    HTTPStatus.TOO_MANY_REQUESTS,
    HTTPStatus.SERVICE_UNAVAILABLE,
)
# Every beacon route answers an obvious bot 202 (counted as a drop), and `?debug=1` 200 with an
# explanation instead of its usual answer.
BOT_ANSWER = {202: json_answer("Accepted, not counted (bot)", NotCounted)}


def _answer_or_explanation(description: str, model: type[BaseModel]) -> dict[int, OpenAPIResponse]:
    return {200: {"description": description, "content": {"application/json": {"model": model | DebugExplanation}}}}


def _now_ms() -> int:
    return request_time_ms(router.current_event)


def count_invalid_beacon(event: APIGatewayProxyEventV2) -> None:
    """Best effort: an "invalid" drop for the registered community a malformed beacon was sent to."""
    community_id = (event.path_parameters or {}).get("community_id", "")
    if event.request_context.http.method != "POST" or not _COMMUNITY_ID.match(community_id):
        return
    count_dropped("invalid")
    try:
        if get_stores().communities.get(community_id) is not None:
            get_tracker().record_drop(community_id, "invalid", int(event.request_context.time_epoch))
    except (RedisError, ClientError, BotoCoreError):
        logger.warning("invalid beacon not counted: a store is unavailable")


def _user_agent() -> str:
    return router.current_event.headers.get("user-agent", "")


def _dropped_bot(community: Community, now_ms: int) -> Response[Any] | None:
    """A 202 that counts nothing for obvious automation, or None for a browser."""
    reason = bot_reason(_user_agent())
    if reason is None:
        return None
    count_dropped("bot")
    try:
        get_tracker().record_drop(community.community_id, "bot", now_ms)
    except RedisError:
        logger.warning("bot drop not counted: live state unavailable")
    return json_response(HTTPStatus.ACCEPTED, NotCounted(reason=reason), {"X-Beacon-Dropped": "bot"})


def _beacon(community: Community, body: PresenceBody, now_ms: int) -> Beacon:
    event = router.current_event
    headers = event.headers
    source_ip = event.request_context.http.source_ip
    hasher = get_visitor_hasher()
    identity = beacon_identity(
        principal=principal_from(headers, body.token),
        visitor_id=body.visitor_id,
        source_ip=source_ip,
        user_agent=_user_agent(),
        location=location_division(headers, get_settings()),
        hasher=hasher,
        now_ms=now_ms,
    )
    return Beacon(
        community=community,
        identity=identity,
        client_key=hasher.client_key(source_ip),
        event_id=body.event_id,
        url=body.url,
        referrer=body.referrer,
    )


def _rate_limited(now_ms: int) -> ApiError:
    count_dropped("rate_limited")
    retry_after = 60 - (now_ms // 1000) % 60
    return ApiError(
        HTTPStatus.TOO_MANY_REQUESTS,
        "rate_limited",
        "too many beacons from this client, slow down",
        {"Retry-After": str(retry_after)},
    )


def _prepare(community_id: str, body: PresenceBody, debug: bool, now_ms: int) -> Beacon | Response[Any]:
    """The beacon to record, or the answer when there is nothing to record (a bot, `?debug=1`)."""
    community = registered_community(community_id)
    dropped = _dropped_bot(community, now_ms)
    if dropped is not None:
        return dropped
    beacon = _beacon(community, body, now_ms)
    return _explain(beacon) if debug else beacon


def _explain(beacon: Beacon) -> Response[Any]:
    visitor = beacon.identity.visitor
    community_division = beacon.community.division_id
    explanation = DebugExplanation(
        would_count=True,
        reason=None,
        visitor="authenticated" if visitor.is_authenticated else "anonymous",
        visitor_division=visitor.division_id,
        community_division=community_division,
        is_cross_division=bool(
            visitor.division_id and community_division and visitor.division_id != community_division
        ),
        merges_anonymous_entry=beacon.identity.merge_key is not None,
    )
    return json_response(HTTPStatus.OK, explanation)


@router.post(
    "/v1/communities/<community_id>/visits",
    summary="Record a page view",
    tags=["beacons"],
    responses={
        **_answer_or_explanation(
            "Counted (or a retry of a counted beacon); `?debug=1`: the explanation", AddVisitorResult
        ),
        202: json_answer("Accepted, not counted (bot), or kept only in the history (live state down)", NotCounted),
        **BEACON_ERRORS,
    },
)
def post_visit(
    community_id: CommunityPath, body: Annotated[VisitBody, Body()], debug: DebugQuery = False
) -> Response[Any]:
    now_ms = _now_ms()
    beacon = _prepare(community_id, body, debug, now_ms)
    if isinstance(beacon, Response):
        return beacon
    stores = get_stores()
    result = record_page_view(beacon, tracker=get_tracker(), visits=stores.visits, now_ms=now_ms)
    outcome = result.outcome
    if outcome is None:
        count("VisitsRecordedWithoutLiveState")
        return json_response(
            HTTPStatus.ACCEPTED,
            NotCounted(reason="live state unavailable", history_recorded=True),
            {"X-Live-State": "not-updated"},
        )
    if outcome.status == "rate_limited":
        raise _rate_limited(now_ms)
    if outcome.status == "duplicate":
        count_dropped("duplicate")
        return json_response(HTTPStatus.OK, outcome.result, {"X-Beacon-Duplicate": "true"})
    count("VisitsRecorded")
    if outcome.result.is_cross_division:
        count("CrossDivisionVisits")
    return json_response(HTTPStatus.OK, outcome.result)


@router.post(
    "/v1/communities/<community_id>/heartbeat",
    summary="The visitor is still here (no page view)",
    tags=["beacons"],
    responses={
        **_answer_or_explanation("Activity recorded; `?debug=1`: the explanation", HeartbeatAnswer),
        **BOT_ANSWER,
        **BEACON_ERRORS,
    },
)
def post_heartbeat(
    community_id: CommunityPath, body: Annotated[PresenceBody, Body()], debug: DebugQuery = False
) -> Response[Any]:
    now_ms = _now_ms()
    beacon = _prepare(community_id, body, debug, now_ms)
    if isinstance(beacon, Response):
        return beacon
    outcome = record_heartbeat(beacon, tracker=get_tracker(), now_ms=now_ms)
    if outcome.status == "rate_limited":
        raise _rate_limited(now_ms)
    answer = HeartbeatAnswer(
        current_count=outcome.result.current_count,
        active=outcome.status != "not_present",
        timestamp=iso(now_ms),
    )
    return json_response(HTTPStatus.OK, answer)


@router.post(
    "/v1/communities/<community_id>/leave",
    summary="The visitor left the page (pagehide)",
    tags=["beacons"],
    responses={
        **_answer_or_explanation("Removed; `?debug=1`: the explanation", LeaveAnswer),
        **BOT_ANSWER,
        **BEACON_ERRORS,
    },
)
def post_leave(
    community_id: CommunityPath, body: Annotated[PresenceBody, Body()], debug: DebugQuery = False
) -> Response[Any]:
    now_ms = _now_ms()
    beacon = _prepare(community_id, body, debug, now_ms)
    if isinstance(beacon, Response):
        return beacon
    remaining = record_leave(beacon, tracker=get_tracker(), now_ms=now_ms)
    return json_response(HTTPStatus.OK, LeaveAnswer(current_count=remaining, timestamp=iso(now_ms)))
