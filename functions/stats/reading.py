"""Who may read a community's aggregate numbers: shared by the stats routes of this function.

A token (or public counts), as everywhere; or a share link in the query (`?share=<token>`, not in
`Authorization`, whose every malformed form is a 401 of its own): a link admits the aggregate
reads of its one community until it expires or is revoked. A `share` parameter that does not
admit the read is refused, whatever else the request carries.
"""

from __future__ import annotations

from http import HTTPStatus

from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from community_tracker.aws.share_links import get_share_links, get_share_signer
from community_tracker.aws.stores import get_stores
from community_tracker.communities import registered_community
from community_tracker.errors import InvalidShareLink
from community_tracker.http.auth import require_aggregate_reader
from community_tracker.http.errors import ApiError
from community_tracker.http.resolver import request_time_ms
from community_tracker.models import Community
from community_tracker.sharing import authorize_shared_read

SHARE_PARAMETER = "share"


def share_token(event: APIGatewayProxyEventV2) -> str | None:
    return (event.query_string_parameters or {}).get(SHARE_PARAMETER)


def readable_community(event: APIGatewayProxyEventV2, community_id: str) -> str:
    """Aggregates: a token (or public counts) or a share link of this community, and a
    registered community."""
    return readable(event, community_id).community_id


def readable(event: APIGatewayProxyEventV2, community_id: str) -> Community:
    """`readable_community`, as the registered community (its calendar, its version)."""
    token = share_token(event)
    if token is None:
        require_aggregate_reader(event.headers)
    else:
        try:
            authorize_shared_read(
                token,
                community_id,
                now_s=request_time_ms(event) // 1000,
                signer=get_share_signer(),
                links=get_share_links(),
            )
        except InvalidShareLink as refusal:
            status = HTTPStatus.FORBIDDEN if refusal.code == "share_link_other_community" else HTTPStatus.UNAUTHORIZED
            raise ApiError(status, refusal.code, str(refusal)) from refusal
    return registered_community(community_id, get_stores().communities)
