"""Admin: register or update a community (the platform calls this when one is created or moved)."""

from __future__ import annotations

from http import HTTPStatus
from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Body, Path

from community_tracker.aws.stores import get_stores
from community_tracker.communities import register_community
from community_tracker.http.auth import require_admin
from community_tracker.http.errors import SUCCESS_RESPONSE, error_responses
from community_tracker.http.resolver import http_router, request_time_ms
from community_tracker.models import COMMUNITY_ID_PATTERN, Community
from community_tracker.redis.live_state import get_tracker
from track_visit.schemas import CommunityBody

router = http_router()


@router.put(
    "/v1/communities/<community_id>",
    summary="Register or update a community (admin)",
    tags=["communities"],
    responses={
        **SUCCESS_RESPONSE,
        **error_responses(
            HTTPStatus.UNAUTHORIZED,
            HTTPStatus.FORBIDDEN,
            HTTPStatus.UNPROCESSABLE_ENTITY,
            HTTPStatus.BAD_REQUEST,
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
            HTTPStatus.SERVICE_UNAVAILABLE,
        ),
    },
)
def put_community(
    community_id: Annotated[str, Path(pattern=COMMUNITY_ID_PATTERN)], body: Annotated[CommunityBody, Body()]
) -> Community:
    require_admin(router.current_event.headers)
    return register_community(
        community_id,
        slug=body.slug,
        name=body.name,
        division_id=body.division_id,
        time_zone=body.time_zone,
        parts=body.parts,
        directory=get_stores().communities,
        live=get_tracker(),
        now_ms=request_time_ms(router.current_event),
    )
