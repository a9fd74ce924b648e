"""A user's own data: where they are now, their visit history, its export and erasure."""

from __future__ import annotations

from http import HTTPStatus
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path, Query

from community_tracker.aws.stores import get_stores
from community_tracker.http.auth import require_self_or_admin
from community_tracker.http.errors import JSON, SUCCESS_RESPONSE, error_responses, json_answer, json_response
from community_tracker.http.resolver import http_router, request_time_ms
from community_tracker.models import USER_ID_PATTERN, VisitHistoryPage
from community_tracker.observability import logger
from community_tracker.redis.live_state import get_tracker
from stats.cursors import Cursor, history_cursor
from stats.schemas import ErasedVisits, UserPresence

router = http_router()

UserPath = Annotated[str, Path(pattern=USER_ID_PATTERN, description="The user's id (a token's `sub`)")]
USER_ERRORS = error_responses(
    HTTPStatus.BAD_REQUEST,
    HTTPStatus.UNAUTHORIZED,
    HTTPStatus.FORBIDDEN,
    HTTPStatus.UNPROCESSABLE_ENTITY,
    HTTPStatus.SERVICE_UNAVAILABLE,
)
USER_ANSWERS = {**SUCCESS_RESPONSE, **USER_ERRORS}


@router.get(
    "/v1/users/<user_id>/communities",
    summary="Communities the user is visiting now (the user, or an admin)",
    tags=["users"],
    cache_control="private, max-age=5",
    responses=USER_ANSWERS,
)
def get_user_communities(user_id: UserPath) -> UserPresence:
    require_self_or_admin(router.current_event.headers, user_id)
    now_ms = request_time_ms(router.current_event)
    return UserPresence(user_id=user_id, communities=get_tracker().get_user_communities(user_id, now_ms))


@router.get(
    "/v1/users/<user_id>/visits",
    summary="The user's visit history, newest first (the user, or an admin)",
    tags=["users"],
    responses=USER_ANSWERS,
)
def get_user_visits(
    user_id: UserPath,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Cursor = None,
) -> VisitHistoryPage:
    require_self_or_admin(router.current_event.headers, user_id)
    return get_stores().visits.user_visits(user_id, limit=limit, cursor=history_cursor(cursor))


@router.get(
    "/v1/users/<user_id>/visits/export",
    summary="Everything kept about the user's visits, in pages of at most 4 MB: follow next_cursor",
    tags=["users"],
    responses={200: json_answer("One page of the whole history, newest first", VisitHistoryPage), **USER_ERRORS},
)
def export_user_visits(user_id: UserPath, cursor: Cursor = None) -> Response[Any]:
    require_self_or_admin(router.current_event.headers, user_id)
    page = get_stores().visits.export_page(user_id, cursor=history_cursor(cursor))
    return Response(
        status_code=HTTPStatus.OK,
        content_type=JSON,
        body=page.body(),
        headers={"Content-Disposition": 'attachment; filename="visits.json"', "Cache-Control": "no-store"},
    )


@router.delete(
    "/v1/users/<user_id>/visits",
    summary="Erase the user's visit history (the user, or an admin)",
    tags=["users"],
    responses={
        200: json_answer("All of it is erased", ErasedVisits),
        202: json_answer("Part of it is erased: call again to go on (Retry-After: 0)", ErasedVisits),
        **USER_ERRORS,
    },
)
def erase_user_visits(user_id: UserPath) -> Response[Any]:
    principal = require_self_or_admin(router.current_event.headers, user_id)
    erasure = get_stores().visits.delete_user_visits(user_id)
    logger.info(
        "visit history erased",
        extra={"deleted": erasure.deleted, "complete": erasure.complete, "by_admin": principal.user_id != user_id},
    )
    answer = ErasedVisits(user_id=user_id, deleted=erasure.deleted, complete=erasure.complete)
    if erasure.complete:
        return json_response(HTTPStatus.OK, answer)
    return json_response(HTTPStatus.ACCEPTED, answer, {"Retry-After": "0"})
