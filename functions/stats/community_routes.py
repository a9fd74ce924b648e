"""Live and historical numbers of one community (README, "Stats API")."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from datetime import date
from http import HTTPStatus
from typing import Annotated, Any, Literal, TypeVar

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from pydantic import BeforeValidator

from community_tracker.aws.stores import get_stores
from community_tracker.communities import registered_community, with_live_community
from community_tracker.errors import UnknownCommunity
from community_tracker.http.auth import require_admin, require_self_or_admin
from community_tracker.http.errors import SUCCESS_RESPONSE, error_responses, json_answer, json_response
from community_tracker.http.resolver import http_router, request_time_ms
from community_tracker.models import (
    COMMUNITY_ID_PATTERN,
    USER_ID_PATTERN,
    Community,
    ContextDimension,
    CrossDivisionStats,
    DropCounts,
    Peak,
    Summary,
    VisitHistoryPage,
    VisitorPage,
    VisitorStats,
)
from community_tracker.redis.keys import BUCKET_MARGIN_MS, SERIES_HOURS
from community_tracker.redis.live_state import get_tracker
from community_tracker.timeutil import Period, iso
from stats.cursors import (
    Cursor,
    community_history_cursor,
    community_history_position,
    visitor_cursor,
    visitor_offset,
)
from stats.reading import readable, readable_community
from stats.schemas import (
    ContextAnswer,
    CrossDivisionHistory,
    DivisionBreakdown,
    PeaksAnswer,
    Timeline,
    VisitingAnswer,
)

router = http_router()
T = TypeVar("T")

CommunityPath = Annotated[str, Path(pattern=COMMUNITY_ID_PATTERN, description="A registered community")]
Limit = Annotated[int, Query(ge=1, le=100, description="Page size")]
# Dashboards poll: a few seconds of private caching takes load off without going stale.
POLLING_CACHE = "private, max-age=5"
AGGREGATE_ERRORS = error_responses(
    HTTPStatus.UNAUTHORIZED, HTTPStatus.NOT_FOUND, HTTPStatus.UNPROCESSABLE_ENTITY, HTTPStatus.SERVICE_UNAVAILABLE
)
ADMIN_ERRORS = error_responses(
    HTTPStatus.BAD_REQUEST,
    HTTPStatus.UNAUTHORIZED,
    HTTPStatus.FORBIDDEN,
    HTTPStatus.NOT_FOUND,
    HTTPStatus.UNPROCESSABLE_ENTITY,
    HTTPStatus.SERVICE_UNAVAILABLE,
)
AGGREGATE_ANSWERS = {**SUCCESS_RESPONSE, **AGGREGATE_ERRORS}
ADMIN_ANSWERS = {**SUCCESS_RESPONSE, **ADMIN_ERRORS}


def _now() -> int:
    return request_time_ms(router.current_event)


def _readable_community(community_id: str) -> str:
    """Aggregates: a token (or public counts) or a share link, and a registered community."""
    return readable_community(router.current_event, community_id)


def _live(community_id: str, read: Callable[[Community], T]) -> T:
    """A read of the live state of a readable community, by the registration Redis holds (read
    again from the directory when the one this function kept is not it)."""
    community = readable(router.current_event, community_id)
    stores = get_stores()
    return with_live_community(
        community, read, directory=stores.communities, live=get_tracker(), now_ms=_now(), checkpoints=stores.checkpoints
    )


@router.get(
    "/v1/communities/<community_id>",
    summary="The community as registered: its name, slug and division (what a dashboard titles itself with)",
    tags=["communities"],
    cache_control=POLLING_CACHE,
    responses=AGGREGATE_ANSWERS,
)
def get_community(community_id: CommunityPath) -> Community:
    return readable(router.current_event, community_id)


@router.get(
    "/v1/communities/<community_id>/stats",
    summary="Live visitors, authenticated / anonymous split",
    tags=["live"],
    cache_control=POLLING_CACHE,
    responses=AGGREGATE_ANSWERS,
)
def get_stats(community_id: CommunityPath) -> VisitorStats:
    return _live(community_id, lambda c: get_tracker().get_visitor_stats(c.community_id, _now(), community=c))


@router.get(
    "/v1/communities/<community_id>/divisions",
    summary="Live visitors per home division",
    tags=["live"],
    cache_control=POLLING_CACHE,
    responses=AGGREGATE_ANSWERS,
)
def get_divisions(community_id: CommunityPath) -> DivisionBreakdown:
    divisions = _live(community_id, lambda c: get_tracker().get_division_breakdown(c.community_id, _now(), community=c))
    return DivisionBreakdown(
        community_id=community_id, total_visitors=sum(d.count for d in divisions), divisions=divisions
    )


@router.get(
    "/v1/communities/<community_id>/cross-division",
    summary="Live cross-division visitors and their from → to pairs",
    tags=["live"],
    cache_control=POLLING_CACHE,
    responses=AGGREGATE_ANSWERS,
)
def get_cross_division(
    community_id: CommunityPath, limit: Annotated[int, Query(ge=1, le=100, description="Top pairs")] = 10
) -> CrossDivisionStats:
    stats = _live(community_id, lambda c: get_tracker().get_cross_division_stats(c.community_id, _now(), community=c))
    return stats.model_copy(update={"breakdown": stats.breakdown[:limit]})


def _iso_day(value: object) -> object:
    # pydantic would read `day=0` or `day=20261124` as a Unix time (a day in 1970): only YYYY-MM-DD.
    if isinstance(value, str) and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise ValueError("a day is written YYYY-MM-DD")
    return value


@router.get(
    "/v1/communities/<community_id>/cross-division/history",
    summary="Page views per cross-division pair on one day (last 35 days)",
    tags=["history"],
    cache_control=POLLING_CACHE,
    responses=AGGREGATE_ANSWERS,
)
def get_cross_division_history(
    community_id: CommunityPath,
    day: Annotated[
        date | None, BeforeValidator(_iso_day), Query(description="A day of the community's calendar, default today")
    ] = None,
) -> CrossDivisionHistory:
    community = readable(router.current_event, community_id)
    tracker = get_tracker()
    day_id = day.isoformat() if day else tracker.calendar_of(community_id, community).bucket("day", _now()).id
    buckets, breakdown = tracker.get_cross_division_history(community_id, day_id, community=community)
    return CrossDivisionHistory(community_id=community_id, day=day_id, buckets=buckets, breakdown=breakdown)


@router.get(
    "/v1/communities/<community_id>/peaks",
    summary="Peak concurrent visitors today, this ISO week and month; closed buckets with ?history=",
    tags=["live"],
    cache_control=POLLING_CACHE,
    responses=AGGREGATE_ANSWERS,
)
def get_peaks(
    community_id: CommunityPath,
    history: Annotated[
        Literal["day", "week", "month"] | None,
        Query(description="The closed buckets before this one, newest first, nobody's included (count 0)"),
    ] = None,
    limit: Limit = 30,
) -> PeaksAnswer:
    community, current = _live(
        community_id, lambda c: (c, get_tracker().get_peaks(c.community_id, _now(), community=c))
    )
    daily, weekly, monthly = (peak.count for peak in current)
    return PeaksAnswer(
        daily=daily,
        weekly=weekly,
        monthly=monthly,
        current=current,
        history=_peak_history(community, history, limit) if history else [],
    )


def _peak_history(community: Community, period: Period, limit: int) -> list[Peak]:
    """The `limit` buckets of the community's calendar before the open one: as cleanup wrote them
    to DynamoDB, else as Redis still keeps them (closed since cleanup last ran), else a gap."""
    now_ms = _now()
    buckets = community.calendar().closed_before(period, now_ms, limit)
    rolled = {
        peak.start: peak
        for peak in get_stores().peaks.rollups_since(community.community_id, period, buckets[-1].start_ms)
    }
    pending = [b for b in buckets if iso(b.start_ms) not in rolled and b.end_ms + BUCKET_MARGIN_MS > now_ms]
    kept = dict(
        zip((b.key for b in pending), get_tracker().get_closed_peaks(community.community_id, pending), strict=True)
    )
    history = []
    for found in buckets:
        peak = rolled.get(iso(found.start_ms)) or kept.get(found.key)
        history.append(peak if peak is not None else Peak.at(found, 0, None, 0))
    return history


@router.get(
    "/v1/communities/<community_id>/summary",
    summary="Everything a dashboard shows, from one Redis round trip",
    tags=["live"],
    responses={
        200: json_answer("The dashboard's numbers", Summary),
        304: {"description": "Unchanged since the ETag sent in If-None-Match"},
        **AGGREGATE_ERRORS,
    },
)
def get_summary(
    community_id: CommunityPath,
    minutes: Annotated[int, Query(ge=1, le=180, description="Timeline length")] = 60,
) -> Response[Any]:
    summary = _live(
        community_id,
        lambda c: get_tracker().get_summary(c.community_id, _now(), timeline_minutes=minutes, community=c),
    )
    # The ETag ignores the answer's own timestamp, so an unchanged community answers 304.
    fingerprint = summary.model_copy(update={"timestamp": ""}).model_dump_json()
    etag = f'W/"{hashlib.sha256(fingerprint.encode()).hexdigest()[:32]}"'
    headers = {"ETag": etag, "Cache-Control": POLLING_CACHE}
    if router.current_event.headers.get("if-none-match") == etag:
        return Response(status_code=HTTPStatus.NOT_MODIFIED, headers=headers)
    return json_response(HTTPStatus.OK, summary, headers)


@router.get(
    "/v1/communities/<community_id>/context/<dimension>",
    summary="Live visitors per page, referrer domain, device class or country: the largest values and the rest",
    tags=["live"],
    cache_control=POLLING_CACHE,
    responses=AGGREGATE_ANSWERS,
)
def get_context(
    community_id: CommunityPath,
    dimension: Annotated[ContextDimension, Path(description="pages, referrers, devices or countries")],
    limit: Annotated[int, Query(ge=1, le=100, description="Values listed, most people first")] = 10,
) -> ContextAnswer:
    total, found = _live(
        community_id,
        lambda c: get_tracker().get_context(c.community_id, _now(), dimension, limit=limit, community=c),
    )
    return ContextAnswer(
        community_id=community_id,
        dimension=dimension,
        total_visitors=total,
        top=found.top,
        other=found.other,
        timestamp=iso(_now()),
    )


@router.get(
    "/v1/communities/<community_id>/timeline",
    summary="Highest live count of each minute (up to 48 hours)",
    tags=["live"],
    cache_control=POLLING_CACHE,
    responses=AGGREGATE_ANSWERS,
)
def get_timeline(
    community_id: CommunityPath,
    minutes: Annotated[int, Query(ge=1, le=SERIES_HOURS * 60, description="How far back")] = 60,
) -> Timeline:
    cid = _readable_community(community_id)
    return Timeline(community_id=cid, minutes=minutes, points=get_tracker().get_timeline(cid, _now(), minutes=minutes))


@router.get(
    "/v1/communities/<community_id>/drops",
    summary="Beacons not counted today, by reason",
    tags=["live"],
    cache_control=POLLING_CACHE,
    responses=AGGREGATE_ANSWERS,
)
def get_drops(community_id: CommunityPath) -> DropCounts:
    community = readable(router.current_event, community_id)
    return get_tracker().get_drop_counts(community_id, _now(), community=community)


@router.get(
    "/v1/communities/<community_id>/visitors",
    summary="Live visitors, most recent activity first (admin)",
    tags=["live"],
    cache_control=POLLING_CACHE,
    responses=ADMIN_ANSWERS,
)
def get_visitors(community_id: CommunityPath, limit: Limit = 50, cursor: Cursor = None) -> VisitorPage:
    require_admin(router.current_event.headers)
    cid = registered_community(community_id, get_stores().communities).community_id
    page = get_tracker().get_visitor_list(cid, _now(), offset=visitor_offset(cursor), limit=limit)
    return page.model_copy(update={"next_cursor": visitor_cursor(page.next_cursor)})


@router.get(
    "/v1/communities/<community_id>/visitors/<user_id>",
    summary="Is this user on the community now? (admin, or the user)",
    tags=["live"],
    cache_control=POLLING_CACHE,
    responses=ADMIN_ANSWERS,
)
def get_visiting(community_id: CommunityPath, user_id: Annotated[str, Path(pattern=USER_ID_PATTERN)]) -> VisitingAnswer:
    require_self_or_admin(router.current_event.headers, user_id)
    cid = registered_community(community_id, get_stores().communities).community_id
    return VisitingAnswer(
        community_id=cid, user_id=user_id, is_visiting=get_tracker().is_user_visiting(cid, user_id, _now())
    )


@router.get(
    "/v1/communities/<community_id>/visits",
    summary="Authenticated visit history, newest first (admin)",
    tags=["history"],
    responses=ADMIN_ANSWERS,
)
def get_community_visits(community_id: CommunityPath, limit: Limit = 50, cursor: Cursor = None) -> VisitHistoryPage:
    require_admin(router.current_event.headers)
    stores = get_stores()
    # The directory as it is now, not as this function last kept it: the page then covers every
    # partition a visit may have been written to, also just after `parts` went up.
    community = stores.communities.fresh(community_id)
    if community is None:
        raise UnknownCommunity(community_id)
    page = stores.visits.community_visits(
        community.community_id,
        limit=limit,
        after=community_history_position(cursor, community.community_id),
        partitions=community.visit_partitions,
    )
    return VisitHistoryPage(visits=page.visits, next_cursor=community_history_cursor(page.next, community.community_id))
