"""The scheduled pusher: every minute EventBridge starts it; it ticks once a second until shortly
before its deadline, posting changed numbers to each community's subscribers."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from community_tracker.aws.connections import management_api_poster
from community_tracker.factories import cached_factory
from community_tracker.live import LivePusher, run_pusher
from community_tracker.observability import count, logger, metrics, tracer
from community_tracker.redis.live_state import get_tracker
from community_tracker.redis.subscriptions import get_subscriptions
from community_tracker.settings import get_settings
from community_tracker.timeutil import system_clock


@cached_factory
def get_pusher() -> LivePusher:
    """Kept for the life of the execution environment, with what it last pushed and its open
    connections to the management API."""
    return LivePusher(get_tracker(), get_subscriptions(), management_api_poster(get_settings()))


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:  # noqa: ARG001 (Lambda's signature)
    report = run_pusher(
        get_pusher(),
        clock=system_clock,
        time_left_ms=context.get_remaining_time_in_millis,
        lease_ms=get_settings().live_lease_ms,
    )
    count("LiveMessagesPosted", report.messages)
    count("LiveConnectionsPruned", report.pruned)
    count("LivePostsFailed", report.failed)
    count("LiveStateUnavailable", report.unavailable)
    count("LivePushWaitedTicks", report.waited)
    return {
        "messages": report.messages,
        "pruned": report.pruned,
        "failed": report.failed,
        "unavailable": report.unavailable,
        "waited": report.waited,
        "communities": report.communities,
    }
