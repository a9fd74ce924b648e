"""HTTP API throttles: every route has the throttle of its class (beacon, read, admin), sized from
the beacon mix and kept under the account's regional quota (README, "Throttles")."""

from __future__ import annotations

from typing import Any

from tests.component.infra.sam_template import functions

# Account-level quota of API Gateway per region (all REST, HTTP and WebSocket APIs and the
# WebSocket @connections callbacks of the account share it), unless raised through Service Quotas.
ACCOUNT_RPS = 10_000
# Beacons per visitor and minute by route: a page view every 2 min, a heartbeat every 30 s.
BEACONS_PER_MINUTE = {
    "POST /v1/communities/{community_id}/visits": 0.5,
    "POST /v1/communities/{community_id}/heartbeat": 2.0,
}
BEACON_ROUTES = {*BEACONS_PER_MINUTE, "POST /v1/communities/{community_id}/leave"}
ADMIN_ROUTES = {
    "PUT /v1/communities/{community_id}",
    "GET /v1/communities/{community_id}/visitors",
    "GET /v1/communities/{community_id}/visits",
    "GET /v1/users/{user_id}/visits/export",
    "DELETE /v1/users/{user_id}/visits",
    # A community's alert rule and its share links (admin only; the alerts list is an aggregate read).
    "GET /v1/communities/{community_id}/alert-rule",
    "PUT /v1/communities/{community_id}/alert-rule",
    "POST /v1/communities/{community_id}/share-links",
    "GET /v1/communities/{community_id}/share-links",
    "DELETE /v1/communities/{community_id}/share-links/{link_id}",
}
CLASSES = ("Beacon", "Read", "Admin")


def http_routes(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Route key -> properties of its HttpApi event."""
    return {
        f"{event['Properties']['Method'].upper()} {event['Properties']['Path']}": event["Properties"]
        for properties in functions(template).values()
        for event in properties.get("Events", {}).values()
        if event["Type"] == "HttpApi"
    }


def route_class(settings: dict[str, Any]) -> str:
    rate, burst = str(settings["ThrottlingRateLimit"]["Ref"]), str(settings["ThrottlingBurstLimit"]["Ref"])
    cls = rate.removesuffix("ThrottlingRateLimit")
    assert burst == f"{cls}ThrottlingBurstLimit", settings
    return cls


def default(template: dict[str, Any], parameter: str) -> int:
    return int(template["Parameters"][parameter]["Default"])


def test_every_route_is_throttled_by_its_class(template: dict[str, Any]) -> None:
    classes = {key: route_class(props["RouteSettings"]) for key, props in http_routes(template).items()}
    assert {key for key, cls in classes.items() if cls == "Beacon"} == BEACON_ROUTES
    assert {key for key, cls in classes.items() if cls == "Admin"} == ADMIN_ROUTES
    assert set(classes.values()) == set(CLASSES)


def test_the_stage_carries_each_route_setting(template: dict[str, Any], translated: dict[str, Any]) -> None:
    """What API Gateway receives: the HTTP API stage with one RouteSettings entry per route key,
    and the stage default (for a route added without a class) from its own parameters."""
    (stage,) = [
        resource["Properties"]
        for resource in translated["Resources"].values()
        if resource["Type"] == "AWS::ApiGatewayV2::Stage" and resource["Properties"]["ApiId"] == {"Ref": "HttpApi"}
    ]
    assert set(stage["RouteSettings"]) == set(http_routes(template))
    assert stage["DefaultRouteSettings"] == {
        "ThrottlingRateLimit": {"Ref": "ApiThrottlingRateLimit"},
        "ThrottlingBurstLimit": {"Ref": "ApiThrottlingBurstLimit"},
    }


def test_defaults_are_sized_from_the_beacon_mix_and_fit_the_account_quota(template: dict[str, Any]) -> None:
    beacon_rate = default(template, "BeaconThrottlingRateLimit")
    # The heartbeat route fills first; at that many live visitors all beacons together must leave
    # room in the account quota for the reads and for the other APIs of the account.
    visitors_at_limit = beacon_rate / (max(BEACONS_PER_MINUTE.values()) / 60)
    all_beacons = visitors_at_limit * sum(BEACONS_PER_MINUTE.values()) / 60
    assert visitors_at_limit >= 100_000
    assert all_beacons + default(template, "ReadThrottlingRateLimit") <= 0.8 * ACCOUNT_RPS
    # Reads and admin routes are far below the beacons; a route without a class starts smaller still.
    assert default(template, "AdminThrottlingRateLimit") < default(template, "ReadThrottlingRateLimit") < beacon_rate
    assert default(template, "ApiThrottlingRateLimit") <= default(template, "ReadThrottlingRateLimit")
    for cls in (*CLASSES, "Api"):
        rate, burst = default(template, f"{cls}ThrottlingRateLimit"), default(template, f"{cls}ThrottlingBurstLimit")
        assert 0 < rate <= ACCOUNT_RPS
        assert 0 < burst <= ACCOUNT_RPS // 2  # the account's default burst
