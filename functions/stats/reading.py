"""Who may read a community's aggregate numbers: shared by the stats routes of this function."""

from __future__ import annotations

from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from community_tracker.aws.stores import get_stores
from community_tracker.communities import registered_community
from community_tracker.http.auth import require_aggregate_reader


def readable_community(event: APIGatewayProxyEventV2, community_id: str) -> str:
    """Aggregates: a token (or public counts), and a registered community."""
    require_aggregate_reader(event.headers)
    return registered_community(community_id, get_stores().communities).community_id
