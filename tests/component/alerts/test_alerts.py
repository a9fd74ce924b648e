"""Spike and drop alerts in-process: a real Redis of the test's own (so the index holds only this
test's communities), DynamoDB and EventBridge on moto, an SQS queue as the bus's target."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from redis import Redis

from alerts.handler import lambda_handler as alerts_handler
from community_tracker.alerts import EVENT_SOURCE, AlertRule
from community_tracker.aws.alert_stores import get_alert_rules
from community_tracker.aws.stores import get_stores
from community_tracker.factories import reset_factories
from community_tracker.models import Community
from community_tracker.redis.keys import CommunityKeys
from community_tracker.redis.live_state import get_tracker
from community_tracker.timeutil import hour_id, iso, minute_of
from infra.redis_servers import RedisProcess
from stats.handler import lambda_handler as stats_handler
from tests.builders import MINUTE, T0, anonymous, visit
from tests.component.stats.test_stats_routes import token
from tests.helpers import HttpAnswer, LambdaContext, api_request, call

BUS = "visitor-alerts-test"


@dataclass
class Bus:
    events: Any
    sqs: Any
    queue_url: str

    def received(self) -> list[dict[str, Any]]:
        messages = []
        while batch := self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages"):
            for message in batch:
                messages.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        return messages


@pytest.fixture
def bus(moto_table: str, own_redis: RedisProcess, monkeypatch: pytest.MonkeyPatch) -> Iterator[Bus]:
    """A bus whose rule sends this service's events to an SQS queue (moto delivers them)."""
    monkeypatch.setenv("VT_REDIS_URL", own_redis.url)
    monkeypatch.setenv("VT_EVENT_BUS_NAME", BUS)
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "alerts-test")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    reset_factories()
    events = boto3.client("events", region_name="us-east-1")
    sqs = boto3.client("sqs", region_name="us-east-1")
    events.create_event_bus(Name=BUS)
    queue_url = sqs.create_queue(QueueName="alerts")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="to-queue", EventBusName=BUS, EventPattern=json.dumps({"source": [EVENT_SOURCE]}))
    events.put_targets(Rule="to-queue", EventBusName=BUS, Targets=[{"Id": "queue", "Arn": queue_arn}])
    yield Bus(events=events, sqs=sqs, queue_url=queue_url)
    reset_factories()


@pytest.fixture
def redis(own_redis: RedisProcess) -> Iterator[Redis]:
    client = own_redis.client()
    yield client
    client.close()


def registered(community_id: str) -> Community:
    community = Community(community_id=community_id, slug=community_id, name=community_id, division_id="quebec")
    get_stores().communities.put(community)
    return community


def an_hour_at(redis: Redis, community_id: str, visitors: int, now_ms: int) -> None:
    """The per-minute series of the hour before `now_ms`, as cleanup would have sampled it."""
    keys = CommunityKeys(community_id)
    for minute in range(minute_of(now_ms) - 60, minute_of(now_ms)):
        redis.hset(keys.series(hour_id(minute * MINUTE)), str(minute), visitors)


def arrive(community_id: str, count: int, now_ms: int, prefix: str = "v") -> None:
    tracker = get_tracker()
    for i in range(count):
        tracker.add_visitor(visit(community_id, anonymous(f"{prefix}-{i}")), now_ms)


def scheduled(now_ms: int) -> dict[str, Any]:
    report: dict[str, Any] = alerts_handler(
        {"time": iso(now_ms).replace(".000", ""), "detail-type": "Scheduled Event"}, LambdaContext()
    )
    return report


def alerts_page(community: Community, headers: dict[str, str] | None = None, query: str = "") -> HttpAnswer:
    cid = community.community_id
    event = api_request(
        "GET",
        f"/v1/communities/{cid}/alerts",
        template="/v1/communities/{community_id}/alerts",
        path_parameters={"community_id": cid},
        headers=token() if headers is None else headers,
        query=query,
    )
    return call(stats_handler, event)


def put_rule(community: Community, body: Any, *, admin: bool = True) -> HttpAnswer:
    cid = community.community_id
    event = api_request(
        "PUT",
        f"/v1/communities/{cid}/alert-rule",
        template="/v1/communities/{community_id}/alert-rule",
        path_parameters={"community_id": cid},
        body=body,
        headers={**token("ops", admin=admin), "content-type": "application/json"},
    )
    return call(stats_handler, event)


def test_one_spike_is_one_event_on_the_bus(bus: Bus, redis: Redis) -> None:
    # Given a community with about 4 visitors a minute for the last hour, and 40 now
    community = registered("spiky")
    an_hour_at(redis, "spiky", 4, T0)
    arrive("spiky", 40, T0)

    # When the alerts run at T0 and on each of the next three minutes, the spike still going on
    first = scheduled(T0)
    for minute in range(1, 4):
        arrive("spiky", 40, T0 + minute * MINUTE)  # they stay
        scheduled(T0 + minute * MINUTE)

    # Then exactly one VisitorSpike event reached the bus's target
    assert first["fired"] == ["spiky/20310305T1200Z-spike"]
    events = bus.received()
    assert len(events) == 1
    event = events[0]
    assert (event["source"], event["detail-type"]) == ("community-visitor-tracker", "VisitorSpike")
    assert event["detail"] == {
        "alert_id": "20310305T1200Z-spike",
        "community_id": "spiky",
        "kind": "spike",
        "live_visitors": 40,
        "baseline": 4.0,
        "threshold": 12.0,
        "rule": AlertRule().model_dump(),
        "rule_source": "default",
        "started_at": "2031-03-05T12:00:00.000Z",
        "ended_at": None,
    }

    # And the history lists it; once the visitors are gone and the cooldown passed, it ended
    assert [a["alert_id"] for a in alerts_page(community).json()["alerts"]] == ["20310305T1200Z-spike"]
    scheduled(T0 + 20 * MINUTE)  # everyone stale: live 0, the baseline still about 4 -> no drop (below 10)
    assert bus.received() == []
    assert alerts_page(community).json()["alerts"][0]["ended_at"] == "2031-03-05T12:20:00.000Z"


def test_a_drop_and_a_custom_rule(bus: Bus, redis: Redis) -> None:
    # Given a busy community (30 a minute) that empties, and a quiet one with a sensitive rule
    busy = registered("busy")
    an_hour_at(redis, "busy", 30, T0)
    arrive("busy", 2, T0)
    quiet = registered("quiet")
    an_hour_at(redis, "quiet", 2, T0)
    arrive("quiet", 7, T0)
    assert put_rule(quiet, {"spike_factor": 3, "min_visitors": 5}).status == 200

    scheduled(T0)

    kinds = sorted((e["detail"]["community_id"], e["detail-type"], e["detail"]["rule_source"]) for e in bus.received())
    assert kinds == [("busy", "VisitorDrop", "default"), ("quiet", "VisitorSpike", "custom")]
    assert alerts_page(busy).json()["alerts"][0]["kind"] == "drop"


def test_overlapping_passes_send_once(bus: Bus, redis: Redis) -> None:
    registered("twice")
    an_hour_at(redis, "twice", 1, T0)
    arrive("twice", 30, T0)

    # A pass that holds the lock keeps a second one out
    redis.set("{vt:alerts}:lock", "someone-else", px=50_000)
    assert scheduled(T0)["skipped"] is True
    redis.delete("{vt:alerts}:lock")
    scheduled(T0)
    scheduled(T0)  # a retry of the same minute

    assert len(bus.received()) == 1


def test_refused_events_fail_the_pass_and_are_sent_by_the_next(
    bus: Bus, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    registered("retry")
    an_hour_at(redis, "retry", 1, T0)
    arrive("retry", 30, T0)
    monkeypatch.setenv("VT_EVENT_BUS_NAME", "no-such-bus")
    reset_factories()

    with pytest.raises(Exception, match="alert events"):
        scheduled(T0)

    monkeypatch.setenv("VT_EVENT_BUS_NAME", BUS)
    reset_factories()
    arrive("retry", 30, T0 + MINUTE)
    scheduled(T0 + MINUTE)
    assert [e["detail"]["community_id"] for e in bus.received()] == ["retry"]


def test_the_rule_route(bus: Bus) -> None:
    community = registered("ruled")
    cid = community.community_id

    def get_rule() -> HttpAnswer:
        event = api_request(
            "GET",
            f"/v1/communities/{cid}/alert-rule",
            template="/v1/communities/{community_id}/alert-rule",
            path_parameters={"community_id": cid},
            headers=token("ops", admin=True),
        )
        return call(stats_handler, event)

    assert get_rule().json() == {"community_id": cid, "source": "default", "rule": AlertRule().model_dump()}
    answer = put_rule(community, {"spike_factor": 2.5, "min_visitors": 20, "baseline_minutes": 120})
    assert answer.status == 200
    assert answer.json()["rule"]["spike_factor"] == 2.5
    assert get_rule().json()["source"] == "custom"
    assert get_alert_rules().get(cid) == AlertRule(spike_factor=2.5, min_visitors=20, baseline_minutes=120)


@pytest.mark.parametrize(
    ("body", "status", "named"),
    [
        ({"spike_factor": 0.5}, 422, "spike_factor"),
        ({"min_visitors": "many"}, 422, "min_visitors"),
        ({"baseline_minutes": 5}, 422, "baseline_minutes"),
        ({"threshold": 3}, 422, "threshold"),
        ({"enabled": 0}, 422, "enabled"),  # JSON types exactly (the fuzzing found 0 taken for false)
        ({"min_visitors": "10"}, 422, "min_visitors"),
        ("not json", 400, "JSON"),
    ],
)
def test_a_bad_rule_is_a_4xx_naming_the_problem(bus: Bus, body: Any, status: int, named: str) -> None:
    answer = put_rule(registered("badrule"), body)

    assert answer.status == status
    assert named in answer.json()["error"]["message"]
    assert get_alert_rules().get("badrule") is None


def test_rules_need_an_admin_and_history_a_reader(bus: Bus) -> None:
    community = registered("guarded")
    assert put_rule(community, {}, admin=False).status == 403
    assert alerts_page(community, headers={}).status == 401
    assert alerts_page(community, query="cursor=bm90LWEtY3Vyc29y").status == 400
