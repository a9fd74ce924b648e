"""The functions' real AWS calls against the emulator endpoint: table, conditional writes, the
ByUser index, erasure, rollups, and both HTTP functions end to end."""

from __future__ import annotations

import json
from typing import Any

import pytest

from community_tracker.aws.clients import aws_client, dynamodb_resource
from community_tracker.aws.stores import Erasure, get_stores
from community_tracker.models import Community, Peak, VisitEvent, VisitMetadata
from community_tracker.settings import get_settings
from community_tracker.timeutil import UTC_CALENDAR, iso
from infra.aws_emulator import EmulatorProcess
from infra.tokens import mint_token
from stats.handler import lambda_handler as stats_handler
from tests.builders import SECOND, T0
from tests.helpers import api_request, call
from track_visit.handler import lambda_handler as beacon_handler


def event(community_id: str, user_id: str, index: int) -> VisitEvent:
    return VisitEvent(
        event_id=f"evt-{user_id}-{index:04d}",
        user_id=user_id,
        timestamp=iso(T0 + index * SECOND),
        metadata=VisitMetadata(
            community_id=community_id,
            community_slug=community_id,
            visitor_division_id="laval",
            community_division_id="quebec",
            is_cross_division=True,
            is_authenticated=True,
            url="https://platform.example/c/",
            referrer=None,
        ),
    )


def test_clients_reach_the_emulator_through_localstack_client(emulated_aws: str, emulator: EmulatorProcess) -> None:
    assert dynamodb_resource().meta.client.meta.endpoint_url == f"http://{emulator.host}"


def test_table_is_built_from_the_template(emulated_aws: str) -> None:
    dynamodb = aws_client("dynamodb")

    table = dynamodb.describe_table(TableName=emulated_aws)["Table"]
    ttl = dynamodb.describe_time_to_live(TableName=emulated_aws)["TimeToLiveDescription"]
    backups = dynamodb.describe_continuous_backups(TableName=emulated_aws)["ContinuousBackupsDescription"]

    assert {k["AttributeName"]: k["KeyType"] for k in table["KeySchema"]} == {"PK": "HASH", "SK": "RANGE"}
    assert [index["IndexName"] for index in table["GlobalSecondaryIndexes"]] == ["ByUser"]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"}
    assert backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"


def test_a_visit_is_written_once(emulated_aws: str) -> None:
    visits = get_stores().visits

    assert visits.put_visit(event("c1", "u1", 0)) is True
    assert visits.put_visit(event("c1", "u1", 0)) is False
    assert len(visits.community_visits("c1", limit=10).visits) == 1


def test_user_history_across_communities_through_the_index(emulated_aws: str) -> None:
    visits = get_stores().visits
    for index, community in enumerate(["c1", "c2", "c3", "c1"]):
        visits.put_visit(event(community, "roaming", index))
    visits.put_visit(event("c1", "someone-else", 9))

    first = visits.user_visits("roaming", limit=3, cursor=None)
    rest = visits.user_visits("roaming", limit=3, cursor=first.next_cursor)

    assert [v.metadata.community_id for v in first.visits] == ["c1", "c3", "c2"]
    assert [v.metadata.community_id for v in rest.visits] == ["c1"]
    assert rest.next_cursor is None


def test_erasure_removes_every_visit_of_the_user(emulated_aws: str) -> None:
    visits = get_stores().visits
    for index in range(30):
        visits.put_visit(event(f"c{index % 3}", "leaving", index))
    visits.put_visit(event("c0", "staying", 99))

    assert visits.delete_user_visits("leaving") == Erasure(deleted=30, complete=True)
    assert list(visits.all_user_visits("leaving")) == []
    assert [v.user_id for v in visits.community_visits("c0", limit=50).visits] == ["staying"]


def test_peak_rollups_are_idempotent_and_monotonic(emulated_aws: str) -> None:
    peaks = get_stores().peaks
    peak = Peak.at(UTC_CALENDAR.bucket("month", T0), 12, iso(T0), 3)

    peaks.put_rollup("c1", peak)
    peaks.put_rollup("c1", peak)
    peaks.put_rollup("c1", peak.model_copy(update={"count": 5}))

    assert peaks.rollups("c1", "month", limit=5) == [peak]


def _post(path: str, template: str, params: dict[str, str], body: Any, headers: dict[str, str]) -> Any:
    return call(
        beacon_handler,
        api_request("POST", path, template=template, path_parameters=params, body=body, headers=headers, now_ms=T0),
    )


def test_beacon_and_history_end_to_end_on_the_emulator(emulated_aws: str) -> None:
    get_stores().communities.put(Community(community_id="emu", slug="emu", name="Emu", division_id="quebec"))
    bearer = {"authorization": f"Bearer {mint_token(get_settings(), 'emu-user', division_id='laval')}"}
    body = {"event_id": "evt-emulated-01", "url": "https://platform.example/communities/emu/"}

    first = _post(
        "/v1/communities/emu/visits", "/v1/communities/{community_id}/visits", {"community_id": "emu"}, body, bearer
    )
    retry = _post(
        "/v1/communities/emu/visits", "/v1/communities/{community_id}/visits", {"community_id": "emu"}, body, bearer
    )
    history = call(
        stats_handler,
        api_request(
            "GET",
            "/v1/users/emu-user/visits",
            template="/v1/users/{user_id}/visits",
            path_parameters={"user_id": "emu-user"},
            headers=bearer,
            now_ms=T0,
        ),
    )

    assert first.status == retry.status == 200
    assert json.loads(history.body)["visits"][0]["metadata"]["community_id"] == "emu"
    assert len(json.loads(history.body)["visits"]) == 1


@pytest.mark.parametrize("community_id", ["emu-unknown"])
def test_unknown_community_is_refused_by_the_emulated_lookup(emulated_aws: str, community_id: str) -> None:
    answer = _post(
        f"/v1/communities/{community_id}/visits",
        "/v1/communities/{community_id}/visits",
        {"community_id": community_id},
        {"url": "https://x.example/"},
        {},
    )

    assert answer.status == 404
