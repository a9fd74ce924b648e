"""Lambda entry point of the stats API (API Gateway HTTP API, payload v2)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from community_tracker.http.resolver import build_resolver
from community_tracker.observability import logger, metrics, tracer
from stats import (
    alert_routes,
    automation_routes,
    badge_routes,
    community_routes,
    docs_routes,
    share_routes,
    user_routes,
)

app = build_resolver()
app.include_router(community_routes.router)
app.include_router(user_routes.router)
app.include_router(badge_routes.router)
app.include_router(docs_routes.router)
app.include_router(automation_routes.router)
app.include_router(alert_routes.router)
app.include_router(share_routes.router)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
