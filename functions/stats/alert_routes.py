"""A community's alert rule (admin) and its alert history (README, "Spike and drop alerts")."""

from __future__ import annotations

from http import HTTPStatus
from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Body, Query

from community_tracker.alerts import DEFAULT_RULE, AlertRule, EffectiveRule
from community_tracker.aws.alert_stores import get_alert_history, get_alert_rules
from community_tracker.aws.stores import get_stores
from community_tracker.communities import registered_community
from community_tracker.http.auth import require_admin
from community_tracker.http.errors import SUCCESS_RESPONSE, error_responses
from community_tracker.http.resolver import http_router
from stats.community_routes import ADMIN_ANSWERS, AGGREGATE_ANSWERS, CommunityPath
from stats.cursors import Cursor
from stats.reading import readable_community
from stats.schemas import AlertPage

router = http_router()
RULE_ANSWERS = {
    **SUCCESS_RESPONSE,
    **error_responses(HTTPStatus.BAD_REQUEST, HTTPStatus.UNSUPPORTED_MEDIA_TYPE, HTTPStatus.REQUEST_ENTITY_TOO_LARGE),
    **ADMIN_ANSWERS,
}


def _admin_community(community_id: str) -> str:
    require_admin(router.current_event.headers)
    return registered_community(community_id, get_stores().communities).community_id


@router.put(
    "/v1/communities/<community_id>/alert-rule",
    summary="Set the community's spike and drop rule (admin); fields left out take their defaults",
    tags=["alerts"],
    responses=RULE_ANSWERS,
)
def put_alert_rule(community_id: CommunityPath, rule: Annotated[AlertRule, Body()]) -> EffectiveRule:
    cid = _admin_community(community_id)
    get_alert_rules().put(cid, rule)
    return EffectiveRule(community_id=cid, source="custom", rule=rule)


@router.get(
    "/v1/communities/<community_id>/alert-rule",
    summary="The community's spike and drop rule, or the default (admin)",
    tags=["alerts"],
    responses=ADMIN_ANSWERS,
)
def get_alert_rule(community_id: CommunityPath) -> EffectiveRule:
    cid = _admin_community(community_id)
    rule = get_alert_rules().get(cid)
    return EffectiveRule(community_id=cid, source="custom" if rule else "default", rule=rule or DEFAULT_RULE)


@router.get(
    "/v1/communities/<community_id>/alerts",
    summary="Spikes and drops of the community, newest first",
    tags=["alerts"],
    responses={**AGGREGATE_ANSWERS, **error_responses(HTTPStatus.BAD_REQUEST)},
)
def get_alerts(
    community_id: CommunityPath,
    limit: Annotated[int, Query(ge=1, le=100, description="Page size")] = 50,
    cursor: Cursor = None,
) -> AlertPage:
    cid = readable_community(router.current_event, community_id)
    alerts, next_cursor = get_alert_history().alerts(cid, limit=limit, cursor=cursor)
    return AlertPage(community_id=cid, alerts=alerts, next_cursor=next_cursor)
