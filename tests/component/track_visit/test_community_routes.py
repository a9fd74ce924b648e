"""Registering a community (admin PUT): its time zone, its versions, and a division move that every
function sees at once (README, "Beacon API", "Calendar buckets")."""

from __future__ import annotations

from typing import Any, cast

import boto3
import pytest

from community_tracker.aws.stores import get_stores
from community_tracker.models import Community
from community_tracker.settings import get_settings
from community_tracker.timeutil import HOUR_MS
from infra.tokens import mint_token
from stats.handler import lambda_handler as stats_handler
from tests.builders import SECOND, T0
from tests.helpers import HttpAnswer, api_request, beacon, call
from track_visit.handler import lambda_handler as beacon_handler

ADMIN = {"authorization": f"Bearer {mint_token(get_settings(), 'ops', roles=['admin'])}"}


def bearer(user_id: str, division: str | None = None) -> dict[str, str]:
    return {"authorization": f"Bearer {mint_token(get_settings(), user_id, division_id=division)}"}


def put(community_id: str, body: dict[str, Any], now_ms: int = T0) -> HttpAnswer:
    return call(
        beacon_handler,
        api_request(
            "PUT",
            f"/v1/communities/{community_id}",
            template="/v1/communities/{community_id}",
            path_parameters={"community_id": community_id},
            body=body,
            headers=ADMIN,
            now_ms=now_ms,
        ),
    )


def stats(community_id: str, suffix: str, now_ms: int) -> Any:
    answer = call(
        stats_handler,
        api_request(
            "GET",
            f"/v1/communities/{community_id}/{suffix}",
            template=f"/v1/communities/{{community_id}}/{suffix}",
            path_parameters={"community_id": community_id},
            headers=ADMIN,
            now_ms=now_ms,
        ),
    )
    assert answer.status == 200, answer.body
    return answer.json()


def kept_by_another_function(community: Community) -> None:
    """What a function that read the directory a moment ago keeps for up to a minute."""
    store = get_stores().communities
    store._entries[community.community_id] = (float("inf"), community)  # type: ignore[attr-defined]


def test_a_community_is_registered_with_its_time_zone(function_env: None) -> None:
    created = put("tz-new", {"slug": "tz-new", "name": "New", "division_id": "quebec", "time_zone": "America/Toronto"})
    default = put("tz-default", {"slug": "tz-default", "name": "Default"})
    renamed = put("tz-new", {"slug": "tz-new", "name": "Renamed", "division_id": "quebec"}, now_ms=T0 + HOUR_MS)
    moved = put(
        "tz-new",
        {"slug": "tz-new", "name": "Renamed", "division_id": "quebec", "time_zone": "Asia/Kolkata"},
        now_ms=T0 + 2 * HOUR_MS,
    )

    assert (created.json()["time_zone"], created.json()["version"]) == ("America/Toronto", 1)
    assert default.json()["time_zone"] == "UTC"  # VT_DEFAULT_TIME_ZONE
    assert (renamed.json()["time_zone"], renamed.json()["version"], renamed.json()["zone_history"]) == (
        "America/Toronto",
        2,
        [],
    )
    assert moved.json()["zone_history"] == [
        {"time_zone": "America/Toronto", "registered_ms": 0},
        {"time_zone": "Asia/Kolkata", "registered_ms": T0 + 2 * HOUR_MS},
    ]
    stored = get_stores().communities.fresh("tz-new")
    assert stored is not None
    assert stored == Community.model_validate(moved.json())


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "../../etc/passwd", "", 5])
def test_an_unknown_time_zone_is_refused(function_env: None, zone: Any) -> None:
    answer = put("tz-bad", {"slug": "tz-bad", "name": "Bad", "time_zone": zone})

    assert answer.status == 422, answer.body
    assert "time_zone" in answer.json()["error"]["message"]
    assert get_stores().communities.get("tz-bad") is None


def test_a_division_move_reattributes_live_visitors_at_once_everywhere(function_env: None) -> None:
    cid = "moving"
    before = Community.model_validate(
        put(cid, {"slug": cid, "name": "Moving", "division_id": "quebec", "time_zone": "America/Toronto"}).json()
    )
    url = {"url": "https://platform.example/c/moving/"}
    assert beacon(cid, url, headers=bearer("marie", "montreal"), now_ms=T0).json()["is_cross_division"] is True
    assert beacon(cid, url, headers=bearer("jean", "quebec"), now_ms=T0 + 1).json()["is_cross_division"] is False

    # The platform moves the community to Montreal; the other functions still keep "quebec"
    assert put(cid, {"slug": cid, "name": "Moving", "division_id": "montreal"}, now_ms=T0 + SECOND).status == 200
    kept_by_another_function(before)

    # Every live visitor counts against Montreal at once, without a beacon of theirs
    cross = stats(cid, "cross-division", T0 + 2 * SECOND)
    assert (cross["cross_division_visits"], cross["breakdown"]) == (
        1,
        [{"from_division": "quebec", "to_division": "montreal", "count": 1}],
    )
    # and the next beacon of a function that kept the old registration is judged by the new one
    kept_by_another_function(before)
    answer = beacon(
        cid, {**url, "event_id": "evt-after-move-1"}, headers=bearer("marie", "montreal"), now_ms=T0 + 3 * SECOND
    )
    assert (answer.json()["community_division"], answer.json()["is_cross_division"]) == ("montreal", False)
    table = boto3.resource("dynamodb", region_name="us-east-1").Table(get_settings().table_name)
    [item] = [
        cast(dict[str, Any], i)
        for i in table.query(
            KeyConditionExpression="PK = :pk AND begins_with(SK, :v)",
            ExpressionAttributeValues={":pk": f"COMMUNITY#{cid}", ":v": "VISIT#"},
        )["Items"]
        if i["event_id"] == "evt-after-move-1"
    ]
    assert item["metadata"]["community_division_id"] == "montreal"
    kept = get_stores().communities.get(cid)
    assert kept is not None
    assert kept.version == 2  # read again when Redis said so


def test_a_directory_reset_behind_redis_is_followed_not_refused(function_env: None) -> None:
    # The local run's emulator restarts empty and seeds version 0 again while Redis holds version 2
    cid = "reset"
    put(cid, {"slug": cid, "name": "Reset", "division_id": "quebec"})
    put(cid, {"slug": cid, "name": "Reset", "division_id": "laval"})
    seeded = Community(community_id=cid, slug=cid, name="Reset", division_id="gatineau")
    get_stores().communities.put(seeded)

    answer = beacon(cid, {"url": "https://platform.example/"}, headers=bearer("ana", "laval"), now_ms=T0)

    assert answer.status == 200, answer.body
    assert answer.json()["community_division"] == "gatineau"


def test_a_community_is_split_into_parts_on_a_live_community(function_env: None) -> None:
    # Given a community in one part with live visitors (README, "One community in N parts")
    cid = "hot"
    assert put(cid, {"slug": cid, "name": "Hot", "division_id": "quebec"}).json()["parts"] == 1
    url = {"url": "https://platform.example/c/hot/"}
    for n, division in enumerate(["quebec", "montreal", "laval", None]):
        assert beacon(cid, url, headers=bearer(f"hot-{n}", division), now_ms=T0 + n).status == 200

    # When the admin splits it in four, then renames it without saying how many parts
    split = put(cid, {"slug": cid, "name": "Hot", "division_id": "quebec", "parts": 4}, now_ms=T0 + SECOND)
    renamed = put(cid, {"slug": cid, "name": "Hotter", "division_id": "quebec"}, now_ms=T0 + 2 * SECOND)
    refused = put(cid, {"slug": cid, "name": "Hot", "parts": 65}, now_ms=T0 + 3 * SECOND)

    # Then it is in four parts, everyone still counted once, and the next beacons go on
    assert (split.json()["parts"], renamed.json()["parts"], refused.status) == (4, 4, 422)
    assert beacon(cid, url, headers=bearer("hot-4", "laval"), now_ms=T0 + 4 * SECOND).status == 200
    summary = stats(cid, "summary", T0 + 5 * SECOND)
    assert summary["stats"]["total_visitors"] == 5
    assert {d["division_id"]: d["count"] for d in summary["divisions"]} == {
        "quebec": 1,
        "montreal": 1,
        "laval": 2,
        None: 1,
    }
