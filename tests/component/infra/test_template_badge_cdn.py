"""Counts for everyone, push for dashboards: the public badge goes through CloudFront with a cache
policy that honours the origin's Cache-Control for at most 5 s, so the origin sees about one request
per 5 s per community and format and edge cache, whatever the number of viewers."""

from __future__ import annotations

import json
from typing import Any

from infra.tables import TEMPLATE
from tests.component.infra.sam_template import conditions_for, created

BADGE_ROUTE = "/v1/badge/{community_id}"
CDN = {"BadgeCachePolicy", "BadgeResponseHeadersPolicy", "BadgeDistribution", "Outputs.BadgeUrl"}
OPENAPI = TEMPLATE.parent / "layers" / "community_tracker" / "openapi.json"


def badge_query_parameters() -> set[str]:
    """What the badge route reads from its query string, from the generated OpenAPI document."""
    operation = json.loads(OPENAPI.read_text(encoding="utf-8"))["paths"][BADGE_ROUTE]["get"]
    return {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}


def distribution(template: dict[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = template["Resources"]["BadgeDistribution"]["Properties"]["DistributionConfig"]
    return config


def test_the_cdn_exists_exactly_when_counts_are_public(template: dict[str, Any]) -> None:
    assert conditions_for(template, {"PublicCounts": "true"})["ServePublicBadge"]
    assert created(template, {"PublicCounts": "true"}) >= CDN
    assert not created(template, {"PublicCounts": "false"}) & CDN


def test_the_distribution_reaches_only_the_badge_route(template: dict[str, Any]) -> None:
    config = distribution(template)
    (origin,) = config["Origins"]
    assert origin["DomainName"] == {"Fn::Sub": "${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}"}
    assert origin["OriginPath"] + "/{community_id}" == BADGE_ROUTE
    assert origin["CustomOriginConfig"]["OriginProtocolPolicy"] == "https-only"
    assert "CacheBehaviors" not in config  # one behaviour, the badge's
    behaviour = config["DefaultCacheBehavior"]
    assert behaviour["TargetOriginId"] == origin["Id"]
    assert behaviour["AllowedMethods"] == ["GET", "HEAD"]
    assert behaviour["CachePolicyId"] == {"Ref": "BadgeCachePolicy"}
    assert behaviour["ViewerProtocolPolicy"] in {"redirect-to-https", "https-only"}
    # The route is the stats function's badge, a read route of the HTTP API.
    events = template["Resources"]["StatsFunction"]["Properties"]["Events"]
    assert any(e["Properties"]["Path"] == BADGE_ROUTE and e["Properties"]["Method"] == "GET" for e in events.values())


def test_the_cache_honours_the_origin_for_at_most_five_seconds(template: dict[str, Any]) -> None:
    policy = template["Resources"]["BadgeCachePolicy"]["Properties"]["CachePolicyConfig"]
    assert policy["MinTTL"] == 0  # the origin's no-store / max-age=0 are obeyed
    assert policy["DefaultTTL"] == 5  # no Cache-Control at all: still 5 s
    assert policy["MaxTTL"] == 5  # public, s-maxage=5 -> 5 s; nothing can make a count older
    key = policy["ParametersInCacheKeyAndForwardedToOrigin"]
    assert key["HeadersConfig"] == {"HeaderBehavior": "none"}  # no Authorization, nothing per viewer
    assert key["CookiesConfig"] == {"CookieBehavior": "none"}
    assert key["QueryStringsConfig"]["QueryStringBehavior"] == "whitelist"
    assert set(key["QueryStringsConfig"]["QueryStrings"]) == badge_query_parameters() == {"format"}
    for error in distribution(template)["CustomErrorResponses"]:
        assert error["ErrorCachingMinTTL"] <= policy["MaxTTL"], error


def test_the_json_badge_is_readable_from_any_page(template: dict[str, Any]) -> None:
    policy = template["Resources"]["BadgeResponseHeadersPolicy"]["Properties"]["ResponseHeadersPolicyConfig"]
    cors = policy["CorsConfig"]
    assert cors["AccessControlAllowOrigins"] == {"Items": ["*"]}
    assert cors["AccessControlAllowCredentials"] is False
    assert set(cors["AccessControlAllowMethods"]["Items"]) == {"GET", "HEAD"}


def test_the_stack_gives_the_badge_url(template: dict[str, Any]) -> None:
    output = template["Outputs"]["BadgeUrl"]
    assert output["Condition"] == "ServePublicBadge"
    assert output["Value"] == {"Fn::Sub": "https://${BadgeDistribution.DomainName}/{community_id}?format=svg"}
