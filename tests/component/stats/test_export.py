"""The export of a user's whole history: pages that each fit Lambda's 6 MB response, every visit
exactly once, for 100,000 visits in moto."""

from __future__ import annotations

import json
from typing import Any

import boto3
from boto3.dynamodb.conditions import Key

from community_tracker.aws.stores import visit_item
from community_tracker.models import Community, VisitEvent, VisitMetadata
from community_tracker.settings import get_settings
from community_tracker.timeutil import iso
from tests.builders import T0
from tests.component.stats.bulk_moto import bulk_put, indexed_queries
from tests.component.stats.test_stats_routes import token, user_get

LAMBDA_RESPONSE_LIMIT = 6 * 1024 * 1024


def bulk_visits(table_name: str, events: list[VisitEvent]) -> None:
    """The events' items exactly as `put_visit` shapes them, straight into moto's table."""
    bulk_put(table_name, get_settings().aws_region, (visit_item(event) for event in events))


def events_of(user_id: str, community: Community, count: int, *, url_length: int = 0) -> list[VisitEvent]:
    return [
        VisitEvent(
            event_id=f"evt-{i:08d}",
            user_id=user_id,
            timestamp=iso(T0 + i * 10),
            metadata=VisitMetadata(
                community_id=community.community_id,
                community_slug=community.slug,
                visitor_division_id="montreal",
                community_division_id=community.division_id,
                is_cross_division=True,
                is_authenticated=True,
                url=f"https://platform.example/c/{community.slug}/{i}/".ljust(url_length, "x"),
                referrer=None,
            ),
        )
        for i in range(count)
    ]


def export_everything(user_id: str, headers: dict[str, str]) -> tuple[list[dict[str, Any]], list[int]]:
    visits: list[dict[str, Any]] = []
    sizes: list[int] = []
    cursor: str | None = None
    while True:
        answer = user_get(user_id, "visits/export", headers=headers, query=f"cursor={cursor}" if cursor else "")
        assert answer.status == 200, answer.body
        # What the Lambda runtime returns: the whole answer as one JSON document
        sizes.append(len(json.dumps({"statusCode": 200, "headers": answer.headers, "body": answer.body})))
        page = answer.json()
        visits.extend(page["visits"])
        cursor = page["next_cursor"]
        if cursor is None:
            return visits, sizes


def test_an_export_of_100_000_visits_pages_and_returns_each_visit_once(moto_table: str, community: Community) -> None:
    user_id = "prolific"
    events = events_of(user_id, community, 100_000)
    bulk_visits(moto_table, events)

    with indexed_queries():
        visits, sizes = export_everything(user_id, token(user_id))

    assert indexed_queries.served > 30  # type: ignore[attr-defined]  # moto's 1 MB pages, none bypassed
    assert len(sizes) > 1
    assert max(sizes) < LAMBDA_RESPONSE_LIMIT
    assert len(visits) == len(events)
    assert len({v["event_id"] for v in visits}) == len(events)  # each exactly once
    assert [v["event_id"] for v in visits] == [e.event_id for e in reversed(events)]  # newest first
    assert visits[-1] == events[0].model_dump()


def test_a_small_history_is_one_page(moto_table: str, community: Community) -> None:
    events = events_of("brief", community, 3)
    bulk_visits(moto_table, events)

    visits, sizes = export_everything("brief", token("brief"))

    assert len(sizes) == 1
    assert [v["event_id"] for v in visits] == ["evt-00000002", "evt-00000001", "evt-00000000"]


def test_the_indexed_queries_answer_as_moto_does(moto_table: str, community: Community) -> None:
    # Long URLs: moto's 1 MB cut falls every 600 or so
    bulk_visits(moto_table, events_of("paged", community, 800, url_length=1500) + events_of("other", community, 100))
    table = boto3.resource("dynamodb", region_name=get_settings().aws_region).Table(moto_table)

    def pages(forward: bool, limit: int | None) -> list[dict[str, Any]]:
        answers, start = [], None
        while True:
            extra: dict[str, Any] = {"ExclusiveStartKey": start} if start else {}
            if limit:
                extra["Limit"] = limit
            key = Key("GSI1PK").eq("USER#paged")
            answer: dict[str, Any] = dict(
                table.query(IndexName="ByUser", KeyConditionExpression=key, ScanIndexForward=forward, **extra)
            )
            answer.pop("ResponseMetadata")
            answers.append(answer)
            start = answer.get("LastEvaluatedKey")
            if start is None:
                return answers

    for forward, limit in ((False, None), (True, None), (False, 250)):
        by_moto = pages(forward, limit)
        with indexed_queries():
            by_the_shortcut = pages(forward, limit)
        assert by_the_shortcut == by_moto
        assert len(by_moto) >= 2
