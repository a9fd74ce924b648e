"""The three beacon routes: parse the request, let the beacon rules decide, shape the answer."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import replace
from http import HTTPStatus
from typing import Annotated, Any, TypeVar

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2
from pydantic import BaseModel

from community_tracker.aws.stores import get_stores
from community_tracker.beacons import (
    Beacon,
    Counted,
    Dropped,
    Explained,
    record_heartbeat,
    record_leave,
    record_page_view,
    screen,
)
from community_tracker.communities import registered_community, with_live_community
from community_tracker.context import page_context
from community_tracker.errors import DirectoryUnavailable, LiveStateUnavailable
from community_tracker.http.auth import principal_from
from community_tracker.http.errors import error_response, error_responses, json_answer, json_response
from community_tracker.http.resolver import http_router, request_time_ms
from community_tracker.identity import beacon_identity, get_visitor_hasher, location_division
from community_tracker.models import COMMUNITY_ID_PATTERN
from community_tracker.observability import count, count_dropped, logger
from community_tracker.redis.automation import get_automation_tracker
from community_tracker.redis.live_state import get_tracker
from community_tracker.settings import get_settings
from community_tracker.timeutil import iso
from track_visit.schemas import (
    HeartbeatAnswer,
    LeaveAnswer,
    NotCounted,
    PageViewAnswer,
    PresenceBody,
    VisitBody,
)

router = http_router()
T = TypeVar("T")
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
    return {200: {"description": description, "content": {"application/json": {"model": model | Explained}}}}


def _now_ms() -> int:
    return request_time_ms(router.current_event)


def count_invalid_beacon(event: APIGatewayProxyEventV2) -> None:
    """Best effort: an "invalid" drop for the registered community a malformed beacon was sent to."""
    community_id = (event.path_parameters or {}).get("community_id", "")
    if event.request_context.http.method != "POST" or not _COMMUNITY_ID.match(community_id):
        return
    count_dropped("invalid")
    try:
        community = get_stores().communities.get(community_id)
        if community is not None:
            get_tracker().record_drop(community_id, "invalid", int(event.request_context.time_epoch), community)
    except (LiveStateUnavailable, DirectoryUnavailable):
        logger.warning("invalid beacon not counted: a store is unavailable")


def _parse(community_id: str, body: PresenceBody, now_ms: int, headers: Mapping[str, str]) -> Beacon:
    community = registered_community(community_id, get_stores().communities)
    source_ip = router.current_event.request_context.http.source_ip
    hasher = get_visitor_hasher()
    settings = get_settings()
    identity = beacon_identity(
        principal=principal_from(headers, body.token),
        visitor_id=body.visitor_id,
        connection_id=body.connection_id,
        source_ip=source_ip,
        user_agent=headers.get("user-agent", ""),
        location=location_division(headers, settings),
        hasher=hasher,
        now_ms=now_ms,
        window_ms=settings.active_window_seconds * 1000,
    )
    return Beacon(
        community=community,
        identity=identity,
        client_key=hasher.client_key(source_ip),
        event_id=body.event_id,
        url=body.url,
        referrer=body.referrer,
    )


def _headers() -> Mapping[str, str]:
    """The request's headers. Powertools builds a new case-insensitive copy on every `.headers`:
    each route asks once and passes them on."""
    return router.current_event.headers


def _screened(
    community_id: str, body: PresenceBody, headers: Mapping[str, str], debug: bool, now_ms: int
) -> Beacon | Dropped | Explained:
    beacon = _parse(community_id, body, now_ms, headers)
    return screen(
        beacon,
        user_agent=headers.get("user-agent", ""),
        live=get_tracker(),
        now_ms=now_ms,
        debug=debug,
        automation=get_automation_tracker(),
    )


def _by_current_registration(beacon: Beacon, record: Callable[[Beacon], T], now_ms: int) -> T:
    """Records by the community's registration in Redis: if this function kept an older one (a
    division move, a change of zone), it reads it again first (`communities.with_live_community`)."""
    return with_live_community(
        beacon.community,
        # A copy of the beacon only when the registration was read again (rarely).
        lambda community: record(beacon if community is beacon.community else replace(beacon, community=community)),
        directory=get_stores().communities,
        live=get_tracker(),
        now_ms=now_ms,
        checkpoints=get_stores().checkpoints,
    )


def _not_recorded(result: Dropped | Explained) -> Response[Any]:
    """The one mapping of a beacon that was not (fully) recorded to its answer."""
    match result:
        case Explained():
            return json_response(HTTPStatus.OK, result)
        case Dropped(reason="rate_limited"):
            count_dropped("rate_limited")
            return error_response(
                HTTPStatus.TOO_MANY_REQUESTS,
                "rate_limited",
                result.message,
                {"Retry-After": str(result.retry_after_seconds)},
            )
        case Dropped(reason="bot" | "too_many_people"):
            count_dropped(result.reason)
            return json_response(
                HTTPStatus.ACCEPTED, NotCounted(reason=result.message), {"X-Beacon-Dropped": result.reason}
            )
        case Dropped():
            count("VisitsRecordedWithoutLiveState")
            return json_response(
                HTTPStatus.ACCEPTED,
                NotCounted(reason=result.message, history_recorded=result.history_recorded),
                {"X-Live-State": "not-updated"},
            )


@router.post(
    "/v1/communities/<community_id>/visits",
    summary="Record a page view",
    tags=["beacons"],
    responses={
        **_answer_or_explanation(
            "Counted (or a retry of a counted beacon); `?debug=1`: the explanation", PageViewAnswer
        ),
        202: json_answer("Accepted, not counted (bot), or kept only in the history (live state down)", NotCounted),
        **BEACON_ERRORS,
    },
)
def post_visit(
    community_id: CommunityPath, body: Annotated[VisitBody, Body()], debug: DebugQuery = False
) -> Response[Any]:
    now_ms = _now_ms()
    headers = _headers()
    beacon = _screened(community_id, body, headers, debug, now_ms)
    if not isinstance(beacon, Beacon):
        return _not_recorded(beacon)
    context = page_context(
        body.url,
        body.referrer,
        headers.get("user-agent", ""),
        headers,
        trust_location=get_settings().trust_location_headers,
    )
    beacon = replace(beacon, context=context, new_tab=body.new_tab)
    result = _by_current_registration(
        beacon, lambda b: record_page_view(b, live=get_tracker(), visits=get_stores().visits, now_ms=now_ms), now_ms
    )
    if not isinstance(result, Counted):
        return _not_recorded(result)
    # Built from the tracker's answer, a model already: not validated a second time.
    answer = PageViewAnswer.model_construct(
        **dict(result.result), event_id=result.event_id or "", event_id_generated=result.event_id_generated
    )
    if result.duplicate:
        count_dropped("duplicate")
        return json_response(HTTPStatus.OK, answer, {"X-Beacon-Duplicate": "true"})
    count("VisitsRecorded")
    if answer.is_cross_division:
        count("CrossDivisionVisits")
    return json_response(HTTPStatus.OK, answer)


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
    beacon = _screened(community_id, body, _headers(), debug, now_ms)
    if not isinstance(beacon, Beacon):
        return _not_recorded(beacon)
    result = _by_current_registration(beacon, lambda b: record_heartbeat(b, live=get_tracker(), now_ms=now_ms), now_ms)
    if not isinstance(result, Counted):
        return _not_recorded(result)
    answer = HeartbeatAnswer(current_count=result.result.current_count, active=result.active, timestamp=iso(now_ms))
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
    beacon = _screened(community_id, body, _headers(), debug, now_ms)
    if not isinstance(beacon, Beacon):
        return _not_recorded(beacon)
    remaining = record_leave(beacon, live=get_tracker(), now_ms=now_ms)
    return json_response(HTTPStatus.OK, LeaveAnswer(current_count=remaining, timestamp=iso(now_ms)))
