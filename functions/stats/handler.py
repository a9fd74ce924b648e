"""Lambda entry point of the stats API (API Gateway HTTP API, payload v2)."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.utilities.typing import LambdaContext

from community_tracker.aws.stores import get_stores
from community_tracker.factories import warm_before_snapshot
from community_tracker.http.errors import error_response
from community_tracker.http.resolver import accept_text_plain_json, build_resolver, vary_on_origin
from community_tracker.observability import correlate, logger, metrics, tracer
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
# SnapStart: the DynamoDB resource (the community lookup's) is built before the snapshot.
warm_before_snapshot(get_stores)


# The routes that take a body (alert rule, share links): a body API Gateway delivered base64-encoded
# that is not UTF-8 fails Powertools' decoding before any parser runs, which would be a 500.
@app.exception_handler(UnicodeDecodeError)
def _undecodable_body(_error: UnicodeDecodeError) -> Response[Any]:
    return error_response(HTTPStatus.BAD_REQUEST, "invalid_json", "the body is not UTF-8 encoded JSON")


# No answer in the trace: any answer of the stats API can be personal (exports, visitor lists, user
# ids), and one over 64 KB would overflow the X-Ray segment. Only ColdStart and Service are recorded.
@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    correlate(event)
    # Forms would be parsed by Powertools past the body cap: refused (415), as on the beacon routes.
    return vary_on_origin(app.resolve(accept_text_plain_json(event), context))
