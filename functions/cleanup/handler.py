"""Lambda entry point of the cleanup, invoked by an EventBridge schedule every minute."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from community_tracker.aws.stores import get_stores
from community_tracker.cleanup import CleanupReport, run_cleanup_pass
from community_tracker.factories import warm_before_snapshot
from community_tracker.observability import count, logger, metrics, tracer
from community_tracker.redis.cleanup_index import get_cleanup_index
from community_tracker.settings import get_settings
from community_tracker.timeutil import scheduled_time_ms, system_clock

# SnapStart: the DynamoDB resource (the peak history's) is built before the snapshot.
warm_before_snapshot(get_stores)


def run_pass(now_ms: int, time_left_ms: Callable[[], int]) -> CleanupReport:
    settings = get_settings()
    return run_cleanup_pass(
        get_cleanup_index(),
        get_stores().peaks,
        now_ms=now_ms,
        time_left_ms=time_left_ms,
        margin_ms=settings.cleanup_margin_ms,
        batch_size=settings.cleanup_batch_size,
        checkpoints=get_stores().checkpoints,
    )


def run_pass_now() -> CleanupReport:
    """One pass by hand (`vt cleanup`), with a minute to do it."""
    deadline = system_clock() + 60_000
    return run_pass(system_clock(), lambda: deadline - system_clock())


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    report = run_pass(scheduled_time_ms(event), context.get_remaining_time_in_millis)
    count("StaleVisitorsRemoved", report.stale_removed)
    count("CommunitiesScanned", report.communities_scanned)
    count("PeakRollupsWritten", report.rollups_written)
    count("CheckpointsWritten", report.checkpoints_written)
    metrics.add_metric(name="Duration", unit=MetricUnit.Milliseconds, value=report.duration_ms)
    logger.info("cleanup pass", extra=report.model_dump())
    return report.model_dump()
