"""Share links (admin): a signed, expiring, revocable read-only link to one community's numbers
(README, "Sharing without opening the API")."""

from __future__ import annotations

from http import HTTPStatus
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Path
from pydantic import BaseModel, ConfigDict, Field

from community_tracker.aws.share_links import expiry_iso, get_share_links, get_share_signer
from community_tracker.aws.stores import get_stores
from community_tracker.communities import registered_community
from community_tracker.http.auth import require_admin
from community_tracker.http.errors import ApiError, error_responses, json_answer, json_response
from community_tracker.http.resolver import http_router, request_time_ms
from community_tracker.sharing import (
    LINK_ID_PATTERN,
    MAX_LIFETIME_SECONDS,
    ShareGrant,
    ShareLink,
    new_link_id,
)
from community_tracker.timeutil import iso
from stats.community_routes import ADMIN_ANSWERS, ADMIN_ERRORS, CommunityPath

router = http_router()


class ShareLinkRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    expires_in_seconds: int = Field(default=7 * 86_400, ge=60, le=MAX_LIFETIME_SECONDS)
    label: str | None = Field(default=None, min_length=1, max_length=200)


class MintedShareLink(BaseModel):
    """The token is shown once: only the link's record is kept."""

    link: ShareLink
    token: str
    query: str  # append to a stats page or an aggregate route: `?share=…`


class ShareLinkList(BaseModel):
    community_id: str
    links: list[ShareLink]


def _admin_community(community_id: str) -> tuple[str, str]:
    principal = require_admin(router.current_event.headers)
    return registered_community(community_id, get_stores().communities).community_id, principal.user_id


@router.post(
    "/v1/communities/<community_id>/share-links",
    summary="Mint a read-only, expiring share link to the community's numbers (admin)",
    tags=["sharing"],
    responses={
        201: json_answer("The link and its token (shown once)", MintedShareLink),
        **error_responses(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, HTTPStatus.REQUEST_ENTITY_TOO_LARGE),
        **ADMIN_ERRORS,
    },
)
def post_share_link(community_id: CommunityPath, request: Annotated[ShareLinkRequest, Body()]) -> Response[Any]:
    cid, admin = _admin_community(community_id)
    now_ms = request_time_ms(router.current_event)
    expires_s = now_ms // 1000 + request.expires_in_seconds
    link = ShareLink(
        link_id=new_link_id(),
        community_id=cid,
        created_at=iso(now_ms),
        created_by=admin,
        expires_at=expiry_iso(expires_s),
        label=request.label,
    )
    get_share_links().put(link, expires_s)
    token = get_share_signer().mint(ShareGrant(community_id=cid, link_id=link.link_id, expires_s=expires_s))
    return json_response(HTTPStatus.CREATED, MintedShareLink(link=link, token=token, query=f"share={token}"))


@router.get(
    "/v1/communities/<community_id>/share-links",
    summary="The community's share links, revoked ones included, without their tokens (admin)",
    tags=["sharing"],
    responses=ADMIN_ANSWERS,
)
def get_share_link_list(community_id: CommunityPath) -> ShareLinkList:
    cid, _admin = _admin_community(community_id)
    return ShareLinkList(community_id=cid, links=get_share_links().links(cid))


@router.delete(
    "/v1/communities/<community_id>/share-links/<link_id>",
    summary="Revoke a share link: it is refused from now on (admin)",
    tags=["sharing"],
    responses=ADMIN_ANSWERS,
)
def delete_share_link(
    community_id: CommunityPath, link_id: Annotated[str, Path(pattern=LINK_ID_PATTERN)]
) -> ShareLinkList:
    cid, _admin = _admin_community(community_id)
    if not get_share_links().revoke(cid, link_id):
        raise ApiError(HTTPStatus.NOT_FOUND, "unknown_share_link", f"share link {link_id} does not exist")
    return ShareLinkList(
        community_id=cid, links=[link for link in get_share_links().links(cid) if link.link_id == link_id]
    )
