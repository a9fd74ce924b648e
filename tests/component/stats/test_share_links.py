"""Share links: minted by an admin, accepted by the aggregate reads of their community (`?share=`),
refused when expired, forged, revoked or used on another community."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import pytest

from community_tracker.aws.stores import get_stores
from community_tracker.models import Community
from community_tracker.sharing import ShareGrant, ShareSigner
from stats.handler import lambda_handler
from tests.builders import MINUTE, SECOND, T0
from tests.component.stats.test_stats_routes import token
from tests.helpers import HttpAnswer, api_request, call

AGGREGATES = [
    "stats",
    "divisions",
    "cross-division",
    "peaks",
    "summary",
    "timeline",
    "drops",
    "automation",
    "alerts",
    "context/pages",
]


def request(
    method: str,
    community_id: str,
    suffix: str,
    *,
    query: str = "",
    headers: dict[str, str] | None = None,
    body: Any = None,
    now_ms: int = T0,
    params: dict[str, str] | None = None,
) -> HttpAnswer:
    template_suffix = suffix if params is None else suffix.rsplit("/", 1)[0] + "/{link_id}"
    event = api_request(
        method,
        f"/v1/communities/{community_id}/{suffix}",
        template=f"/v1/communities/{{community_id}}/{template_suffix}",
        path_parameters={"community_id": community_id, **(params or {})},
        headers={} if headers is None else headers,
        query=query,
        body=body,
        now_ms=now_ms,
    )
    return call(lambda_handler, event)


def mint(community: Community, body: Any = None, **kwargs: Any) -> HttpAnswer:
    return request(
        "POST", community.community_id, "share-links", headers=token("ops", admin=True), body=body or {}, **kwargs
    )


def shared(community_id: str, share: str, suffix: str = "stats", now_ms: int = T0 + SECOND) -> HttpAnswer:
    return request("GET", community_id, suffix, query=f"share={share}", now_ms=now_ms)


@pytest.fixture
def other(function_env: None) -> Community:
    registered = Community(community_id=f"other-{uuid.uuid4().hex[:8]}", slug="other", name="Other")
    get_stores().communities.put(registered)
    return registered


def test_a_share_link_opens_the_aggregates_of_its_community(community: Community) -> None:
    answer = mint(community, {"expires_in_seconds": 3600, "label": "city hall screen"})

    assert answer.status == 201
    minted = answer.json()
    assert minted["link"]["community_id"] == community.community_id
    assert minted["link"]["expires_at"] == "2031-03-05T13:00:00Z"
    assert minted["link"]["created_by"] == "ops"
    assert minted["query"] == f"share={minted['token']}"
    for suffix in AGGREGATES:
        assert shared(community.community_id, minted["token"], suffix).status == 200, suffix
    # and its registration, which names it on the stats page
    registration = api_request(
        "GET",
        f"/v1/communities/{community.community_id}",
        template="/v1/communities/{community_id}",
        path_parameters={"community_id": community.community_id},
        headers={},
        query=f"share={minted['token']}",
        now_ms=T0 + SECOND,
    )
    assert call(lambda_handler, registration).json()["name"] == community.name

    # Without it, still closed
    assert request("GET", community.community_id, "stats").status == 401


def test_a_share_link_opens_nothing_else(community: Community) -> None:
    share = mint(community).json()["token"]

    for suffix in ("visitors", "visits", "share-links", "alert-rule"):
        assert shared(community.community_id, share, suffix).status == 401, suffix


def test_an_expired_link_is_refused(community: Community) -> None:
    share = mint(community, {"expires_in_seconds": 60}).json()["token"]

    assert shared(community.community_id, share, now_ms=T0 + 59 * SECOND).status == 200
    late = shared(community.community_id, share, now_ms=T0 + MINUTE)
    assert late.status == 401
    assert late.json()["error"]["code"] == "share_link_expired"


def test_forged_links_are_refused(community: Community, other: Community) -> None:
    share = mint(community).json()["token"]
    version, payload, signature = share.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    longer = {**claims, "e": claims["e"] + 86_400 * 365}
    stretched = base64.urlsafe_b64encode(json.dumps(longer).encode()).decode().rstrip("=")
    other_key = ShareSigner("not-the-key").mint(
        ShareGrant(community_id=community.community_id, link_id=claims["l"], expires_s=claims["e"])
    )

    for forged in (
        f"{version}.{stretched}.{signature}",  # a longer life, the old signature
        other_key,  # signed with another key
        f"{version}.{payload}.{signature[:-2]}",  # a cut signature
        "vts1.not-base64!.sig",
        "garbage",
        "",
        "x" * 5000,
    ):
        answer = shared(community.community_id, forged)
        assert answer.status == 401, forged
        assert answer.json()["error"]["code"] == "invalid_share_link"


def test_a_revoked_link_is_refused(community: Community) -> None:
    minted = mint(community).json()
    link_id = minted["link"]["link_id"]
    assert shared(community.community_id, minted["token"]).status == 200

    revoked = request(
        "DELETE",
        community.community_id,
        f"share-links/{link_id}",
        headers=token("ops", admin=True),
        params={"link_id": link_id},
    )

    assert revoked.status == 200
    assert revoked.json()["links"][0]["revoked"] is True
    refused = shared(community.community_id, minted["token"])
    assert refused.status == 401
    assert refused.json()["error"]["code"] == "share_link_revoked"
    listed = request("GET", community.community_id, "share-links", headers=token("ops", admin=True)).json()
    assert [(link["link_id"], link["revoked"]) for link in listed["links"]] == [(link_id, True)]
    assert "token" not in json.dumps(listed)


def test_a_link_of_another_community_is_refused(community: Community, other: Community) -> None:
    share = mint(community).json()["token"]

    answer = shared(other.community_id, share)

    assert answer.status == 403
    assert answer.json()["error"]["code"] == "share_link_other_community"


def test_only_an_admin_mints_or_revokes(community: Community) -> None:
    assert request("POST", community.community_id, "share-links", headers=token("reader"), body={}).status == 403
    assert request("POST", community.community_id, "share-links", body={}).status == 401
    unknown = request(
        "DELETE",
        community.community_id,
        "share-links/no-such-link",
        headers=token("ops", admin=True),
        params={"link_id": "no-such-link"},
    )
    assert unknown.status == 404
    assert unknown.json()["error"]["code"] == "unknown_share_link"


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"expires_in_seconds": 10}, "expires_in_seconds"),
        ({"expires_in_seconds": 10**9}, "expires_in_seconds"),
        ({"label": ""}, "label"),
        ({"community_id": "elsewhere"}, "community_id"),
        ({"expires_in_seconds": "3600"}, "expires_in_seconds"),
    ],
)
def test_a_bad_mint_request_is_422_naming_the_field(community: Community, body: dict[str, Any], named: str) -> None:
    answer = mint(community, body)

    assert answer.status == 422
    assert named in answer.json()["error"]["message"]
