"""Lambda entry point of the stats API (API Gateway HTTP API, payload v2)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from community_tracker.http.resolver import build_resolver, vary_on_origin
from community_tracker.observability import logger, metrics, tracer
from stats import badge_routes, community_routes, docs_routes, user_routes

app = build_resolver()
app.include_router(community_routes.router)
app.include_router(user_routes.router)
app.include_router(badge_routes.router)
app.include_router(docs_routes.router)


# No answer in the trace: any answer of the stats API can be personal (exports, visitor lists, user
# ids), and one over 64 KB would overflow the X-Ray segment. Only ColdStart and Service are recorded.
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return vary_on_origin(app.resolve(event, context))
