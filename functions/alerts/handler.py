"""Lambda entry point of the spike and drop alerts, invoked by an EventBridge schedule every minute
(README, "Spike and drop alerts")."""

from __future__ import annotations

import uuid
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from community_tracker.alerts import AlertReport, run_alert_pass
from community_tracker.aws.alert_stores import get_alert_history, get_alert_rules
from community_tracker.aws.events import get_publisher
from community_tracker.factories import warm_before_snapshot
from community_tracker.observability import count, logger, metrics, tracer
from community_tracker.redis.alert_state import get_alert_state_store
from community_tracker.timeutil import scheduled_time_ms

# SnapStart: the DynamoDB and EventBridge clients are built before the snapshot.
warm_before_snapshot(get_alert_rules, get_alert_history, get_publisher)


def run_alerts(now_ms: int) -> AlertReport:
    return run_alert_pass(
        get_alert_state_store(),
        get_alert_rules(),
        get_alert_history(),
        get_publisher(),
        now_ms=now_ms,
        holder=uuid.uuid4().hex,
    )


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:  # noqa: ARG001 (Lambda's signature)
    report = run_alerts(scheduled_time_ms(event))
    count("AlertsFired", len(report.fired))
    count("AlertCommunitiesEvaluated", report.communities)
    logger.info("alert pass", extra={"communities": report.communities, "fired": report.fired, "ended": report.ended})
    return {"communities": report.communities, "fired": report.fired, "ended": report.ended, "skipped": report.skipped}
