"""The public live count for an embeddable widget, only when public counts are enabled; counts
below `VT_BADGE_MIN_COUNT` show as "fewer than N".

This is how a community page shows "N people here" to every visitor: one short-lived answer that a
CDN keeps and shares for 5 s (`s-maxage`), so the origin sees one request per edge location every
5 s whatever the number of viewers, instead of one WebSocket post per viewer per change (README,
"Counts for everyone, push for dashboards"). It is the same for every caller (no token is read),
and varies only with the Origin (its CORS grant) and the `format` query parameter.
"""

from __future__ import annotations

from html import escape
from http import HTTPStatus
from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path, Query

from community_tracker.aws.stores import get_stores
from community_tracker.communities import registered_community
from community_tracker.http.errors import ApiError, error_responses, json_response
from community_tracker.http.resolver import http_router, request_time_ms
from community_tracker.models import COMMUNITY_ID_PATTERN
from community_tracker.redis.live_state import get_tracker
from community_tracker.settings import get_settings
from stats.schemas import Badge

router = http_router()
PUBLIC_CACHE = "public, max-age=5, s-maxage=5"


def badge_of(community_id: str, count: int, min_count: int) -> Badge:
    """Counts below `min_count` are shown as "fewer than N": a handful of visitors could be told
    apart on a public page (the exact number is never in the answer)."""
    if count < min_count:
        return Badge(
            community_id=community_id, current_count=None, fewer_than=min_count, label=f"fewer than {min_count}"
        )
    return Badge(community_id=community_id, current_count=count, fewer_than=None, label=str(count))


def badge_svg(value: str) -> str:
    label = "live visitors"
    label_width, value_width = 86, 12 + 7 * len(value)
    width = label_width + value_width
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="20" role="img" '
        f'aria-label="{label}: {escape(value)}">'
        f'<rect width="{label_width}" height="20" fill="#555"/>'
        f'<rect x="{label_width}" width="{value_width}" height="20" fill="#2e7d32"/>'
        '<g fill="#fff" font-family="Verdana,DejaVu Sans,sans-serif" font-size="11">'
        f'<text x="6" y="14">{label}</text><text x="{label_width + 6}" y="14">{escape(value)}</text></g></svg>'
    )


@router.get(
    "/v1/badge/<community_id>",
    summary="Public live count for an embeddable badge (when public counts are enabled)",
    tags=["public"],
    responses={
        200: {
            "description": "The live count",
            "content": {"application/json": {"model": Badge}, "image/svg+xml": {"schema": {"type": "string"}}},
        },
        **error_responses(HTTPStatus.NOT_FOUND, HTTPStatus.UNPROCESSABLE_ENTITY, HTTPStatus.SERVICE_UNAVAILABLE),
    },
)
def get_badge(
    community_id: Annotated[str, Path(pattern=COMMUNITY_ID_PATTERN)],
    format: Annotated[Literal["json", "svg"], Query(description="svg: an image to embed")] = "json",
) -> Response[Any]:
    if not get_settings().public_counts:
        raise ApiError(HTTPStatus.NOT_FOUND, "not_enabled", "public counts are not enabled")
    cid = registered_community(community_id, get_stores().communities).community_id
    count = get_tracker().get_visitor_stats(cid, request_time_ms(router.current_event)).total_visitors
    shown = badge_of(cid, count, get_settings().badge_min_count)
    headers = {"Cache-Control": PUBLIC_CACHE, "Vary": "Origin"}
    if format == "svg":
        return Response(
            status_code=HTTPStatus.OK, content_type="image/svg+xml", body=badge_svg(shown.label), headers=headers
        )
    return json_response(HTTPStatus.OK, shown, headers)
