"""Alarms: errors and throttles of every function, duration near the timeout of the request
functions and the pusher, the Redis nodes' CPU, memory, evictions and replication lag, DynamoDB
throttling, and alert events the webhook never received; every alarm notifies the one alarm topic."""

from __future__ import annotations

import itertools
import re
from typing import Any

from tests.component.infra.sam_template import functions
from tests.component.infra.test_template_iam import EXPECTED_GRANTS

ALARM = "AWS::CloudWatch::Alarm"
TOPIC = [{"Fn::If": ["UseExistingAlarmTopic", {"Ref": "AlarmTopicArn"}, {"Ref": "AlarmTopic"}]}]
EXISTING = {
    "TrackVisitErrorsAlarm",
    "StatsErrorsAlarm",
    "CleanupErrorsAlarm",
    "AlertsErrorsAlarm",
    "FunctionThrottlesAlarm",
    "Api5xxAlarm",
}
LIVE_FUNCTIONS = ("LiveConnectionsFunction", "LivePushFunction")
PUSHER_MARGIN_MS = 2000  # run_pusher stops this long before its deadline (community_tracker/live.py)


def alarms(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == ALARM}


def watched(alarm: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(namespace, metric, dimensions) of each metric an alarm reads, plain or in metric math."""
    properties = alarm["Properties"]
    if "MetricName" in properties:
        dimensions = {d["Name"]: d["Value"] for d in properties.get("Dimensions", [])}
        return [(properties["Namespace"], properties["MetricName"], dimensions)]
    found = []
    for query in properties["Metrics"]:
        if "MetricStat" in query:
            metric = query["MetricStat"]["Metric"]
            dimensions = {d["Name"]: d["Value"] for d in metric.get("Dimensions", [])}
            found.append((metric["Namespace"], metric["MetricName"], dimensions))
    return found


def alarms_on(template: dict[str, Any], namespace: str, metric: str) -> dict[str, dict[str, Any]]:
    return {
        name: alarm
        for name, alarm in alarms(template).items()
        if any(ns == namespace and m == metric for ns, m, _ in watched(alarm))
    }


def function_alarm(template: dict[str, Any], function: str, metric: str) -> dict[str, Any]:
    (alarm,) = [
        alarm
        for alarm in alarms_on(template, "AWS/Lambda", metric).values()
        if any(dims.get("FunctionName") == {"Ref": function} for _, _, dims in watched(alarm))
    ]
    return alarm


def test_every_alarm_notifies_the_alarm_topic_and_the_old_ones_stay(template: dict[str, Any]) -> None:
    found = alarms(template)
    assert set(found) >= EXISTING
    for name, alarm in found.items():
        assert alarm["Properties"]["AlarmActions"] == TOPIC, name
        assert alarm["Properties"]["OKActions"] == TOPIC, name
        assert alarm["Properties"]["TreatMissingData"] == "notBreaching", name
        # A metric math alarm may read at most 10 metrics.
        assert len(watched(alarm)) <= 10, name


def test_every_function_has_an_error_and_a_throttle_alarm_existing_when_it_does(template: dict[str, Any]) -> None:
    for function in functions(template):
        condition = template["Resources"][function].get("Condition")
        for metric in ("Errors", "Throttles"):
            alarm = function_alarm(template, function, metric)
            assert alarm.get("Condition") == condition, (function, metric)


def test_both_live_functions_have_error_throttle_and_duration_alarms(template: dict[str, Any]) -> None:
    for function in LIVE_FUNCTIONS:
        for metric in ("Errors", "Throttles", "Duration"):
            alarm = function_alarm(template, function, metric)
            assert alarm.get("Condition") == "EnableLivePush", (function, metric)  # no live push, no alarm


def test_duration_alarms_sit_just_below_each_timeout(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    for function in ("TrackVisitFunction", "StatsFunction", "LiveConnectionsFunction"):
        alarm = function_alarm(template, function, "Duration")["Properties"]
        timeout_ms = resources[function]["Properties"]["Timeout"] * 1000
        assert alarm["ExtendedStatistic"] == "p99"
        assert alarm["Threshold"] == 0.8 * timeout_ms, function
    # The pusher uses its whole minute on purpose: only running into the deadline is an alarm.
    pusher = function_alarm(template, "LivePushFunction", "Duration")["Properties"]
    timeout_ms = resources["LivePushFunction"]["Properties"]["Timeout"] * 1000
    assert pusher["Statistic"] == "Maximum"
    assert timeout_ms - PUSHER_MARGIN_MS < pusher["Threshold"] < timeout_ms


def possible_nodes(template: dict[str, Any], *, replicas_only: bool = False) -> set[str]:
    """CacheClusterId of every node NumShards and ReplicasPerShard allow: <group>-000S-00N."""
    shards = template["Parameters"]["NumShards"]["MaxValue"]
    replicas = template["Parameters"]["ReplicasPerShard"]["MaxValue"]
    first = 2 if replicas_only else 1
    return {
        f"${{RedisReplicationGroup}}-{shard:04d}-{node:03d}"
        for shard, node in itertools.product(range(1, shards + 1), range(first, replicas + 2))
    }


def test_redis_alarms_watch_every_node_there_can_be(template: dict[str, Any]) -> None:
    expected = {
        "EngineCPUUtilization": possible_nodes(template),
        "DatabaseMemoryUsagePercentage": possible_nodes(template),
        "Evictions": possible_nodes(template),
        "ReplicationLag": possible_nodes(template, replicas_only=True),
    }
    for metric, nodes in expected.items():
        (alarm,) = alarms_on(template, "AWS/ElastiCache", metric).values()
        ids = {dims["CacheClusterId"]["Fn::Sub"] for _, _, dims in watched(alarm)}
        assert ids == nodes, metric
        expression = next(q["Expression"] for q in alarm["Properties"]["Metrics"] if q.get("ReturnData"))
        assert re.fullmatch(r"(MAX|SUM)\(\[[\w, ]+\]\)", expression), expression
    lag = next(iter(alarms_on(template, "AWS/ElastiCache", "ReplicationLag").values()))
    assert lag["Condition"] == "HasReplicas"


def test_dynamodb_throttling_of_every_operation_used(template: dict[str, Any]) -> None:
    events = {
        (metric, dims.get("GlobalSecondaryIndexName"))
        for name in ("ReadThrottleEvents", "WriteThrottleEvents")
        for alarm in alarms_on(template, "AWS/DynamoDB", name).values()
        for _, metric, dims in watched(alarm)
    }
    assert events == {(m, index) for m in ("ReadThrottleEvents", "WriteThrottleEvents") for index in (None, "ByUser")}
    (throttled,) = alarms_on(template, "AWS/DynamoDB", "ThrottledRequests").values()
    operations = {dims["Operation"] for _, _, dims in watched(throttled)}
    # The operations the roles allow; the visit's two Puts run inside TransactWriteItems.
    granted = {
        a.removeprefix("dynamodb:") for grants in EXPECTED_GRANTS.values() for a, _ in grants if "dynamodb:" in a
    }
    assert operations == granted | {"TransactWriteItems"}
    for alarm in (throttled, *alarms_on(template, "AWS/DynamoDB", "ReadThrottleEvents").values()):
        assert all(dims["TableName"] == {"Ref": "VisitsTable"} for _, _, dims in watched(alarm))


def test_webhook_deliveries_that_failed_for_good_are_an_alarm(template: dict[str, Any]) -> None:
    (name,) = alarms_on(template, "AWS/Events", "FailedInvocations")
    alarm = template["Resources"][name]
    assert alarm["Condition"] == "SendAlertWebhook"
    ((_, _, dims),) = watched(alarm)
    rule = template["Resources"]["AlertWebhookRule"]["Properties"]
    assert dims == {"EventBusName": {"Ref": "AlertsEventBus"}, "RuleName": rule["Name"]}
    assert rule["EventBusName"] == {"Ref": "AlertsEventBus"}
