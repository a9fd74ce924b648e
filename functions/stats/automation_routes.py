"""Bots and AI agents on a community now (README, "Humans, bots and AI agents"): never counted
among its visitors, visible here per class and name."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Query

from community_tracker.agents import AutomationNow
from community_tracker.http.resolver import http_router, request_time_ms
from community_tracker.redis.automation import get_automation_tracker
from stats.community_routes import AGGREGATE_ANSWERS, POLLING_CACHE, CommunityPath
from stats.reading import readable_community

router = http_router()


@router.get(
    "/v1/communities/<community_id>/automation",
    summary="Bots and AI agents seen in the live window, per class and name (never counted as visitors)",
    tags=["live"],
    cache_control=POLLING_CACHE,
    responses=AGGREGATE_ANSWERS,
)
def get_automation(
    community_id: CommunityPath,
    limit: Annotated[int, Query(ge=1, le=200, description="Names per class, most clients first")] = 50,
) -> AutomationNow:
    event = router.current_event
    cid = readable_community(event, community_id)
    return get_automation_tracker().live_counts(cid, request_time_ms(event), limit=limit)
